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

/// A task's state machine. Values, exceptions and the coroutine stay in the shell.
///
/// Invariants: `Finished` is final; `MustCancel` is false once finished; `CancelRequests` >= 0.
/// A struct: the shell keeps it inline in the task, so a transition allocates nothing.
[<Struct>]
type TaskState =
    { Phase: TaskPhase
      /// The coroutine has run at least once (a task cancelled before its first step never runs its body).
      Started: bool
      /// `_must_cancel`: the next step throws a cancellation into the coroutine.
      MustCancel: bool
      /// `_cancel_message`: the message that cancellation carries.
      CancelMessage: string option
      /// `_num_cancels_requested`: what `cancelling()` returns; `uncancel()` decrements it.
      CancelRequests: int }

/// What `cancel` asks of the shell.
type CancelDecision =
    /// The task is done: `cancel()` returns false and nothing changed.
    | AlreadyDone
    /// Cancel the future the task waits on, with this message, then report whether it accepted
    /// (`waiterCancelOutcome`): if it did, that cancellation will wake the task.
    | CancelWaiter of message: string option
    /// The must-cancel flag is set: the task's next step throws the cancellation in.
    | Flagged

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
          CancelRequests = 0 }

    let isDone (s: TaskState) =
        match s.Phase with
        | Finished _ -> true
        | _ -> false

    let outcome (s: TaskState) =
        match s.Phase with
        | Finished o -> Some o
        | _ -> None

    /// `Task.cancel(msg)` in 3.11: counts the request, then cancels the awaited future if there is one,
    /// else sets must-cancel. Returns whether cancel() returns true (every case but AlreadyDone).
    let cancel (message: string option) (s: TaskState) : struct (CancelDecision * TaskState) =
        match s.Phase with
        | Finished _ -> struct (AlreadyDone, s)
        | Waiting ->
            // Tentatively flagged: if the waiter refuses (it is already done) the flag must stand.
            struct (CancelWaiter message,
            { s with
                CancelRequests = s.CancelRequests + 1
                MustCancel = true
                CancelMessage = message })
        | Scheduled
        | Running
        | Suspended ->
            struct (Flagged,
            { s with
                CancelRequests = s.CancelRequests + 1
                MustCancel = true
                CancelMessage = message })

    /// The answer to a CancelWaiter decision: a waiter that accepted will wake the task with its own
    /// cancellation, so the flag is cleared; one that refused leaves the task flagged.
    let waiterCancelOutcome (accepted: bool) (s: TaskState) =
        if accepted && not (isDone s) then { s with MustCancel = false } else s

    /// `__step` begins. `incomingIsCancellation`: the awaited future was itself cancelled (its result
    /// raises CancelledError). Must-cancel turns any other resumption into a cancellation (3.11:
    /// `if not isinstance(exc, CancelledError): exc = self._make_cancelled_error()`), and is cleared.
    let beginStep (incomingIsCancellation: bool) (s: TaskState) : Result<struct (StepAction * TaskState), Rejection> =
        match s.Phase with
        | Scheduled ->
            let cancelNow = s.MustCancel && not incomingIsCancellation

            if not s.Started then
                if cancelNow then
                    let s' =
                        { s with
                            Phase = Finished (Cancelled s.CancelMessage)
                            MustCancel = false }

                    Ok (struct (NeverStarted s.CancelMessage, s'))
                else
                    let s' =
                        { s with
                            Phase = Running
                            Started = true
                            MustCancel = false }

                    Ok (struct (FirstRun, s'))
            else
                let action = if cancelNow then ResumeCancelled s.CancelMessage else Resume
                Ok (struct (action, { s with Phase = Running; MustCancel = false }))
        | Finished _ -> Error (InvalidState "_step(): already done")
        | Running
        | Waiting
        | Suspended -> Error (OutOfPhase "a scheduled task")

    /// `__step` ends. Returns the new state and, when the task now waits on a future while flagged,
    /// the CancelWaiter request for that future (3.11 cancels the new waiter at once).
    let endStep (how: StepEnd) (s: TaskState) : Result<struct (TaskState * CancelDecision option), Rejection> =
        match s.Phase with
        | Running ->
            match how with
            | Returned ->
                // 3.11: a task flagged while running that then returns ends cancelled, not with its value.
                if s.MustCancel then
                    Ok (struct ({ s with Phase = Finished (Cancelled s.CancelMessage); MustCancel = false }, None))
                else
                    Ok (struct ({ s with Phase = Finished Succeeded }, None))
            | RaisedCancellation m -> Ok (struct ({ s with Phase = Finished (Cancelled m); MustCancel = false }, None))
            | Raised -> Ok (struct ({ s with Phase = Finished Faulted; MustCancel = false }, None))
            | AwaitedFuture ->
                let s' = { s with Phase = Waiting }

                if s.MustCancel then
                    Ok (struct (s', Some (CancelWaiter s.CancelMessage)))
                else
                    Ok (struct (s', None))
            | Yielded -> Ok (struct ({ s with Phase = Scheduled }, None))
            | AwaitedExternal -> Ok (struct ({ s with Phase = Suspended }, None))
        | _ -> Error (OutOfPhase "a running task")

    /// The coroutine ended between the task's steps: code the task does not own (the continuation of an
    /// operation the coroutine started but did not await, or a thread-pool completion) ran it to its
    /// end. A .NET coroutine can end this way; a Python one cannot. The task ends as a step that ended
    /// so would have (a flagged task that returns ends cancelled); the wait it was parked on, if any,
    /// is no longer the task's (DESIGN.md: whose continuation is it).
    let finishOutside (how: StepEnd) (s: TaskState) : Result<TaskState, Rejection> =
        match s.Phase with
        | Scheduled when not s.Started -> Error (OutOfPhase "a started task")
        | Scheduled
        | Waiting
        | Suspended ->
            match how with
            | Returned ->
                let outcome = if s.MustCancel then Cancelled s.CancelMessage else Succeeded
                Ok { s with Phase = Finished outcome; MustCancel = false }
            | RaisedCancellation m -> Ok { s with Phase = Finished (Cancelled m); MustCancel = false }
            | Raised -> Ok { s with Phase = Finished Faulted; MustCancel = false }
            | AwaitedFuture
            | Yielded
            | AwaitedExternal -> Error (OutOfPhase "an ending coroutine")
        | Running -> Error (OutOfPhase "a task between steps")
        | Finished _ -> Error (InvalidState "finishOutside(): already done")

    /// `__wakeup`: the awaited future (or the outside operation) finished; a step gets scheduled.
    let wakeUp (s: TaskState) : Result<TaskState, Rejection> =
        match s.Phase with
        | Waiting
        | Suspended -> Ok { s with Phase = Scheduled }
        | _ -> Error (OutOfPhase "a waiting task")

    /// `uncancel()` (3.11): decrements the request count if positive; returns the new count.
    let uncancel (s: TaskState) : struct (int * TaskState) =
        if s.CancelRequests > 0 then
            struct (s.CancelRequests - 1, { s with CancelRequests = s.CancelRequests - 1 })
        else
            struct (0, s)
