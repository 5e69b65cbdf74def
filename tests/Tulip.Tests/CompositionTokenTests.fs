/// Issue 14.1/14.3/14.6 for the composition functions and task creation: a CancellationToken cancels the
/// await (asyncio's "the outer await was cancelled"), TimeSpan beside seconds, ValueTask coroutines. The
/// asyncio rules pinned with CPython 3.11.7 (script: cancel the awaiting task of each function):
///   gather   -> "child a cancelled", "child b cancelled", g.cancelled() False (the gather fails with CancelledError)
///   wait     -> "wait cancelled; a.done False a.cancelled False", then a's result 'a'
///   as_completed -> "as_completed cancelled; a.done False", then a's result 'a'
///   wait_for -> "child a cancelled", a.cancelled() True; inner done in the cancel's tick -> "result 42"
///   shield   -> s.cancelled() True, a.done() False, then a's result 'a'
///   task     -> cancel before start: "cancelled, body ran: False"
module Tulip.Tests.CompositionTokenTests

open System
open System.Threading
open System.Threading.Tasks
open Expecto
open Tulip
open Tulip.Tests.ShellSupport
open Tulip.Tests.CompositionTests

/// When the token fires: before the call, during the wait from the loop's thread, or from another thread.
type Firing =
    | Before
    | FromLoop
    | FromThread

let firings = [ Before; FromLoop; FromThread ]

/// A coroutine that yields one tick, then returns 1.
let oneTick () =
    task {
        do! yieldTick ()
        return 1
    }

/// Runs the actions on other threads (a Thread each: Task.Wait could run a task inline on this one) and
/// waits for them. They only post to the loop: blocking the loop thread meanwhile cannot deadlock.
let onOtherThreads (actions: (unit -> unit) list) =
    let threads = [ for a in actions -> Thread(ThreadStart(a), IsBackground = true) ]
    for t in threads do t.Start()
    for t in threads do t.Join()

let fire (cts: CancellationTokenSource) firing =
    match firing with
    | Before -> ()
    | FromLoop -> cts.Cancel()
    | FromThread -> onOtherThreads [ fun () -> cts.Cancel() ]

let expectTokenCancel (cts: CancellationTokenSource) (e: exn) =
    match e with
    | :? CancelledException as c -> Expect.equal c.CancellationToken cts.Token "the CancelledException carries the token"
    | e -> failtestf "expected a CancelledException, got %O" e

/// Runs `start token` in a task on a virtual-time loop; the token fires as `firing` says (during: at 0.1 s).
/// Returns the exception the await raised (or None and the result), the loop time it ended at, and `probe ()`
/// read right after the await ended.
let cancelAwait firing (start: CancellationToken -> Task<'T>) (probe: unit -> 'P) =
    use loop = newLoop ()
    // Not disposed here: the caller reads its token after the run.
    let cts = new CancellationTokenSource()
    if firing = Before then cts.Cancel()

    runMain loop (fun () ->
        task {
            let t0 = loop.Time()
            let op = start cts.Token

            if firing <> Before then
                do! sleep 0.1
                fire cts firing

            try
                let! r = op
                return Choice1Of2 r, at loop t0, probe ()
            with e ->
                return Choice2Of2 e, at loop t0, probe ()
        }),
    cts

let expectCancelled name (outcome, cts) =
    match outcome with
    | Choice2Of2 e, _, _ -> expectTokenCancel cts e
    | Choice1Of2 r, _, _ -> failtestf "%s: expected a cancellation, got %O" name r

let forEachFiring name f =
    testList name [ for firing in firings -> testCase (sprintf "%A" firing) (fun () -> f firing) ]

[<Tests>]
let createTaskTokens =
    testList
        "Tokens.CreateTask"
        [ forEachFiring "the token cancels the task, its exception carries the token" (fun firing ->
              let mutable ran = false
              let mutable task0: LoopTask<int> = null

              let result =
                  cancelAwait
                      firing
                      (fun token ->
                          let body () =
                              task {
                                  ran <- true
                                  do! sleep 1.0
                                  return 1
                              }

                          task0 <- Asyncio.CreateTask(body, token)
                          task { return! task0 })
                      (fun () -> task0.Cancelled)

              expectCancelled "CreateTask" result
              let (_, t, cancelled), _ = result
              Expect.isTrue cancelled "the task ended cancelled"
              Expect.equal t (if firing = Before then 0.0 else 0.1) "cancelled when the token fired"
              // asyncio: a task cancelled before its first step never runs its body.
              if firing = Before then Expect.isFalse ran "cancelled before its first step")

          testCase "a token fired after the task finished changes nothing" (fun () ->
              use loop = newLoop ()
              use cts = new CancellationTokenSource()

              let r =
                  runMain loop (fun () ->
                      task {
                          let t = loop.CreateTask((fun () -> after 0.1 7 ()), "named", cts.Token)
                          let! v = t
                          cts.Cancel()
                          do! yieldTick ()
                          return v, t.Cancelled, t.Name
                      })

              Expect.equal r (7, false, "named") "the result stands")

          testCase "a token fired right after the task's only step: the result stands" (fun () ->
              use loop = newLoop ()
              use cts = new CancellationTokenSource()

              let r =
                  runMain loop (fun () ->
                      task {
                          let t = Asyncio.CreateTask((fun () -> task { return 5 }), cts.Token)
                          // The task's one step runs in the tick this yield waits for; the token fires after it.
                          do! yieldTick ()
                          cts.Cancel()
                          let! v = t
                          return v
                      })

              Expect.equal r 5 "completed before the token fired")

          testCase "void tasks and ValueTask coroutines take a token too" (fun () ->
              use loop = newLoop ()
              use cts = new CancellationTokenSource()

              let r =
                  runMain loop (fun () ->
                      task {
                          let a = Asyncio.CreateTask((fun () -> task { do! sleep 1.0 } :> Task), cts.Token)
                          let b = Asyncio.CreateTask((fun () -> ValueTask<int>(after 1.0 1 ())), cts.Token)
                          let c = loop.CreateTask((fun () -> ValueTask(sleep 1.0 :> Task)), "c", cts.Token)
                          do! sleep 0.1
                          cts.Cancel()
                          do! yieldTick ()
                          do! yieldTick ()
                          return a.Cancelled, b.Cancelled, c.Cancelled
                      })

              Expect.equal r (true, true, true) "all cancelled") ]

[<Tests>]
let taskGroupTokens =
    testList
        "Tokens.TaskGroup"
        [ // 3.11 (a child cancelled at 0.1 in a group): "group ended; a.cancelled True b b".
          testCase "a child the token cancels does not abort the group" (fun () ->
              use loop = newLoop ()
              use cts = new CancellationTokenSource()

              let r =
                  runMain loop (fun () ->
                      task {
                          let mutable a: LoopTask<string> = null
                          let mutable b: LoopTask<string> = null
                          let mutable c: LoopTask = null

                          do!
                              TaskGroup.RunAsync(fun tg ->
                                  task {
                                      a <- tg.CreateTask((fun () -> after 1.0 "a" ()), cts.Token)
                                      b <- tg.CreateTask(fun () -> ValueTask<string>(after 0.5 "b" ()))
                                      c <- tg.CreateTask((fun () -> sleep 1.0 :> Task), "c", cts.Token)
                                      do! sleep 0.1
                                      onOtherThreads [ fun () -> cts.Cancel() ]
                                  }
                                  :> Task)

                          let! bv = b
                          return a.Cancelled, c.Cancelled, bv
                      })

              Expect.equal r (true, true, "b") "a and c cancelled, b's result") ]

[<Tests>]
let gatherTokens =
    testList
        "Tokens.Gather"
        [ forEachFiring "cancels the children (asyncio: cancelling the gather cancels them)" (fun firing ->
              let mutable children: LoopTask<int>[] = [||]

              let result =
                  cancelAwait
                      firing
                      (fun token ->
                          children <- [| for d in [ 1.0; 2.0 ] -> Asyncio.CreateTask(fun () -> after d 1 ()) |]
                          task { return! Asyncio.Gather([ for c in children -> fut c ], token) })
                      (fun () -> children |> Array.map (fun c -> c.Cancelled))

              expectCancelled "Gather" result
              let (_, _, cancelled), _ = result
              Expect.equal cancelled [| true; true |] "every child cancelled")

          testCase "the gather fails (it is not itself cancelled), as asyncio's g.cancelled() is False" (fun () ->
              let mutable g: GatheringFuture<int[]> = null

              let result =
                  cancelAwait
                      FromLoop
                      (fun token ->
                          g <- Asyncio.Gather([ fut (Asyncio.CreateTask(fun () -> after 1.0 1 ())) ], token)
                          task { return! g })
                      (fun () -> g.Cancelled)

              expectCancelled "Gather" result
              let (_, _, cancelled), _ = result
              Expect.isFalse cancelled "not cancelled")

          testCase "coroutines and futures of any type" (fun () ->
              let result =
                  cancelAwait
                      FromThread
                      (fun token ->
                          task {
                              let! r = Asyncio.Gather([ Func<Task<int>>(after 1.0 1) ], token)
                              return r.Length
                          })
                      ignore

              expectCancelled "Gather of coroutines" result

              let result =
                  cancelAwait
                      FromLoop
                      (fun token ->
                          task {
                              let f = Asyncio.CreateTask(fun () -> after 1.0 "x" ()) :> Future
                              let! r = Asyncio.Gather([ f ], false, token)
                              return r.Length
                          })
                      ignore

              expectCancelled "Gather of futures of any type" result)

          testCase "children done first: the result stands" (fun () ->
              use loop = newLoop ()
              use cts = new CancellationTokenSource()

              let r =
                  runMain loop (fun () ->
                      task {
                          let g = Asyncio.Gather([ fut (Asyncio.CreateTask(fun () -> after 0.1 1 ())) ], cts.Token)
                          let! r = g
                          cts.Cancel()
                          return List.ofArray r
                      })

              Expect.equal r [ 1 ] "result") ]

[<Tests>]
let waitTokens =
    testList
        "Tokens.Wait"
        [ forEachFiring "the wait raises; the futures are not cancelled (asyncio)" (fun firing ->
              let mutable a: LoopTask<int> = null

              let result =
                  cancelAwait
                      firing
                      (fun token ->
                          a <- Asyncio.CreateTask(fun () -> after 1.0 1 ())
                          task {
                              let! _ = Asyncio.Wait([ a ], Nullable(), ReturnWhen.AllCompleted, token)
                              return ()
                          })
                      (fun () -> a.Done, a.Cancelled)

              expectCancelled "Wait" result
              let (_, t, state), _ = result
              Expect.equal state (false, false) "the future goes on"
              Expect.equal t (if firing = Before then 0.0 else 0.1) "when the token fired")

          testCase "the future still completes after the wait was cancelled" (fun () ->
              use loop = newLoop ()
              use cts = new CancellationTokenSource()

              let r =
                  runMain loop (fun () ->
                      task {
                          let a = Asyncio.CreateTask(fun () -> after 0.5 "a" ())
                          let w = Asyncio.Wait([ a ], cts.Token)
                          cts.Cancel()
                          let! failed = task { try let! _ = w in return false with :? CancelledException -> return true }
                          let! v = a
                          return failed, v
                      })

              Expect.equal r (true, "a") "a's result")

          testCase "done before the token: the sets are returned" (fun () ->
              use loop = newLoop ()
              use cts = new CancellationTokenSource()

              let r =
                  runMain loop (fun () ->
                      task {
                          let a = Asyncio.CreateTask(fun () -> after 0.1 1 ())
                          let! (d, p) = Asyncio.Wait([ a ], TimeSpan.FromSeconds 5.0, ReturnWhen.AllCompleted, cts.Token)
                          cts.Cancel()
                          return d.Count, p.Count
                      })

              Expect.equal r (1, 0) "done") ]

[<Tests>]
let waitForTokens =
    testList
        "Tokens.WaitFor"
        [ forEachFiring "the inner awaitable is cancelled (asyncio)" (fun firing ->
              let mutable a: LoopTask<int> = null

              let result =
                  cancelAwait
                      firing
                      (fun token ->
                          a <- Asyncio.CreateTask(fun () -> after 1.0 1 ())
                          Asyncio.WaitFor(a, Nullable 5.0, token))
                      (fun () -> a.Cancelled)

              expectCancelled "WaitFor" result
              let (_, _, cancelled), _ = result
              Expect.isTrue cancelled "the inner task was cancelled and awaited")

          testCase "no timeout: the token alone, on a coroutine" (fun () ->
              let result =
                  cancelAwait FromThread (fun token -> Asyncio.WaitFor(Func<Task<int>>(after 1.0 1), Nullable(), token)) ignore

              expectCancelled "WaitFor" result)

          testCase "the inner completes in the token's tick: its result wins (3.11: result 42)" (fun () ->
              use loop = newLoop ()
              use cts = new CancellationTokenSource()

              let r =
                  runMain loop (fun () ->
                      task {
                          let f = loop.CreateFuture<int>()
                          let w = Asyncio.WaitFor(f, Nullable 5.0, cts.Token)
                          do! yieldTick ()
                          f.SetResult 42
                          cts.Cancel()
                          return! w
                      })

              Expect.equal r 42 "the result")

          testCase "TimeSpan timeout: TimeoutException when it passes; InfiniteTimeSpan waits" (fun () ->
              use loop = newLoop ()

              let r =
                  runMain loop (fun () ->
                      task {
                          let t0 = loop.Time()

                          let! timedOut =
                              task {
                                  try
                                      let! _ = Asyncio.WaitFor(Func<Task<int>>(after 1.0 1), TimeSpan.FromSeconds 0.5)
                                      return false
                                  with :? TimeoutException ->
                                      return true
                              }

                          let t1 = at loop t0
                          let! v = Asyncio.WaitFor(Func<Task<int>>(after 2.0 2), Timeout.InfiniteTimeSpan)
                          return timedOut, t1, v
                      })

              Expect.equal r (true, 0.5, 2) "timed out at 0.5, then no limit") ]

[<Tests>]
let asCompletedTokens =
    testList
        "Tokens.AsCompleted"
        [ forEachFiring "the awaitable raises; the futures go on (asyncio)" (fun firing ->
              let mutable a: LoopTask<int> = null

              let result =
                  cancelAwait
                      firing
                      (fun token ->
                          a <- Asyncio.CreateTask(fun () -> after 1.0 1 ())
                          let next = Asyncio.AsCompleted([ fut a ], Nullable(), token) |> Seq.head
                          task { return! next })
                      (fun () -> a.Done)

              expectCancelled "AsCompleted" result
              let (_, _, done'), _ = result
              Expect.isFalse done' "the future goes on")

          testCase "results completed before the token are still handed out" (fun () ->
              use loop = newLoop ()
              use cts = new CancellationTokenSource()

              let r =
                  runMain loop (fun () ->
                      task {
                          let a = Asyncio.CreateTask(fun () -> after 0.1 1 ())
                          let b = Asyncio.CreateTask(fun () -> after 1.0 2 ())
                          let items = Asyncio.AsCompleted([ fut a; fut b ], TimeSpan.FromSeconds 5.0, cts.Token) |> List.ofSeq
                          let! first = items[0]
                          cts.Cancel()
                          let! second = task { try let! _ = items[1] in return "value" with :? CancelledException as e -> return (if e.CancellationToken = cts.Token then "token" else "other") }
                          let! bv = b
                          return first, second, bv
                      })

              Expect.equal r (1, "token", 2) "first result, then the cancellation; b completes")

          testCase "AsCompletedAsync: the token cancels the wait in progress" (fun () ->
              let mutable a: LoopTask<int> = null

              let result =
                  cancelAwait
                      FromLoop
                      (fun token ->
                          a <- Asyncio.CreateTask(fun () -> after 1.0 1 ())

                          task {
                              let e = Asyncio.AsCompletedAsync([ a ], Nullable(), token).GetAsyncEnumerator()
                              let! _ = e.MoveNextAsync()
                              return 0
                          })
                      (fun () -> a.Done)

              expectCancelled "AsCompletedAsync" result)

          testCase "TimeSpan timeout" (fun () ->
              use loop = newLoop ()

              let r =
                  runMain loop (fun () ->
                      task {
                          let a = Asyncio.CreateTask(fun () -> after 1.0 1 ())
                          let next = Asyncio.AsCompleted([ fut a ], TimeSpan.FromSeconds 0.5) |> Seq.head
                          try
                              let! _ = next
                              return "value"
                          with :? TimeoutException ->
                              return "timeout"
                      })

              Expect.equal r "timeout" "timed out") ]

[<Tests>]
let shieldTokens =
    testList
        "Tokens.Shield"
        [ forEachFiring "the outer is cancelled, the inner goes on (asyncio)" (fun firing ->
              let mutable a: LoopTask<int> = null
              let mutable s: Future<int> = null

              let result =
                  cancelAwait
                      firing
                      (fun token ->
                          a <- Asyncio.CreateTask(fun () -> after 1.0 1 ())
                          s <- Asyncio.Shield(a, token)
                          task { return! s })
                      (fun () -> s.Cancelled, a.Done)

              expectCancelled "Shield" result
              let (_, _, state), _ = result
              Expect.equal state (true, false) "outer cancelled, inner running")

          testCase "the inner's result after the outer was cancelled" (fun () ->
              use loop = newLoop ()
              use cts = new CancellationTokenSource()

              let r =
                  runMain loop (fun () ->
                      task {
                          let s = Asyncio.Shield((fun () -> after 0.5 "a" ()), cts.Token)
                          cts.Cancel()
                          let! failed = task { try let! _ = s in return false with :? CancelledException -> return true }
                          do! sleep 1.0
                          return failed
                      })

              Expect.isTrue r "outer cancelled") ]

/// The token fires on another thread as the operation's future completes (posted from a thread too): the
/// two arrive in the same tick in either order, or from two threads at once. The outcome is the result or a
/// CancelledException carrying the token, never anything else.
let race (start: Future<int> -> CancellationToken -> Task<int>) =
    use loop = newLoop ()

    let outcomes =
        runMain loop (fun () ->
            task {
                let seen = Collections.Generic.HashSet<string>()

                for i in 1..300 do
                    use cts = new CancellationTokenSource()
                    let f = loop.CreateFuture<int>()
                    let op = start f cts.Token

                    let complete () =
                        loop.CallSoonThreadsafe(fun () -> if not f.Done then f.SetResult 1) |> ignore

                    // The loop thread waits for the other thread(s): both arrivals are in the inbox before the next tick.
                    match i % 3 with
                    | 0 ->
                        onOtherThreads
                            [ fun () ->
                                  complete ()
                                  cts.Cancel() ]
                    | 1 ->
                        onOtherThreads
                            [ fun () ->
                                  cts.Cancel()
                                  complete () ]
                    | _ -> onOtherThreads [ complete; (fun () -> cts.Cancel()) ]

                    try
                        let! v = op
                        seen.Add(if v = 1 then "result" else "wrong") |> ignore
                    with
                    | :? CancelledException as e when e.CancellationToken = cts.Token -> seen.Add "token" |> ignore
                    | e -> seen.Add(e.GetType().Name) |> ignore

                return List.ofSeq seen
            })

    for o in outcomes do
        Expect.contains [ "result"; "token" ] o "the result or the token's cancellation"

[<Tests>]
let races =
    testList
        "Tokens.Races"
        [ testCase "CreateTask" (fun () -> race (fun f token -> task { return! Asyncio.CreateTask((fun () -> task { return! f }), token) }))
          testCase "Gather" (fun () -> race (fun f token -> task { let! r = Asyncio.Gather([ f ], token) in return r[0] }))
          testCase "Wait" (fun () -> race (fun f token -> task { let! (d, _) = Asyncio.Wait([ f ], token) in return d.Count }))
          testCase "WaitFor" (fun () -> race (fun f token -> Asyncio.WaitFor(f, Nullable 5.0, token)))
          testCase "AsCompleted" (fun () -> race (fun f token -> task { return! Asyncio.AsCompleted([ f ], Nullable(), token) |> Seq.head }))
          testCase "Shield" (fun () -> race (fun f token -> task { return! Asyncio.Shield(f, token) })) ]

[<Tests>]
let registrations =
    testList
        "Tokens.Registrations"
        [ testCase "a long-lived token used for 100,000 completed waits leaves no registration" (fun () ->
              use loop = newLoop ()
              use cts = new CancellationTokenSource()
              let before = TokenLink.LiveRegistrations

              let n =
                  runMain loop (fun () ->
                      task {
                          let mutable sum = 0

                          for i in 0 .. 99_999 do
                              let token = cts.Token

                              match i % 6 with
                              | 0 ->
                                  let! v = Asyncio.CreateTask((fun () -> Task.FromResult 1), token)
                                  sum <- sum + v
                              | 1 ->
                                  let! r = Asyncio.Gather([ fut (Asyncio.CreateTask(fun () -> Task.FromResult 1)) ], token)
                                  sum <- sum + r[0]
                              | 2 ->
                                  let a = Asyncio.CreateTask(fun () -> Task.FromResult 1)
                                  let! (d, _) = Asyncio.Wait([ a ], token)
                                  sum <- sum + d.Count
                              | 3 ->
                                  let! v = Asyncio.WaitFor(Func<Task<int>>(fun () -> Task.FromResult 1), Nullable 10.0, token)
                                  sum <- sum + v
                              | 4 ->
                                  let! v = Asyncio.AsCompleted([ fut (Asyncio.CreateTask(fun () -> Task.FromResult 1)) ], Nullable(), token) |> Seq.head
                                  sum <- sum + v
                              | _ ->
                                  let! v = Asyncio.Shield((fun () -> Task.FromResult 1), token)
                                  sum <- sum + v

                          // Registrations released by a done-callback go one tick after the await.
                          do! yieldTick ()
                          return sum
                      })

              Expect.equal n 100_000 "every wait completed"
              // Other tests may hold a few registrations meanwhile (they run in parallel); a leak would be ~100,000.
              Expect.isLessThan (TokenLink.LiveRegistrations - before) 50L "no registration left"
              // Firing the token now cancels nothing and posts nothing that fails.
              cts.Cancel()
              Expect.isFalse (loop.IsClosed) "loop fine")

          testCase "CancellationToken.None registers nothing" (fun () ->
              use loop = newLoop ()

              let r =
                  runMain loop (fun () ->
                      task {
                          let t = Asyncio.CreateTask((fun () -> after 0.1 1 ()), CancellationToken.None)
                          let! v = Asyncio.WaitFor(t, Nullable 1.0, CancellationToken.None)
                          return v
                      })

              Expect.equal r 1 "result") ]

[<Tests>]
let overloadsFromFSharp =
    // Issue 14.6: every new overload is callable from F# task { } without annotations or ambiguity.
    testList
        "Tokens.F# overloads"
        [ testCase "ValueTask coroutines, TimeSpan timeouts, tokens" (fun () ->
              let v = Asyncio.Run(fun () -> ValueTask<int>(3))
              Expect.equal v 3 "Run of a ValueTask<int>"
              Asyncio.Run(fun () -> ValueTask())
              use runner = new Runner()
              Expect.equal (runner.Run(fun () -> ValueTask<string>("r"))) "r" "Runner.Run"
              use loop = newLoop ()
              Expect.equal (loop.RunUntilComplete(fun () -> ValueTask<int>(4))) 4 "RunUntilComplete"
              use cts = new CancellationTokenSource()

              let r =
                  runMain loop (fun () ->
                      task {
                          let t1 = Asyncio.CreateTask(fun () -> ValueTask<int>(1))
                          let t2 = Asyncio.CreateTask((fun () -> task { return 2 }), cts.Token)
                          let t3 = Asyncio.CreateTask((fun () -> ValueTask<int>(3)), "three", cts.Token)
                          let f4 = Asyncio.EnsureFuture(ValueTask<int>(4))
                          let f5 = Asyncio.EnsureFuture(fun () -> ValueTask<int>(5))
                          let! g = Asyncio.Gather((fun () -> ValueTask<int>(6)), (fun () -> ValueTask<int>(7)))
                          let! s = Asyncio.Shield(fun () -> ValueTask<int>(8))
                          let! w = Asyncio.WaitFor((fun () -> ValueTask<int>(9)), TimeSpan.FromSeconds 1.0)
                          let! w2 = Asyncio.WaitFor((fun () -> task { return 10 }), TimeSpan.FromSeconds 1.0, cts.Token)
                          let! (d, _) = Asyncio.Wait([ t1 ], TimeSpan.FromSeconds 1.0)
                          let scope = Asyncio.Timeout(TimeSpan.FromSeconds 1.0)
                          do! scope.DisposeAsync()
                          let! x = Asyncio.Timeout(TimeSpan.FromSeconds 1.0, fun _ -> task { return 11 })
                          let! a = t1
                          let! b = t2
                          let! c = t3
                          let! e = f4
                          let! f = f5
                          return [ a; b; c; e; f; g[0]; g[1]; s; w; w2; d.Count; x ]
                      })

              Expect.equal r [ 1; 2; 3; 4; 5; 6; 7; 8; 9; 10; 1; 11 ] "all the overloads")

          testCase "TimeSpan timeouts: InfiniteTimeSpan is no deadline, as null" (fun () ->
              use loop = newLoop ()

              let r =
                  runMain loop (fun () ->
                      task {
                          let t0 = loop.Time()
                          let created = Asyncio.CreateTimeout(Timeout.InfiniteTimeSpan)
                          let scope = Asyncio.Timeout(Timeout.InfiniteTimeSpan)
                          let noDeadline = scope.When
                          do! scope.DisposeAsync()
                          let at = Asyncio.CreateTimeoutAt(TimeSpan.FromSeconds(t0 + 2.0))

                          let! timedOut =
                              task {
                                  try
                                      do! Asyncio.Timeout(TimeSpan.FromSeconds 0.5, fun _ -> sleep 1.0 :> Task)
                                      return false
                                  with :? TimeoutException ->
                                      return true
                              }

                          let! inTime = Asyncio.TimeoutAt(TimeSpan.FromSeconds(loop.Time() + 1.0), fun _ -> after 0.5 "in time" ())
                          return created.When, noDeadline, at.When, timedOut, inTime
                      })

              let createdWhen, noDeadline, atWhen, timedOut, inTime = r
              Expect.isFalse createdWhen.HasValue "CreateTimeout(InfiniteTimeSpan): no deadline"
              Expect.isFalse noDeadline.HasValue "Timeout(InfiniteTimeSpan): no deadline"
              Expect.isTrue atWhen.HasValue "CreateTimeoutAt(TimeSpan): a deadline in loop time"
              Expect.isTrue timedOut "Timeout(TimeSpan) raises TimeoutException"
              Expect.equal inTime "in time" "TimeoutAt(TimeSpan) lets the body finish") ]
