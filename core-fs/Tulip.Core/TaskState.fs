namespace Tulip.Core

/// Where a task is in its life (asyncio.Task, CPython 3.11 tasks.py).
type TaskPhase =
    /// A step is in the ready queue (the first one, or one after a wake-up or a bare yield).
    | Scheduled
    /// Its step is executing now: the coroutine runs.
    | Running
    /// Awaiting a loop future (`_fut_waiter`): a done-callback on that future will wake it.
    | Waiting
    /// Awaiting something outside the loop (a .NET Task): its completion posts the next step.
    | Suspended
    | Finished of Outcome

/// The await a running step made last (so far): the one the task will wait on when the step ends
/// (DESIGN.md, "whose continuation is it", rule 2).
[<Struct>]
type StepWait =
    /// No loop await yet in this step (a step that ends so awaits something outside the loop).
    | NoWait
    /// A loop future that is not done: the task's wake-up is parked on it.
    | OnFuture
    /// A one-tick yield (`await asyncio.sleep(0)`).
    | OnYield

/// A cancellation that a step owes its coroutine and has not delivered yet. A step that resumes a loop
/// await delivers it at once (the awaiter's `GetResult` raises it); a step that resumes a .NET await has
/// no such hook, so it stays due until the coroutine's next loop await takes it.
[<Struct>]
type ThrowIn =
    | NotDue
    | Due
    /// Due, and the operation the step resumed already saw the cancellation through the task's
    /// CancellationToken: a coroutine that then returns swallowed it and ends with its value.
    | DueViaToken

/// A task's state machine (asyncio.Task, CPython 3.11 tasks.py). Values, exceptions, the coroutine,
/// its continuation and its waiter stay in the shell; every decision about them is made here.
///
/// **Invariant** (checked by `TaskState.invariantHolds` on every reachable state):
/// * `Finished` is final: no step begins, no cancel is accepted, only `uncancel` still counts down.
/// * A finished task owes nothing: `MustCancel`, `CancellingWaiter` are false, `Wait` is `NoWait`,
///   `ThrowIn` is `NotDue` (and its message `None`).
/// * `CancelRequests` >= 0; it counts the accepted `cancel`s minus the effective `uncancel`s.
/// * `Wait` is not `NoWait` only while a step runs (`Running`): it is the step's last loop await so far,
///   and the step's end turns it into the phase (`OnFuture` → `Waiting`, `OnYield` → `Scheduled`,
///   `NoWait` → `Suspended`).
/// * `Started` is false only in `Scheduled` or `Finished (Cancelled _)` (a task cancelled before its
///   first step never runs its body); `ThrowIn` is due only in a started, unfinished task.
/// * `CancellingWaiter` is true only between a `CancelWaiter` decision of `cancel` and its
///   `waiterCancelOutcome`: a cancel that comes back round to the task meanwhile (tasks awaiting each
///   other in a cycle) is refused (`BeingCancelled`), where CPython recurses until RecursionError.
///
/// A struct: the shell keeps it inline in the task, so a transition allocates nothing. The functions
/// below never mutate it (they return new values); `Phase` and `Wait` are mutable only so that the
/// interop's hot-path faces (`TaskCore.StepArrives`, `AwaitIn`, `Suspend`) can apply their commonest
/// transitions in place, field by field, instead of copying the whole state through a result and a
/// tuple; a property checks those faces against these functions on every generated state.
[<Struct>]
type TaskState =
    { mutable Phase: TaskPhase
      /// The coroutine has run at least once (a task cancelled before its first step never runs its body).
      Started: bool
      /// `_must_cancel`: the next step throws a cancellation into the coroutine.
      MustCancel: bool
      /// `_cancel_message`: the message that cancellation carries.
      CancelMessage: string option
      /// `_num_cancels_requested`: what `cancelling()` returns; `uncancel()` decrements it.
      CancelRequests: int
      /// The step's last loop await so far (only while `Running`).
      mutable Wait: StepWait
      /// A cancellation owed to the coroutine and not yet raised at one of its loop awaits.
      ThrowIn: ThrowIn
      /// The message of that cancellation.
      ThrowInMessage: string option
      /// The task is cancelling its waiter now (between `cancel`'s CancelWaiter and its outcome).
      CancellingWaiter: bool }

/// What `cancel` asks of the shell.
type CancelDecision =
    /// The task is done: `cancel()` returns false and nothing changed.
    | AlreadyDone
    /// Cancel the future the task waits on, with this message, then report whether it accepted
    /// (`waiterCancelOutcome`): if it did, that cancellation will wake the task.
    | CancelWaiter of message: string option
    /// The must-cancel flag is set: the task's next step throws the cancellation in.
    | Flagged
    /// The task is cancelling its waiter right now and this cancel came back round (tasks awaiting
    /// each other in a cycle): refused, `cancel()` returns false and nothing changed.
    | BeingCancelled

/// What the shell does to run a step.
type StepAction =
    /// First run of the coroutine.
    | FirstRun
    /// Resume it where it awaits, delivering what it awaited.
    | Resume
    /// Resume it, but the await it is parked at raises a cancellation with this message instead.
    | ResumeCancelled of message: string option
    /// The task was cancelled before it ever ran: its body never runs and it ends cancelled.
    | NeverStarted of message: string option
    /// The task finished before this wake-up ran (its coroutine ended outside a step): what the
    /// wake-up would resume is an un-awaited call's continuation, which runs free (no task).
    | LeftoverFree

/// Where a step comes from (`stepArrives`): what woke the task, as the shell observed it.
[<Struct>]
type StepOrigin =
    /// The loop ran the task's step: its first, a yield's, or a loop future's wake-up whose result
    /// is not a cancellation.
    | FromLoop
    /// A loop future's wake-up, and that future was cancelled (its result raises a cancellation).
    | FromCancelledWaiter
    /// A continuation of a .NET await posted back to the task (`resumeOutside` said Resume).
    | FromOutside
    /// The same, and the task's CancellationToken had fired: the operation saw the cancellation.
    | FromOutsideAfterToken

/// Where an await made during a step goes (`awaitIn`).
[<Struct>]
type AwaitAnswer =
    /// Not made by the task's running step (no step runs): the continuation belongs to no task and
    /// runs free when the future is done, or on the next tick for a yield.
    | NotInStep
    /// The task now waits on it; nothing else to do.
    | Parked
    /// The task now waits on it, and the step's earlier wait on a loop future was an un-awaited
    /// call's: move that continuation off the task onto the future as a free one.
    | ParkedDisplacingFuture
    /// The same for an earlier one-tick yield: its continuation runs free on the next tick.
    | ParkedDisplacingYield

/// What a continuation posted to the task from outside the loop (a .NET await's) does (`resumeOutside`).
[<Struct>]
type OutsideResume =
    /// It is not the task's: it runs free (no task), in the task's context.
    | RunFree
    /// It is the coroutine's own: the task's next step runs it.
    | ResumeTask
    /// It is the coroutine's own and the task looked as if it waited on a loop future (an un-awaited
    /// call's, made earlier in its step): release that wait to run free, then run the step.
    | ReleaseWaitThenResume

/// How a step ended, as the shell observed it.
type StepEnd =
    | Returned
    | RaisedCancellation of message: string option
    | Raised
    /// The coroutine awaits a loop future that is not done (the task now waits on it).
    | AwaitedFuture
    /// The coroutine yielded one tick (`await asyncio.sleep(0)`): its next step is scheduled.
    | Yielded
    /// The coroutine awaits something outside the loop.
    | AwaitedExternal

[<RequireQualifiedAccess>]
module TaskState =
    let created: TaskState =
        { Phase = Scheduled
          Started = false
          MustCancel = false
          CancelMessage = None
          CancelRequests = 0
          Wait = NoWait
          ThrowIn = NotDue
          ThrowInMessage = None
          CancellingWaiter = false }

    let isDone (s: TaskState) =
        match s.Phase with
        | Finished _ -> true
        | _ -> false

    let outcome (s: TaskState) =
        match s.Phase with
        | Finished o -> Some o
        | _ -> None

    /// The type's invariant (see its doc comment), as a predicate the properties check.
    let invariantHolds (s: TaskState) =
        let finishedOwesNothing =
            match s.Phase with
            | Finished _ ->
                not s.MustCancel
                && not s.CancellingWaiter
                && s.Wait = NoWait
                && s.ThrowIn = NotDue
                && s.ThrowInMessage.IsNone
            | _ -> true

        let waitOnlyRunning = s.Wait = NoWait || s.Phase = Running

        let startedRule =
            s.Started
            || (match s.Phase with
                | Scheduled
                | Finished (Cancelled _) -> true
                | _ -> false)

        let throwInRule =
            s.ThrowIn = NotDue || (s.Started && not (isDone s))

        finishedOwesNothing && waitOnlyRunning && startedRule && throwInRule && s.CancelRequests >= 0

    /// Ends the task with `outcome`: a finished task owes nothing.
    let private finish (outcome: Outcome) (s: TaskState) =
        { s with
            Phase = Finished outcome
            MustCancel = false
            Wait = NoWait
            ThrowIn = NotDue
            ThrowInMessage = None
            CancellingWaiter = false }

    /// `Task.cancel(msg)` in 3.11: counts the request, then cancels the awaited future if there is one,
    /// else sets must-cancel. Returns whether cancel() returns true (every case but AlreadyDone and
    /// BeingCancelled).
    let cancel (message: string option) (s: TaskState) : struct (CancelDecision * TaskState) =
        match s.Phase with
        | Finished _ -> struct (AlreadyDone, s)
        | _ when s.CancellingWaiter -> struct (BeingCancelled, s)
        | Waiting ->
            // Tentatively flagged: if the waiter refuses (it is already done) the flag must stand.
            struct (CancelWaiter message,
            { s with
                CancelRequests = s.CancelRequests + 1
                MustCancel = true
                CancelMessage = message
                CancellingWaiter = true })
        | Scheduled
        | Running
        | Suspended ->
            struct (Flagged,
            { s with
                CancelRequests = s.CancelRequests + 1
                MustCancel = true
                CancelMessage = message })

    /// The answer to a CancelWaiter decision: a waiter that accepted will wake the task with its own
    /// cancellation, so the flag is cleared; one that refused leaves the task flagged. Either way the
    /// task is no longer cancelling its waiter.
    let waiterCancelOutcome (accepted: bool) (s: TaskState) =
        if isDone s then s
        elif accepted then { s with MustCancel = false; CancellingWaiter = false }
        elif s.CancellingWaiter then { s with CancellingWaiter = false }
        else s

    /// `__step` begins (from `Scheduled`). `origin` says what woke it. Must-cancel turns any resumption
    /// but a cancelled waiter's into a cancellation (3.11: `if not isinstance(exc, CancelledError): exc =
    /// self._make_cancelled_error()`), and is cleared; that cancellation is now due to the coroutine
    /// (`ThrowIn`), through the token if the step resumes a .NET await after the token fired.
    let beginStepFrom (origin: StepOrigin) (s: TaskState) : Result<struct (StepAction * TaskState), Rejection> =
        match s.Phase with
        | Scheduled ->
            let cancelNow = s.MustCancel && not origin.IsFromCancelledWaiter

            if not s.Started then
                if cancelNow then
                    Ok (struct (NeverStarted s.CancelMessage, finish (Cancelled s.CancelMessage) s))
                else
                    let s' =
                        { s with
                            Phase = Running
                            Started = true
                            MustCancel = false }

                    Ok (struct (FirstRun, s'))
            elif cancelNow then
                let s' =
                    { s with
                        Phase = Running
                        MustCancel = false
                        ThrowIn = (if origin.IsFromOutsideAfterToken then DueViaToken else Due)
                        ThrowInMessage = s.CancelMessage }

                Ok (struct (ResumeCancelled s.CancelMessage, s'))
            else
                Ok (struct (Resume, { s with Phase = Running; MustCancel = false }))
        | Finished _ -> Error (InvalidState "_step(): already done")
        | Running
        | Waiting
        | Suspended -> Error (OutOfPhase "a scheduled task")

    /// `beginStepFrom` for a step that resumes a loop await (`incomingIsCancellation`: the awaited future
    /// was itself cancelled).
    let beginStep (incomingIsCancellation: bool) (s: TaskState) =
        beginStepFrom (if incomingIsCancellation then FromCancelledWaiter else FromLoop) s

    /// `__wakeup`: the awaited future (or the outside operation) finished; a step gets scheduled.
    let wakeUp (s: TaskState) : Result<TaskState, Rejection> =
        match s.Phase with
        | Waiting
        | Suspended -> Ok { s with Phase = Scheduled }
        | _ -> Error (OutOfPhase "a waiting task")

    /// The task's step handle ran (or a posted continuation of the coroutine is resumed): a waiting or
    /// suspended task wakes up, then the step begins as `beginStepFrom` says. A finished task's wake-up
    /// is a leftover: an un-awaited call's continuation, which runs free (`LeftoverFree`).
    let stepArrives (origin: StepOrigin) (s: TaskState) : Result<struct (StepAction * TaskState), Rejection> =
        match s.Phase with
        | Finished _ -> Ok (struct (LeftoverFree, s))
        | Waiting
        | Suspended -> beginStepFrom origin { s with Phase = Scheduled }
        | Scheduled -> beginStepFrom origin s
        | Running -> Error (OutOfPhase "a task between steps")

    /// An await (of a loop future that is not done, or a one-tick yield) is being made where this task
    /// is current. Only the running step's awaits are the task's; the step waits on its last one, so a
    /// new one displaces the one before (DESIGN.md, "whose continuation is it", rule 2).
    let awaitIn (kind: StepWait) (s: TaskState) : struct (AwaitAnswer * TaskState) =
        match s.Phase with
        | Running when not kind.IsNoWait ->
            let answer =
                match s.Wait with
                | NoWait -> Parked
                | OnFuture -> ParkedDisplacingFuture
                | OnYield -> ParkedDisplacingYield

            struct (answer, { s with Wait = kind })
        | _ -> struct (NotInStep, s)

    /// A loop await's result is being read in the task's running step (the awaiter's `GetResult`): a
    /// cancellation that is due is raised there, once. Returns whether to raise it, with its message.
    let takeThrowIn (s: TaskState) : struct (bool * string option * TaskState) =
        match s.Phase, s.ThrowIn with
        | Running, (Due | DueViaToken) ->
            struct (true, s.ThrowInMessage, { s with ThrowIn = NotDue; ThrowInMessage = None })
        | _ -> struct (false, None, s)

    /// `__step` ends. Returns the new state and, when the task now waits on a future while flagged,
    /// the CancelWaiter request for that future (3.11 cancels the new waiter at once).
    let endStep (how: StepEnd) (s: TaskState) : Result<struct (TaskState * CancelDecision option), Rejection> =
        match s.Phase with
        | Running ->
            match how with
            | Returned ->
                match s.ThrowIn with
                // A cancellation was due at an await that never came (the coroutine resumed a .NET
                // await and returned without another loop await): it ends cancelled.
                | Due -> Ok (struct (finish (Cancelled s.ThrowInMessage) s, None))
                // 3.11: a task flagged while running that then returns ends cancelled, not with its value.
                | _ when s.MustCancel -> Ok (struct (finish (Cancelled s.CancelMessage) s, None))
                // (DueViaToken: the coroutine saw the cancellation through the token and swallowed it.)
                | _ -> Ok (struct (finish Succeeded s, None))
            | RaisedCancellation m -> Ok (struct (finish (Cancelled m) s, None))
            | Raised -> Ok (struct (finish Faulted s, None))
            | AwaitedFuture ->
                let s' = { s with Phase = Waiting; Wait = NoWait }

                if s.MustCancel then
                    Ok (struct (s', Some (CancelWaiter s.CancelMessage)))
                else
                    Ok (struct (s', None))
            | Yielded -> Ok (struct ({ s with Phase = Scheduled; Wait = NoWait }, None))
            | AwaitedExternal -> Ok (struct ({ s with Phase = Suspended; Wait = NoWait }, None))
        | _ -> Error (OutOfPhase "a running task")

    /// The step ended with its coroutine not finished: it suspends on its last await (`Wait`), as
    /// `endStep` of AwaitedFuture, Yielded or (no loop await) AwaitedExternal.
    let suspend (s: TaskState) =
        let how =
            match s.Wait with
            | OnFuture -> AwaitedFuture
            | OnYield -> Yielded
            | NoWait -> AwaitedExternal

        endStep how s

    /// The coroutine ended between the task's steps: code the task does not own (the continuation of an
    /// operation the coroutine started but did not await, or a thread-pool completion) ran it to its
    /// end. A .NET coroutine can end this way; a Python one cannot. The task ends as a step that ended
    /// so would have (a flagged task that returns ends cancelled); the wait it was parked on, if any,
    /// is no longer the task's (DESIGN.md: whose continuation is it). Rejected while a step runs (the
    /// step's end finishes the task), once finished, and before the first step.
    let finishOutside (how: StepEnd) (s: TaskState) : Result<TaskState, Rejection> =
        match s.Phase with
        | Scheduled when not s.Started -> Error (OutOfPhase "a started task")
        | Scheduled
        | Waiting
        | Suspended ->
            match how with
            | Returned -> Ok (finish (if s.MustCancel then Cancelled s.CancelMessage else Succeeded) s)
            | RaisedCancellation m -> Ok (finish (Cancelled m) s)
            | Raised -> Ok (finish Faulted s)
            | AwaitedFuture
            | Yielded
            | AwaitedExternal -> Error (OutOfPhase "an ending coroutine")
        | Running -> Error (OutOfPhase "a task between steps")
        | Finished _ -> Error (InvalidState "finishOutside(): already done")

    /// A continuation was posted to the task's context from outside the loop (a .NET await completed).
    /// `isCoroutineContinuation`: the shell recognised it as the coroutine's own (not a helper's). It
    /// resumes the task when the task is suspended outside the loop, or when it looks as if it waits on
    /// a loop future but that wait was an un-awaited call's (rule 4 of "whose continuation is it");
    /// anything else runs free.
    let resumeOutside (isCoroutineContinuation: bool) (s: TaskState) : OutsideResume =
        match s.Phase with
        | Suspended -> ResumeTask
        | Waiting when isCoroutineContinuation -> ReleaseWaitThenResume
        | _ -> RunFree

    /// `uncancel()` (3.11): decrements the request count if positive; returns the new count.
    let uncancel (s: TaskState) : struct (int * TaskState) =
        if s.CancelRequests > 0 then
            struct (s.CancelRequests - 1, { s with CancelRequests = s.CancelRequests - 1 })
        else
            struct (0, s)
