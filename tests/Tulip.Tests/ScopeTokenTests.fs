/// Issue 14.1: a CancellationToken on the forms that run a body in the current task (TaskGroup.RunAsync,
/// TimeoutScope.RunAsync, Asyncio.Timeout / TimeoutAt with a body). The token does what cancelling the
/// task inside `async with` does in asyncio 3.11: the body's current await raises, a task group cancels
/// and awaits its children, a timeout scope lets the cancellation through (not a TimeoutError); then the
/// scope raises CancelledException carrying the token and the task's cancel request is withdrawn, so the
/// task goes on normally after the scope.
module Tulip.Tests.ScopeTokenTests

open System
open System.Threading
open System.Threading.Tasks
open Expecto
open Tulip
open Tulip.Testing
open Tulip.Tests.ShellSupport

type private Firing =
    | Before
    | FromLoop
    | FromThread

/// Arms the token as `firing` says: at once, or at loop time 0.1 s from the loop or from another thread
/// (a real Thread: its Cancel posts to the loop, so the loop thread waiting for it cannot deadlock).
let private arm (loop: EventLoop) (cts: CancellationTokenSource) firing =
    match firing with
    | Before -> cts.Cancel()
    | FromLoop -> loop.CallLater(0.1, (fun () -> cts.Cancel())) |> ignore
    | FromThread ->
        loop.CallLater(
            0.1,
            (fun () ->
                let t = Thread((fun () -> cts.Cancel()), IsBackground = true)
                t.Start()
                t.Join())
        )
        |> ignore

let private expectToken (cts: CancellationTokenSource) (e: exn) =
    match e with
    | :? CancelledException as c -> Expect.equal c.CancellationToken cts.Token "the CancelledException carries the token"
    | e -> failtestf "expected a CancelledException carrying the token, got %O" e

/// After the scope: the task's cancel request was withdrawn, and it can wait again undisturbed.
let private afterScope (loop: EventLoop) =
    task {
        let me = Asyncio.CurrentTask()
        let cancelling = me.Cancelling()
        do! Asyncio.Sleep 1.0
        return cancelling
    }

let private groupCase firing =
    use loop = TestLoop.Create()
    use cts = new CancellationTokenSource()
    let children = ResizeArray<LoopTask<int>>()
    let mutable bodyRan = false

    let outcome, endedAt, cancelling =
        runMain loop (fun () ->
            task {
                arm loop cts firing
                let mutable outcome = null

                try
                    do!
                        TaskGroup.RunAsync(
                            (fun tg ->
                                task {
                                    bodyRan <- true

                                    for _ in 1..2 do
                                        children.Add(
                                            tg.CreateTask(fun () ->
                                                task {
                                                    do! Asyncio.Sleep 10.0
                                                    return 1
                                                })
                                        )

                                    do! Asyncio.Sleep 10.0
                                }
                                :> Task),
                            cts.Token
                        )
                with e ->
                    outcome <- e

                let endedAt = loop.Time()
                let! cancelling = afterScope loop
                return outcome, endedAt, cancelling
            })

    expectToken cts outcome
    Expect.equal cancelling 0 "the task's cancel request was withdrawn"

    match firing with
    | Before ->
        Expect.isFalse bodyRan "a token cancelled before: the body never runs"
        Expect.equal endedAt 0.0 "at once"
    | _ ->
        Expect.isTrue bodyRan "the body ran"
        Expect.floatClose Accuracy.high endedAt 0.1 "the group ended when the token fired"
        Expect.isTrue (children |> Seq.forall (fun c -> c.Cancelled)) "the children were cancelled and awaited (3.11: parent cancelled inside async with tg)"

let private timeoutCase firing =
    use loop = TestLoop.Create()
    use cts = new CancellationTokenSource()

    let outcome, endedAt, cancelling =
        runMain loop (fun () ->
            task {
                arm loop cts firing
                let mutable outcome = null

                try
                    do! Asyncio.Timeout(5.0, (fun _ -> task { do! Asyncio.Sleep 10.0 } :> Task), cts.Token)
                with e ->
                    outcome <- e

                let endedAt = loop.Time()
                let! cancelling = afterScope loop
                return outcome, endedAt, cancelling
            })

    // 3.11: a task cancelled inside `async with asyncio.timeout(5)` sees CancelledError, not TimeoutError.
    expectToken cts outcome
    Expect.equal cancelling 0 "the task's cancel request was withdrawn"
    Expect.floatClose Accuracy.high endedAt (if firing = Before then 0.0 else 0.1) "ended when the token fired"

[<Tests>]
let tests =
    testList
        "Tokens.Scopes"
        [ testList "TaskGroup.RunAsync" [ for f in [ Before; FromLoop; FromThread ] -> testCase (sprintf "%A" f) (fun () -> groupCase f) ]
          testList "Asyncio.Timeout(delay, body, token)" [ for f in [ Before; FromLoop; FromThread ] -> testCase (sprintf "%A" f) (fun () -> timeoutCase f) ]

          testCase "the deadline passes first: TimeoutException, the token untouched" (fun () ->
              use loop = TestLoop.Create()
              use cts = new CancellationTokenSource()

              let e =
                  runMain loop (fun () ->
                      task {
                          try
                              do! Asyncio.Timeout(0.5, (fun _ -> task { do! Asyncio.Sleep 10.0 } :> Task), cts.Token)
                              return null
                          with e ->
                              return e
                      })

              Expect.isTrue (e :? TimeoutException) "the timeout's own error")

          testCase "a token fired after the scope ended changes nothing (its registration is gone)" (fun () ->
              use loop = TestLoop.Create()
              use cts = new CancellationTokenSource()

              let r =
                  runMain loop (fun () ->
                      task {
                          let! v = TaskGroup.RunAsync((fun _ -> task { return 7 }), cts.Token)
                          cts.Cancel()
                          do! Asyncio.Sleep 1.0
                          return v + Asyncio.CurrentTask().Cancelling()
                      })

              Expect.equal r 7 "the result stands and the task is not cancelled")

          testCase "TimeoutScope.RunAsync with a token and no deadline" (fun () ->
              use loop = TestLoop.Create()
              use cts = new CancellationTokenSource()

              let e =
                  runMain loop (fun () ->
                      task {
                          loop.CallLater(0.2, (fun () -> cts.Cancel())) |> ignore
                          let scope = Asyncio.CreateTimeout(Timeout.InfiniteTimeSpan)

                          try
                              let! _ =
                                  scope.RunAsync(
                                      (fun _ ->
                                          task {
                                              do! Asyncio.Sleep 10.0
                                              return 1
                                          }),
                                      cts.Token
                                  )
                              return null
                          with e ->
                              return e
                      })

              expectToken cts e)

          testCase "the task's own cancellation inside the scope stays the task's (no token in it)" (fun () ->
              use loop = TestLoop.Create()
              use cts = new CancellationTokenSource()

              let e, cancelling =
                  runMain loop (fun () ->
                      task {
                          let me = Asyncio.CurrentTask()
                          loop.CallLater(0.1, (fun () -> me.Cancel("mine") |> ignore)) |> ignore

                          try
                              do! TaskGroup.RunAsync((fun _ -> task { do! Asyncio.Sleep 10.0 } :> Task), cts.Token)
                              return null, -1
                          with e ->
                              return e, me.Cancelling()
                      })

              match e with
              | :? CancelledException as c ->
                  Expect.isFalse c.CancellationToken.CanBeCanceled "not the token's"
                  Expect.equal cancelling 1 "the task's request stands"
              | e -> failtestf "expected the task's CancelledException, got %O" e) ]

/// Issue 14.3: ValueTask coroutines wherever a coroutine is taken — the scope bodies and as_completed.
[<Tests>]
let valueTaskBodies =
    testList
        "ValueTask bodies"
        [ testCase "TaskGroup.RunAsync, Timeout, TimeoutAt and scope.RunAsync take ValueTask bodies" (fun () ->
              use loop = TestLoop.Create()

              let r =
                  runMain loop (fun () ->
                      task {
                          let! a =
                              TaskGroup.RunAsync(
                                  Func<TaskGroup, ValueTask<int>>(fun tg ->
                                      let child = tg.CreateTask(fun () -> task { return 20 })
                                      ValueTask<int>(task {
                                          let! c = child
                                          return c + 1
                                      }))
                              )

                          do! TaskGroup.RunAsync(Func<TaskGroup, ValueTask>(fun _ -> ValueTask(task { do! Asyncio.Sleep 0.5 } :> Task)))

                          let! b =
                              Asyncio.Timeout(1.0, Func<TimeoutScope, ValueTask<int>>(fun _ -> ValueTask<int>(task { return 10 })))

                          let! c =
                              Asyncio.TimeoutAt(
                                  TimeSpan.FromSeconds(loop.Time() + 5.0),
                                  Func<TimeoutScope, ValueTask<int>>(fun _ -> ValueTask<int>(task { return 100 }))
                              )

                          let scope = Asyncio.CreateTimeout(TimeSpan.FromSeconds 1.0)
                          let! d = scope.RunAsync(Func<TimeoutScope, ValueTask<int>>(fun _ -> ValueTask<int>(task { return 1000 })))
                          return a + b + c + d
                      })

              Expect.equal r 1131 "every body ran and gave its value")

          testCase "a ValueTask body past its deadline: TimeoutException, as the Task form" (fun () ->
              use loop = TestLoop.Create()

              let e =
                  runMain loop (fun () ->
                      task {
                          try
                              do! Asyncio.Timeout(0.1, Func<TimeoutScope, ValueTask>(fun _ -> ValueTask(task { do! Asyncio.Sleep 10.0 } :> Task)))
                              return null
                          with e ->
                              return e
                      })

              Expect.isTrue (e :? TimeoutException) "timed out")

          testCase "AsCompleted takes ValueTask coroutines, in completion order" (fun () ->
              use loop = TestLoop.Create()

              let order =
                  runMain loop (fun () ->
                      task {
                          let coro (d: float) (v: int) =
                              Func<ValueTask<int>>(fun () ->
                                  ValueTask<int>(task {
                                      do! Asyncio.Sleep d
                                      return v
                                  }))

                          let got = ResizeArray<int>()

                          for next in Asyncio.AsCompleted([ coro 0.3 3; coro 0.1 1; coro 0.2 2 ]) do
                              let! v = next
                              got.Add v

                          return List.ofSeq got
                      })

              Expect.equal order [ 1; 2; 3 ] "completion order") ]
