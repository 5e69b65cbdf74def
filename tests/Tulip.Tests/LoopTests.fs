module Tulip.Tests.LoopTests

open Expecto
open Tulip.Core
open Tulip.Core.Interop

/// A running loop at `now`, between ticks, with `inputs` applied first.
let private runningWith (now: int64) (inputs: Input list) =
    setUp (LoopState.startingAt now) (inputs @ [ Start ])

let private closedLoop =
    setUp LoopState.initial [ CallSoon 1L; CallAt(2L, 5L); Close ]

/// n timers (ids 0..n-1, deadlines 1000 + id, so none is due at 0), the given ones cancelled, then
/// the first BeginTick at 0, which must answer `expectedPoll`.
let private afterFirstTick (n: int) (cancel: int64 list) (expectedPoll: int64) =
    let s =
        runningWith
            0L
            ([ for id in 0L .. int64 n - 1L -> CallAt(id, 1000L + id) ]
             @ [ for id in cancel -> CancelTimer id ])

    play s [ BeginTick(0L, [||]) => poll expectedPoll ]

let pollTimeoutTests =
    testList
        "poll timeout (CPython _run_once: 0 if _ready or _stopping, else time to the first timer, max 24 h)"
        [
            testCase "0 while anything is ready, however far the first timer"
            <| fun () ->
                play (runningWith 0L [ CallAt(1L, 500L); CallSoon 2L ]) [ BeginTick(0L, [||]) => poll 0L ]
                |> ignore

            testCase "0 while a stop is pending, with nothing scheduled"
            <| fun () -> play (runningWith 0L []) [ Stop => ok; BeginTick(0L, [||]) => poll 0L ] |> ignore

            testCase "no limit when nothing is scheduled (select(None))"
            <| fun () -> play (runningWith 0L []) [ BeginTick(7L, [||]) => pollForever ] |> ignore

            testCase "the time to the earliest timer"
            <| fun () ->
                play (runningWith 0L [ CallAt(1L, 50L); CallAt(2L, 15L) ]) [ BeginTick(10L, [||]) => poll 5L ]
                |> ignore

            testCase "0 when the earliest timer is already due (max(0, when - time()))"
            <| fun () -> play (runningWith 0L [ CallAt(1L, 3L) ]) [ BeginTick(10L, [||]) => poll 0L ] |> ignore

            testCase "clamped to 24 h (MAXIMUM_SELECT_TIMEOUT)"
            <| fun () ->
                play
                    (runningWith 0L [ CallAt(1L, 2L * Time.MaxPollTimeout) ])
                    [ BeginTick(0L, [||]) => poll Time.MaxPollTimeout ]
                |> ignore

            testCase "clamped to 24 h when deadline - now overflows int64"
            <| fun () ->
                play
                    (runningWith -1000L [ CallAt(1L, System.Int64.MaxValue) ])
                    [ BeginTick(-1000L, [||]) => poll Time.MaxPollTimeout ]
                |> ignore

            testCase "cancelled timers at the head are ignored (dropped first)"
            <| fun () ->
                let s =
                    play
                        (runningWith
                            0L
                            [
                                CallAt(1L, 5L)
                                CallAt(2L, 6L)
                                CallAt(3L, 50L)
                                CancelTimer 1L
                                CancelTimer 2L
                            ])
                        [ BeginTick(0L, [||]) => poll 50L ]

                Expect.equal (timerIds s) [ 3L ] "the cancelled heads are gone"

            testCase "only cancelled timers: no limit"
            <| fun () ->
                play (runningWith 0L [ CallAt(1L, 5L); CancelTimer 1L ]) [ BeginTick(0L, [||]) => pollForever ]
                |> ignore

            testCase "a ready queue holding only cancelled handles still polls with 0 (CPython tests `if self._ready`)"
            <| fun () ->
                play (runningWith 0L [ CallSoon 1L; CancelSoon 1L ]) [ BeginTick(0L, [||]) => poll 0L; Polled(0L, [||], [||]) => run [] ]
                |> ignore
        ]

let compactionTests =
    testList
        "timer compaction (CPython: more than 100 timers and more than half cancelled)"
        [
            testCase "101 timers, 51 cancelled behind a live head: rebuilt without them"
            <| fun () ->
                let s = afterFirstTick 101 [ 50L .. 100L ] 1000L
                Expect.equal (timerIds s) [ 0L .. 49L ] "only live timers remain"
                Expect.equal (TimerQueue.cancelledCount s.Timers) 0 "none cancelled"
                Expect.isEmpty s.Cancelled "the dropped ids are forgotten"

            testCase "101 timers, 50 cancelled (not more than half): only the cancelled heads are dropped"
            <| fun () ->
                let cancel = [ 0L; 1L ] @ [ 51L .. 98L ]
                let s = afterFirstTick 101 cancel 1002L
                Expect.equal (TimerQueue.count s.Timers) 99 "heads 0 and 1 dropped"
                Expect.equal (TimerQueue.cancelledCount s.Timers) 48 "the rest stay, lazily cancelled"
                Expect.equal s.Cancelled (Set.ofList [ 51L .. 98L ]) "still remembered"

            testCase "102 timers, exactly half cancelled: not compacted (the fraction must exceed 0.5)"
            <| fun () ->
                let s = afterFirstTick 102 [ 51L .. 101L ] 1000L
                Expect.equal (TimerQueue.count s.Timers) 102 "nothing dropped: the head is live"
                Expect.equal (TimerQueue.cancelledCount s.Timers) 51 "still counted"

            testCase "100 timers, 99 cancelled: too few to compact (count must exceed 100)"
            <| fun () ->
                let s = afterFirstTick 100 [ 1L .. 99L ] 1000L
                Expect.equal (TimerQueue.count s.Timers) 100 "nothing dropped"
                Expect.equal (TimerQueue.cancelledCount s.Timers) 99 "still counted"

            testCase "compacted timers still fire in (deadline, seq) order"
            <| fun () ->
                let s =
                    afterFirstTick
                        101
                        [
                            for id in 0L .. 100L do
                                if id % 3L <> 0L then
                                    id
                        ]
                        1000L

                let s = play s [ Polled(2000L, [||], [||]) => run [ 0L..3L..100L ] ]
                Expect.isEmpty (timerIds s) "all fired"
        ]

let rejectionTests =
    testList
        "rejections (asyncio's RuntimeError cases; a rejected input leaves the state as it was)"
        [
            testCase "Close while running: CloseWhileRunning, in every phase of a tick"
            <| fun () ->
                play
                    (runningWith 0L [ CallSoon 1L ])
                    [
                        Close => rejected CloseWhileRunning
                        BeginTick(0L, [||]) => poll 0L
                        Close => rejected CloseWhileRunning
                        Polled(0L, [||], [||]) => run [ 1L ]
                        Close => rejected CloseWhileRunning
                        EndTick => ok
                    ]
                |> ignore

            testCase "Start while running: AlreadyRunning"
            <| fun () -> play (runningWith 0L []) [ Start => rejected AlreadyRunning ] |> ignore

            testCase "Start on a closed loop: LoopClosed"
            <| fun () -> play closedLoop [ Start => rejected LoopClosed ] |> ignore

            testCase "call_soon / call_at on a closed loop: LoopClosed"
            <| fun () ->
                let s =
                    play
                        closedLoop
                        [
                            CallSoon 3L => rejected LoopClosed
                            CallSoonMany [| 4L |] => rejected LoopClosed
                            CallAt(5L, 1L) => rejected LoopClosed
                            CallAtMany [| struct (6L, 1L) |] => rejected LoopClosed
                        ]

                Expect.isEmpty (readyIds s @ timerIds s) "nothing was queued"

            testCase
                "Close discards every queued handle; closing again is a no-op (CPython: close() on a closed loop returns)"
            <| fun () ->
                let s =
                    play
                        (setUp LoopState.initial [ CallSoon 1L; CallAt(2L, 5L); CallAt(3L, 5L); CancelTimer 3L ])
                        [
                            Close => closed
                            Close => ok
                            CancelSoon 1L => ok // its queue was discarded: nothing to cancel
                        ]

                Expect.isTrue s.Closed "closed"
                Expect.isEmpty (readyIds s @ timerIds s) "queues emptied"
                Expect.isEmpty s.Cancelled "cancellations forgotten"

            testCase "time going backwards is rejected at BeginTick and at Polled"
            <| fun () ->
                play
                    (runningWith 10L [])
                    [
                        BeginTick(9L, [||]) => rejected (TimeWentBackwards(10L, 9L))
                        BeginTick(12L, [||]) => pollForever
                        Polled(11L, [||], [||]) => rejected (TimeWentBackwards(12L, 11L))
                        Polled(12L, [||], [||]) => run []
                    ]
                |> ignore

            testCase "tick inputs out of phase are rejected"
            <| fun () ->
                play
                    LoopState.initial
                    [
                        BeginTick(0L, [||]) => rejected (OutOfPhase "BetweenTicks")
                        Polled(0L, [||], [||]) => rejected (OutOfPhase "Polling")
                        EndTick => rejected (OutOfPhase "RunningBatch")
                        Start => ok
                        Polled(0L, [||], [||]) => rejected (OutOfPhase "Polling")
                        EndTick => rejected (OutOfPhase "RunningBatch")
                        BeginTick(0L, [||]) => pollForever
                        BeginTick(0L, [||]) => rejected (OutOfPhase "BetweenTicks")
                        EndTick => rejected (OutOfPhase "RunningBatch")
                        Polled(0L, [||], [||]) => run []
                        Polled(0L, [||], [||]) => rejected (OutOfPhase "Polling")
                        BeginTick(0L, [||]) => rejected (OutOfPhase "BetweenTicks")
                    ]
                |> ignore

            testCase "cancelling a handle twice: NotPending"
            <| fun () ->
                play
                    (setUp LoopState.initial [ CallSoon 1L; CallAt(2L, 5L) ])
                    [
                        CancelSoon 1L => ok
                        CancelSoon 1L => rejected (NotPending 1L)
                        CancelTimer 2L => ok
                        CancelTimer 2L => rejected (NotPending 2L)
                    ]
                |> ignore

            testCase "a rejected input returns the very state it was given (Loop.run)"
            <| fun () ->
                let s = runningWith 3L [ CallSoon 1L ]

                for input in [ Start; Close; Polled(3L, [||], [||]); EndTick; BeginTick(2L, [||]) ] do
                    let s', results = Loop.run [ input ] s

                    Expect.isTrue
                        (match results with
                         | [ Error _ ] -> true
                         | _ -> false)
                        (sprintf "%A is rejected" input)

                    Expect.isTrue (obj.ReferenceEquals(s, s')) (sprintf "%A left the state alone" input)

            testCase "rejections read as CPython's RuntimeError messages"
            <| fun () ->
                Expect.equal (string LoopClosed) "Event loop is closed" "closed"
                Expect.equal (string AlreadyRunning) "This event loop is already running" "running"
                Expect.equal (string CloseWhileRunning) "Cannot close a running event loop" "close"
                Expect.equal (string (InvalidState "invalid state")) "invalid state" "InvalidStateError"
        ]

let interopTests =
    testList
        "Interop (the shell's face of Loop.step)"
        [
            testCase "a tick through LoopCore: the timeout as a PollTimeout, the batch as an array, stopped as a flag"
            <| fun () ->
                let mutable timeout = PollTimeout.UntilPost
                let mutable batch = [||]
                let mutable isStopped = true
                let s = LoopCore.Create 5L
                let s = LoopCore.CallSoonMany(s, [| 1L; 2L |])
                let s = LoopCore.Start s
                let s = LoopCore.BeginTick(s, 5L, [||], &timeout)
                Expect.equal timeout (PollTimeout.Of 0L) "ready: 0"
                let s = LoopCore.Polled(s, 5L, [||], [||], &batch)
                Expect.equal batch [| 1L; 2L |] "the batch"
                let s = LoopCore.EndTick(s, &isStopped)
                Expect.isFalse isStopped "not stopped"
                let s = LoopCore.BeginTick(s, 6L, [||], &timeout)
                Expect.equal timeout PollTimeout.UntilPost "nothing scheduled or watched: until a post"
                let mutable deadline = 0L
                Expect.isFalse (LoopCore.TryNextDeadline(s, &deadline)) "no timer: no deadline"
                let timed = LoopCore.CallAtMany(LoopCore.Create 0L, [| struct (9L, 40L) |])
                Expect.isTrue (LoopCore.TryNextDeadline(timed, &deadline)) "a timer: its deadline"
                Expect.equal deadline 40L "the deadline"
                let s = LoopCore.Stop s
                let s = LoopCore.Polled(s, 6L, [||], [||], &batch)
                let s = LoopCore.EndTick(s, &isStopped)
                Expect.isTrue isStopped "stopped"
                Expect.isFalse (LoopCore.IsRunning s) "idle"

            testCase "RejectedInputException.Rejection is the core's reason, its message CPython's"
            <| fun () ->
                let s = LoopCore.Start(LoopCore.Create 0L)

                try
                    LoopCore.Close s |> ignore
                    failtest "Close while running must throw"
                with :? RejectedInputException as e ->
                    Expect.equal e.Rejection CloseWhileRunning "reason"
                    Expect.equal e.Message "Cannot close a running event loop" "message"
        ]

[<Tests>]
let tests =
    testList "Loop" [ pollTimeoutTests; compactionTests; rejectionTests; interopTests ]

[<Tests>]
let dueTimerCancelTests =
    testList
        "cancelling a due timer (CPython: TimerHandle._scheduled is False once it is in _ready)"
        [
            testCase "a timer cancelled by an earlier callback of the batch it fires in is skipped and not counted as a queued timer"
            <| fun () ->
                // Found by the property suite's author: CancelTimer of an id already moved into the
                // running batch used to count it as a cancelled queued timer and break the invariants.
                let s =
                    playFresh
                        [
                            CallAt(1L, 0L) => ok
                            CallAt(2L, 0L) => ok
                            Start => ok
                            BeginTick(0L, [||]) => poll 0L
                            Polled(0L, [||], [||]) => run [ 1L; 2L ]
                            CancelTimer 2L => ok
                            EndTick => ok
                        ]

                Expect.equal (TimerQueue.cancelledCount s.Timers) 0 "no cancelled timer left behind"
                Expect.isEmpty s.Cancelled "forgotten at the end of the tick"
        ]
