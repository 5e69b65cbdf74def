/// Issue 14.2: loop futures and tasks as .NET Tasks (FutureTasks.AsTask) and .NET Tasks as loop
/// futures (Asyncio.WrapTask / EnsureFuture), on the loop's thread and across threads.
module Tulip.Tests.TaskInteropTests

open System
open System.Threading
open System.Threading.Tasks
open Expecto
open Tulip
open Tulip.Tests.ShellSupport

/// A real-time loop running RunForever on a thread of its own; `body` runs on the test thread.
let withLoopThread (body: EventLoop -> unit) =
    let loop = new EventLoop()
    let started = new ManualResetEventSlim()
    let runner = Thread((fun () ->
        loop.CallSoon(fun () -> started.Set()) |> ignore
        loop.RunForever()), IsBackground = true)
    runner.Start()
    try
        Expect.isTrue (started.Wait(TimeSpan.FromSeconds 10.0)) "the loop started"
        body loop
    finally
        loop.CallSoonThreadsafe(fun () -> loop.Stop()) |> ignore
        Expect.isTrue (runner.Join(TimeSpan.FromSeconds 10.0)) "the loop stopped"
        loop.Close()

/// On the loop's thread: makes a loop task of `f` and returns it (from any thread, through InvokeOnLoop).
let taskOn (loop: EventLoop) (f: unit -> Task<'T>) : LoopTask<'T> =
    let made = new TaskCompletionSource<LoopTask<'T>>()
    loop.InvokeOnLoop(fun () -> made.SetResult(loop.CreateTask(Func<Task<'T>>(f))))
    made.Task.Wait(TimeSpan.FromSeconds 10.0) |> ignore
    made.Task.Result

/// A coroutine that sleeps `seconds` of loop time, then returns `value`.
let after (seconds: float) (value: 'T) () : Task<'T> =
    task {
        do! sleep seconds
        return value
    }

[<Tests>]
let tests =
    testList
        "Task interop"
        [ testCase "Task.WhenAll over AsTask()s of loop tasks, awaited inside a loop task" (fun () ->
              use loop = newLoop ()

              let result =
                  runMain loop (fun () ->
                      task {
                          let a = Asyncio.CreateTask(after 2.0 1)
                          let b = Asyncio.CreateTask(after 1.0 2)
                          let! both = Task.WhenAll(a.AsTask(), b.AsTask())
                          let! first = Task.WhenAny(a.AsTask(), b.AsTask())
                          return List.ofArray both, first.Result, loop.Time()
                      })

              let both, first, time = result
              Expect.equal both [ 1; 2 ] "both results, in argument order"
              Expect.equal first 1 "WhenAny over done tasks: the first argument"
              Expect.isGreaterThanOrEqual time 2.0 "waited for the slower one")

          testCase "one Task per future; a task with no result is a plain Task" (fun () ->
              use loop = newLoop ()

              runMainUnit loop (fun () ->
                  task {
                      let f = loop.CreateFuture<int>()
                      Expect.isTrue (obj.ReferenceEquals(f.AsTask(), f.AsTask())) "cached"
                      let t: LoopTask = Asyncio.CreateTask(fun () -> task { do! yieldTick () } :> Task)
                      let plain: Task = t.AsTask()
                      do! plain
                      Expect.isTrue plain.IsCompletedSuccessfully "done"
                      f.SetResult 7
                      let! v = f.AsTask()
                      Expect.equal v 7 "result"
                  }))

          testCase "cancellation: a canceled Task whose await throws CancelledException with the message" (fun () ->
              use loop = newLoop ()

              let t, caught =
                  runMain loop (fun () ->
                      task {
                          let victim = Asyncio.CreateTask(after 10.0 1)
                          let asTask = victim.AsTask()
                          do! yieldTick ()
                          victim.Cancel "enough" |> ignore
                          try
                              let! _ = asTask
                              return asTask, null
                          with :? CancelledException as e ->
                              return asTask, e
                      })

              Expect.isTrue t.IsCanceled "IsCanceled, as .NET code checks"
              Expect.isNotNull caught "the await threw CancelledException"
              Expect.equal caught.CancelMessage "enough" "the cancel message survives"
              Expect.isTrue (caught :> exn :? OperationCanceledException) "an OperationCanceledException"
              // Blocking waits: GetResult rethrows it too; Wait() wraps a TaskCanceledException, the BCL's rule.
              let e = throws<CancelledException> (fun () -> t.GetAwaiter().GetResult() |> ignore)
              Expect.equal e.CancelMessage "enough" "GetResult too"
              throws<TaskCanceledException> (fun () -> t.Wait()) |> ignore)

          testCase "faults: the same exception, and the future's exception counts as retrieved" (fun () ->
              use loop = newLoop ()
              let errors = collectErrors loop
              let boom = InvalidOperationException "boom"

              let t =
                  runMain loop (fun () ->
                      task {
                          let failing =
                              Asyncio.CreateTask(fun () ->
                                  task {
                                      do! yieldTick ()
                                      return raise boom
                                  })
                          let asTask = failing.AsTask()
                          try
                              let! (_: int) = asTask
                              ()
                          with _ -> ()
                          return asTask
                      })

              Expect.isTrue t.IsFaulted "faulted"
              Expect.isTrue (obj.ReferenceEquals(t.Exception.InnerException, boom)) "the very exception"
              GC.Collect()
              GC.WaitForPendingFinalizers()
              loop.RunUntilComplete(Func<Task>(fun () -> yieldTick ()))
              Expect.isEmpty errors "no 'exception was never retrieved' report")

          testCase "continuations of AsTask never run on the loop thread inside its callback" (fun () ->
              use loop = newLoop ()

              let loopThread, continuationThread =
                  runMain loop (fun () ->
                      task {
                          let f = loop.CreateFuture<int>()
                          let seen =
                              f.AsTask().ContinueWith((fun (_: Task<int>) -> Environment.CurrentManagedThreadId),
                                                      TaskContinuationOptions.ExecuteSynchronously)
                          f.SetResult 1
                          let! thread = seen
                          return Environment.CurrentManagedThreadId, thread
                      })

              Expect.notEqual continuationThread loopThread "ran on the thread pool")

          testCase "from a foreign thread: WhenAll over AsTask()s while the loop runs on its own thread" (fun () ->
              withLoopThread (fun loop ->
                  let loopThread = ref 0
                  let a =
                      taskOn loop (fun () ->
                          loopThread.Value <- Environment.CurrentManagedThreadId
                          after 0.02 "a" ())

                  let b = taskOn loop (after 0.01 "b")
                  // AsTask called here, off the loop's thread: the registration is posted to the loop.
                  let all = Task.WhenAll(a.AsTask(), b.AsTask())
                  Expect.isTrue (all.Wait(TimeSpan.FromSeconds 10.0)) "completed"
                  Expect.equal (List.ofArray all.Result) [ "a"; "b" ] "results"
                  Expect.notEqual loopThread.Value Environment.CurrentManagedThreadId "the tasks ran on the loop's thread"
                  let c = taskOn loop (after 10.0 "c")
                  let ct = c.AsTask()
                  c.Cancel "from the test thread" |> ignore // thread-safe: posted to the loop
                  throws<TaskCanceledException> (fun () -> ct.Wait(TimeSpan.FromSeconds 10.0) |> ignore) |> ignore
                  let e = throws<CancelledException> (fun () -> ct.GetAwaiter().GetResult() |> ignore)
                  Expect.equal e.CancelMessage "from the test thread" "message"))

          testCase "AsTask of a future of a closed loop that is not done: EventLoopException" (fun () ->
              let loop = newLoop ()
              let f = loop.CreateFuture<int>()
              let doneBefore = loop.CreateFuture<int>()
              doneBefore.SetResult 3
              loop.Close()
              throws<EventLoopException> (fun () -> f.AsTask().Wait(TimeSpan.FromSeconds 10.0) |> ignore) |> ignore
              Expect.equal (doneBefore.AsTask().Result) 3 "a done future still answers")

          // The reverse direction (asyncio.wrap_future): a .NET Task completed on a thread-pool thread.
          testCase "a Task completed on the thread pool, awaited as a loop future: resumes on the loop thread" (fun () ->
              use loop = newLoop ()

              let value, sameThread, failed, cancelled =
                  runMain loop (fun () ->
                      task {
                          let here = Environment.CurrentManagedThreadId
                          let source = TaskCompletionSource<int>()
                          Task.Run(fun () -> source.SetResult 42) |> ignore
                          let fut = Asyncio.WrapTask(source.Task, loop)
                          let! v = fut
                          let after = Environment.CurrentManagedThreadId
                          let failing = TaskCompletionSource<int>()
                          Task.Run(fun () -> failing.SetException(TimeoutException "late")) |> ignore
                          let f2 = Asyncio.EnsureFuture(failing.Task, loop)
                          let! failed =
                              task {
                                  try
                                      let! _ = f2
                                      return "no"
                                  with :? TimeoutException as e ->
                                      return e.Message
                              }
                          let canceled = TaskCompletionSource<int>()
                          Task.Run(fun () -> canceled.SetCanceled()) |> ignore
                          let f3 = Asyncio.WrapTask(canceled.Task, loop)
                          do!
                              task {
                                  try
                                      let! _ = f3
                                      ()
                                  with :? CancelledException ->
                                      ()
                              }
                          return v, (here = after), failed, f3.Cancelled
                      })

              Expect.equal value 42 "result"
              Expect.isTrue sameThread "resumed on the loop's thread"
              Expect.equal failed "late" "fault"
              Expect.isTrue cancelled "a canceled Task cancels the future")

          testCase "round trip: a loop task as a Task, wrapped back as a loop future" (fun () ->
              use loop = newLoop ()

              let v =
                  runMain loop (fun () ->
                      task {
                          let t = Asyncio.CreateTask(after 1.0 5)
                          let back = Asyncio.WrapTask(t.AsTask(), loop)
                          let! v = back
                          return v
                      })

              Expect.equal v 5 "value") ]
