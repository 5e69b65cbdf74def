namespace Tulip.Tests

open Expecto
open Tulip.Core

/// The scenario DSL: a test is an input script, each input written beside the exact answer the core
/// must give (`input => expected`). `play` feeds the script through `Loop.step` one input at a time,
/// checks the answer and `Invariants.check` after every input, and returns the final state so a
/// scenario can go on from it or look at it.
[<AutoOpen>]
module Scenario =
    type Answer = Result<Effect list, Rejection>

    let ok: Answer = Ok []
    let poll (timeout: int64) : Answer = Ok [ Poll(PollTimeout.Of timeout) ]
    let pollForever: Answer = Ok [ Poll PollTimeout.UntilPost ]
    let run (ids: HandleId list) : Answer = Ok [ Run(Array.ofList ids) ]
    let stopped: Answer = Ok [ Stopped ]
    let closed: Answer = Ok [ Closed ]
    let rejected (why: Rejection) : Answer = Error why

    let (=>) (input: Input) (expected: Answer) = input, expected

    let play (from: LoopState) (script: (Input * Answer) list) : LoopState =
        script
        |> List.indexed
        |> List.fold
            (fun s (i, (input, expected)) ->
                let actual, next =
                    match Loop.step input s with
                    | Ok(s', effects) -> Ok effects, s'
                    | Error r -> Error r, s

                if actual <> expected then
                    failtestf "input #%d %A: expected %A, got %A" i input expected actual

                match Invariants.check next with
                | [] -> next
                | broken -> failtestf "input #%d %A broke invariants: %A" i input broken)
            from

    /// Plays a script from a fresh loop (time 0).
    let playFresh script = play LoopState.initial script

    /// Inputs whose answers a scenario does not care about (setting a state up); all must be accepted.
    let setUp (from: LoopState) (inputs: Input list) : LoopState =
        inputs
        |> List.fold
            (fun s input ->
                match Loop.step input s with
                | Ok(s', _) -> s'
                | Error r -> failtestf "set-up input %A was rejected: %A" input r)
            from

    /// Accepted inputs with no effect, for the call_soon / call_at part of a script.
    let accepted (inputs: Input list) = inputs |> List.map (fun i -> i => ok)

    let readyIds (s: LoopState) = ReadyQueue.toList s.Ready

    let timerIds (s: LoopState) =
        TimerQueue.toList s.Timers |> List.map (fun e -> e.Id)

module CoreScenarioTests =
    // The observable orders of CPython 3.11's event loop (base_events.py `_run_once`, futures.py), each
    // checked with `python3` on this machine, end to end through Loop.step.
    [<Tests>]
    let tests =
        testList
            "Core scenarios (CPython 3.11 orders)"
            [
                testCase "call_soon callbacks run FIFO (CPython: _ready is a deque, popleft in order)"
                <| fun () ->
                    playFresh (
                        accepted [ CallSoon 1L; CallSoon 2L; CallSoonMany [| 3L; 4L |]; CallSoon 5L; Start ]
                        @ [
                            BeginTick(0L, [||]) => poll 0L
                            Polled(0L, [||], [||]) => run [ 1L; 2L; 3L; 4L; 5L ]
                            EndTick => ok
                        ]
                    )
                    |> ignore

                testCase "a failed poll ends the run at once and keeps what is queued (the shell's wait raised)"
                <| fun () ->
                    let s =
                        playFresh
                            [
                                CallAt(1L, 50L) => ok
                                Start => ok
                                Stop => ok
                                BeginTick(0L, [||]) => poll 0L
                                PollFailed => stopped
                                // Out of phase now: only a polling loop can fail its poll.
                                PollFailed => rejected (OutOfPhase "Polling")
                                EndTick => rejected (OutOfPhase "RunningBatch")
                                // The stop request was consumed; a new run goes on with the timer.
                                Start => ok
                                BeginTick(0L, [||]) => poll 50L
                                Polled(50L, [||], [||]) => run [ 1L ]
                                EndTick => ok
                            ]

                    Expect.isTrue (LoopState.isRunning s) "running again"

                testCase
                    "a call_soon made while the batch runs waits for the next tick (CPython: ntodo = len(_ready) is fixed before the batch)"
                <| fun () ->
                    playFresh
                        [
                            CallSoon 1L => ok
                            Start => ok
                            BeginTick(0L, [||]) => poll 0L
                            Polled(0L, [||], [||]) => run [ 1L ]
                            // handle 1's callback calls call_soon(2): Phase = RunningBatch
                            CallSoon 2L => ok
                            CallSoonMany [| 3L |] => ok
                            EndTick => ok
                            BeginTick(0L, [||]) => poll 0L
                            Polled(0L, [||], [||]) => run [ 2L; 3L ]
                            EndTick => ok
                        ]
                    |> ignore

                testCase
                    "timers with equal deadlines fire in scheduling order (Tulip pins FIFO like libuv's start_id; CPython's heapq is not stable: 20 call_at with one deadline fire as 0,2,6,14,13,... on 3.11.7)"
                <| fun () ->
                    let ids = [ 0L .. 19L ]

                    playFresh (
                        accepted [ for id in ids -> CallAt(id, 100L) ]
                        @ [
                            Start => ok
                            BeginTick(0L, [||]) => poll 100L
                            Polled(100L, [||], [||]) => run ids
                            EndTick => ok
                        ]
                    )
                    |> ignore

                testCase
                    "timers fire in (deadline, scheduling order) order, after the ready callbacks (CPython appends due timers to _ready)"
                <| fun () ->
                    playFresh (
                        accepted
                            [
                                CallAt(1L, 30L)
                                CallAt(2L, 10L)
                                CallSoon 9L
                                CallAt(3L, 20L)
                                CallAtMany [| struct (4L, 10L); struct (5L, 30L) |]
                            ]
                        @ [
                            Start => ok
                            BeginTick(0L, [||]) => poll 0L
                            Polled(30L, [||], [||]) => run [ 9L; 2L; 4L; 3L; 1L; 5L ]
                            EndTick => ok
                        ]
                    )
                    |> ignore

                testCase
                    "a timer fires once its deadline <= now and not before (CPython: when < time() + clock_resolution)"
                <| fun () ->
                    playFresh
                        [
                            CallAt(1L, 100L) => ok
                            Start => ok
                            BeginTick(0L, [||]) => poll 100L
                            // the poll returned early (I/O): the timer is not due yet
                            Polled(99L, [||], [||]) => run []
                            EndTick => ok
                            BeginTick(99L, [||]) => poll 1L
                            Polled(100L, [||], [||]) => run [ 1L ]
                            EndTick => ok
                            BeginTick(100L, [||]) => pollForever
                        ]
                    |> ignore

                testCase "cancelled handles are skipped, soon and timer (CPython: _run_once skips handle._cancelled)"
                <| fun () ->
                    let final =
                        playFresh
                            [
                                CallSoon 1L => ok
                                CallSoon 2L => ok
                                CallAt(3L, 0L) => ok
                                CallAt(4L, 0L) => ok
                                CancelSoon 1L => ok
                                CancelTimer 3L => ok
                                Start => ok
                                BeginTick(0L, [||]) => poll 0L
                                Polled(0L, [||], [||]) => run [ 2L; 4L ]
                                EndTick => ok
                            ]

                    Expect.isEmpty final.Cancelled "skipped handles are forgotten"
                    Expect.equal (TimerQueue.cancelledCount final.Timers) 0 "no cancelled timer left"

                testCase "a timer cancelled while the loop polls is dropped when it comes due"
                <| fun () ->
                    playFresh
                        [
                            CallAt(1L, 5L) => ok
                            CallAt(2L, 5L) => ok
                            Start => ok
                            BeginTick(0L, [||]) => poll 5L
                            CancelTimer 1L => ok
                            Polled(5L, [||], [||]) => run [ 2L ]
                            EndTick => ok
                        ]
                    |> ignore

                testCase
                    "a handle cancelled while its batch runs is forgotten at EndTick (the shell skips it, as _run_once does)"
                <| fun () ->
                    let s =
                        playFresh
                            [
                                CallSoon 1L => ok
                                CallSoon 2L => ok
                                Start => ok
                                BeginTick(0L, [||]) => poll 0L
                                Polled(0L, [||], [||]) => run [ 1L; 2L ]
                                // handle 1's callback cancels handle 2, which the shell then skips
                                CancelSoon 2L => ok
                            ]

                    Expect.equal s.Cancelled (Set.ofList [ 2L ]) "remembered while the batch runs"
                    let s = play s [ EndTick => ok ]
                    Expect.isEmpty s.Cancelled "forgotten after the batch"

                testCase
                    "stop() lets the current batch finish, then run_forever returns (CPython: _stopping is checked after _run_once)"
                <| fun () ->
                    // python3: call_soon(1: stop), call_soon(2: call_soon(3)); run_forever() -> [1, 2]; next run -> 3
                    let s =
                        playFresh
                            [
                                CallSoon 1L => ok
                                CallSoon 2L => ok
                                Start => ok
                                BeginTick(0L, [||]) => poll 0L
                                Polled(0L, [||], [||]) => run [ 1L; 2L ]
                                Stop => ok // handle 1
                                CallSoon 3L => ok // handle 2
                                EndTick => stopped
                            ]

                    Expect.equal s.Phase Idle "run_forever returned"
                    Expect.isFalse s.Stopping "the stop request is consumed"
                    Expect.equal (readyIds s) [ 3L ] "3 waits for the next run"

                    play s [ Start => ok; BeginTick(0L, [||]) => poll 0L; Polled(0L, [||], [||]) => run [ 3L ]; EndTick => ok ]
                    |> ignore

                testCase
                    "stop() before run_forever() makes the run do exactly one tick (python3: loop.stop(); loop.run_forever())"
                <| fun () ->
                    // python3: call_soon(a: call_soon(b)); stop(); run_forever() -> ['a']; b runs in the next run
                    let s =
                        playFresh
                            [
                                CallSoon 1L => ok
                                Stop => ok
                                Start => ok
                                BeginTick(0L, [||]) => poll 0L
                                Polled(0L, [||], [||]) => run [ 1L ]
                                CallSoon 2L => ok
                                EndTick => stopped
                            ]

                    Expect.equal (readyIds s) [ 2L ] "b waits for the next run"

                testCase
                    "stop() with nothing scheduled still ends after one tick, polling with timeout 0 (CPython: timeout = 0 if _stopping)"
                <| fun () ->
                    playFresh
                        [
                            Stop => ok
                            Start => ok
                            BeginTick(0L, [||]) => poll 0L
                            Polled(0L, [||], [||]) => run []
                            EndTick => stopped
                        ]
                    |> ignore

                testCase
                    "a done future's callbacks are scheduled through the loop, never run inline (futures.py __schedule_callbacks)"
                <| fun () ->
                    // python3: add cb1, cb2; set_result; add cb3 -> 'after set_result', 'after add on done', cb1, cb2, cb3
                    let f, none1 = FutureState.pending |> FutureState.addCallback 10L
                    let f, none2 = f |> FutureState.addCallback 11L
                    Expect.isEmpty (none1 @ none2) "nothing to schedule while pending"

                    let f, toSchedule =
                        match FutureState.setResult f with
                        | Ok r -> r
                        | Error e -> failtestf "set_result rejected: %A" e

                    Expect.equal toSchedule [ 10L; 11L ] "set_result returns the callbacks, in registration order"
                    let _, cb3 = f |> FutureState.addCallback 12L
                    Expect.equal cb3 [ 12L ] "add_done_callback on a done future schedules it at once"

                    // set_result is called from handle 1 while its batch runs: the callbacks run next tick.
                    playFresh
                        [
                            CallSoon 1L => ok
                            Start => ok
                            BeginTick(0L, [||]) => poll 0L
                            Polled(0L, [||], [||]) => run [ 1L ]
                            CallSoonMany(Array.ofList toSchedule) => ok
                            CallSoon 12L => ok
                            EndTick => ok
                            BeginTick(0L, [||]) => poll 0L
                            Polled(0L, [||], [||]) => run [ 10L; 11L; 12L ]
                            EndTick => ok
                        ]
                    |> ignore

                testCase
                    "a task's step is a handle like any other: a woken task runs in the next tick (tasks.py __wakeup -> call_soon(__step))"
                <| fun () ->
                    // A task waits on a future; handle 1 completes the future, whose done-callback (the task's
                    // wake-up, handle 20) runs the next tick, where the step (handle 21) is scheduled again.
                    let t = TaskState.created

                    let t =
                        match
                            TaskState.beginStep false t
                            |> Result.bind (fun (struct (_, t)) -> TaskState.endStep AwaitedFuture t)
                        with
                        | Ok(struct (t, None)) -> t
                        | other -> failtestf "unexpected %A" other

                    let f, _ = FutureState.pending |> FutureState.addCallback 20L

                    let toSchedule =
                        match FutureState.setResult f with
                        | Ok(_, ids) -> ids
                        | Error e -> failtestf "%A" e

                    let s =
                        playFresh
                            [
                                CallSoon 1L => ok
                                Start => ok
                                BeginTick(0L, [||]) => poll 0L
                                Polled(0L, [||], [||]) => run [ 1L ]
                                CallSoonMany(Array.ofList toSchedule) => ok
                                EndTick => ok
                                BeginTick(0L, [||]) => poll 0L
                                Polled(0L, [||], [||]) => run [ 20L ]
                            ]

                    let t =
                        match TaskState.wakeUp t with
                        | Ok t -> t
                        | Error e -> failtestf "%A" e

                    Expect.equal t.Phase Scheduled "woken"

                    play
                        s
                        [
                            CallSoon 21L => ok
                            EndTick => ok
                            BeginTick(0L, [||]) => poll 0L
                            Polled(0L, [||], [||]) => run [ 21L ]
                        ]
                    |> ignore
            ]

    /// Time.fs: the conversions at the edge.
    [<Tests>]
    let timeTests =
        testList
            "Time"
            [
                testCase "seconds to ticks round to the nearest tick; infinities saturate"
                <| fun () ->
                    Expect.equal (Time.ofSeconds 1.0) Time.TicksPerSecond "one second"
                    Expect.equal (Time.ofSeconds 1.4e-7) 1L "1.4 ticks round down"
                    Expect.equal (Time.ofSeconds 1.6e-7) 2L "1.6 ticks round up"
                    Expect.equal (Time.ofSeconds infinity) System.Int64.MaxValue "+inf"
                    Expect.equal (Time.ofSeconds -infinity) System.Int64.MinValue "-inf"
                    Expect.equal (Time.toSeconds 15_000_000L) 1.5 "ticks to seconds"
                    Expect.equal Time.MaxPollTimeout (Time.ofSeconds (24.0 * 3600.0)) "MAXIMUM_SELECT_TIMEOUT = 24 h"

                testCase "addSaturating never wraps around"
                <| fun () ->
                    Expect.equal (Time.addSaturating System.Int64.MaxValue 1L) System.Int64.MaxValue "up"
                    Expect.equal (Time.addSaturating System.Int64.MinValue -1L) System.Int64.MinValue "down"
                    Expect.equal (Time.addSaturating 5L -7L) -2L "plain sum"
            ]
