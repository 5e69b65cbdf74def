/// Issue 18: run_coroutine_threadsafe (CPython 3.11's concurrent.futures cancellation both ways, the
/// factory's error to the exception handler). A real-time loop on its own thread; the test thread is
/// the foreign caller. Every wait is bounded.
module Tulip.Tests.RunCoroutineThreadsafeTests

open System
open System.Threading
open System.Threading.Tasks
open Expecto
open Tulip
open Tulip.Tests.ShellSupport
open Tulip.Tests.TaskInteropTests

let private limit = TimeSpan.FromSeconds 30.0

[<Tests>]
let tests =
    testList
        "Executors (run_coroutine_threadsafe)"
        [ testCase "from another thread: the coroutine runs as a task on the loop's thread, the .NET Task gets its result" (fun () ->
              withLoopThread (fun loop ->
                  let t =
                      Asyncio.RunCoroutineThreadsafe(Func<Task<int * bool>>(fun () ->
                          task {
                              do! Asyncio.Sleep 0.01
                              return 7, (not (isNull (Asyncio.CurrentTask())) && loop.IsOnLoopThread)
                          }), loop)
                  Expect.isTrue (t.Wait limit) "completed"
                  Expect.equal t.Result (7, true) "the result, computed in a loop task on the loop's thread"))

          testCase "cancelling the token cancels the loop task (concurrent future.cancel() -> task.cancel())" (fun () ->
              withLoopThread (fun loop ->
                  use cts = new CancellationTokenSource()
                  let reachedFinally = new ManualResetEventSlim()
                  let started = new ManualResetEventSlim()
                  let t =
                      Asyncio.RunCoroutineThreadsafe(Func<Task>(fun () ->
                          task {
                              try
                                  started.Set()
                                  do! Asyncio.Sleep 3600.0
                              finally
                                  reachedFinally.Set()
                          }), loop, cts.Token)
                  // Cancel once the body runs (a cancel before its first step would skip the body: another test).
                  Expect.isTrue (started.Wait limit) "the coroutine started"
                  cts.Cancel()
                  Expect.isTrue (reachedFinally.Wait limit) "the loop task was cancelled (its finally ran)"
                  Expect.isTrue (try t.Wait limit |> ignore; false with :? AggregateException -> true) "the Task ended"
                  Expect.isTrue t.IsCanceled "the .NET Task is canceled"))

          testCase "a token already cancelled cancels the task before its first step" (fun () ->
              withLoopThread (fun loop ->
                  let mutable ran = false
                  let t = Asyncio.RunCoroutineThreadsafe(Func<Task<int>>(fun () -> ran <- true; Task.FromResult 1), loop, CancellationToken(true))
                  Expect.isTrue (try t.Wait limit |> ignore; false with :? AggregateException -> true) "ended"
                  Expect.isTrue t.IsCanceled "canceled"
                  Expect.isFalse ran "the coroutine never started"))

          testCase "the loop task cancelled on the loop gives a canceled Task whose await throws CancelledException with the message" (fun () ->
              withLoopThread (fun loop ->
                  let t =
                      Asyncio.RunCoroutineThreadsafe(Func<Task<int>>(fun () ->
                          task {
                              Asyncio.CurrentTask().Cancel("stop here") |> ignore
                              do! Asyncio.Sleep 1.0
                              return 1
                          }), loop)
                  Expect.isTrue (try t.Wait limit |> ignore; false with :? AggregateException -> true) "ended"
                  Expect.isTrue t.IsCanceled "canceled"
                  let e = throws<CancelledException> (fun () -> t.GetAwaiter().GetResult() |> ignore)
                  Expect.equal e.CancelMessage "stop here" "the cancel message"))

          testCase "a coroutine that fails faults the Task with its exception" (fun () ->
              withLoopThread (fun loop ->
                  let fails () : Task<int> =
                      task {
                          do! Asyncio.Sleep 0.0
                          return raise (TimeZoneNotFoundException "x")
                      }

                  let t = Asyncio.RunCoroutineThreadsafe(Func<Task<int>>(fails), loop)
                  Expect.isTrue (try t.Wait limit |> ignore; false with :? AggregateException -> true) "ended"
                  Expect.isTrue (t.Exception.InnerException :? TimeZoneNotFoundException) "the same exception type"))

          testCase "a coroutine factory that throws is reported to the loop's exception handler and faults the Task" (fun () ->
              withLoopThread (fun loop ->
                  let errors = Collections.Concurrent.ConcurrentQueue<ExceptionContext>()
                  loop.InvokeOnLoop(fun () -> loop.SetExceptionHandler(ExceptionHandler(fun _ ctx -> errors.Enqueue ctx)))
                  let t = Asyncio.RunCoroutineThreadsafe(Func<Task<int>>(fun () -> raise (ArgumentException "bad factory")), loop)
                  Expect.isTrue (try t.Wait limit |> ignore; false with :? AggregateException -> true) "ended"
                  Expect.isTrue (t.Exception.InnerException :? ArgumentException) "faulted with the factory's exception"
                  let ok, ctx = errors.TryPeek()
                  Expect.isTrue ok "the handler heard of it"
                  Expect.stringContains ctx.Message "RunCoroutineThreadsafe" "and says where"
                  Expect.isTrue (ctx.Exception :? ArgumentException) "with the exception"))

          testCase "a loop closed after the post was accepted but before it ran faults the Task with EventLoopException (no hang)" (fun () ->
              let loop = new EventLoop() // stopped, not closed: the post is accepted and waits
              let mutable ran = false
              let mutable t: Task<int> = null
              let poster = Thread(fun () -> t <- Asyncio.RunCoroutineThreadsafe(Func<Task<int>>(fun () -> ran <- true; Task.FromResult 1), loop))
              poster.Start()
              Expect.isTrue (poster.Join limit) "posted from another thread"
              Expect.isFalse t.IsCompleted "waiting for the loop to run"
              loop.Close()
              Expect.isTrue (try t.Wait(TimeSpan.FromSeconds 5.0) with :? AggregateException -> true) "the Task ended within a bounded time"
              Expect.isTrue (t.Exception.InnerException :? EventLoopException) (sprintf "faulted with EventLoopException: %A" t.Exception)
              Expect.isFalse ran "the coroutine never started")

          testCase "a closed loop refuses it" (fun () ->
              let loop = new EventLoop()
              loop.Close()
              throws<EventLoopException> (fun () -> Asyncio.RunCoroutineThreadsafe(Func<Task<int>>(fun () -> Task.FromResult 1), loop) |> ignore) |> ignore) ]
