/// Gather, Wait, WaitFor, AsCompleted, Shield, Timeout and TaskGroup against CPython 3.11 (the expected
/// values are what /tmp scripts running the same scenarios with python3 printed; each test names its scenario).
module Tulip.Tests.CompositionTests

open System
open System.Threading.Tasks
open Expecto
open Tulip
open Tulip.Tests.ShellSupport

let fut (t: LoopTask<'T>) = t :> Future<'T>

/// Loop time rounded to 0.1 s, relative to `start`.
let at (loop: EventLoop) (start: float) = Math.Round(loop.Time() - start, 1)

let worker (log: Log) (name: string) (delay: float) () =
    task {
        do! sleep delay
        log.Add name
        return name
    }

/// A coroutine that sleeps, then returns `value`.
let after (delay: float) (value: 'T) () : Task<'T> =
    task {
        do! sleep delay
        return value
    }

let failing (delay: float) (msg: string) () : Task<string> =
    task {
        do! sleep delay
        return raise (ArgumentException msg)
    }

[<Tests>]
let gather =
    testList
        "Gather"
        [ // comp.py gather_order: ['a', 'b', 'c'] in argument order, completed b, c, a.
          testCase "results in argument order, whatever the completion order" (fun () ->
              use loop = newLoop ()
              let log = Log()

              let r =
                  runMain loop (fun () ->
                      task {
                          let ts = [| for (n, d) in [ "a", 0.3; "b", 0.1; "c", 0.2 ] -> fut (createTask loop (worker log n d)) |]
                          let! r = Asyncio.Gather ts
                          return List.ofArray r
                      })

              Expect.equal r [ "a"; "b"; "c" ] "argument order"
              Expect.equal log.Items [ "b"; "c"; "a" ] "completion order")

          testCase "coroutines become tasks" (fun () ->
              use loop = newLoop ()
              let log = Log()

              let r =
                  runMain loop (fun () ->
                      task {
                          let! r = Asyncio.Gather(Func<Task<string>>(worker log "x" 0.2), Func<Task<string>>(worker log "y" 0.1))
                          return List.ofArray r
                      })

              Expect.equal r [ "x"; "y" ] "argument order")

          // comp.py gather_empty: done at once, [].
          testCase "gather of nothing is a future already done with an empty array" (fun () ->
              use loop = newLoop ()

              let r =
                  runMain loop (fun () ->
                      task {
                          let g = Asyncio.Gather(Array.empty<Future<int>>)
                          let wasDone = g.Done
                          let! r = g
                          return wasDone, r.Length
                      })

              Expect.equal r (true, 0) "done, empty")

          // comp.py gather_exc: caught bad at 0.1; ok not done; ok finishes later with 1.
          testCase "the first exception fails the gather at once; the other children go on" (fun () ->
              use loop = newLoop ()
              let log = Log()

              runMainUnit loop (fun () ->
                  task {
                      let start = loop.Time()
                      let ok = createTask loop (worker log "ok done" 0.2)
                      let bad = createTask loop (failing 0.1 "bad")

                      try
                          let! _ = Asyncio.Gather(fut ok, fut bad)
                          ()
                      with :? ArgumentException as e ->
                          log.Add(sprintf "caught %s at %.1f" e.Message (at loop start))

                      log.Add(sprintf "ok done? %b" ok.Done)
                      do! sleep 0.2
                      log.Add(sprintf "ok result %s" (ok.Result()))
                  })

              Expect.equal log.Items [ "caught bad at 0.1"; "ok done? false"; "ok done"; "ok result ok done" ] "as asyncio")

          // comp.py gather_retexc: [1, ValueError('bad'), CancelledError(''), CancelledError('')] — 3.11
          // puts CancelledError('') for a cancelled task even when cancel had a message (a task's
          // _cancel_message stays None); a plain future cancelled with a message keeps it.
          testCase "returnExceptions: exceptions and cancellations take their place in the results" (fun () ->
              use loop = newLoop ()

              let r =
                  runMain loop (fun () ->
                      task {
                          let ok = createTask loop (fun () -> task { return 1 })
                          let bad = createTask loop (fun () -> task { return (raise (ArgumentException "bad"): int) })
                          let slow = createTask loop (after 1.0 0)
                          let slow2 = createTask loop (after 1.0 0)
                          let plain = loop.CreateFuture<int>()
                          loop.CallLater(0.1, (fun () -> slow.Cancel "m" |> ignore)) |> ignore
                          loop.CallLater(0.1, (fun () -> slow2.Cancel() |> ignore)) |> ignore
                          loop.CallLater(0.1, (fun () -> plain.Cancel "pm" |> ignore)) |> ignore
                          let! r = Asyncio.Gather([ ok :> Future; bad; slow; slow2; plain ], returnExceptions = true)

                          return
                              r
                              |> Array.map (function
                                  | :? CancelledException as c -> sprintf "Cancelled(%s)" c.CancelMessage
                                  | :? exn as e -> sprintf "%s(%s)" (e.GetType().Name) e.Message
                                  | v -> string v)
                              |> List.ofArray
                      })

              Expect.equal r [ "1"; "ArgumentException(bad)"; "Cancelled()"; "Cancelled()"; "Cancelled(pm)" ] "as asyncio")

          // comp.py gather_cancel: cancel -> True; both children see 'stop'; the awaiter gets
          // CancelledError('stop'); the gather is done but cancelled() is False (3.11 sets an exception).
          testCase "cancelling the gather cancels the children; its awaiter gets their cancellation" (fun () ->
              use loop = newLoop ()
              let log = Log()

              runMainUnit loop (fun () ->
                  task {
                      let child n () =
                          task {
                              try
                                  do! sleep 1.0
                              with :? CancelledException as e ->
                                  log.Add(sprintf "child %d cancelled %s" n e.CancelMessage)
                                  raise e

                              return n
                          }

                      let g = Asyncio.Gather(Func<Task<int>>(child 1), Func<Task<int>>(child 2))
                      do! yieldTick ()
                      log.Add(sprintf "cancel -> %b" (g.Cancel "stop"))

                      try
                          let! _ = g
                          ()
                      with :? CancelledException as e ->
                          log.Add(sprintf "outer raised %s" e.CancelMessage)

                      log.Add(sprintf "done %b cancelled %b" g.Done g.Cancelled)
                  })

              Expect.equal
                  log.Items
                  [ "cancel -> true"
                    "child 1 cancelled stop"
                    "child 2 cancelled stop"
                    "outer raised stop"
                    "done true cancelled false" ]
                  "as asyncio")

          // comp.py gather_child_cancelled: raised ('c1',); outer not cancelled; the other child finishes.
          testCase "a child's own cancellation fails the gather with CancelledException but cancels nothing else" (fun () ->
              use loop = newLoop ()
              let log = Log()

              runMainUnit loop (fun () ->
                  task {
                      let t1 = createTask loop (after 1.0 "t1")
                      let t2 = createTask loop (worker log "other finished" 0.2)
                      loop.CallLater(0.1, (fun () -> t1.Cancel "c1" |> ignore)) |> ignore
                      let g = Asyncio.Gather(fut t1, fut t2)

                      try
                          let! _ = g
                          ()
                      with :? CancelledException as e ->
                          log.Add(sprintf "raised %s; outer cancelled %b" e.CancelMessage g.Cancelled)

                      do! sleep 0.3
                      log.Add(sprintf "t2 %s" (t2.Result()))
                  })

              Expect.equal log.Items [ "raised c1; outer cancelled false"; "other finished"; "t2 other finished" ] "as asyncio")

          // comp.py gather_cancel_swallow: the child swallows and returns; the gather still raises CancelledError().
          testCase "a cancelled gather raises even if the children swallowed the cancellation" (fun () ->
              use loop = newLoop ()
              let log = Log()

              runMainUnit loop (fun () ->
                  task {
                      let child () =
                          task {
                              try
                                  do! sleep 1.0
                                  return "slept"
                              with :? CancelledException ->
                                  log.Add "swallowed"
                                  return "v"
                          }

                      let g = Asyncio.Gather(Func<Task<string>>(child))
                      do! yieldTick ()
                      g.Cancel() |> ignore

                      try
                          let! r = g
                          log.Add(sprintf "result %A" r)
                      with :? CancelledException as e ->
                          log.Add(sprintf "raised (%s)" (if isNull e.CancelMessage then "" else e.CancelMessage))
                  })

              Expect.equal log.Items [ "swallowed"; "raised ()" ] "as asyncio") ]

[<Tests>]
let wait =
    testList
        "Wait"
        [ // comp.py wait_first_completed [0.1] 2 at 0.1; wait_all [0.1, 0.2, 0.3] 0.
          testCase "FIRST_COMPLETED then ALL_COMPLETED: the done and pending sets" (fun () ->
              use loop = newLoop ()
              let log = Log()

              let r =
                  runMain loop (fun () ->
                      task {
                          let start = loop.Time()
                          let ts = [ for d in [ 0.3; 0.1; 0.2 ] -> createTask loop (after d d) ]
                          let! struct (d1, p1) = Asyncio.Wait(ts, returnWhen = ReturnWhen.FirstCompleted)
                          let first = d1 |> Seq.map (fun t -> t.Result()) |> List.ofSeq, p1.Count, at loop start
                          let! struct (d2, p2) = Asyncio.Wait ts
                          return first, (d2 |> Seq.map (fun t -> t.Result()) |> Seq.sort |> List.ofSeq, p2.Count)
                      })

              Expect.equal r (([ 0.1 ], 2, 0.1), ([ 0.1; 0.2; 0.3 ], 0)) "as asyncio")

          // comp.py wait_first_exception: 2 done, 1 pending, at 0.2.
          testCase "FIRST_EXCEPTION returns at the first failure" (fun () ->
              use loop = newLoop ()

              let r =
                  runMain loop (fun () ->
                      task {
                          let start = loop.Time()

                          let ts =
                              [ fut (createTask loop (after 0.1 "a"))
                                fut (createTask loop (failing 0.2 "x"))
                                fut (createTask loop (after 0.5 "c")) ]

                          let! struct (d, p) = Asyncio.Wait(ts, returnWhen = ReturnWhen.FirstException)
                          let r = d.Count, p.Count, at loop start
                          for t in p do t.Cancel() |> ignore
                          for t in ts do t.AddDoneCallback(fun f -> if not f.Cancelled then f.Exception() |> ignore)
                          return r
                      })

              Expect.equal r (2, 1, 0.2) "as asyncio")

          // comp.py wait_first_exception_none_fail?: FIRST_EXCEPTION with a failure first: 1 done 1 pending.
          testCase "FIRST_EXCEPTION when the first to finish fails" (fun () ->
              use loop = newLoop ()

              let r =
                  runMain loop (fun () ->
                      task {
                          let bad = createTask loop (failing 0.1 "x")
                          let ok = createTask loop (after 0.2 "b")
                          let! struct (d, p) = Asyncio.Wait([ fut bad; fut ok ], returnWhen = ReturnWhen.FirstException)
                          let! _ = Asyncio.Wait [ fut bad; fut ok ]
                          bad.Exception() |> ignore
                          return d.Count, p.Count
                      })

              Expect.equal r (1, 1) "as asyncio")

          // comp.py wait_timeout: 1 done 1 pending at 0.2, pending neither cancelled nor done; later 0.5.
          testCase "a timeout returns what is pending and cancels nothing" (fun () ->
              use loop = newLoop ()

              let r =
                  runMain loop (fun () ->
                      task {
                          let start = loop.Time()
                          let ts = [ for d in [ 0.1; 0.5 ] -> createTask loop (after d d) ]
                          let! struct (d, p) = Asyncio.Wait(ts, timeout = 0.2)
                          let pending = Seq.exactlyOne p
                          let r = d.Count, p.Count, at loop start, pending.Cancelled, pending.Done
                          do! sleep 0.4
                          return r, pending.Result()
                      })

              Expect.equal r ((1, 1, 0.2, false, false), 0.5) "as asyncio")

          // comp.py wait_empty: ValueError('Set of Tasks/Futures is empty.').
          testCase "waiting on an empty set is an error" (fun () ->
              use loop = newLoop ()

              let msg =
                  runMain loop (fun () ->
                      task {
                          try
                              let! _ = Asyncio.Wait(Array.empty<Future>)
                              return "no error"
                          with :? ArgumentException as e ->
                              return e.Message
                      })

              Expect.stringStarts msg "Set of Tasks/Futures is empty." "asyncio's message") ]

[<Tests>]
let waitFor =
    testList
        "WaitFor"
        [ // comp.py wait_for_timeout: inner cancelled at 0.2, then TimeoutError at 0.2.
          testCase "on timeout the inner task is cancelled and waited for, then TimeoutException" (fun () ->
              use loop = newLoop ()
              let log = Log()

              runMainUnit loop (fun () ->
                  task {
                      let start = loop.Time()

                      let slow () =
                          task {
                              try
                                  do! sleep 1.0
                                  return "slow"
                              with :? CancelledException as e ->
                                  log.Add(sprintf "inner cancelled at %.1f" (at loop start))
                                  return raise e
                          }

                      try
                          let! _ = Asyncio.WaitFor(Func<Task<string>>(slow), 0.2)
                          ()
                      with :? TimeoutException ->
                          log.Add(sprintf "timeout at %.1f" (at loop start))
                  })

              Expect.equal log.Items [ "inner cancelled at 0.2"; "timeout at 0.2" ] "as asyncio")

          testCase "a result before the timeout is returned" (fun () ->
              use loop = newLoop ()
              let r = runMain loop (fun () -> Asyncio.WaitFor(Func<Task<string>>(after 0.1 "fast"), 1.0))
              Expect.equal r "fast" "comp.py wait_for_fast")

          testCase "no timeout (null) waits without limit" (fun () ->
              use loop = newLoop ()
              let r = runMain loop (fun () -> Asyncio.WaitFor(Func<Task<string>>(after 1000.0 "late"), Nullable()))
              Expect.equal r "late" "waited")

          // comp.py wait_for_zero_done: 5; wait_for_zero_neg: timeout, cancelled=True for 0 and -1;
          // wait_for_zero_coro: the coroutine never runs.
          testCase "timeout 0 or negative: a done future's result, else cancel at once and TimeoutException" (fun () ->
              use loop = newLoop ()
              let log = Log()

              runMainUnit loop (fun () ->
                  task {
                      let f = loop.CreateFuture<int>()
                      f.SetResult 5
                      let! v = Asyncio.WaitFor(f, 0.0)
                      log.Add(sprintf "done %d" v)

                      for timeout in [ 0.0; -1.0 ] do
                          let t = createTask loop (after 1.0 1)

                          try
                              let! _ = Asyncio.WaitFor(fut t, timeout)
                              ()
                          with :? TimeoutException ->
                              log.Add(sprintf "timeout %g cancelled=%b" timeout t.Cancelled)

                      try
                          let! _ = Asyncio.WaitFor(Func<Task<int>>(fun () -> task { log.Add "body ran"; return 1 }), 0.0)
                          ()
                      with :? TimeoutException ->
                          log.Add "timeout"
                  })

              Expect.equal log.Items [ "done 5"; "timeout 0 cancelled=true"; "timeout -1 cancelled=true"; "timeout" ] "as asyncio")

          // comp.py wait_for_swallow: the inner swallows the cancellation and returns: its result wins.
          testCase "an inner that swallows the timeout's cancellation gives its result" (fun () ->
              use loop = newLoop ()

              let swallow () =
                  task {
                      try
                          do! sleep 1.0
                          return "slept"
                      with :? CancelledException ->
                          do! sleep 0.1
                          return "swallowed"
                  }

              Expect.equal (runMain loop (fun () -> Asyncio.WaitFor(Func<Task<string>>(swallow), 0.1))) "swallowed" "as asyncio")

          // comp.py wait_for_outer_cancel: inner cancelled at 0.1, then the outer is cancelled.
          testCase "cancelling the caller cancels the inner and waits for it" (fun () ->
              use loop = newLoop ()
              let log = Log()

              runMainUnit loop (fun () ->
                  task {
                      let start = loop.Time()

                      let slow () =
                          task {
                              try
                                  do! sleep 1.0
                                  return "slow"
                              with :? CancelledException as e ->
                                  log.Add(sprintf "inner cancelled at %.1f" (at loop start))
                                  return raise e
                          }

                      let o = createTask loop (fun () -> Asyncio.WaitFor(Func<Task<string>>(slow), 1.0))
                      do! sleep 0.1
                      o.Cancel() |> ignore

                      try
                          let! _ = o
                          ()
                      with :? CancelledException ->
                          log.Add "outer cancelled"
                  })

              Expect.equal log.Items [ "inner cancelled at 0.1"; "outer cancelled" ] "as asyncio")

          // comp.py wait_for_race: result set and caller cancelled in the same tick: 3.11 returns the
          // result (the resource is not lost) and the caller's cancelling() stays 1.
          testCase "completion and cancellation in the same tick: the result is returned (3.11)" (fun () ->
              use loop = newLoop ()

              let r =
                  runMain loop (fun () ->
                      task {
                          let f = loop.CreateFuture<string>()
                          let o = createTask loop (fun () -> Asyncio.WaitFor(f, 1.0))
                          do! yieldTick ()
                          f.SetResult "r"
                          o.Cancel() |> ignore
                          let! v = o
                          return v, o.Cancelling()
                      })

              Expect.equal r ("r", 1) "as asyncio") ]

[<Tests>]
let asCompleted =
    testList
        "AsCompleted"
        [ // comp.py as_completed: [0.1, 0.2, 0.3].
          testCase "awaitables give results in completion order" (fun () ->
              use loop = newLoop ()

              let r =
                  runMain loop (fun () ->
                      task {
                          let ts = [ for d in [ 0.3; 0.1; 0.2 ] -> Func<Task<float>>(after d d) ]
                          let out = ResizeArray()

                          for f in Asyncio.AsCompleted ts do
                              let! v = f
                              out.Add v

                          return List.ofSeq out
                      })

              Expect.equal r [ 0.1; 0.2; 0.3 ] "as asyncio")

          // comp.py as_completed_timeout: [0.1, 0.2, 'timeout'].
          testCase "after the timeout the remaining awaitables raise TimeoutException" (fun () ->
              use loop = newLoop ()

              let r =
                  runMain loop (fun () ->
                      task {
                          let ts = [ for d in [ 0.3; 0.1; 0.2 ] -> Func<Task<float>>(after d d) ]
                          let out = ResizeArray()

                          try
                              for f in Asyncio.AsCompleted(ts, 0.25) do
                                  let! v = f
                                  out.Add(string v)
                          with :? TimeoutException ->
                              out.Add "timeout"

                          return List.ofSeq out
                      })

              Expect.equal r [ "0.1"; "0.2"; "timeout" ] "as asyncio")

          testCase "as an async stream: the futures themselves, in completion order; timeout raises" (fun () ->
              use loop = newLoop ()

              let r =
                  runMain loop (fun () ->
                      task {
                          let ts = [ for d in [ 0.3; 0.1; 0.2 ] -> createTask loop (after d d) ]
                          let out = ResizeArray()
                          let e = Asyncio.AsCompletedAsync(ts).GetAsyncEnumerator()
                          let! more = e.MoveNextAsync()
                          let mutable more = more

                          while more do
                              out.Add(e.Current.Result(), ts |> List.exists (fun t -> obj.ReferenceEquals(t, e.Current)))
                              let! m = e.MoveNextAsync()
                              more <- m

                          let e2 = Asyncio.AsCompletedAsync([ createTask loop (after 1.0 0.0) ], 0.5).GetAsyncEnumerator()

                          let! timedOut =
                              task {
                                  try
                                      let! _ = e2.MoveNextAsync()
                                      return false
                                  with :? TimeoutException ->
                                      return true
                              }

                          return List.ofSeq out, timedOut
                      })

              Expect.equal r ([ 0.1, true; 0.2, true; 0.3, true ], true) "order, identity, timeout") ]

[<Tests>]
let shield =
    testList
        "Shield"
        [ // comp.py shield: the outer is cancelled, the inner goes on; shield of a done future is itself;
          // an inner cancelled cancels the shield.
          testCase "cancelling the shield leaves the inner running; a done inner is returned as is" (fun () ->
              use loop = newLoop ()
              let log = Log()

              runMainUnit loop (fun () ->
                  task {
                      let t = createTask loop (worker log "inner done" 0.2)
                      let o = createTask loop (fun () -> task { return! Asyncio.Shield(fut t) })
                      do! sleep 0.1
                      o.Cancel() |> ignore

                      try
                          let! _ = o
                          ()
                      with :? CancelledException ->
                          log.Add(sprintf "outer cancelled, inner cancelled=%b" t.Cancelled)

                      let! v = t
                      log.Add(sprintf "inner result %s" v)
                      log.Add(sprintf "shield of done is same %b" (obj.ReferenceEquals(Asyncio.Shield(fut t), t)))
                      let t2 = createTask loop (after 1.0 "")
                      let s2 = Asyncio.Shield(fut t2)
                      do! yieldTick ()
                      t2.Cancel() |> ignore

                      try
                          let! _ = s2
                          ()
                      with :? CancelledException ->
                          log.Add(sprintf "inner cancelled -> shield cancelled %b" s2.Cancelled)
                  })

              Expect.equal
                  log.Items
                  [ "outer cancelled, inner cancelled=false"
                    "inner done"
                    "inner result inner done"
                    "shield of done is same true"
                    "inner cancelled -> shield cancelled true" ]
                  "as asyncio") ]
