/// Futures and tasks against CPython 3.11 (expected orders printed by python3 running the same program).
module Tulip.Tests.TaskTests

open System
open System.Threading
open System.Threading.Tasks
open Expecto
open Tulip
open Tulip.Testing
open Tulip.Tests.ShellSupport

[<Runtime.CompilerServices.MethodImpl(Runtime.CompilerServices.MethodImplOptions.NoInlining)>]
let makeUnretrieved (loop: EventLoop) =
    let f = loop.CreateFuture<int>()
    f.SetException(InvalidOperationException "lost")

[<Tests>]
let futures =
    testList
        "Future"
        [ // python3 scen9: ('removed', 2), 'set', 'cb2', 'added late', 'late'.
          testCase "done callbacks are scheduled, never inline; removal counts; a late one is scheduled at once" (fun () ->
              use loop = newLoop ()
              let log = Log()

              runMainUnit loop (fun () ->
                  task {
                      let f = loop.CreateFuture<int>()
                      let cb = Action<Future>(fun _ -> log.Add "cb1")
                      f.AddDoneCallback cb
                      f.AddDoneCallback cb
                      f.AddDoneCallback(fun _ -> log.Add "cb2")
                      log.Add(sprintf "removed %d" (f.RemoveDoneCallback cb))
                      f.SetResult 1
                      log.Add "set"
                      do! yieldTick ()
                      f.AddDoneCallback(fun _ -> log.Add "late")
                      log.Add "added late"
                      do! yieldTick ()
                  })

              Expect.equal log.Items [ "removed 2"; "set"; "cb2"; "added late"; "late" ] "as asyncio")

          testCase "done callbacks with an extra argument run in registration order" (fun () ->
              use loop = newLoop ()
              let log = Log()
              let f = loop.CreateFuture<string>()
              f.AddDoneCallback((fun (fut: Future) (n: int) -> log.Add(sprintf "%d: %s" n ((fut :?> Future<string>).Result()))), 1)
              f.AddDoneCallback((fun (fut: Future) (n: int) -> log.Add(sprintf "%d: %s" n ((fut :?> Future<string>).Result()))), 2)
              loop.CallSoon(fun () -> f.SetResult "the result") |> ignore
              loop.RunUntilComplete f |> ignore
              // RunUntilComplete's own stop callback was registered after them: they ran in that tick.
              Expect.equal log.Items [ "1: the result"; "2: the result" ] "order")

          // python3: InvalidStateError('invalid state') / ('Result is not set.') / ('Exception is not set.').
          testCase "wrong-state errors carry asyncio's messages" (fun () ->
              use loop = newLoop ()
              let f = loop.CreateFuture<int>()
              Expect.equal (throws<InvalidStateException> (fun () -> f.Result() |> ignore)).Message "Result is not set." "result"
              Expect.equal (throws<InvalidStateException> (fun () -> f.Exception() |> ignore)).Message "Exception is not set." "exception"
              f.SetResult 1
              Expect.equal (throws<InvalidStateException> (fun () -> f.SetResult 2)).Message "invalid state" "set twice"
              Expect.equal (throws<InvalidStateException> (fun () -> f.SetException(exn "x"))).Message "invalid state" "exception after result"
              Expect.isFalse (f.Cancel()) "cancel of a done future"
              Expect.equal (f.Result()) 1 "unchanged")

          // python3: f.cancel('fm'); f.result() raises CancelledError('fm').
          testCase "a cancelled future raises CancelledException with the message" (fun () ->
              use loop = newLoop ()
              let f = loop.CreateFuture<int>()
              Expect.isTrue (f.Cancel "fm") "cancelled"
              Expect.isTrue f.Cancelled "cancelled()"
              let e = throws<CancelledException> (fun () -> f.Result() |> ignore)
              Expect.equal e.CancelMessage "fm" "message"
              Expect.isTrue ((e :> exn) :? OperationCanceledException) "an OperationCanceledException")

          testCase "an exception nobody retrieved is reported when the future is collected" (fun () ->
              use loop = newLoop ()
              let errors = collectErrors loop

              makeUnretrieved loop
              let retrieved = loop.CreateFuture<int>()
              retrieved.SetException(InvalidOperationException "seen")
              retrieved.Exception() |> ignore

              for _ in 1..3 do
                  GC.Collect()
                  GC.WaitForPendingFinalizers()

              Expect.equal errors.Count 1 "only the unretrieved one"
              Expect.equal errors[0].Message "Future exception was never retrieved" "asyncio's message"
              Expect.equal errors[0].Exception.Message "lost" "with it") ]

[<Tests>]
let tasks =
    testList
        "LoopTask"
        [ // python3 scen1: cb, a1, b1, main, a2, b2, after ta, end.
          testCase "task steps interleave with callbacks tick by tick" (fun () ->
              use loop = newLoop ()
              let log = Log()

              runMainUnit loop (fun () ->
                  task {
                      let step (name: string) () =
                          task {
                              log.Add(name + "1")
                              do! yieldTick ()
                              log.Add(name + "2")
                          }

                      let a = step "a"
                      let b = step "b"
                      loop.CallSoon(fun () -> log.Add "cb") |> ignore
                      let ta = createTaskUnit loop (fun () -> a () :> Task)
                      let tb = createTaskUnit loop (fun () -> b () :> Task)
                      do! yieldTick ()
                      log.Add "main"
                      let! _ = ta
                      log.Add "after ta"
                      let! _ = tb
                      log.Add "end"
                  })

              Expect.equal log.Items [ "cb"; "a1"; "b1"; "main"; "a2"; "b2"; "after ta"; "end" ] "as asyncio")

          // python3 scen2: w-start, set, w-got x, tick1, main-tick1, main-tick2.
          testCase "a task waiting on a future resumes in the tick after the result is set" (fun () ->
              use loop = newLoop ()
              let log = Log()

              runMainUnit loop (fun () ->
                  task {
                      let f = loop.CreateFuture<string>()

                      let t =
                          createTaskUnit loop (fun () ->
                              task {
                                  log.Add "w-start"
                                  let! v = f
                                  log.Add("w-got " + v)
                              })

                      do! yieldTick ()
                      f.SetResult "x"
                      log.Add "set"
                      loop.CallSoon(fun () -> log.Add "tick1") |> ignore
                      do! yieldTick ()
                      log.Add "main-tick1"
                      do! yieldTick ()
                      log.Add "main-tick2"
                      let! _ = t
                      ()
                  })

              Expect.equal log.Items [ "w-start"; "set"; "w-got x"; "tick1"; "main-tick1"; "main-tick2" ] "as asyncio")

          testCase "CreateTask runs none of the coroutine inline" (fun () ->
              use loop = newLoop ()
              let log = Log()

              runMainUnit loop (fun () ->
                  task {
                      let t = createTask loop (fun () -> task { log.Add "body"; return 1 })
                      log.Add "created"
                      let! v = t
                      log.Add(sprintf "result %d" v)
                  })

              Expect.equal log.Items [ "created"; "body"; "result 1" ] "first step scheduled")

          testCase "a nested async method's awaits cost no extra tick (await coro() runs inline)" (fun () ->
              use loop = newLoop ()
              let log = Log()

              runMainUnit loop (fun () ->
                  task {
                      let inner () =
                          task {
                              do! yieldTick ()
                              return 5
                          }

                      loop.CallSoon(fun () -> log.Add "tick 1") |> ignore
                      let! v = inner ()
                      log.Add(sprintf "got %d" v)
                      loop.CallSoon(fun () -> log.Add "tick 2") |> ignore
                      do! yieldTick ()
                      log.Add "end"
                  })

              Expect.equal log.Items [ "tick 1"; "got 5"; "tick 2"; "end" ] "one tick per yield")

          // python3 (PyMOTW cancel_task): cancelled before it starts, the body never runs.
          testCase "cancel before the first step: the body never runs; awaiting raises" (fun () ->
              use loop = newLoop ()
              let log = Log()

              let msg =
                  runMain loop (fun () ->
                      task {
                          let t = createTask loop (fun () -> task { log.Add "body"; return 1 })
                          Expect.isTrue (t.Cancel "x") "cancel() is true"

                          try
                              let! _ = t
                              return "no"
                          with :? CancelledException as e ->
                              return e.CancelMessage
                      })

              Expect.equal msg "x" "message seen by the awaiter"
              Expect.isEmpty log.Items "body never ran")

          // python3 scen3: ('cancel', True), ('caught', ('bye',)), ('main sees', ('bye',), True, 1), ('cancel again', False).
          testCase "cancel while waiting: the coroutine sees the message at its await; then cancel() is false" (fun () ->
              use loop = newLoop ()
              let log = Log()

              runMainUnit loop (fun () ->
                  task {
                      let t =
                          createTaskUnit loop (fun () ->
                              task {
                                  try
                                      do! sleep 10.0
                                  with :? CancelledException as e ->
                                      log.Add("caught " + e.CancelMessage)
                                      raise e
                              })

                      do! yieldTick ()
                      log.Add(sprintf "cancel %b" (t.Cancel "bye"))

                      try
                          let! _ = t
                          ()
                      with :? CancelledException as e ->
                          log.Add(sprintf "main sees %s %b %d" e.CancelMessage t.Cancelled (t.Cancelling()))

                      log.Add(sprintf "cancel again %b" (t.Cancel()))
                  })

              Expect.equal
                  log.Items
                  [ "cancel true"; "caught bye"; "main sees bye true 1"; "cancel again false" ]
                  "as asyncio")

          // python3: t.cancel("m1"); t.cancel("m2") -> True True, cancelling() 2, the awaiter sees 'm1'.
          testCase "cancelled twice: two requests, the first message wins" (fun () ->
              use loop = newLoop ()

              let r =
                  runMain loop (fun () ->
                      task {
                          let t = createTaskUnit loop (fun () -> sleep 10.0)
                          do! yieldTick ()
                          let c1 = t.Cancel "m1"
                          let c2 = t.Cancel "m2"
                          let n = t.Cancelling()

                          try
                              let! _ = t
                              return "no"
                          with :? CancelledException as e ->
                              return sprintf "%b %b %d %s" c1 c2 n e.CancelMessage
                      })

              Expect.equal r "true true 2 m1" "as asyncio")

          // python3 scen8 / t2.py: a task that cancels itself and then returns ends cancelled ('self').
          testCase "cancel while running, then return: the task ends cancelled (3.11)" (fun () ->
              use loop = newLoop ()

              let r =
                  runMain loop (fun () ->
                      task {
                          let t =
                              createTask loop (fun () ->
                                  task {
                                      (Asyncio.CurrentTask()).Cancel "self" |> ignore
                                      return 5
                                  })

                          try
                              let! v = t
                              return sprintf "value %d" v
                          with :? CancelledException as e ->
                              return sprintf "cancelled %s %b" e.CancelMessage t.Cancelled
                      })

              Expect.equal r "cancelled self true" "as asyncio")

          testCase "cancel while running, then await: the cancellation is thrown in at that await" (fun () ->
              use loop = newLoop ()
              let log = Log()

              let r =
                  runMain loop (fun () ->
                      task {
                          let t =
                              createTask loop (fun () ->
                                  task {
                                      (Asyncio.CurrentTask()).Cancel "me" |> ignore
                                      do! yieldTick ()
                                      log.Add "unreachable"
                                      return 1
                                  })

                          try
                              let! _ = t
                              return "no"
                          with :? CancelledException as e ->
                              return e.CancelMessage
                      })

              Expect.equal r "me" "message"
              Expect.isEmpty log.Items "never resumed normally")

          // python3 (t2.py): d caught, cancelling=1, uncancel -> 0; 'survived' 0.
          testCase "a task may catch its cancellation, Uncancel, and return a value" (fun () ->
              use loop = newLoop ()
              let log = Log()

              let r =
                  runMain loop (fun () ->
                      task {
                          let t =
                              createTask loop (fun () ->
                                  task {
                                      try
                                          do! sleep 10.0
                                          return "slept"
                                      with :? CancelledException ->
                                          let me = Asyncio.CurrentTask()
                                          log.Add(sprintf "caught, cancelling=%d" (me.Cancelling()))
                                          log.Add(sprintf "uncancel -> %d" (me.Uncancel()))
                                          return "survived"
                                  })

                          do! yieldTick ()
                          t.Cancel() |> ignore
                          let! v = t
                          return sprintf "%s %d %b" v (t.Cancelling()) t.Cancelled
                      })

              Expect.equal r "survived 0 false" "the task is not cancelled"
              Expect.equal log.Items [ "caught, cancelling=1"; "uncancel -> 0" ] "counts")

          // python3 (cyc.py): CPython raises RecursionError out of cancel(); Tulip refuses the cancel
          // that comes back round the cycle, so nothing overflows the stack.
          testCase "cancelling tasks that await each other in a cycle neither recurses forever nor crashes" (fun () ->
              use loop = newLoop ()

              let r =
                  runMain loop (fun () ->
                      task {
                          let ts = Collections.Generic.Dictionary<string, LoopTask>()
                          ts["a"] <- createTaskUnit loop (fun () -> task { let! _ = ts["b"] in () })
                          ts["b"] <- createTaskUnit loop (fun () -> task { let! _ = ts["a"] in () })
                          do! yieldTick ()
                          let cancelled = ts["a"].Cancel()
                          do! yieldTick ()
                          let r = cancelled, ts["a"].Cancelling(), ts["b"].Cancelling()
                          // Free the loop: the cycle can never finish on its own.
                          return r
                      })

              Expect.equal r (true, 1, 1) "both are being cancelled")

          testCase "Uncancel never goes below zero" (fun () ->
              use loop = newLoop ()
              let t = createTaskUnit loop (fun () -> Task.CompletedTask)
              Expect.equal (t.Uncancel()) 0 "zero"
              runMainUnit loop (fun () -> task { let! _ = t in () }))

          testCase "an exception in the coroutine fails the task; awaiters get it" (fun () ->
              use loop = newLoop ()

              let r =
                  runMain loop (fun () ->
                      task {
                          let t = createTask loop (fun () -> task { return (raise (ArgumentException "k"): int) })

                          try
                              let! _ = t
                              return "no"
                          with :? ArgumentException as e ->
                              return sprintf "%s %b %s" e.Message t.Done (t.Exception().GetType().Name)
                      })

              Expect.equal r "k true ArgumentException" "as asyncio (scen8)")

          testCase "a task cannot be completed from outside" (fun () ->
              use loop = newLoop ()
              let t = createTask loop (fun () -> Task.FromResult 1)
              Expect.throwsT<EventLoopException> (fun () -> t.SetResult 2) "set_result refused"
              Expect.equal (runMain loop (fun () -> task { return! t })) 1 "unchanged")

          testCase "CurrentTask, AllTasks and names" (fun () ->
              use loop = newLoop ()

              let r =
                  runMain loop (fun () ->
                      task {
                          let me = Asyncio.CurrentTask()
                          let other = loop.CreateTask(Func<Task>(fun () -> sleep 1.0), "worker")
                          let names = Asyncio.AllTasks() |> Seq.map (fun t -> t.Name) |> Seq.sort |> List.ofSeq
                          let! _ = other
                          return me.Name.StartsWith "Task-", names, Asyncio.AllTasks().Count
                      })

              let isDefault, names, after = r
              Expect.isTrue isDefault "default name Task-N"
              Expect.contains names "worker" "named"
              Expect.equal (List.length names) 2 "main and worker"
              Expect.equal after 1 "worker done: only main left"
              Expect.isNull (Asyncio.CurrentTask loop) "no task outside")

          testCase "awaiting a .NET Task inside a loop task resumes on the loop thread" (fun () ->
              use loop = new EventLoop()

              let sameThread =
                  runMain loop (fun () ->
                      task {
                          let loopThread = Thread.CurrentThread.ManagedThreadId
                          do! Task.Run(fun () -> Thread.Sleep 10)
                          let afterRun = Thread.CurrentThread.ManagedThreadId
                          do! Task.Delay 5
                          let afterDelay = Thread.CurrentThread.ManagedThreadId
                          return loopThread = afterRun && afterRun = afterDelay && obj.ReferenceEquals(Asyncio.CurrentTask(), Asyncio.CurrentTask())
                      })

              Expect.isTrue sameThread "never resumed on the thread pool")

          testCase "the task's CancellationToken interrupts .NET awaits when the task is cancelled" (fun () ->
              use loop = new EventLoop()

              let r =
                  runMain loop (fun () ->
                      task {
                          let t =
                              createTask loop (fun () ->
                                  task {
                                      let token = Asyncio.CurrentTask().CancellationToken

                                      try
                                          do! Task.Delay(TimeSpan.FromSeconds 30.0, token)
                                          return "slept"
                                      with :? OperationCanceledException ->
                                          return "interrupted"
                                  })

                          do! sleep 0.01
                          t.Cancel() |> ignore
                          let! v = t
                          return v
                      })

              // The coroutine saw the cancellation through the token and chose to return: like a
              // coroutine that swallows CancelledError in asyncio, the task ends with its value.
              Expect.equal r "interrupted" "the delay was interrupted")

          testCase "Task.Delay on the loop's TimeProvider follows virtual time" (fun () ->
              use loop = newLoop ()
              let start = loop.Time()

              let elapsed =
                  runMain loop (fun () ->
                      task {
                          do! Task.Delay(TimeSpan.FromHours 1.0, loop.TimeProvider)
                          return loop.Time() - start
                      })

              Expect.floatClose Accuracy.medium elapsed 3600.0 "an hour of virtual time")

          testCase "PeriodicTimer on the loop's TimeProvider ticks in virtual time" (fun () ->
              use loop = newLoop ()
              let start = loop.Time()

              let ticks =
                  runMain loop (fun () ->
                      task {
                          use timer = new PeriodicTimer(TimeSpan.FromMinutes 1.0, loop.TimeProvider)
                          let times = Collections.Generic.List<float>()

                          for _ in 1..3 do
                              let! _ = timer.WaitForNextTickAsync()
                              times.Add(Math.Round(loop.Time() - start))

                          return List.ofSeq times
                      })

              Expect.equal ticks [ 60.0; 120.0; 180.0 ] "one tick a virtual minute")

          testCase "the loop holds pending tasks strongly: an unreferenced task still finishes" (fun () ->
              use loop = newLoop ()
              let log = Log()

              let spawn () =
                  createTaskUnit loop (fun () ->
                      task {
                          do! sleep 10.0
                          log.Add "finished"
                      })
                  |> WeakReference

              let weak = spawn ()

              runMainUnit loop (fun () ->
                  task {
                      do! yieldTick ()

                      for _ in 1..3 do
                          GC.Collect()
                          GC.WaitForPendingFinalizers()

                      Expect.isTrue weak.IsAlive "kept alive while pending"
                      do! sleep 20.0
                  })

              Expect.equal log.Items [ "finished" ] "ran to the end")

          testCase "a generator coroutine yields futures and returns a value" (fun () ->
              use loop = newLoop ()
              let log = Log()

              let gen () : seq<obj> =
                  seq {
                      log.Add "start"
                      let f = loop.CreateFuture<int>()
                      loop.CallLater(1.0, (fun () -> f.SetResult 41)) |> ignore
                      yield f
                      log.Add(sprintf "got %d" (f.Result()))
                      yield null // one tick
                      yield Generator.Return(f.Result() + 1)
                  }

              let t = loop.CreateTask(Generator.Coroutine<int>(Func<_>(gen)))
              Expect.equal (loop.RunUntilComplete t) 42 "result"
              Expect.equal log.Items [ "start"; "got 41" ] "steps") ]
