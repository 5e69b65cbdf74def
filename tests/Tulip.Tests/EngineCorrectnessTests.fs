/// Issue 11 (engine correctness): un-awaited operations never keep their task alive, refused awaits
/// fail at once, a deadlock reaches the caller with the loop closable, the loop's gate against foreign
/// threads, and cancellation from any thread.
module Tulip.Tests.EngineCorrectnessTests

open System
open System.Threading
open System.Threading.Tasks
open Expecto
open Tulip
open Tulip.Testing
open Tulip.Tests.ShellSupport

/// A virtual-clock loop whose deadlock detector fires quickly: a test that would hang fails in ~1 s.
let private boundedLoop () =
    let clock = VirtualClock()
    clock.IdleLimit <- TimeSpan.FromSeconds 1.0
    new EventLoop(clock)

/// An operation started and not awaited: what it needs to finish (after the task ended), and how to
/// see that it did.
type private Unawaited =
    { Name: string
      /// Starts the operation inside the task's coroutine; returns its Task (kept, never awaited there).
      Start: unit -> Task
      /// Makes it complete (run on the loop after the task is done).
      Release: unit -> unit }

/// A connected loopback pair (client, accepted) and the listener, all closed by the caller.
let private loopbackPair () =
    let listener = new Net.Sockets.Socket(Net.Sockets.AddressFamily.InterNetwork, Net.Sockets.SocketType.Stream, Net.Sockets.ProtocolType.Tcp)
    listener.Bind(Net.IPEndPoint(Net.IPAddress.Loopback, 0))
    listener.Listen 4
    let client = new Net.Sockets.Socket(Net.Sockets.AddressFamily.InterNetwork, Net.Sockets.SocketType.Stream, Net.Sockets.ProtocolType.Tcp)
    client.Connect(listener.LocalEndPoint)
    let server = listener.Accept()
    listener, client, server

let private unawaitedIn (loop: EventLoop) (opened: Collections.Concurrent.ConcurrentBag<IDisposable>) : Unawaited list =
    let q = AsyncQueue<int>()
    let full = AsyncQueue<int>(1)
    let joined = AsyncQueue<int>()
    let ev = AsyncEvent()
    let lk = AsyncLock()
    let sem = AsyncSemaphore(0)
    let cond = Condition()
    let barrier = AsyncBarrier(2)
    let fut = loop.CreateFuture<int>()
    let gathered = loop.CreateFuture<int>()
    let shielded = loop.CreateFuture<int>()
    let waitedFor = loop.CreateFuture<int>()
    let reader = LoopStreamReader(loop)
    let sleptUntil = loop.CreateFuture<int>()
    let lineReader = LoopStreamReader(loop)
    let exactReader = LoopStreamReader(loop)
    let untilReader = LoopStreamReader(loop)
    let intoReader = LoopStreamReader(loop)
    let lk2 = AsyncLock()
    let sem2 = AsyncSemaphore(0)
    let cond2 = Condition()
    let mutable flag = false
    let waited = loop.CreateFuture<int>()
    let completedOne = loop.CreateFuture<int>()
    let grouped = loop.CreateFuture<int>()
    let scoped = loop.CreateFuture<int>()
    let mutable sockPeer: Net.Sockets.Socket = null
    let mutable acceptOn: Net.Sockets.Socket = null

    [ { Name = "AsyncQueue.Get"; Start = (fun () -> q.GetAsync().AsTask()); Release = (fun () -> q.PutNowait 1) }
      { Name = "AsyncQueue.Put on a full queue"
        Start = (fun () -> full.PutNowait 0; full.PutAsync(1).AsTask())
        Release = (fun () -> full.GetNowait() |> ignore) }
      { Name = "AsyncQueue.Join"
        Start = (fun () -> joined.PutNowait 0; joined.JoinAsync().AsTask())
        Release = (fun () -> joined.GetNowait() |> ignore; joined.TaskDone()) }
      { Name = "AsyncEvent.Wait"; Start = (fun () -> ev.WaitAsync().AsTask()); Release = (fun () -> ev.Set()) }
      { Name = "AsyncLock.Acquire (contended)"
        Start = (fun () -> (lk.AcquireAsync().AsTask().Wait(); lk.AcquireAsync().AsTask()))
        Release = (fun () -> lk.Release()) }
      { Name = "AsyncSemaphore.Acquire"; Start = (fun () -> sem.AcquireAsync().AsTask()); Release = (fun () -> sem.Release()) }
      { Name = "Condition.Wait"
        Start =
          fun () ->
              task {
                  let! _ = cond.AcquireAsync()
                  let! _ = cond.WaitAsync()
                  cond.Release()
              }
        Release =
          fun () ->
              // The waiter holds no lock while waiting: notify under the lock, as asyncio requires.
              loop.CreateTask(fun () ->
                  task {
                      let! _ = cond.AcquireAsync()
                      cond.NotifyAll()
                      cond.Release()
                  }
                  :> Task)
              |> ignore }
      { Name = "AsyncBarrier.Wait"
        Start = (fun () -> barrier.WaitAsync() :> Task)
        Release = (fun () -> loop.CreateTask(fun () -> barrier.WaitAsync() :> Task) |> ignore) }
      { Name = "a helper awaiting a loop future"
        Start = (fun () -> task { let! v = fut in return v } :> Task)
        Release = (fun () -> fut.SetResult 1) }
      { Name = "a helper awaiting Sleep(5)"
        Start = (fun () -> task { do! Asyncio.Sleep 5.0 } :> Task)
        Release = ignore }
      { Name = "LoopStreamReader.ReadAsync"
        Start = (fun () -> reader.ReadAsync(4).AsTask() :> Task)
        Release = (fun () -> reader.FeedData(ReadOnlySpan "data"B)) }
      { Name = "Gather (in a helper)"
        Start = (fun () -> task { let! r = Asyncio.Gather(gathered) in return r } :> Task)
        Release = (fun () -> gathered.SetResult 1) }
      { Name = "Shield (in a helper)"
        Start = (fun () -> task { let! r = Asyncio.Shield(shielded) in return r } :> Task)
        Release = (fun () -> shielded.SetResult 1) }
      { Name = "WaitFor"
        Start = (fun () -> Asyncio.WaitFor(waitedFor, Nullable 5.0) :> Task)
        Release = (fun () -> waitedFor.SetResult 1) }
      { Name = "a helper awaiting a .NET task, then a loop future"
        Start =
          fun () ->
              task {
                  do! Task.Delay(TimeSpan.FromSeconds 1.0, loop.TimeProvider)
                  let! v = sleptUntil
                  return v
              }
              :> Task
        Release = (fun () -> sleptUntil.SetResult 1) }
      { Name = "LoopStreamReader.ReadLineAsync"
        Start = (fun () -> lineReader.ReadLineBytesAsync().AsTask() :> Task)
        Release = (fun () -> lineReader.FeedData(ReadOnlySpan "line\n"B)) }
      { Name = "LoopStreamReader.ReadExactlyAsync"
        Start = (fun () -> exactReader.ReadExactlyAsync(3).AsTask() :> Task)
        Release = (fun () -> exactReader.FeedData(ReadOnlySpan "abc"B)) }
      { Name = "LoopStreamReader.ReadUntilAsync"
        Start = (fun () -> untilReader.ReadUntilAsync(ReadOnlyMemory "|"B).AsTask() :> Task)
        Release = (fun () -> untilReader.FeedData(ReadOnlySpan "a|"B)) }
      { Name = "LoopStreamReader.ReadIntoAsync"
        Start = (fun () -> intoReader.ReadIntoAsync(Memory(Array.zeroCreate<byte> 8)).AsTask() :> Task)
        Release = (fun () -> intoReader.FeedData(ReadOnlySpan "xy"B)) }
      { Name = "AsyncLock.AcquireAsync (contended)"
        Start = (fun () -> (lk2.AcquireAsync().AsTask().Wait(); task { use! _ = lk2.LockAsync() in () } :> Task))
        Release = (fun () -> lk2.Release()) }
      { Name = "AsyncSemaphore.AcquireAsync"
        Start = (fun () -> task { use! _ = sem2.LockAsync() in () } :> Task)
        Release = (fun () -> sem2.Release()) }
      { Name = "Condition.WaitFor"
        Start =
          fun () ->
              task {
                  let! _ = cond2.AcquireAsync()
                  let! _ = cond2.WaitForAsync(fun () -> flag)
                  cond2.Release()
              }
        Release =
          fun () ->
              loop.CreateTask(fun () ->
                  task {
                      let! _ = cond2.AcquireAsync()
                      flag <- true
                      cond2.NotifyAll()
                      cond2.Release()
                  }
                  :> Task)
              |> ignore }
      { Name = "Wait (in a helper)"
        Start = (fun () -> task { let! _ = Asyncio.Wait([ waited ]) in () } :> Task)
        Release = (fun () -> waited.SetResult 1) }
      { Name = "AsCompletedAsync (in a helper)"
        Start =
          fun () ->
              task {
                  let e = Asyncio.AsCompletedAsync([ completedOne ]).GetAsyncEnumerator()
                  let! _ = e.MoveNextAsync()
                  do! e.DisposeAsync()
              }
              :> Task
        Release = (fun () -> completedOne.SetResult 1) }
      { Name = "TaskGroup.RunAsync (in a helper)"
        Start =
          fun () ->
              TaskGroup.RunAsync(fun g ->
                  g.CreateTask(fun () -> task { let! v = grouped in return v }) |> ignore
                  Task.CompletedTask)
        Release = (fun () -> grouped.SetResult 1) }
      { Name = "EventLoop.SockRecv"
        Start =
          fun () ->
              let listener, client, server = loopbackPair ()
              server.Blocking <- false
              opened.Add listener
              opened.Add client
              opened.Add server
              sockPeer <- client
              loop.SockRecvAsync(server, 16) :> Task
        Release = (fun () -> sockPeer.Send("hi"B) |> ignore) }
      { Name = "EventLoop.SockAccept"
        Start =
          fun () ->
              let listener = new Net.Sockets.Socket(Net.Sockets.AddressFamily.InterNetwork, Net.Sockets.SocketType.Stream, Net.Sockets.ProtocolType.Tcp)
              listener.Bind(Net.IPEndPoint(Net.IPAddress.Loopback, 0))
              listener.Listen 4
              listener.Blocking <- false
              opened.Add listener
              acceptOn <- listener
              task {
                  let! (c, _) = loop.SockAcceptAsync(listener)
                  opened.Add c
              }
              :> Task
        Release =
          fun () ->
              let c = new Net.Sockets.Socket(Net.Sockets.AddressFamily.InterNetwork, Net.Sockets.SocketType.Stream, Net.Sockets.ProtocolType.Tcp)
              opened.Add c
              c.Connect(acceptOn.LocalEndPoint) }
      { Name = "Timeout scope (in a helper)"
        Start = (fun () -> Asyncio.Timeout(Nullable 50.0, (fun _ -> task { let! _ = scoped in () } :> Task)))
        Release = (fun () -> scoped.SetResult 1) } ]

let private unawaited (loop: EventLoop) = unawaitedIn loop (Collections.Concurrent.ConcurrentBag())

/// How the coroutine goes on after starting the un-awaited operation.
let private shapes: (string * (EventLoop -> Task)) list =
    [ "then Sleep(0)", (fun _ -> task { do! Asyncio.Sleep 0.0 } :> Task)
      "then returns at once", (fun _ -> Task.CompletedTask)
      "then awaits a .NET task", (fun loop -> Task.Delay(TimeSpan.FromSeconds 0.5, loop.TimeProvider))
      "then awaits a loop future",
      (fun loop ->
          let f = loop.CreateFuture<int>()
          loop.CallLater(0.25, (fun () -> f.SetResult 1)) |> ignore
          task { let! _ = f in () } :> Task)
      "then awaits Sleep(0.5)", (fun _ -> task { do! Asyncio.Sleep 0.5 } :> Task) ]

[<Tests>]
let unawaitedTests =
    testList
        "Un-awaited operations never keep their task alive (issue 11.1)"
        [ let names =
              use loop = newLoop ()
              unawaited loop |> List.map (fun o -> o.Name)

          for shapeName, shape in shapes do
              for i, name in List.indexed names do

                  testCase (sprintf "%s, %s: the task ends with its coroutine, the operation later completes free" name shapeName)
                  <| fun () ->
                      use loop = boundedLoop ()
                      let opened = Collections.Concurrent.ConcurrentBag<IDisposable>()
                      let op = (unawaitedIn loop opened).[i]
                      let mutable side: Task = null

                      let main =
                          createTask loop (fun () ->
                              task {
                                  side <- op.Start()
                                  do! shape loop
                                  return "done"
                              })

                      Expect.equal (loop.RunUntilComplete main) "done" "the task's own result"
                      Expect.isFalse (loop.AllTasks() |> Seq.exists (fun t -> obj.ReferenceEquals(t, main))) "the task is not pending"
                      // The operation is still there and completes when released, on the loop, with no task.
                      loop.CallSoon(fun () -> op.Release()) |> ignore

                      let waitSide =
                          loop.CreateTask(fun () -> task { do! Asyncio.WaitFor((fun () -> side), Nullable 10.0) } :> Task)

                      loop.RunUntilComplete(waitSide :> Future)
                      Expect.isTrue side.IsCompletedSuccessfully (sprintf "%s completed (%A)" name side.Status)
                      // Sockets the network cases opened (loopback, port 0) are closed with their test.
                      let mutable d = Unchecked.defaultof<IDisposable>
                      while opened.TryTake(&d) do
                          d.Dispose() ]

[<Tests>]
let ownershipTests =
    testList
        "Whose continuation is it (issue 11.1, DESIGN.md)"
        [ testCase "an un-awaited call's continuation runs with no current task, in the loop's thread" (fun () ->
              use loop = boundedLoop ()
              let q = AsyncQueue<int>()
              let mutable seen: ILoopTask = null
              let mutable seenSet = false
              let mutable thread = -1

              let helper () =
                  task {
                      let! v = q.GetAsync()
                      seen <- Asyncio.CurrentTask()
                      seenSet <- true
                      thread <- Environment.CurrentManagedThreadId
                      return v
                  }

              let mutable side: Task<int> = null
              let main =
                  createTask loop (fun () ->
                      task {
                          side <- helper ()
                          do! Asyncio.Sleep 0.0
                          return 1
                      })
              Expect.equal (loop.RunUntilComplete main) 1 "main"
              let loopThread = Environment.CurrentManagedThreadId
              q.PutNowait 7
              runMainUnit loop (fun () -> task { do! Asyncio.Sleep 0.0 })
              Expect.isTrue seenSet "the helper went on"
              Expect.isNull seen "no current task in it"
              Expect.equal thread loopThread "on the loop's thread"
              Expect.equal side.Result 7 "it took the item")

          testCase "cancelling the task does not cancel an operation it started and did not await" (fun () ->
              use loop = boundedLoop ()
              let q = AsyncQueue<int>()
              let mutable side: Task<int> = null

              let main =
                  createTask loop (fun () ->
                      task {
                          side <- q.GetAsync().AsTask()
                          do! Asyncio.Sleep 10.0
                          return 0
                      })

              loop.CallLater(1.0, (fun () -> main.Cancel() |> ignore)) |> ignore
              Expect.throws (fun () -> loop.RunUntilComplete main |> ignore) "the task is cancelled"
              Expect.isTrue main.Cancelled "cancelled"
              Expect.isFalse side.IsCompleted "the un-awaited Get still waits"
              q.PutNowait 3
              runMainUnit loop (fun () -> task { do! Asyncio.Sleep 0.0 })
              Expect.equal side.Result 3 "and takes the next item")

          testCase "a task still waits on what its coroutine awaits after an un-awaited call (cancel reaches it)" (fun () ->
              use loop = boundedLoop ()
              let q = AsyncQueue<int>()
              let f = loop.CreateFuture<int>()

              let main =
                  createTask loop (fun () ->
                      task {
                          q.GetAsync() |> ignore
                          let! v = f
                          return v
                      })

              loop.CallSoon(fun () -> main.Cancel "stop" |> ignore) |> ignore
              let e = throws<CancelledException> (fun () -> loop.RunUntilComplete main |> ignore)
              Expect.equal e.CancelMessage "stop" "the task's own wait was cancelled"
              Expect.isTrue f.Cancelled "the future it awaited was cancelled (asyncio: _fut_waiter.cancel())")

          testCase "after an un-awaited loop wait, a .NET await resumes the coroutine as its task (CurrentTask is the task)" (fun () ->
              use loop = boundedLoop ()
              let q = AsyncQueue<int>()
              let mutable after: ILoopTask = null
              let mutable main: LoopTask<int> = null
              let mutable side: Task<int> = null

              main <-
                  createTask loop (fun () ->
                      task {
                          side <- q.GetAsync().AsTask()
                          do! Task.Delay(TimeSpan.FromSeconds 1.0, loop.TimeProvider)
                          after <- Asyncio.CurrentTask()
                          // And the task's next loop await is its own: a cancel reaches it.
                          do! Asyncio.Sleep 10.0
                          return 1
                      })

              loop.CallLater(5.0, (fun () -> main.Cancel "late" |> ignore)) |> ignore
              let e = throws<CancelledException> (fun () -> loop.RunUntilComplete main |> ignore)
              Expect.isTrue (obj.ReferenceEquals(after, main)) "the coroutine resumed inside its task"
              Expect.equal e.CancelMessage "late" "the cancel reached the task's own sleep"
              Expect.isFalse side.IsCompleted "the un-awaited Get still waits, untouched"
              q.PutNowait 9
              runMainUnit loop (fun () -> task { do! Asyncio.Sleep 0.0 })
              Expect.equal side.Result 9 "and takes the next item")

          testCase "a helper started and awaited later still drives the task (await after the fact)" (fun () ->
              use loop = boundedLoop ()
              let q = AsyncQueue<int>()

              let result =
                  runMain loop (fun () ->
                      task {
                          let pending = q.GetAsync().AsTask()
                          do! Asyncio.Sleep 0.0
                          q.PutNowait 5
                          let! v = pending
                          return v + 1
                      })

              Expect.equal result 6 "the awaited-later helper's value") ]

[<Tests>]
let refusedAwaitTests =
    testList
        "Refused awaits fail at once (issue 11.2)"
        [ // python3: RuntimeError Task cannot await on itself: <Task pending name='Task-1' ...>
          testCase "a task awaiting itself raises (asyncio: 'Task cannot await on itself')" (fun () ->
              use loop = boundedLoop ()
              let mutable self: LoopTask<string> = null

              self <-
                  createTask loop (fun () ->
                      task {
                          try
                              let! _ = self
                              return "awaited"
                          with :? EventLoopException as e ->
                              return e.Message
                      })

              let message = loop.RunUntilComplete self
              Expect.stringStarts message "Task cannot await on itself: <LoopTask" "asyncio's message")

          // python3: RuntimeError Task <Task pending ...> got Future <Future pending> attached to a different loop
          testCase "awaiting a future of another loop raises (asyncio: 'attached to a different loop')" (fun () ->
              use loop = boundedLoop ()
              use other = boundedLoop ()
              let foreign = other.CreateFuture<int>()

              let message =
                  runMain loop (fun () ->
                      task {
                          try
                              let! _ = foreign
                              return "awaited"
                          with :? EventLoopException as e ->
                              return e.Message
                      })

              Expect.stringContains message "got Future <Future pending> attached to a different loop" "asyncio's message"
              Expect.stringStarts message "Task <LoopTask" "names the task")

          testCase "Run never hangs on a task that awaits itself" (fun () ->
              let clock = VirtualClock()
              clock.IdleLimit <- TimeSpan.FromSeconds 1.0
              let mutable self: LoopTask = null

              let run () =
                  Asyncio.Run(
                      (fun () ->
                          task {
                              self <- Asyncio.CreateTask(fun () -> task { let! _ = (self :> Future<ValueTuple>) in () } :> Task)
                              do! Asyncio.Sleep 0.0
                          }
                          :> Task),
                      false,
                      clock
                  )

              run ()
              Expect.isTrue self.Done "the self-awaiting task ended"
              Expect.isTrue (self.Exception() :? EventLoopException) "with the refusal") ]

[<Tests>]
let deadlockTests =
    testList
        "A deadlock under the virtual clock reaches the caller (issue 11.3)"
        [ testCase "RunUntilComplete raises LoopDeadlockException and leaves the loop stopped and closable" (fun () ->
              let loop = boundedLoop ()
              let never = loop.CreateFuture<int>()
              throws<LoopDeadlockException> (fun () -> loop.RunUntilComplete never |> ignore) |> ignore
              Expect.isFalse loop.IsRunning "stopped"
              loop.Close()
              Expect.isTrue loop.IsClosed "closed")

          testCase "the loop runs again after a deadlock, with what was queued" (fun () ->
              use loop = boundedLoop ()
              let never = loop.CreateFuture<int>()
              throws<LoopDeadlockException> (fun () -> loop.RunUntilComplete never |> ignore) |> ignore
              loop.CallSoon(fun () -> never.SetResult 4) |> ignore
              Expect.equal (loop.RunUntilComplete never) 4 "a later run completes it")

          testCase "TestLoop.Run and Asyncio.Run raise the deadlock, not 'Cannot close a running event loop'" (fun () ->
              let clock = VirtualClock()
              clock.IdleLimit <- TimeSpan.FromSeconds 0.5

              let e =
                  throws<LoopDeadlockException> (fun () ->
                      Asyncio.Run(
                          (fun () -> task { let! _ = AsyncEvent().WaitAsync() in () } :> Task),
                          false,
                          clock
                      ))

              Expect.stringContains e.Message "nothing scheduled" "the deadlock's message")

          testCase "with a socket watched the deadlock is reported after one idle limit, not two" (fun () ->
              let clock = VirtualClock()
              clock.IdleLimit <- TimeSpan.FromSeconds 1.0
              use loop = new EventLoop(clock)
              use listener = new Net.Sockets.Socket(Net.Sockets.AddressFamily.InterNetwork, Net.Sockets.SocketType.Stream, Net.Sockets.ProtocolType.Tcp)
              listener.Bind(Net.IPEndPoint(Net.IPAddress.Loopback, 0))
              listener.Listen 1
              loop.AddReader(listener, (fun () -> ()))
              let never = loop.CreateFuture<int>()
              let sw = Diagnostics.Stopwatch.StartNew()
              throws<LoopDeadlockException> (fun () -> loop.RunUntilComplete never |> ignore) |> ignore
              sw.Stop()
              loop.RemoveReader listener |> ignore
              Expect.isLessThan sw.Elapsed.TotalSeconds 1.8 "one idle limit (1 s), not two") ]

[<Tests>]
let gateTests =
    testList
        "The loop's gate against foreign threads (issue 11.4a)"
        [ testCase "CallSoon from another thread while the owner runs the loop again and again: nothing lost, no failed or hung run" (fun () ->
              use loop = new EventLoop()
              let ran = ref 0
              let accepted = ref 0
              let refused = ref 0
              use stop = new ManualResetEventSlim(false)

              let foreign =
                  Thread(fun () ->
                      while not stop.IsSet do
                          try
                              loop.CallSoon(fun () -> Interlocked.Increment ran |> ignore) |> ignore
                              Interlocked.Increment accepted |> ignore
                          with :? EventLoopException ->
                              Interlocked.Increment refused |> ignore)

              foreign.Start()
              let sw = Diagnostics.Stopwatch.StartNew()
              let mutable runs = 0

              while sw.ElapsedMilliseconds < 1500L || runs < 2000 do
                  let f = loop.CreateFuture<int>()
                  loop.CallSoon(fun () -> f.SetResult runs) |> ignore
                  Expect.equal (loop.RunUntilComplete f) runs "each run completes its future"
                  runs <- runs + 1

              stop.Set()
              foreign.Join()
              // One more run takes whatever the foreign thread queued after the last one.
              runMainUnit loop (fun () -> task { do! Asyncio.Sleep 0.0 })
              Expect.equal ran.Value accepted.Value "every accepted callback ran exactly once"
              Expect.isGreaterThan accepted.Value 0 "some calls landed between runs"
              Expect.isGreaterThan refused.Value 0 "some were refused while the loop ran")

          testCase "a foreign thread's call to a running loop raises EventLoopException" (fun () ->
              use loop = new EventLoop()
              let f = loop.CreateFuture<int>()
              let mutable error: exn = null

              loop.CallSoon(fun () ->
                  let t = Thread(fun () ->
                      try
                          loop.CallSoon(fun () -> ()) |> ignore
                      with e ->
                          error <- e)

                  t.Start()
                  t.Join()
                  f.SetResult 0)
              |> ignore

              loop.RunUntilComplete f |> ignore
              Expect.isTrue (error :? EventLoopException) (sprintf "refused: %A" error)) ]

[<Tests>]
let crossThreadCancelTests =
    testList
        "Cancelling from another thread (issue 11.5)"
        [ testCase "a token callback on a timer thread cancels a loop task (asyncio: call_soon_threadsafe(task.cancel))" (fun () ->
              use loop = new EventLoop()
              use cts = new CancellationTokenSource()

              let main =
                  createTask loop (fun () ->
                      task {
                          do! Asyncio.Sleep 30.0
                          return "slept"
                      })

              use _reg = cts.Token.Register(fun () -> main.Cancel "from the token" |> ignore)
              cts.CancelAfter(TimeSpan.FromMilliseconds 50.0)
              let sw = Diagnostics.Stopwatch.StartNew()
              let e = throws<CancelledException> (fun () -> loop.RunUntilComplete main |> ignore)
              Expect.equal e.CancelMessage "from the token" "the message crossed"
              Expect.isLessThan sw.Elapsed.TotalSeconds 10.0 "cancelled, not slept")

          testCase "Future.Cancel from another thread is posted; on a closed loop it does not crash" (fun () ->
              use loop = new EventLoop()
              let f = loop.CreateFuture<int>()
              let mutable answer = false

              loop.CallSoon(fun () ->
                  let t = Thread(fun () -> answer <- f.Cancel "posted")
                  t.Start()
                  t.Join())
              |> ignore

              let e = throws<CancelledException> (fun () -> loop.RunUntilComplete f |> ignore)
              Expect.isTrue answer "pending when posted"
              Expect.equal e.CancelMessage "posted" "message"
              // A closed loop: as asyncio's fut.cancel() with no callbacks, the future is cancelled, nothing runs.
              let g = loop.CreateFuture<int>()
              loop.Close()
              let mutable closedError: exn = null

              let t =
                  Thread(fun () ->
                      try
                          g.Cancel() |> ignore
                      with e ->
                          closedError <- e)

              t.Start()
              t.Join()
              Expect.isNull closedError "no crash"
              Expect.isTrue g.Cancelled "cancelled")

          testCase "cancelling many tasks from thread-pool tokens while the loop runs never crashes" (fun () ->
              use loop = new EventLoop()
              let n = 200

              let result =
                  runMain loop (fun () ->
                      task {
                          let tasks =
                              [| for i in 1..n ->
                                     Asyncio.CreateTask(fun () ->
                                         task {
                                             do! Asyncio.Sleep 30.0
                                             return i
                                         }) |]

                          let sources =
                              tasks
                              |> Array.map (fun t ->
                                  let cts = new CancellationTokenSource()
                                  cts.Token.Register(fun () -> t.Cancel() |> ignore) |> ignore
                                  cts)

                          for cts in sources do
                              ThreadPool.QueueUserWorkItem(fun _ -> cts.Cancel()) |> ignore

                          let! (results: obj array) = Asyncio.Gather((tasks |> Seq.map (fun t -> t :> Future)), true)
                          return results |> Array.filter (fun r -> r :? CancelledException) |> Array.length
                      })

              Expect.equal result n "every task cancelled") ]

[<Tests>]
let wakeTests =
    testList
        "Waking an idle loop from another thread"
        [ testCase "300,000 cross-thread round trips to a loop that sleeps until a post (no reactor): no wake-up is lost" (fun () ->
              // The real clock's wait once cleared its pending flag before draining extra releases: a
              // Wake between the two lost its release and left the flag set, and every later
              // CallSoonThreadsafe was lost (a loop asleep for good; found by the getaddrinfo benchmark).
              let n = 300_000
              use go = new SemaphoreSlim(0)
              let current: Future<int> ref = ref null
              let mutable finished = false

              let poster =
                  Thread(fun () ->
                      for _ in 1..n do
                          go.Wait()
                          let f = Volatile.Read(&current.contents)
                          f.Loop.CallSoonThreadsafe(fun () -> f.SetResult 1) |> ignore)

              poster.IsBackground <- true
              poster.Start()

              let runner =
                  Thread(fun () ->
                      use loop = new EventLoop()

                      loop.RunUntilComplete(fun () ->
                          task {
                              for _ in 1..n do
                                  let f = loop.CreateFuture<int>()
                                  Volatile.Write(&current.contents, f)
                                  go.Release() |> ignore
                                  let! _ = f
                                  ()
                          }
                          :> Task)

                      finished <- true)

              runner.IsBackground <- true
              runner.Start()
              Expect.isTrue (runner.Join(TimeSpan.FromSeconds 120.0)) "every round trip completed (no loop asleep with a post waiting)"
              Expect.isTrue finished "the run ended normally") ]
