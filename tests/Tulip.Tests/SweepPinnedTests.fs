/// The cases the surface sweep (SurfaceSweepTests.fs) was written for, pinned one by one: each failed
/// before the fix. Loop-bound members refuse a foreign thread before changing anything; bad input gets a
/// typed error at the call.
module Tulip.Tests.SweepPinnedTests

open System
open System.IO
open System.Net
open System.Net.Sockets
open System.Threading
open System.Threading.Tasks
open Expecto
open Tulip
open Tulip.Io
open Tulip.Reactive
open Tulip.Tests.ShellSupport
open Tulip.Tests.NetSupport
open Tulip.Tests.SweepWorld

/// A real-clock loop running RunForever on a thread of its own: the test thread is a foreign one.
type private LoopThread() =
    let loop = new EventLoop()
    let thread = Thread((fun () -> loop.RunForever()), IsBackground = true, Name = "loop under test")

    do thread.Start()

    /// Runs `f` on the loop's thread and waits (bounded) for its result.
    member _.Run(f: unit -> 'T) : 'T =
        let tcs = TaskCompletionSource<'T>(TaskCreationOptions.RunContinuationsAsynchronously)
        loop.CallSoonThreadsafe(fun () -> try tcs.SetResult(f ()) with e -> tcs.SetException e) |> ignore
        if not (tcs.Task.Wait(TimeSpan.FromSeconds 10.0)) then failtest "the loop did not answer"
        tcs.Task.Result

    /// Runs `f` as a loop task and waits (bounded) for it.
    member this.RunTask(f: unit -> Task<'T>) : 'T =
        let t = this.Run(fun () -> loop.CreateTask(Func<Task<'T>>(f)))
        let tcs = TaskCompletionSource<'T>(TaskCreationOptions.RunContinuationsAsynchronously)
        this.Run(fun () -> t.AddDoneCallback(fun _ -> try tcs.SetResult(t.Result()) with e -> tcs.SetException e))
        if not (tcs.Task.Wait(TimeSpan.FromSeconds 10.0)) then failtest "the task did not finish"
        tcs.Task.Result

    member _.Loop = loop

    interface IDisposable with
        member _.Dispose() =
            loop.CallSoonThreadsafe(fun () -> loop.Stop()) |> ignore
            thread.Join(TimeSpan.FromSeconds 10.0) |> ignore
            loop.Close()

let private startLoopThread () =
    let lt = new LoopThread()
    lt.Run ignore // running: from now on the test thread is foreign
    lt

let private sockRecvHuge: NetCase =
    netCase "SockRecv(int.MaxValue) allocates what can be read, not 2 GiB"
    <| fun net ->
        task {
            let loop = net.Loop
            let listener = net.Own(new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
            listener.Bind(IPEndPoint(IPAddress.Loopback, 0))
            listener.Listen 1
            let client = net.Own(new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
            client.Connect listener.LocalEndPoint
            let conn = net.Own(listener.Accept())
            conn.Blocking <- false
            client.Send("hello"B) |> ignore
            let! data = loop.SockRecvAsync(conn, Int32.MaxValue)
            Expect.equal data "hello"B "what was there"
            client.Dispose()
            conn.Dispose()
            listener.Dispose()
        }

// CPython accepts range(backlog) connections per readiness: a backlog of 0 accepts none.
let private backlogZero: NetCase =
    netCaseWithin 10.0 "CreateServer: a negative backlog is refused; a backlog of 0 still accepts"
    <| fun net ->
        task {
            let loop = net.Loop
            let factory = Func<BaseProtocol>(fun () -> net.Recorder "server side" :> BaseProtocol)

            let e =
                throws<ArgumentOutOfRangeException> (fun () ->
                    loop.CreateServerAsync(factory, "127.0.0.1", 0, backlog = -1).GetAwaiter().GetResult() |> ignore)

            Expect.equal e.ParamName "backlog" "named"
            let! server = loop.CreateServerAsync(factory, "127.0.0.1", 0, backlog = 0)
            net.Track server |> ignore
            let client = net.Recorder "client side"

            let! struct (t, _) =
                loop.CreateConnectionAsync(Func<NetSupport.Recorder>(fun () -> client), "127.0.0.1", NetSupport.portOf server)

            while server.ActiveConnections = 0 do
                do! Asyncio.Sleep 0.005

            t.Close()
            server.Close()
        }

[<Tests>]
let pinned =
    testList
        "Engine correctness"
        [ testList
              "loop-bound members refuse a foreign thread"
              [ // The loop's objects are not thread-safe (asyncio: call_soon_threadsafe is the door). Before,
                // the item was stored and the getter taken off the list, then waking it raised: it waited forever.
                testCase "a foreign PutNowait stores nothing; the waiting getter gets the next item put on the loop" (fun () ->
                    use lt = startLoopThread ()
                    let q = AsyncQueue<int>()
                    let got = TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously)

                    lt.Run(fun () ->
                        lt.Loop.CreateTask(Func<Task<unit>>(fun () -> task { let! v = q.GetAsync() in got.SetResult v }))
                        |> ignore)

                    lt.Run ignore // the getter waits: the queue is bound to the loop
                    throws<EventLoopException> (fun () -> q.PutNowait 1) |> ignore
                    Expect.equal (lt.Run(fun () -> q.QSize)) 0 "nothing stored"
                    lt.Run(fun () -> q.PutNowait 2)
                    Expect.isTrue (got.Task.Wait(TimeSpan.FromSeconds 10.0)) "the getter woke"
                    Expect.equal got.Task.Result 2 "with the item put on the loop")

                testCase "a foreign Write is refused: the peer receives exactly what the loop wrote" (fun () ->
                    use lt = startLoopThread ()
                    use listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)
                    listener.Bind(IPEndPoint(IPAddress.Loopback, 0))
                    listener.Listen 1
                    let port = (listener.LocalEndPoint :?> IPEndPoint).Port

                    let transport =
                        lt.RunTask(fun () ->
                            task {
                                let! struct (t, _) = lt.Loop.CreateConnectionAsync(Func<SweepProtocol>(SweepProtocol), "127.0.0.1", port)
                                return t
                            })

                    use peer = listener.Accept()
                    throws<EventLoopException> (fun () -> transport.Write(ReadOnlySpan("foreign"B))) |> ignore
                    throws<EventLoopException> (fun () -> transport.Close()) |> ignore

                    lt.Run(fun () ->
                        transport.Write(ReadOnlySpan("loop"B))
                        transport.Close())

                    use received = new MemoryStream()
                    let buffer = Array.zeroCreate<byte> 64
                    peer.ReceiveTimeout <- 10_000
                    let mutable n = peer.Receive buffer

                    while n > 0 do
                        received.Write(buffer, 0, n)
                        n <- peer.Receive buffer

                    Expect.equal (Text.Encoding.ASCII.GetString(received.ToArray())) "loop" "only the loop's bytes, then EOF")

                testCase "bound primitives refuse a foreign thread before changing anything" (fun () ->
                    use lt = startLoopThread ()
                    let ev = AsyncEvent()
                    let lk = AsyncLock()
                    let sem = AsyncSemaphore(0)
                    let loop = lt.Loop

                    lt.Run(fun () ->
                        // A waiter on each binds it to the loop (asyncio's _LoopBoundMixin).
                        loop.CreateTask(Func<Task<bool>>(fun () -> ev.WaitAsync().AsTask())) |> ignore
                        loop.CreateTask(Func<Task<bool>>(fun () -> task { let! _ = lk.AcquireAsync() in return! lk.AcquireAsync() })) |> ignore
                        loop.CreateTask(Func<Task<bool>>(fun () -> sem.AcquireAsync().AsTask())) |> ignore)

                    lt.Run ignore
                    throws<EventLoopException> (fun () -> ev.Set()) |> ignore
                    throws<EventLoopException> (fun () -> lk.Release()) |> ignore
                    throws<EventLoopException> (fun () -> sem.Release()) |> ignore
                    let ev', lk', sem' = lt.Run(fun () -> ev.IsSet, lk.Locked, sem.Value)
                    Expect.isFalse ev' "the event is not set"
                    Expect.isTrue lk' "the lock is still held"
                    Expect.equal sem' 0 "the semaphore has no unit")

                testCase "a foreign CreateTask is refused and registers no task" (fun () ->
                    use lt = startLoopThread ()

                    throws<EventLoopException> (fun () -> lt.Loop.CreateTask(Func<Task<int>>(fun () -> Task.FromResult 1)) |> ignore)
                    |> ignore

                    Expect.equal (lt.Run(fun () -> lt.Loop.AllTasks().Count)) 0 "no task left behind") ]

          testList
              "bad input gets a typed error"
              [ testCase "WrapTask(null, loop) names its parameter" (fun () ->
                    use loop = newLoop ()
                    let e = throws<ArgumentNullException> (fun () -> Asyncio.WrapTask<int>(null, loop) |> ignore)
                    Expect.equal e.ParamName "task" "ArgumentNullException(task), not NullReferenceException")

                // asyncio's message is "{len(partial)} bytes read on a total of {expected!r} expected bytes".
                testCase "IncompleteReadException with a null partial means nothing was read" (fun () ->
                    let e = IncompleteReadException(null, Nullable 1)
                    Expect.isEmpty e.Partial "empty"
                    Expect.equal e.Message "0 bytes read on a total of 1 expected bytes" "asyncio's message")

                testCase "StreamReaderProtocol refuses a null loop at the call" (fun () ->
                    use loop = newLoop ()
                    let e = throws<ArgumentNullException> (fun () -> StreamReaderProtocol(LoopStreamReader(loop), null, null) |> ignore)
                    Expect.equal e.ParamName "loop" "named")

                // asyncio's StreamReader refuses limit <= 0 (ValueError 'Limit cannot be <= 0'), but only when a
                // connection makes one: start_server(limit=-1) listens and then fails every connection.
                testCase "StartServer refuses limit <= 0 when it is called, not per connection" (fun () ->
                    use loop = newLoop ()

                    runMainUnit loop (fun () ->
                        task {
                            for limit in [ -1; 0 ] do
                                let e =
                                    throws<ArgumentOutOfRangeException> (fun () ->
                                        Asyncio.StartServer((fun _ _ -> Task.CompletedTask), "127.0.0.1", 0, limit = limit) |> ignore)

                                Expect.equal e.ParamName "limit" "named"
                        }))

                testCase "LoopScheduler: a due time or period of TimeSpan.MaxValue means never, not an overflow" (fun () ->
                    use loop = newLoop ()
                    let s = LoopScheduler(loop)
                    let mutable ran = 0

                    runMainUnit loop (fun () ->
                        task {
                            do! Asyncio.Sleep 1.0 // loop time > 0: now + MaxValue would overflow
                            use _ =
                                s.Schedule((), TimeSpan.MaxValue, Func<Reactive.Concurrency.IScheduler, unit, IDisposable>(fun _ () ->
                                    ran <- ran + 1
                                    System.Reactive.Disposables.Disposable.Empty))

                            use _ = s.SchedulePeriodic((), TimeSpan.MaxValue, Func<unit, unit>(fun () -> ran <- ran + 1))
                            do! Asyncio.Sleep 86400.0
                        })

                    Expect.equal ran 0 "nothing ran in a day of loop time")

                sockRecvHuge ReactorKind.Epoll
                backlogZero ReactorKind.Epoll ] ]
