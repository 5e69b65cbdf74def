/// Timeout scopes and TaskGroup against CPython 3.11 (/tmp/py5/tg.py printed the expected values;
/// each test names its scenario).
module Tulip.Tests.TaskGroupTests

open System
open System.Threading.Tasks
open Expecto
open Tulip
open Tulip.Tests.ShellSupport
open Tulip.Tests.CompositionTests

/// A task body that sleeps and logs whether it finished or was cancelled (tg.py's `ok`).
let ok (log: Log) (n: int) (delay: float) () =
    task {
        try
            do! sleep delay
            log.Add(sprintf "ok %d" n)
            return n
        with :? CancelledException as e ->
            log.Add(sprintf "ok %d cancelled" n)
            return raise e
    }

let bad (delay: float) (msg: string) () : Task<int> =
    task {
        do! sleep delay
        return raise (ArgumentException msg)
    }

let messages (e: AggregateException) = e.InnerExceptions |> Seq.map (fun e -> e.Message) |> Seq.sort |> List.ofSeq

[<Tests>]
let timeouts =
    testList
        "Timeout"
        [ // tg.py timeout: when 0.2; TimeoutError at 0.2, expired, cancelling 0.
          testCase "await using: the deadline cancels the body and the scope raises TimeoutException" (fun () ->
              use loop = newLoop ()
              let log = Log()

              runMainUnit loop (fun () ->
                  task {
                      let start = loop.Time()
                      let mutable scope = Unchecked.defaultof<TimeoutScope>

                      try
                          use t = Asyncio.Timeout(Nullable 0.2)
                          scope <- t
                          log.Add(sprintf "when %.1f" (t.When.Value - start))
                          do! sleep 1.0
                      with :? TimeoutException ->
                          log.Add(sprintf "TimeoutException at %.1f expired=%b cancelling=%d" (at loop start) scope.Expired (Asyncio.CurrentTask().Cancelling()))
                  })

              Expect.equal log.Items [ "when 0.2"; "TimeoutException at 0.2 expired=true cancelling=0" ] "as asyncio")

          testCase "the body form: no expiry, Reschedule, a past deadline, Reschedule after exit" (fun () ->
              use loop = newLoop ()
              let log = Log()

              runMainUnit loop (fun () ->
                  task {
                      let! expired =
                          Asyncio.Timeout(
                              Nullable 1.0,
                              fun t ->
                                  task {
                                      do! sleep 0.1
                                      return t.Expired
                                  }
                          )

                      log.Add(sprintf "no expiry expired=%b" expired)
                      let start = loop.Time()

                      try
                          do!
                              Asyncio.Timeout(
                                  Nullable(),
                                  fun t ->
                                      task {
                                          t.Reschedule(Nullable(loop.Time() + 0.3))
                                          do! sleep 1.0
                                      }
                              )
                      with :? TimeoutException ->
                          log.Add(sprintf "rescheduled fired at %.1f" (at loop start))

                      let start = loop.Time()
                      let mutable scope = Unchecked.defaultof<TimeoutScope>

                      try
                          do!
                              Asyncio.TimeoutAt(
                                  Nullable(loop.Time() - 1.0),
                                  fun t ->
                                      task {
                                          scope <- t
                                          do! sleep 1.0
                                      }
                              )
                      with :? TimeoutException ->
                          log.Add(sprintf "past deadline fired at %.1f" (at loop start))

                      try
                          scope.Reschedule(Nullable 1.0)
                      with :? InvalidOperationException as e ->
                          log.Add("reschedule after exit: " + e.Message)
                  })

              // tg.py timeout: no expiry expired=False; rescheduled fired at 0.3; past deadline fired at 0.0;
              // "Cannot change state of expired Timeout".
              Expect.equal
                  log.Items
                  [ "no expiry expired=false"
                    "rescheduled fired at 0.3"
                    "past deadline fired at 0.0"
                    "reschedule after exit: Cannot change state of expired Timeout" ]
                  "as asyncio")

          // tg.py timeout: inner timeout at 0.1, outer timeout at 1.0.
          testCase "nested timeouts: each raises at its own scope" (fun () ->
              use loop = newLoop ()
              let log = Log()

              runMainUnit loop (fun () ->
                  task {
                      let start = loop.Time()

                      try
                          do!
                              Asyncio.Timeout(
                                  Nullable 1.0,
                                  fun _ ->
                                      task {
                                          try
                                              do! Asyncio.Timeout(Nullable 0.1, fun _ -> sleep 5.0)
                                          with :? TimeoutException ->
                                              log.Add(sprintf "inner timeout at %.1f" (at loop start))

                                          do! sleep 5.0
                                      }
                              )
                      with :? TimeoutException ->
                          log.Add(sprintf "outer timeout at %.1f" (at loop start))
                  })

              Expect.equal log.Items [ "inner timeout at 0.1"; "outer timeout at 1.0" ] "as asyncio")

          // tg.py timeout: 'external cancel stays CancelledError', 'race: CancelledError'.
          testCase "a cancellation from outside is not turned into a timeout, even in the deadline's tick" (fun () ->
              use loop = newLoop ()
              let log = Log()

              runMainUnit loop (fun () ->
                  task {
                      let body () = Asyncio.Timeout(Nullable 0.2, fun _ -> sleep 1.0) :> Task

                      for wait in [ 0.1; 0.2 ] do
                          let t = createTaskUnit loop body
                          do! sleep wait
                          t.Cancel() |> ignore

                          try
                              let! _ = t
                              log.Add "returned"
                          with
                          | :? TimeoutException -> log.Add "TimeoutException"
                          | :? CancelledException -> log.Add "CancelledException"
                  })

              Expect.equal log.Items [ "CancelledException"; "CancelledException" ] "as asyncio")

          testCase "Timeout outside a task is refused" (fun () ->
              use loop = newLoop ()
              let mutable msg = ""
              loop.CallSoon(fun () ->
                  try
                      Asyncio.Timeout(Nullable 1.0) |> ignore
                  with :? InvalidOperationException as e ->
                      msg <- e.Message)
              |> ignore
              runMainUnit loop (fun () -> yieldTick ())
              Expect.equal msg "Timeout should be used inside a task" "asyncio's message") ]

[<Tests>]
let taskGroups =
    testList
        "TaskGroup"
        [ // tg.py tg_fail: body end, ok 1, ok 2 cancelled, errors ['b1'] at 0.2, cancelling 1 (3.11 leaves
          // the parent's count at 1 when a child fails after the body ended).
          testCase "the first failure cancels the siblings; errors are aggregated" (fun () ->
              use loop = newLoop ()
              let log = Log()

              runMainUnit loop (fun () ->
                  task {
                      let start = loop.Time()

                      try
                          do!
                              TaskGroup.RunAsync(fun tg ->
                                  task {
                                      tg.CreateTask(Func<Task<int>>(ok log 1 0.1)) |> ignore
                                      tg.CreateTask(Func<Task<int>>(ok log 2 1.0)) |> ignore
                                      tg.CreateTask(Func<Task<int>>(bad 0.2 "b1")) |> ignore
                                      log.Add "body end"
                                  })
                      with :? AggregateException as e ->
                          log.Add(sprintf "errors %A at %.1f" (messages e) (at loop start))

                      log.Add(sprintf "cancelling %d" (Asyncio.CurrentTask().Cancelling()))
                  })

              Expect.equal log.Items [ "body end"; "ok 1"; "ok 2 cancelled"; "errors [\"b1\"] at 0.2"; "cancelling 1" ] "as asyncio")

          // tg.py tg_two: ok 3 cancelled; both errors.
          testCase "two failures in the same tick are both collected" (fun () ->
              use loop = newLoop ()
              let log = Log()

              runMainUnit loop (fun () ->
                  task {
                      try
                          do!
                              TaskGroup.RunAsync(fun tg ->
                                  task {
                                      tg.CreateTask(Func<Task<int>>(bad 0.1 "x")) |> ignore
                                      tg.CreateTask(Func<Task<int>>(bad 0.1 "y")) |> ignore
                                      tg.CreateTask(Func<Task<int>>(ok log 3 1.0)) |> ignore
                                  })
                      with :? AggregateException as e ->
                          log.Add(sprintf "errors %A" (messages e))
                  })

              Expect.equal log.Items [ "ok 3 cancelled"; "errors [\"x\"; \"y\"]" ] "as asyncio")

          // tg.py tg_ok: ok 2, ok 1, results; create_task afterwards: "TaskGroup … is finished".
          testCase "all succeed: awaited at the end of the scope; CreateTask afterwards is refused" (fun () ->
              use loop = newLoop ()
              let log = Log()

              runMainUnit loop (fun () ->
                  task {
                      let mutable group = Unchecked.defaultof<TaskGroup>

                      let! a, b =
                          TaskGroup.RunAsync(fun tg ->
                              task {
                                  group <- tg
                                  return tg.CreateTask(Func<Task<int>>(ok log 1 0.2)), tg.CreateTask(Func<Task<int>>(ok log 2 0.1))
                              })

                      log.Add(sprintf "results %d %d" (a.Result()) (b.Result()))

                      try
                          group.CreateTask(Func<Task<int>>(ok log 9 0.0)) |> ignore
                      with :? InvalidOperationException as e ->
                          log.Add("after: " + e.Message)
                  })

              Expect.equal log.Items [ "ok 2"; "ok 1"; "results 1 2"; "after: TaskGroup <TaskGroup entered> is finished" ] "as asyncio")

          testCase "await using: the tasks are awaited when the scope ends" (fun () ->
              use loop = newLoop ()
              let log = Log()

              runMainUnit loop (fun () ->
                  task {
                      do!
                          task {
                              use tg = new TaskGroup()
                              tg.CreateTask(Func<Task<int>>(ok log 1 0.2)) |> ignore
                              tg.CreateTask(Func<Task<int>>(ok log 2 0.1)) |> ignore
                              log.Add "body end"
                          }

                      log.Add "after"
                  })

              Expect.equal log.Items [ "body end"; "ok 2"; "ok 1"; "after" ] "awaited in DisposeAsync")

          // tg.py tg_parent_cancel: both children cancelled; the parent ends cancelled.
          testCase "cancelling the parent cancels the children and propagates" (fun () ->
              use loop = newLoop ()
              let log = Log()

              runMainUnit loop (fun () ->
                  task {
                      let parent () =
                          TaskGroup.RunAsync(fun tg ->
                              task {
                                  tg.CreateTask(Func<Task<int>>(ok log 1 1.0)) |> ignore
                                  tg.CreateTask(Func<Task<int>>(ok log 2 1.0)) |> ignore
                                  do! sleep 1.0
                              })
                          :> Task

                      let p = createTaskUnit loop parent
                      do! sleep 0.1
                      p.Cancel() |> ignore

                      try
                          let! _ = p
                          ()
                      with :? CancelledException ->
                          log.Add(sprintf "parent cancelled %b" p.Cancelled)
                  })

              Expect.equal (List.sort log.Items) [ "ok 1 cancelled"; "ok 2 cancelled"; "parent cancelled true" ] "as asyncio")

          // tg.py tg_body_error: the body's error cancels the children and is aggregated.
          testCase "an error in the body cancels the children and joins the errors" (fun () ->
              use loop = newLoop ()
              let log = Log()

              runMainUnit loop (fun () ->
                  task {
                      try
                          do!
                              TaskGroup.RunAsync(fun tg ->
                                  task {
                                      tg.CreateTask(Func<Task<int>>(ok log 1 1.0)) |> ignore
                                      do! sleep 0.1
                                      raise (System.Collections.Generic.KeyNotFoundException "body")
                                  })
                      with :? AggregateException as e ->
                          log.Add(sprintf "body error %s" (e.InnerExceptions |> Seq.map (fun e -> e.GetType().Name) |> String.concat ","))
                  })

              Expect.equal log.Items [ "ok 1 cancelled"; "body error KeyNotFoundException" ] "as asyncio")

          // tg.py tg_shutdown: "TaskGroup <TaskGroup errors=1 cancelling> is shutting down".
          testCase "CreateTask while the group is shutting down is refused" (fun () ->
              use loop = newLoop ()
              let log = Log()

              runMainUnit loop (fun () ->
                  task {
                      try
                          do!
                              TaskGroup.RunAsync(fun tg ->
                                  task {
                                      tg.CreateTask(Func<Task<int>>(bad 0.0 "z")) |> ignore

                                      try
                                          do! sleep 1.0
                                      with :? CancelledException as e ->
                                          try
                                              tg.CreateTask(Func<Task<int>>(ok log 5 0.0)) |> ignore
                                          with :? InvalidOperationException as e2 ->
                                              log.Add("shutting: " + e2.Message)

                                          raise e
                                  })
                      with :? AggregateException as e ->
                          log.Add(sprintf "%A" (messages e))
                  })

              Expect.equal log.Items [ "shutting: TaskGroup <TaskGroup errors=1 cancelling> is shutting down"; "[\"z\"]" ] "as asyncio") ]
