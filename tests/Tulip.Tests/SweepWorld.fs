/// The machinery of the surface sweep (SurfaceSweepTests.fs): what counts as escaping, the protocols
/// and sequences handed to the library, a stub that calls any member (spans included), do-nothing
/// delegates of any signature, and the world one call runs in.
module Tulip.Tests.SweepWorld

open System
open System.Collections.Concurrent
open System.Collections.Generic
open System.IO
open System.Linq.Expressions
open System.Net
open System.Net.Sockets
open System.Reflection
open System.Reflection.Emit
open System.Runtime.CompilerServices
open System.Threading
open System.Threading.Tasks
open Tulip
open Tulip.Testing

/// What must never escape a public member: each one is a defect of the library, not of the caller.
let forbidden =
    [ typeof<NullReferenceException>
      typeof<IndexOutOfRangeException>
      typeof<InvalidCastException>
      typeof<OverflowException>
      typeof<OutOfMemoryException> ]

let rec chain (e: exn) : exn list =
    match e with
    | null -> []
    | :? AggregateException as a -> e :: [ for i in a.InnerExceptions do yield! chain i ]
    | _ -> e :: chain e.InnerException

let forbiddenIn (e: exn) =
    chain e |> List.tryFind (fun x -> forbidden |> List.exists (fun f -> f.IsInstanceOfType x))

/// A generous bound for one call (or one loop round trip): nothing in the library may take longer.
let callLimit = TimeSpan.FromSeconds 2.0

// -------------------------------------------------------------------------------------------------
// Protocols, observables and sequences the sweep hands to the library

/// A task factory that makes the default tasks (the sweep calls its members like any user type's).
type SweepTaskFactory() =
    interface ITaskFactory with
        member _.CreateTask<'T>(loop: EventLoop, coroutine: Func<Task<'T>>, name: string) : LoopTask<'T> =
            if isNull loop then nullArg "loop"
            loop.CreateTask(coroutine, name)

        member _.CreateTask(loop: EventLoop, coroutine: Func<Task>, name: string) : LoopTask =
            if isNull loop then nullArg "loop"
            loop.CreateTask(coroutine, name)

/// A stream protocol that says when it is connected (the world closes what it made).
type SweepProtocol() =
    inherit Protocol()
    member val OnMade: ITransportBase -> unit = ignore with get, set
    override this.ConnectionMade(t) = this.OnMade t

type SweepBufferedProtocol() =
    inherit BufferedProtocol()
    let buffer = Array.zeroCreate<byte> 64
    override _.GetBuffer(_sizeHint) = Memory<byte>(buffer)
    override _.BufferUpdated(_count) = ()

type SweepDatagramProtocol() =
    inherit DatagramProtocol()

type SweepSubprocessProtocol() =
    inherit SubprocessProtocol()

/// Children the sweep starts: quiet (every stream /dev/null unless a pipe is wanted).
let quietSubprocess = SubprocessOptions(Stdin = SubprocessRedirect.DevNull, Stdout = SubprocessRedirect.DevNull, Stderr = SubprocessRedirect.DevNull)
let pipedSubprocess = SubprocessOptions(Stdin = SubprocessRedirect.Pipe, Stdout = SubprocessRedirect.Pipe, Stderr = SubprocessRedirect.Pipe)

/// An async sequence of one default item.
type OneItem<'T>() =
    interface IAsyncEnumerable<'T> with
        member _.GetAsyncEnumerator(_ct) =
            let given = ref false

            { new IAsyncEnumerator<'T> with
                member _.Current = Unchecked.defaultof<'T>

                member _.MoveNextAsync() =
                    let r = not given.Value
                    given.Value <- true
                    ValueTask<bool>(r)

                member _.DisposeAsync() = ValueTask.CompletedTask }

/// Records what an observable the library returned tells it.
type SweepObserver<'T>(errors: ConcurrentQueue<exn>) =
    interface IObserver<'T> with
        member _.OnNext _ = ()
        member _.OnError e = errors.Enqueue e
        member _.OnCompleted() = ()

// -------------------------------------------------------------------------------------------------
// Calling any member: an IL stub per member (reflection cannot pass a ReadOnlySpan, and an exception
// thrown through a stub is the member's own, not a TargetInvocationException)

type Marker = class end

let stubs = ConcurrentDictionary<MethodBase, Func<obj, obj[], obj>>()

let makeStub (m: MethodBase) : Func<obj, obj[], obj> =
    let dm = DynamicMethod("sweep_" + m.Name, typeof<obj>, [| typeof<obj>; typeof<obj[]> |], typeof<Marker>.Module, true)
    let il = dm.GetILGenerator()
    let ps = m.GetParameters()

    if not m.IsStatic && not (m :? ConstructorInfo) then
        il.Emit(OpCodes.Ldarg_0)
        let t = m.DeclaringType
        if t.IsValueType then il.Emit(OpCodes.Unbox, t) else il.Emit(OpCodes.Castclass, t)

    for i in 0 .. ps.Length - 1 do
        let pt = ps[i].ParameterType

        if pt.IsByRef then
            il.Emit(OpCodes.Ldloca, il.DeclareLocal(pt.GetElementType()))
        else
            il.Emit(OpCodes.Ldarg_1)
            il.Emit(OpCodes.Ldc_I4, i)
            il.Emit(OpCodes.Ldelem_Ref)

            if pt.IsByRefLike then
                // A span parameter: the argument is its array.
                let arr = (pt.GetGenericArguments()[0]).MakeArrayType()
                il.Emit(OpCodes.Castclass, arr)
                il.Emit(OpCodes.Newobj, pt.GetConstructor([| arr |]))
            elif pt.IsValueType then
                il.Emit(OpCodes.Unbox_Any, pt)
            else
                il.Emit(OpCodes.Castclass, pt)

    match m with
    | :? ConstructorInfo as c ->
        il.Emit(OpCodes.Newobj, c)
        if c.DeclaringType.IsValueType then il.Emit(OpCodes.Box, c.DeclaringType)
    | :? MethodInfo as mi ->
        il.Emit((if mi.IsStatic || mi.DeclaringType.IsValueType then OpCodes.Call else OpCodes.Callvirt), mi)
        let r = mi.ReturnType
        if r = typeof<Void> then il.Emit(OpCodes.Ldnull)
        elif r.IsValueType then il.Emit(OpCodes.Box, r)
    | _ -> failwith "not a method"

    il.Emit(OpCodes.Ret)
    dm.CreateDelegate(typeof<Func<obj, obj[], obj>>) :?> Func<obj, obj[], obj>

let invoke (m: MethodBase) (target: obj) (args: obj[]) =
    stubs.GetOrAdd(m, makeStub).Invoke(target, args)

// -------------------------------------------------------------------------------------------------
// Delegates that do nothing and return a completed default (a coroutine, a protocol factory…)

let taskFromResult (t: Type) (v: obj) : obj =
    typeof<Task>.GetMethod("FromResult").MakeGenericMethod([| t |]).Invoke(null, [| v |])

let defaultOf (t: Type) = if t.IsValueType then Activator.CreateInstance t else null

let delegates = ConcurrentDictionary<Type, Delegate>()

let concreteProtocol (r: Type) =
    if not r.IsAbstract then r
    elif typeof<DatagramProtocol>.IsAssignableFrom r then typeof<SweepDatagramProtocol>
    elif r = typeof<BufferedProtocol> then typeof<SweepBufferedProtocol>
    elif typeof<SubprocessProtocol>.IsAssignableFrom r then typeof<SweepSubprocessProtocol>
    else typeof<SweepProtocol>

let makeDelegate (d: Type) : Delegate =
    delegates.GetOrAdd(
        d,
        fun d ->
            let inv = d.GetMethod "Invoke"
            let ps = [ for p in inv.GetParameters() -> Expression.Parameter(p.ParameterType, p.Name) ]
            let r = inv.ReturnType

            let body: Expression =
                if r = typeof<Void> then Expression.Empty()
                elif r = typeof<Task> then Expression.Constant(Task.CompletedTask, typeof<Task>)
                elif r.IsGenericType && r.GetGenericTypeDefinition() = typedefof<Task<_>> then
                    let x = r.GetGenericArguments()[0]
                    Expression.Constant(taskFromResult x (defaultOf x), r)
                elif r = typeof<bool> then Expression.Constant(true)
                elif r = typeof<IDisposable> then Expression.Constant(System.Reactive.Disposables.Disposable.Empty, r)
                elif typeof<BaseProtocol>.IsAssignableFrom r then Expression.Convert(Expression.New(concreteProtocol r), r)
                elif r = typeof<IEnumerable<obj>> then Expression.Constant(Array.empty<obj>, r)
                else
                    match ps |> List.tryFind (fun p -> p.Type = r) with
                    | Some p -> p
                    | None -> Expression.Default(r)

            Expression.Lambda(d, body, ps).Compile()
    )

// -------------------------------------------------------------------------------------------------
// The world of one call

/// Something the world made that must be closed at the end (on the loop, then the sockets for sure).
type Owned =
    | OwnSocket of Socket
    | OwnServer of Server
    | OwnTransport of ITransportBase
    | OwnDisposable of IDisposable
    | OwnTask of ILoopTask
    | OwnAsync of IAsyncDisposable

/// One call's world: a loop on a virtual clock running RunForever on a thread of its own (the test
/// thread watches it), and what calls need, made on that thread and closed at the end.
type World() =
    let clock = VirtualClock(IdleLimit = TimeSpan.FromHours 1.0, IoQuietPeriod = TimeSpan.FromMilliseconds 2.0)
    let loop = new EventLoop(clock)
    let errors = ConcurrentQueue<ExceptionContext>()
    let handler = ExceptionHandler(fun _ c -> errors.Enqueue c)
    let owned = ConcurrentQueue<Owned>()
    let paths = ConcurrentQueue<string>()
    let cache = Dictionary<string, obj>()
    let mutable stopping = false
    let mutable stuck = false
    let mutable thread: Thread = null

    member _.Loop = loop
    /// A call or a round trip did not come back: the world is abandoned, not torn down.
    member _.Stuck = stuck
    member _.Errors = errors

    member _.Start() =
        loop.SetExceptionHandler handler

        let run () =
            // A member may stop the loop (Stop): it runs again until the world ends.
            while not (Volatile.Read &stopping) do
                try
                    loop.RunForever()
                with _ ->
                    Volatile.Write(&stopping, true)

        thread <- Thread(run, IsBackground = true, Name = "sweep loop")
        thread.Start()

    member _.Own(o: Owned) = owned.Enqueue o

    member w.OwnSocket(s: Socket) =
        w.Own(OwnSocket s)
        s

    /// Takes charge of what a call returned (a server, a connection, a socket, a subscription).
    member w.Adopt(o: obj) =
        match o with
        | null
        | :? EventLoop -> ()
        | :? Server as s ->
            w.Own(OwnServer s)
            for sock in s.Sockets do w.Own(OwnSocket sock)
        | :? ITransportBase as t ->
            w.Own(OwnTransport t)
            match t.GetExtraInfo "socket" with
            | :? Socket as s -> w.Own(OwnSocket s)
            | _ -> ()
        | :? Socket as s -> w.Own(OwnSocket s)
        | :? IDisposable as d -> w.Own(OwnDisposable d)
        | :? ITuple as t -> for i in 0 .. t.Length - 1 do w.Adopt t[i]
        | _ -> ()

    /// Runs `f` in a loop task (its body starts in the task's first step); waits (bounded) for its result.
    member _.OnLoop(f: unit -> Task<'T>) : Result<'T, exn> option =
        let tcs = TaskCompletionSource<Result<'T, exn>>(TaskCreationOptions.RunContinuationsAsynchronously)

        let body () =
            task {
                try
                    let! v = f ()
                    tcs.TrySetResult(Ok v) |> ignore
                with e ->
                    tcs.TrySetResult(Error e) |> ignore
            }

        try
            loop.CallSoonThreadsafe(fun () ->
                try
                    loop.CreateTask(Func<Task<unit>>(body), "sweep") |> ignore
                with e ->
                    tcs.TrySetResult(Error e) |> ignore)
            |> ignore
        with e ->
            tcs.TrySetResult(Error e) |> ignore

        if tcs.Task.Wait callLimit then
            Some tcs.Task.Result
        else
            stuck <- true
            None

    /// One round trip through the loop (a tick or more passes); false if the loop did not answer.
    member _.Tick() =
        if stuck || loop.IsClosed then
            false
        else
            use e = new ManualResetEventSlim()

            try
                loop.CallSoonThreadsafe(fun () -> e.Set()) |> ignore
            with _ ->
                e.Set()

            if not (e.Wait callLimit) then stuck <- true
            not stuck

    /// Stops the loop and closes it (the closed-loop mode), keeping what was made.
    member _.CloseLoop() =
        Volatile.Write(&stopping, true)

        try
            loop.CallSoonThreadsafe(fun () -> loop.Stop()) |> ignore
        with _ ->
            ()

        if thread.Join callLimit then
            try
                loop.Close()
            with _ ->
                ()
        else
            stuck <- true

    member w.Dispose() =
        let close o =
            try
                match o with
                | OwnServer s ->
                    s.Close()
                    s.AbortClients()
                | OwnTransport(:? ITransport as t) -> t.Abort()
                | OwnTransport(:? IDatagramTransport as t) -> t.Abort()
                | OwnTransport t -> t.Close()
                | OwnDisposable d -> d.Dispose()
                | OwnTask t -> t.Cancel() |> ignore
                | OwnAsync d -> d.DisposeAsync() |> ignore
                | OwnSocket _ -> ()
            with _ ->
                ()

        if not stuck && not loop.IsClosed then
            w.OnLoop(fun () -> task { Seq.iter close owned }) |> ignore
            for _ in 1..3 do w.Tick() |> ignore
            w.CloseLoop()

        for o in owned do
            match o with
            | OwnSocket s -> s.Dispose()
            | _ -> ()

        for p in paths do
            try
                File.Delete p
            with _ ->
                ()

    // ---------------------------------------------------------------------------------------------
    // What calls need, made on the loop thread, once per world

    member private _.Once<'T>(key: string, make: unit -> 'T) : 'T =
        match cache.TryGetValue key with
        | true, v -> v :?> 'T
        | _ ->
            let v = make ()
            cache[key] <- box v
            v

    member w.Future() = w.Once("future", fun () -> loop.CreateFuture<int>())

    member _.DoneFuture() =
        let f = loop.CreateFuture<int>()
        f.SetResult 1
        f

    member _.DoneTask() : Task<LoopTask<int>> =
        task {
            let t = loop.CreateTask(Func<Task<int>>(fun () -> Task.FromResult 1))
            let! _ = t
            return t
        }

    /// A pending Future<t> (the one Future<int> for int).
    member w.FutureOf(t: Type) : obj =
        if t = typeof<int> then
            box (w.Future())
        else
            w.Once("future " + t.Name, fun () -> Activator.CreateInstance(typedefof<Future<_>>.MakeGenericType [| t |], [| box loop |]))

    /// A task pending on a future.
    member w.Task() =
        w.Once(
            "task",
            fun () ->
                let f = loop.CreateFuture<int>()
                let t = loop.CreateTask(Func<Task<int>>(fun () -> task { return! f }), "sweep task")
                w.Own(OwnTask t)
                t
        )

    member _.UnixPath() =
        let p = Path.Combine(Path.GetTempPath(), $"tulip-sweep-{Guid.NewGuid():N}.sock")
        paths.Enqueue p
        p

    member w.SweepProtocol() = SweepProtocol(OnMade = (fun t -> w.Adopt t))

    member w.Server() : Task<Server> =
        w.Once(
            "server",
            fun () ->
                task {
                    let! s = loop.CreateServerAsync(Func<BaseProtocol>(fun () -> w.SweepProtocol()), "127.0.0.1", 0)
                    w.Adopt s
                    return s
                }
        )

    member w.Port() =
        task {
            let! s = w.Server()
            return (s.Sockets[0].LocalEndPoint :?> IPEndPoint).Port
        }

    member w.UnixServerPath() : Task<string> =
        w.Once(
            "unix server",
            fun () ->
                task {
                    let path = w.UnixPath()
                    let! s = loop.CreateUnixServerAsync(Func<BaseProtocol>(fun () -> w.SweepProtocol()), path)
                    w.Adopt s
                    return path
                }
        )

    member w.Transport() : Task<ITransport> =
        w.Once(
            "transport",
            fun () ->
                task {
                    let! port = w.Port()
                    let! struct (t, _) = loop.CreateConnectionAsync(Func<SweepProtocol>(fun () -> w.SweepProtocol()), "127.0.0.1", port)
                    w.Adopt t
                    return t
                }
        )

    /// A child that exits at once, its streams piped.
    member w.Process() : Task<LoopProcess> =
        w.Once(
            "process",
            fun () ->
                task {
                    let! p = Asyncio.CreateSubprocessExec("true", [], pipedSubprocess)
                    w.Own(OwnAsync p)
                    return p
                }
        )

    member w.Subprocess() : Task<ISubprocessTransport> =
        w.Once(
            "subprocess",
            fun () ->
                task {
                    let! struct (t, _) = loop.SubprocessExecAsync(Func<SweepSubprocessProtocol>(fun () -> SweepSubprocessProtocol()), "true")
                    w.Adopt t
                    return t
                }
        )

    /// A fresh pipe's end (the world closes both).
    member w.PipeEnd(write: bool) : Microsoft.Win32.SafeHandles.SafeFileHandle =
        let struct (r, wr) = Tulip.Subprocess.PosixNative.Pipe()
        let rh = new Microsoft.Win32.SafeHandles.SafeFileHandle(nativeint r, true)
        let wh = new Microsoft.Win32.SafeHandles.SafeFileHandle(nativeint wr, true)
        w.Own(OwnDisposable rh)
        w.Own(OwnDisposable wh)
        if write then wh else rh

    member w.PipeStream(write: bool) : FileStream =
        let h = w.PipeEnd write
        let f = new FileStream(h, (if write then FileAccess.Write else FileAccess.Read), 1)
        w.Own(OwnDisposable f)
        f

    member w.Streams() : Task<LoopStreamReader * LoopStreamWriter * StreamReaderProtocol> =
        w.Once(
            "streams",
            fun () ->
                task {
                    let! port = w.Port()
                    let reader = LoopStreamReader(loop)
                    let protocol = StreamReaderProtocol(reader, null, loop)
                    let! struct (t, _) = loop.CreateConnectionAsync(Func<StreamReaderProtocol>(fun () -> protocol), "127.0.0.1", port)
                    w.Adopt t
                    return reader, LoopStreamWriter(t, protocol, reader, loop), protocol
                }
        )

    member w.DatagramPeer() =
        w.Once(
            "datagram peer",
            fun () ->
                let s = w.OwnSocket(new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp))
                s.Bind(IPEndPoint(IPAddress.Loopback, 0))
                s
        )

    member w.Datagram() : Task<IDatagramTransport> =
        w.Once(
            "datagram",
            fun () ->
                task {
                    let factory = Func<SweepDatagramProtocol>(SweepDatagramProtocol)
                    let local = IPEndPoint(IPAddress.Loopback, 0)
                    let! struct (t, _) = loop.CreateDatagramEndpointAsync(factory, local, w.DatagramPeer().LocalEndPoint)
                    w.Adopt t
                    return t
                }
        )

    member w.RawListener() =
        w.Once(
            "raw listener",
            fun () ->
                let s = w.OwnSocket(new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
                s.Bind(IPEndPoint(IPAddress.Loopback, 0))
                s.Listen 16
                s.Blocking <- false
                s
        )

    /// A connected non-blocking socket (its peer accepted and kept).
    member w.NewConnected() =
        let l = w.RawListener()
        let c = w.OwnSocket(new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        c.Connect(l.LocalEndPoint)
        l.Blocking <- true
        w.OwnSocket(l.Accept()) |> ignore
        l.Blocking <- false
        c.Blocking <- false
        c

    member w.Connected() = w.Once("raw connected", w.NewConnected)

    member w.NewBound() =
        let s = w.OwnSocket(new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        s.Bind(IPEndPoint(IPAddress.Loopback, 0))
        s

    member w.NewUnconnected() =
        w.OwnSocket(new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp, Blocking = false))

    // Sync primitives, bound to the loop (asyncio's _LoopBoundMixin binds on the first wait), and left in
    // a state where their mutators succeed: a refusal from a foreign thread is then the thread rule's.

    member private _.WaitOnce(wait: unit -> Task) =
        task {
            let waiter = loop.CreateTask(Func<Task>(wait))
            do! Asyncio.Sleep 0.0 // the waiter's first step: it waits, the primitive is bound
            return waiter
        }

    member w.Event() : Task<AsyncEvent> =
        w.Once(
            "event",
            fun () ->
                task {
                    let ev = AsyncEvent()
                    let! waiter = w.WaitOnce(fun () -> ev.WaitAsync().AsTask())
                    ev.Set()
                    let! _ = waiter
                    ev.Clear()
                    return ev
                }
        )

    /// `held`: acquired once more at the end, so Release succeeds.
    member w.Lock(held: bool) : Task<AsyncLock> =
        w.Once(
            $"lock {held}",
            fun () ->
                task {
                    let lk = AsyncLock()
                    let! _ = lk.AcquireAsync()
                    let! waiter = w.WaitOnce(fun () -> task { let! _ = lk.AcquireAsync() in lk.Release() })
                    lk.Release()
                    let! _ = waiter
                    if held then
                        let! _ = lk.AcquireAsync()
                        ()

                    return lk
                }
        )

    /// A bounded one is left acquired, so Release succeeds.
    member w.Semaphore(bounded: bool) : Task<AsyncSemaphore> =
        w.Once(
            $"semaphore {bounded}",
            fun () ->
                task {
                    let s = if bounded then BoundedSemaphore(1) :> AsyncSemaphore else AsyncSemaphore(1)
                    let! _ = s.AcquireAsync()
                    let! waiter = w.WaitOnce(fun () -> task { let! _ = s.AcquireAsync() in s.Release() })
                    s.Release()
                    let! _ = waiter
                    if bounded then
                        let! _ = s.AcquireAsync()
                        ()

                    return s
                }
        )

    /// Left held, so Notify and Release succeed.
    member w.Condition() : Task<Condition> =
        w.Once(
            "condition",
            fun () ->
                task {
                    let c = Condition()
                    let! waiter = w.WaitOnce(fun () -> task { let! _ = c.AcquireAsync() in let! _ = c.WaitAsync() in c.Release() })
                    let! _ = c.AcquireAsync()
                    c.Notify()
                    c.Release()
                    let! _ = waiter
                    let! _ = c.AcquireAsync()
                    return c
                }
        )

    member w.Barrier() : Task<AsyncBarrier> =
        w.Once(
            "barrier",
            fun () ->
                task {
                    let b = AsyncBarrier(2)
                    let! a = w.WaitOnce(fun () -> b.WaitAsync())
                    let! _ = b.WaitAsync()
                    let! _ = a
                    return b
                }
        )

    /// An AsyncQueue<int> (or its priority or LIFO kind) with one item, so GetNowait and TaskDone succeed.
    member w.Queue(kind: string) : Task<AsyncQueue<int>> =
        w.Once(
            "queue " + kind,
            fun () ->
                task {
                    let q =
                        match kind with
                        | "priority" -> AsyncPriorityQueue<int>() :> AsyncQueue<int>
                        | "lifo" -> AsyncLifoQueue<int>()
                        | _ -> AsyncQueue<int>()

                    let! getter = w.WaitOnce(fun () -> q.GetAsync().AsTask())
                    q.PutNowait 1
                    let! _ = getter
                    q.PutNowait 2
                    return q
                }
        )

/// A thread for the calls of the closed-loop and foreign-thread modes, replaced if a call hangs.
type Caller() =
    let work = new BlockingCollection<unit -> unit>()

    let thread =
        Thread((fun () -> for f in work.GetConsumingEnumerable() do f ()), IsBackground = true, Name = "sweep caller")

    do thread.Start()

    member _.Call(f: unit -> 'T) : 'T option =
        let tcs = TaskCompletionSource<'T>()
        work.Add(fun () -> try tcs.SetResult(f ()) with e -> tcs.SetException e)
        if tcs.Task.Wait callLimit then Some tcs.Task.Result else None
