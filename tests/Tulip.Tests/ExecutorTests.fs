/// Issue 18: executors. The thread pool (submit / map / shutdown), the loop's run_in_executor face,
/// to_thread, wrap_future and run_coroutine_threadsafe, pinned against CPython 3.11's concurrent.futures
/// and asyncio (each test says which behaviour). Real threads and a real-time loop: every wait is bounded.
module Tulip.Tests.ExecutorTests

open System
open System.Collections.Concurrent
open System.Threading
open System.Threading.Tasks
open Expecto
open Tulip
open Tulip.Tests.ShellSupport

let private limit = TimeSpan.FromSeconds 30.0

/// Runs `main` on a new real-time loop (asyncio.run), bounded in time.
let runReal (main: unit -> Task<'T>) : 'T =
    Asyncio.Run(Func<Task<'T>>(fun () -> Asyncio.WaitFor(Asyncio.EnsureFuture(Func<Task<'T>>(main)), limit)))

exception Boom of int

/// A named function, so its frame shows in the stack trace that comes back.
let throwingWork (n: int) : int = raise (InvalidTimeZoneException(sprintf "work %d failed" n))

let private gate () = new ManualResetEventSlim(false)

[<Tests>]
let tests =
    testList
        "Executors (threads)"
        [ testCase "run_in_executor: the work runs on an executor thread, the result arrives on the loop's thread" (fun () ->
              let loopThread, workThread, doneThread, result =
                  runReal (fun () ->
                      task {
                          let loop = Asyncio.GetRunningLoop()
                          let f = loop.RunInExecutor(null, Func<string * int>(fun () -> Thread.CurrentThread.Name, Environment.CurrentManagedThreadId))
                          let mutable doneOn = -1
                          f.AddDoneCallback(fun _ -> doneOn <- Environment.CurrentManagedThreadId)
                          let! (name, id) = f
                          do! Asyncio.Sleep 0.0
                          return Environment.CurrentManagedThreadId, (name, id), doneOn, 42
                      })

              let name, id = workThread
              Expect.stringStarts name "asyncio_" "the default executor's threads are named as CPython's (asyncio_0)"
              Expect.notEqual id loopThread "not the loop's thread"
              Expect.equal doneThread loopThread "the future completed on the loop's thread"
              Expect.equal result 42 "")

          testCase "an exception comes back with its type and the stack where it was thrown" (fun () ->
              use ex = new ThreadPoolExecutor(2)

              let e =
                  runReal (fun () ->
                      task {
                          try
                              let! _ = Asyncio.GetRunningLoop().RunInExecutor(ex, Func<int, int>(throwingWork), 7)
                              return null
                          with :? InvalidTimeZoneException as e ->
                              return e
                      })

              Expect.isNotNull e "the worker's exception type"
              Expect.equal e.Message "work 7 failed" "its message"
              Expect.stringContains e.StackTrace "throwingWork" "its stack shows the worker's frame")

          testCase "cancelling the loop future of work not yet started means it never runs (run_in_executor + cancel)" (fun () ->
              use ex = new ThreadPoolExecutor(1)
              use hold = gate ()
              let ran = ConcurrentBag<int>()

              runReal (fun () ->
                  task {
                      let loop = Asyncio.GetRunningLoop()
                      let first = loop.RunInExecutor(ex, Action(fun () -> hold.Wait(limit) |> ignore; ran.Add 1))
                      let second = loop.RunInExecutor(ex, Action(fun () -> ran.Add 2))
                      use cts = new CancellationTokenSource()
                      let third = loop.RunInExecutor(ex, Action(fun () -> ran.Add 3), cts.Token)
                      Expect.isTrue (second.Cancel()) "cancel succeeds"
                      cts.Cancel()
                      hold.Set()
                      let! _ = first
                      let! r = Asyncio.Gather([| second :> Future; third :> Future |], returnExceptions = true)
                      Expect.all r (fun x -> x :? CancelledException) "both cancelled"
                      do! Asyncio.Sleep 0.05
                      return ()
                  })

              ex.Shutdown(wait = true)
              Expect.sequenceEqual (ran |> Seq.sort) [ 1 ] "only the first ran")

          testCase "submit / shutdown(wait, cancel_futures): pending work is cancelled, running work finishes, later submits are refused" (fun () ->
              let ex = new ThreadPoolExecutor(1)
              use hold = gate ()
              use started = gate ()

              let a = ex.Submit(Func<int>(fun () -> started.Set(); hold.Wait(limit) |> ignore; 1))
              let b = ex.Submit(Func<int>(fun () -> 2))
              Expect.isTrue (started.Wait limit) "a started"
              ex.Shutdown(wait = false, cancelPending = true)
              Expect.isTrue b.IsCanceled (sprintf "the pending work was cancelled at once (%A, %A)" b.Status a.Status)
              let shut = Task.Run(fun () -> ex.Shutdown(wait = true))
              Thread.Sleep 50
              Expect.isFalse shut.IsCompleted "shutdown(wait) waits for the running work"
              hold.Set()
              Expect.isTrue (shut.Wait limit) "shutdown returned"
              Expect.equal a.Result 1 "the running work finished (3.11: a.done(), not cancelled)"
              Expect.isTrue b.IsCanceled "the pending work was cancelled"
              let e = throws<InvalidOperationException> (fun () -> ex.Submit(Func<int>(fun () -> 3)) |> ignore)
              Expect.equal e.Message "cannot schedule new futures after shutdown" "3.11's message"
              Expect.equal ex.LiveThreads 0 "no thread left")

          testCase "map yields results in order, raises an error at its place, and times out" (fun () ->
              use ex = new ThreadPoolExecutor(4)
              let squares = ex.Map(Func<int, int>(fun x -> Thread.Sleep(5 * (5 - x)); x * x), [ 1..5 ]) |> List.ofSeq
              Expect.equal squares [ 1; 4; 9; 16; 25 ] "in the items' order"
              let it = ex.Map(Func<int, int>(fun x -> if x = 3 then raise (Boom x) else x), [ 1..5 ]).GetEnumerator()
              Expect.isTrue (it.MoveNext() && it.Current = 1 && it.MoveNext() && it.Current = 2) "the first two"
              Expect.throwsT<Boom> (fun () -> it.MoveNext() |> ignore) "the third's exception at its place"
              let slow = ex.Map(Func<int, int>(fun x -> Thread.Sleep 2000; x), [ 1 ], TimeSpan.FromMilliseconds 50.0)
              Expect.throwsT<TimeoutException> (fun () -> slow |> List.ofSeq |> ignore) "past the timeout")

          testCase "10,000 thread-pool items, some throwing and some cancelled, all resolve correctly" (fun () ->
              use ex = new ThreadPoolExecutor(4)
              use hold = gate ()
              let ran = ref 0

              let outcomes =
                  runReal (fun () ->
                      task {
                          let loop = Asyncio.GetRunningLoop()
                          // The workers wait at the gate: every item is queued before any runs, so a
                          // cancelled one has certainly not started (and must never run).
                          let blockers = [ for _ in 1..4 -> loop.RunInExecutor(ex, Action(fun () -> hold.Wait(limit) |> ignore)) ]
                          let fs =
                              [| for i in 0..9999 ->
                                     loop.RunInExecutor(ex, Func<int, int>(fun i ->
                                         Interlocked.Increment(&ran.contents) |> ignore
                                         if i % 7 = 0 then raise (Boom i) else i * 2), i) |]
                          for i in 0..9999 do
                              if i % 5 = 0 then fs[i].Cancel() |> ignore
                          hold.Set()
                          for b in blockers do
                              let! _ = b
                              ()
                          let! r = Asyncio.Gather(fs |> Array.map (fun f -> f :> Future), returnExceptions = true)
                          return r
                      })

              for i in 0..9999 do
                  let o = outcomes[i]
                  if i % 5 = 0 then Expect.isTrue (o :? CancelledException) (sprintf "%d cancelled" i)
                  elif i % 7 = 0 then Expect.isTrue (match o with :? Boom as b -> b.Data0 = i | _ -> false) (sprintf "%d raised" i)
                  else Expect.equal (unbox<int> o) (i * 2) (sprintf "%d result" i)

              Expect.equal ran.Value 8000 "every item ran exactly once, except the 2,000 cancelled before they started")

          testCase "Run shuts the default executor down: its threads are gone when Run returns; afterwards it is refused" (fun () ->
              let thread, refused =
                  runReal (fun () ->
                      task {
                          let! t = Asyncio.ToThread(Func<Thread>(fun () -> Thread.CurrentThread))
                          return t, 0
                      })

              Expect.isFalse thread.IsAlive "the default executor's thread was joined by Run"

              let e =
                  runReal (fun () ->
                      task {
                          let loop = Asyncio.GetRunningLoop()
                          let! _ = loop.RunInExecutor(null, Func<int>(fun () -> 1))
                          do! loop.ShutdownDefaultExecutorAsync()
                          return throws<EventLoopException> (fun () -> loop.RunInExecutor(null, Func<int>(fun () -> 1)) |> ignore)
                      })

              Expect.equal e.Message "Executor shutdown has been called" "asyncio's RuntimeError"
              ignore refused)

          testCase "to_thread runs in a copy of the caller's ExecutionContext (asyncio copies the contextvars)" (fun () ->
              let local = AsyncLocal<string>()

              let seen =
                  runReal (fun () ->
                      task {
                          local.Value <- "set in the task"
                          let! v = Asyncio.ToThread(Func<string>(fun () -> local.Value))
                          return v
                      })

              Expect.equal seen "set in the task" "the AsyncLocal flowed to the thread")

          testCase "set_default_executor: RunInExecutor(null) uses it" (fun () ->
              use ex = new ThreadPoolExecutor(1, "mine")

              let name =
                  runReal (fun () ->
                      task {
                          let loop = Asyncio.GetRunningLoop()
                          loop.SetDefaultExecutor ex
                          let! n = loop.RunInExecutor(null, Func<string>(fun () -> Thread.CurrentThread.Name))
                          return n
                      })

              Expect.equal name "mine_0" "the executor set as default ran it")

          testCase "set_default_executor refuses a non-ThreadPoolExecutor (3.11: TypeError 'executor must be ThreadPoolExecutor instance'); a closed loop refuses it" (fun () ->
              use pool = new ProcessPoolExecutor(1) // no worker is started: nothing is submitted
              use ex = new ThreadPoolExecutor(1)
              use loop = new EventLoop()
              let e = throws<ArgumentException> (fun () -> loop.SetDefaultExecutor pool)
              Expect.stringStarts e.Message "executor must be ThreadPoolExecutor instance" "asyncio 3.11's message"
              loop.SetDefaultExecutor ex // a thread pool is accepted
              loop.Close()
              let c = throws<EventLoopException> (fun () -> loop.SetDefaultExecutor ex)
              Expect.equal c.Message "Event loop is closed" "as the loop's other methods")

          testCase "DisposeAsync (await using) from a loop task does not block the loop: a loop callback runs meanwhile; the threads are gone after" (fun () ->
              let ex = new ThreadPoolExecutor(2)
              use hold = gate ()
              use started = gate ()
              // The work waits for the loop callback below: a disposal blocking the loop's thread would
              // keep that callback from running (the work would then see its wait time out: false).
              let work = ex.Submit(Func<bool>(fun () -> started.Set(); hold.Wait(TimeSpan.FromSeconds 10.0)))
              Expect.isTrue (started.Wait limit) "the work runs"

              let disposedAtCallback, threadsAtCallback =
                  runReal (fun () ->
                      task {
                          let loop = Asyncio.GetRunningLoop()
                          let mutable d = ValueTask()
                          let mutable seen = (true, -1)
                          loop.CallSoon(fun () ->
                              seen <- (d.IsCompleted, ex.LiveThreads)
                              hold.Set())
                          |> ignore
                          d <- ex.DisposeAsync()
                          do! d
                          return seen
                      })

              Expect.isFalse disposedAtCallback "the disposal was still under way when the loop callback ran"
              Expect.isGreaterThan threadsAtCallback 0 "the worker was still alive then"
              Expect.isTrue work.Result "the loop callback released the work while it was being disposed"
              Expect.equal ex.LiveThreads 0 "the workers are gone after the disposal"
              throws<InvalidOperationException> (fun () -> ex.Submit(Func<int>(fun () -> 1)) |> ignore) |> ignore)

          testCase "10,000 Submits with one long-lived token, all completed, leave no registration on it (registered before the enqueue)" (fun () ->
              use ex = new ThreadPoolExecutor(4)
              use cts = new CancellationTokenSource()
              let tasks = [| for i in 1..10_000 -> ex.Submit(Func<int, int>(fun x -> x + 1), i, cts.Token) |]
              Expect.isTrue (Task.WaitAll(tasks |> Array.map (fun t -> t :> Task), limit)) "all completed"
              Expect.equal (tasks |> Array.sumBy (fun t -> int64 t.Result)) (int64 (10_000 * 10_001 / 2 + 10_000)) "all results"
              Expect.equal (TokenTests.registrations cts) 0 "no registration left on the long-lived token")

          testCase "map with a CancellationToken: a cancel during the wait cancels the items not started and ends the enumeration with OperationCanceledException" (fun () ->
              use ex = new ThreadPoolExecutor(1)
              use hold = gate ()
              use started = gate ()
              use cts = new CancellationTokenSource()
              let ran = ConcurrentQueue<int>()

              let it =
                  ex.Map(Func<int, int>(fun x -> ran.Enqueue x; started.Set(); hold.Wait(limit) |> ignore; x), [ 1..5 ], cancellationToken = cts.Token).GetEnumerator()

              Expect.isTrue (started.Wait limit) "the first item runs"
              cts.CancelAfter 50 // the enumeration is blocked on the first item when the token fires
              throws<OperationCanceledException> (fun () -> it.MoveNext() |> ignore) |> ignore
              hold.Set()
              ex.Shutdown(wait = true)
              Expect.sequenceEqual ran [ 1 ] "the items not started never ran"
              Expect.isFalse (it.MoveNext()) "the enumeration has ended")

          testCase "wrap_future: a .NET task completed on another thread becomes a loop future completed on the loop" (fun () ->
              let r, sameThread =
                  runReal (fun () ->
                      task {
                          let loopId = Environment.CurrentManagedThreadId
                          let t = Task.Run(fun () -> Thread.Sleep 10; 5)
                          let f = Asyncio.WrapFuture(t)
                          let mutable on = -1
                          f.AddDoneCallback(fun _ -> on <- Environment.CurrentManagedThreadId)
                          let! v = f
                          do! Asyncio.Sleep 0.0
                          let! _ = Asyncio.WrapFuture(Task.Delay 5)
                          return v, (on = loopId)
                      })

              Expect.equal r 5 ""
              Expect.isTrue sameThread "completed on the loop's thread")

          testCase "debug mode refuses a coroutine function where a plain function is expected (asyncio: coroutines cannot be used with ...)" (fun () ->
              let msgs =
                  runReal (fun () ->
                      task {
                          let loop = Asyncio.GetRunningLoop()
                          loop.Debug <- true
                          let e1 = throws<ArgumentException> (fun () -> loop.RunInExecutor(null, Func<Task<int>>(fun () -> Task.FromResult 1)) |> ignore)
                          let e2 = throws<ArgumentException> (fun () -> Asyncio.ToThread(Func<Task>(fun () -> Task.CompletedTask)) |> ignore)
                          loop.Debug <- false
                          let f = loop.RunInExecutor(null, Func<Task<int>>(fun () -> Task.FromResult 1))
                          let! _ = f
                          return e1.Message, e2.Message
                      })

              Expect.stringStarts (fst msgs) "coroutines cannot be used with RunInExecutor()" "the message names the method"
              Expect.stringStarts (snd msgs) "coroutines cannot be used with ToThread()" "") ]

/// Sequenced: one test swaps LoopLog's process-wide sink.
[<Tests>]
let shutdownTests =
    testSequenced
    <| testList
        "Executors (default executor shutdown)"
        [ testCase "Runner.Close shuts the default executor down (asyncio.Runner.close: shutdown_default_executor)" (fun () ->
              let runner = new Runner()
              let thread = runner.Run(Func<Task<Thread>>(fun () -> task { return! Asyncio.ToThread(Func<Thread>(fun () -> Thread.CurrentThread)) }))
              Expect.isTrue thread.IsAlive "the executor's thread lives while the runner does"
              runner.Close()
              Expect.isFalse thread.IsAlive "joined by Close")

          testCase "shutdown_default_executor(timeout): past the timeout it logs a warning and returns, the work goes on" (fun () ->
              use hold = new ManualResetEventSlim(false)
              let logged = Collections.Concurrent.ConcurrentQueue<string>()
              let previous = Diagnostics.LoopLog.Sink
              Diagnostics.LoopLog.Sink <- Action<string>(fun m -> logged.Enqueue m)
              let mutable thread: Thread = null

              try
                  runReal (fun () ->
                      task {
                          let loop = Asyncio.GetRunningLoop()
                          let f = loop.RunInExecutor(null, Func<int>(fun () -> thread <- Thread.CurrentThread; hold.Wait(limit) |> ignore; 1))
                          do! Asyncio.Sleep 0.05
                          let t0 = loop.Time()
                          do! loop.ShutdownDefaultExecutorAsync(Nullable(TimeSpan.FromMilliseconds 100.0))
                          Expect.isLessThan (loop.Time() - t0) 5.0 "returned after the timeout, not when the work ended"
                          Expect.isFalse f.Done "the work goes on"
                          hold.Set()
                          let! r = f
                          return r
                      })
                  |> ignore
              finally
                  Diagnostics.LoopLog.Sink <- previous
                  hold.Set()

              Expect.exists logged (fun m -> m.Contains "did not finish joining its threads within 0.1 seconds") "asyncio's warning"
              Expect.isTrue (thread.Join limit) "the thread ends once its work does") ]
