/// The event loop against CPython 3.11: callback, timer and task-step orders (each expected list was
/// printed by python3 running the same program; see the comment on each test).
module Tulip.Tests.EventLoopTests

open System
open System.Threading
open System.Threading.Tasks
open Expecto
open Tulip
open Tulip.Testing
open Tulip.Tests.ShellSupport

[<Tests>]
let callbacks =
    testList
        "EventLoop callbacks"
        [ testCase "call_soon callbacks run FIFO on the next tick, with their arguments" (fun () ->
              use loop = newLoop ()
              let log = Log()
              loop.CallSoon((fun (n: int) -> log.Add(sprintf "cb %d" n)), 1) |> ignore
              loop.CallSoon((fun (n: int) -> log.Add(sprintf "cb %d" n)), 2) |> ignore
              loop.CallSoon(fun () -> log.Add "cb 3") |> ignore
              loop.CallSoon(fun () -> loop.Stop()) |> ignore
              log.Add "before run"
              loop.RunForever()
              Expect.equal log.Items [ "before run"; "cb 1"; "cb 2"; "cb 3" ] "FIFO, nothing inline")

          // asyncio: a callback scheduled by a callback runs in the next iteration of _run_once.
          testCase "a callback scheduled during a tick runs in the next tick, after stop's tick ends" (fun () ->
              use loop = newLoop ()
              let log = Log()
              loop.CallSoon(fun () ->
                  log.Add "a"
                  loop.CallSoon(fun () -> log.Add "c") |> ignore)
              |> ignore
              loop.CallSoon(fun () -> log.Add "b") |> ignore
              loop.CallSoon(fun () -> loop.Stop()) |> ignore
              loop.RunForever()
              Expect.equal log.Items [ "a"; "b" ] "c waits for the next tick"
              loop.CallSoon(fun () -> loop.Stop()) |> ignore
              loop.RunForever()
              Expect.equal log.Items [ "a"; "b"; "c" ] "and runs in the next run")

          // python3: loop.stop(); loop.run_forever() runs one iteration (scen6: t1 ran, t2 did not).
          testCase "stop before run_forever runs exactly one tick" (fun () ->
              use loop = newLoop ()
              let log = Log()
              loop.CallSoon(fun () -> log.Add "t1") |> ignore
              loop.CallSoon(fun () -> loop.CallSoon(fun () -> log.Add "t2") |> ignore) |> ignore
              loop.Stop()
              loop.RunForever()
              log.Add "after one tick"
              loop.Stop()
              loop.RunForever()
              Expect.equal log.Items [ "t1"; "after one tick"; "t2" ] "one tick per stopped run")

          // python3 scen7: soon, later0.1, later0.2; the cancelled timer never runs and reports cancelled().
          testCase "timers fire by deadline, after call_soon; a cancelled timer never runs" (fun () ->
              use loop = newLoop ()
              let log = Log()

              let h =
                  runMain loop (fun () ->
                      task {
                          loop.CallLater(0.2, (fun () -> log.Add "later0.2")) |> ignore
                          loop.CallLater(0.1, (fun () -> log.Add "later0.1")) |> ignore
                          loop.CallSoon(fun () -> log.Add "soon") |> ignore
                          let h = loop.CallLater(0.15, (fun () -> log.Add "cancelled"))
                          h.Cancel()
                          do! sleep 0.3
                          return h
                      })

              Expect.equal log.Items [ "soon"; "later0.1"; "later0.2" ] "deadline order"
              Expect.isTrue h.Cancelled "cancelled() is true")

          // Tulip pins FIFO among equal deadlines (CPython's heapq does not; libuv does).
          testCase "timers with equal deadlines fire in the order they were scheduled" (fun () ->
              use loop = newLoop ()
              let log = Log()
              let t = loop.Time() + 0.01

              for i in 0..19 do
                  loop.CallAt(t, (fun (i: int) -> log.Add(string i)), i) |> ignore

              runMain loop (fun () -> sleep 0.02)
              Expect.equal log.Items [ for i in 0..19 -> string i ] "FIFO")

          testCase "a timer fires at its deadline, not before; loop time is virtual and exact" (fun () ->
              use loop = newLoop ()
              let mutable firedAt = nan
              let start = loop.Time()
              loop.CallLater(3600.0, (fun () -> firedAt <- loop.Time())) |> ignore
              runMain loop (fun () -> sleep 7200.0)
              Expect.floatClose Accuracy.high (firedAt - start) 3600.0 "an hour of loop time"
              Expect.isGreaterThanOrEqual (loop.VirtualClock().Jumped) (TimeSpan.FromHours 2.0) "jumped, not slept")

          testCase "call_at uses loop time; When reports the deadline" (fun () ->
              use loop = newLoop ()
              let now = loop.Time()
              let h = loop.CallAt(now + 0.5, (fun () -> ()))
              Expect.floatClose Accuracy.high h.When (now + 0.5) "when()"
              h.Cancel()
              h.Cancel() // twice: nothing
              Expect.isTrue h.Cancelled "cancelled")

          testCase "a handle cancelled by an earlier callback of the same tick is skipped" (fun () ->
              use loop = newLoop ()
              let log = Log()
              let mutable victim: Handle = null
              loop.CallSoon(fun () -> victim.Cancel()) |> ignore
              victim <- loop.CallSoon(fun () -> log.Add "victim")
              loop.CallSoon(fun () -> log.Add "after") |> ignore
              loop.CallSoon(fun () -> loop.Stop()) |> ignore
              loop.RunForever()
              Expect.equal log.Items [ "after" ] "skipped"
              Expect.isTrue victim.Cancelled "and reports cancelled")

          testCase "a timer cancelled by an earlier callback of the tick it is due in never runs (model and twin)" (fun () ->
              for kind in [ Scheduling.SchedulerKind.Fast; Scheduling.SchedulerKind.Model ] do
                  use loop = new EventLoop(VirtualClock(), kind)
                  let log = Log()
                  let mutable second: TimerHandle = null
                  loop.CallLater(1.0, (fun () -> second.Cancel())) |> ignore
                  second <- loop.CallLater(1.0, (fun () -> log.Add "second"))
                  // Many more timers, so a miscounted cancellation would trigger compaction.
                  for i in 1..300 do
                      loop.CallLater(2.0 + float i, (fun () -> ())) |> ignore

                  runMain loop (fun () -> sleep 400.0)
                  Expect.isEmpty log.Items (sprintf "%A: skipped" kind)
                  Expect.isTrue second.Cancelled "reports cancelled")

          // python3 scen4: the handler gets 'Exception in callback ...' and the loop goes on.
          testCase "an exception escaping a callback reaches the exception handler and the loop goes on" (fun () ->
              use loop = newLoop ()
              let errors = collectErrors loop
              let log = Log()
              loop.CallSoon(fun () -> raise (InvalidOperationException "boom")) |> ignore
              loop.CallSoon(fun () -> log.Add "next") |> ignore
              loop.CallSoon(fun () -> loop.Stop()) |> ignore
              loop.RunForever()
              Expect.equal log.Items [ "next" ] "the loop went on"
              Expect.equal errors.Count 1 "one report"
              Expect.stringStarts errors[0].Message "Exception in callback" "asyncio's message"
              Expect.isTrue (errors[0].Exception :? InvalidOperationException) "with the exception"
              Expect.isNotNull errors[0].Handle "and the handle")

          testCase "a handler that throws is reported through the default handler; the loop goes on" (fun () ->
              use loop = newLoop ()
              let log = Log()
              let lines = Collections.Generic.List<string>()
              let old = Tulip.Diagnostics.LoopLog.Sink
              Tulip.Diagnostics.LoopLog.Sink <- Action<string>(fun s -> lines.Add s)

              try
                  loop.SetExceptionHandler(ExceptionHandler(fun _ _ -> failwith "handler broke"))
                  loop.CallSoon(fun () -> failwith "first") |> ignore
                  loop.CallSoon(fun () -> log.Add "next") |> ignore
                  loop.CallSoon(fun () -> loop.Stop()) |> ignore
                  loop.RunForever()
              finally
                  Tulip.Diagnostics.LoopLog.Sink <- old

              Expect.equal log.Items [ "next" ] "went on"
              Expect.exists lines (fun l -> l.StartsWith "Unhandled error in exception handler") "reported") ]

[<Tests>]
let lifecycle =
    testList
        "EventLoop lifecycle"
        [ // python3 scen6: RuntimeError('This event loop is already running').
          testCase "a running loop refuses a nested run" (fun () ->
              use loop = newLoop ()

              let msg =
                  runMain loop (fun () ->
                      task {
                          let e = throws<EventLoopException> (fun () -> loop.RunUntilComplete(Func<Task<int>>(fun () -> Task.FromResult 1)) |> ignore)
                          return e.Message
                      })

              Expect.equal msg "This event loop is already running" "asyncio's message")

          testCase "a closed loop refuses work with 'Event loop is closed'" (fun () ->
              let loop = newLoop ()
              loop.Close()
              loop.Close() // twice: nothing
              Expect.isTrue loop.IsClosed "closed"
              let e1 = throws<EventLoopException> (fun () -> loop.CallSoon(fun () -> ()) |> ignore)
              let e2 = throws<EventLoopException> (fun () -> loop.RunForever())
              let e3 = throws<EventLoopException> (fun () -> loop.CallLater(1.0, (fun () -> ())) |> ignore)
              let e4 = throws<EventLoopException> (fun () -> loop.CallSoonThreadsafe(fun () -> ()) |> ignore)
              for e in [ e1; e2; e3; e4 ] do
                  Expect.equal e.Message "Event loop is closed" "asyncio's message")

          testCase "a running loop cannot be closed" (fun () ->
              use loop = newLoop ()
              let mutable msg = ""
              loop.CallSoon(fun () ->
                  msg <- (throws<EventLoopException> (fun () -> loop.Close())).Message
                  loop.Stop())
              |> ignore
              loop.RunForever()
              Expect.equal msg "Cannot close a running event loop" "asyncio's message")

          testCase "RunUntilComplete of a future that never completes: 'Event loop stopped before Future completed.'" (fun () ->
              use loop = newLoop ()
              let f = loop.CreateFuture<int>()
              loop.CallSoon(fun () -> loop.Stop()) |> ignore
              let e = throws<EventLoopException> (fun () -> loop.RunUntilComplete f |> ignore)
              Expect.equal e.Message "Event loop stopped before Future completed." "asyncio's message")

          testCase "GetRunningLoop inside and outside" (fun () ->
              use loop = newLoop ()
              let inside = runMain loop (fun () -> task { return EventLoop.GetRunningLoop() })
              Expect.isTrue (obj.ReferenceEquals(inside, loop)) "the running loop"
              let e = throws<EventLoopException> (fun () -> EventLoop.GetRunningLoop() |> ignore)
              Expect.equal e.Message "no running event loop" "asyncio's message")

          // python3 scen5: asyncio.run cancels the task left pending; its coroutine sees the cancellation.
          testCase "Run cancels and awaits the tasks still pending, then closes the loop" (fun () ->
              let log = Log()
              let mutable loopSeen: EventLoop = null

              let result =
                  TestLoop.Run(fun () ->
                      task {
                          loopSeen <- EventLoop.GetRunningLoop()

                          Asyncio.CreateTask(fun () ->
                              task {
                                  try
                                      do! sleep 100.0
                                  with :? OperationCanceledException as e ->
                                      log.Add "forever cancelled"
                                      raise e
                              }
                              :> Task)
                          |> ignore

                          do! yieldTick ()
                          return "main done"
                      })

              Expect.equal result "main done" "result"
              Expect.equal log.Items [ "forever cancelled" ] "pending task cancelled and awaited"
              Expect.isTrue loopSeen.IsClosed "loop closed")

          testCase "Run reports a pending task that fails while being cancelled" (fun () ->
              let lines = Collections.Generic.List<string>()
              let old = Tulip.Diagnostics.LoopLog.Sink
              Tulip.Diagnostics.LoopLog.Sink <- Action<string>(fun s -> lines.Add s)

              try
                  TestLoop.Run(fun () ->
                      task {
                          Asyncio.CreateTask(fun () ->
                              task {
                                  try
                                      do! sleep 100.0
                                  with :? OperationCanceledException ->
                                      failwith "cleanup failed"
                              }
                              :> Task)
                          |> ignore

                          do! yieldTick ()
                      }
                      :> Task)
              finally
                  Tulip.Diagnostics.LoopLog.Sink <- old

              Expect.exists lines (fun l -> l.StartsWith "unhandled exception during asyncio.run() shutdown") "reported") ]

[<Tests>]
let threadsafe =
    testList
        "CallSoonThreadsafe"
        [ testCase "4 threads x 10,000 calls while the loop creates and cancels timers: each runs once, in per-thread order" (fun () ->
              use loop = new EventLoop() // real clock: other threads are involved
              let threads = 4
              let perThread = 10_000
              let seen = Array.init threads (fun _ -> Collections.Generic.List<int>(perThread))
              let mutable total = 0
              let all = loop.CreateFuture<int>()
              let mutable timersFired = 0

              // The loop keeps creating and cancelling timers while the threads post.
              let rec churn () =
                  if not all.Done then
                      let h = loop.CallLater(0.5, (fun () -> timersFired <- timersFired + 1))
                      loop.CallLater(0.0001, (fun () -> h.Cancel())) |> ignore
                      loop.CallSoon(fun () -> churn ()) |> ignore

              loop.CallSoon(fun () -> churn ()) |> ignore
              use start = new ManualResetEventSlim(false)

              let workers =
                  [| for t in 0 .. threads - 1 ->
                         Thread(fun () ->
                             start.Wait()

                             for i in 0 .. perThread - 1 do
                                 loop.CallSoonThreadsafe(
                                     (fun (struct (t: int, i: int)) ->
                                         seen[t].Add i
                                         total <- total + 1
                                         if total = threads * perThread then all.SetResult total),
                                     struct (t, i)
                                 )
                                 |> ignore) |]

              for w in workers do
                  w.Start()

              start.Set()
              let n = loop.RunUntilComplete all

              for w in workers do
                  w.Join()

              Expect.equal n (threads * perThread) "every callback ran"

              for t in 0 .. threads - 1 do
                  Expect.sequenceEqual seen[t] [ 0 .. perThread - 1 ] (sprintf "thread %d: exactly once, in order" t)

              Expect.equal timersFired 0 "every churned timer was cancelled before it fired")

          testCase "CallSoonThreadsafe wakes a loop sleeping on a far timer at once" (fun () ->
              use loop = new EventLoop()
              let f = loop.CreateFuture<string>()
              loop.CallLater(30.0, (fun () -> f.SetResult "timer")) |> ignore
              let sw = Diagnostics.Stopwatch.StartNew()

              let t =
                  Thread(fun () ->
                      Thread.Sleep 50
                      loop.CallSoonThreadsafe(fun () -> if not f.Done then f.SetResult "woken") |> ignore)

              t.Start()
              let r = loop.RunUntilComplete f
              t.Join()
              Expect.equal r "woken" "woken by the thread"
              Expect.isLessThan sw.Elapsed (TimeSpan.FromSeconds 10.0) "not after the 30 s timer")

          testCase "completing a future from another thread is refused while the loop runs" (fun () ->
              use loop = new EventLoop()
              let f = loop.CreateFuture<int>()
              let mutable error: exn = null

              loop.CallSoon(fun () ->
                  let t = Thread(fun () -> try f.SetResult 1 with e -> error <- e)
                  t.Start()
                  t.Join()
                  f.SetResult 2)
              |> ignore

              Expect.equal (loop.RunUntilComplete f) 2 "set on the loop"
              Expect.isTrue (error :? EventLoopException) "refused off the loop thread") ]
