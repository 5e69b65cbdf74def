module Tulip.Tests.TaskStateTests

open Expecto
open Tulip.Core

// Every case below was run on CPython 3.11.7 (`python3`), the printed outcome quoted in the test name.

let private okOrFail r =
    match r with
    | Ok v -> v
    | Error e -> failtestf "rejected: %A" e

// The core returns struct tuples (no allocation per transition); the tests read them as pairs.
let private begin' incoming s =
    let struct (a, s') = TaskState.beginStep incoming s |> okOrFail
    a, s'

let private end' how s =
    let struct (s', d) = TaskState.endStep how s |> okOrFail
    s', d

let private cancel m s =
    let struct (d, s') = TaskState.cancel m s
    d, s'

let private uncancel s =
    let struct (n, s') = TaskState.uncancel s
    n, s'
let private wake s = TaskState.wakeUp s |> okOrFail

/// A task that has run once and now waits on a loop future.
let private waiting =
    let _, s = begin' false TaskState.created
    let s, cancelWaiter = end' AwaitedFuture s
    Expect.isNone cancelWaiter "no cancellation pending"
    s

/// A task in the middle of its first step.
let private running = begin' false TaskState.created |> snd

[<Tests>]
let tests =
    testList
        "TaskState (asyncio.Task, 3.11)"
        [
            testCase "a plain life: scheduled, runs, waits, wakes, resumes, returns"
            <| fun () ->
                let action, s = begin' false TaskState.created
                Expect.equal action FirstRun "first run"
                Expect.equal s.Phase Running "running"
                let s, _ = end' AwaitedFuture s
                Expect.equal s.Phase Waiting "waiting"
                let s = wake s
                Expect.equal s.Phase Scheduled "scheduled again"
                let action, s = begin' false s
                Expect.equal action Resume "resume"
                let s, _ = end' Returned s
                Expect.equal s.Phase (Finished Succeeded) "succeeded"

            testCase
                "cancel before the first step: the body never runs, ends cancelled with the message (python3: ran == [], ('m1',))"
            <| fun () ->
                let decision, s = cancel (Some "m1") TaskState.created
                Expect.equal decision Flagged "flagged"
                Expect.equal s.CancelRequests 1 "cancelling() == 1"
                let action, s = begin' false s
                Expect.equal action (NeverStarted(Some "m1")) "never started"
                Expect.equal s.Phase (Finished(Cancelled(Some "m1"))) "cancelled"
                Expect.isFalse s.Started "the body never ran"
                Expect.isFalse s.MustCancel "the flag is consumed"

            testCase
                "cancel while waiting cancels the waiter; its cancellation wakes the task (python3: waiter got ('m2',), task ends ('m2',))"
            <| fun () ->
                let decision, s = cancel (Some "m2") waiting
                Expect.equal decision (CancelWaiter(Some "m2")) "cancel the waiter with the message"
                let s = TaskState.waiterCancelOutcome true s
                Expect.isFalse s.MustCancel "the waiter accepted: not flagged"
                let action, s = s |> wake |> begin' true
                Expect.equal action Resume "the waiter's CancelledError is delivered as it is"
                let s, _ = end' (RaisedCancellation(Some "m2")) s
                Expect.equal s.Phase (Finished(Cancelled(Some "m2"))) "cancelled"

            testCase
                "the waiter refuses (already done): the task stays flagged and the next step throws (python3: _must_cancel True, got ('m3',))"
            <| fun () ->
                let decision, s = cancel (Some "m3") waiting
                Expect.equal decision (CancelWaiter(Some "m3")) "tries the waiter first"
                let s = TaskState.waiterCancelOutcome false s
                Expect.isTrue s.MustCancel "still flagged"
                // the waiter had a result, so the wake-up brings no cancellation of its own
                let action, s = s |> wake |> begin' false
                Expect.equal action (ResumeCancelled(Some "m3")) "must-cancel turns the resumption into a cancellation"
                Expect.isFalse s.MustCancel "consumed"

            testCase
                "cancelled while running, then the coroutine returns: ends cancelled, not with its value (3.11; python3: ('m4',), cancelled() True)"
            <| fun () ->
                let decision, s = cancel (Some "m4") running
                Expect.equal decision Flagged "a running task is flagged"
                let s, _ = end' Returned s
                Expect.equal s.Phase (Finished(Cancelled(Some "m4"))) "cancelled"
                Expect.isFalse s.MustCancel "cleared when finished"

            testCase
                "cancelled while running, then raises something else: ends with that exception (python3: ValueError('v'))"
            <| fun () ->
                let _, s = cancel (Some "m") running
                let s, _ = end' Raised s
                Expect.equal s.Phase (Finished Faulted) "faulted"

            testCase
                "flagged while running, then awaits a future: the new waiter is cancelled at once (python3: got ('m8',), fut cancelled)"
            <| fun () ->
                let _, s = cancel (Some "m8") running
                let s, cancelWaiter = end' AwaitedFuture s
                Expect.equal cancelWaiter (Some(CancelWaiter(Some "m8"))) "cancel the new waiter"
                let s = TaskState.waiterCancelOutcome true s
                Expect.isFalse s.MustCancel "accepted: no longer flagged"
                Expect.equal s.Phase Waiting "waits for the waiter's cancellation"

            testCase
                "flagged while running, then yields (sleep(0)): the next step throws (python3: got at yield ('m7',))"
            <| fun () ->
                let _, s = cancel (Some "m7") running
                let s, _ = end' Yielded s
                Expect.equal s.Phase Scheduled "scheduled"
                let action, _ = begin' false s
                Expect.equal action (ResumeCancelled(Some "m7")) "cancelled at the yield"

            testCase "cancelled twice: cancelling() == 2 and the last message wins (python3: ('second',), 2)"
            <| fun () ->
                let _, s = cancel (Some "first") TaskState.created
                let d, s = cancel (Some "second") s
                Expect.equal d Flagged "still cancel() == True"
                Expect.equal s.CancelRequests 2 "two requests"
                let action, _ = begin' false s
                Expect.equal action (NeverStarted(Some "second")) "the last message"

            testCase "uncancel decrements and never goes below 0 (python3: 2 -> 1, 0, 0)"
            <| fun () ->
                let _, s = cancel None waiting
                let _, s = cancel None (TaskState.waiterCancelOutcome true s)
                Expect.equal s.CancelRequests 2 "cancelling() == 2"
                let n1, s = uncancel s
                let n2, s = uncancel s
                let n3, s = uncancel s
                Expect.equal [ n1; n2; n3 ] [ 1; 0; 0 ] "returned counts"
                Expect.equal s.CancelRequests 0 "never negative"

            testCase
                "uncancel works on a finished task too; cancel() on it returns False and counts nothing (python3: 1 -> 0, False, 0)"
            <| fun () ->
                let _, s = cancel None waiting
                let s = TaskState.waiterCancelOutcome true s
                let _, s = s |> wake |> begin' true
                let s, _ = end' Returned s // the coroutine swallowed the cancellation
                Expect.equal s.Phase (Finished Succeeded) "succeeded"
                let n, s = uncancel s
                Expect.equal n 0 "decremented"
                let d, s' = cancel None s
                Expect.equal d AlreadyDone "cancel() == False"
                Expect.equal s' s "unchanged"

            testCase
                "must-cancel does not replace an incoming cancellation (3.11: `if not isinstance(exc, CancelledError)`; python3: ('from-future',))"
            <| fun () ->
                // the awaited future is cancelled with its own message, then the task is cancelled before it wakes
                let decision, s = cancel (Some "from-task") waiting
                Expect.equal decision (CancelWaiter(Some "from-task")) "tries the waiter"
                let s = TaskState.waiterCancelOutcome false s // already cancelled: refuses
                Expect.isTrue s.MustCancel "flagged"
                let action, s = s |> wake |> begin' true
                Expect.equal action Resume "the future's own CancelledError goes in, not a new one"
                Expect.isFalse s.MustCancel "the flag is consumed"
                let s, _ = end' (RaisedCancellation(Some "from-future")) s
                Expect.equal s.Phase (Finished(Cancelled(Some "from-future"))) "ends with the future's message"

            testCase "awaiting something outside the loop: cancel flags, the wake-up resumes with the cancellation"
            <| fun () ->
                let s, _ = end' AwaitedExternal running
                Expect.equal s.Phase Suspended "suspended"
                let d, s = cancel (Some "x") s
                Expect.equal d Flagged "flagged"
                let action, _ = s |> wake |> begin' false
                Expect.equal action (ResumeCancelled(Some "x")) "cancelled on resumption"

            testCase "finished is final: beginStep is InvalidState, endStep and wakeUp out of phase, cancel AlreadyDone"
            <| fun () ->
                for outcome in [ Succeeded; Faulted; Cancelled(Some "m") ] do
                    let s =
                        { TaskState.created with
                            Phase = Finished outcome
                            Started = true
                        }

                    Expect.equal (TaskState.beginStep false s) (Error(InvalidState "_step(): already done")) "beginStep"
                    Expect.equal (TaskState.beginStep true s) (Error(InvalidState "_step(): already done")) "beginStep"
                    Expect.equal (TaskState.endStep Returned s) (Error(OutOfPhase "a running task")) "endStep"
                    Expect.equal (TaskState.wakeUp s) (Error(OutOfPhase "a waiting task")) "wakeUp"
                    Expect.equal (cancel None s) (AlreadyDone, s) "cancel"
                    Expect.equal (TaskState.waiterCancelOutcome true s) s "waiterCancelOutcome"

            testCase "steps out of phase are rejected"
            <| fun () ->
                Expect.equal
                    (TaskState.beginStep false running)
                    (Error(OutOfPhase "a scheduled task"))
                    "begin while running"

                Expect.equal
                    (TaskState.beginStep false waiting)
                    (Error(OutOfPhase "a scheduled task"))
                    "begin while waiting"

                Expect.equal
                    (TaskState.endStep Returned waiting)
                    (Error(OutOfPhase "a running task"))
                    "end while waiting"

                Expect.equal
                    (TaskState.wakeUp TaskState.created)
                    (Error(OutOfPhase "a waiting task"))
                    "wake a scheduled task"

                Expect.equal (TaskState.wakeUp running) (Error(OutOfPhase "a waiting task")) "wake a running task"
        ]
