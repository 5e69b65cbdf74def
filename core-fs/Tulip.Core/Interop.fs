namespace Tulip.Core.Interop

open System.Runtime.InteropServices
open Tulip.Core

/// The core refused an input (the state the caller holds is still valid and unchanged). The shell
/// catches it where a rejection is a user's error and raises the exception asyncio would.
type RejectedInputException(rejection: Rejection) =
    inherit System.InvalidOperationException(rejection.ToString())
    member _.Rejection = rejection

/// The done-callbacks a future's completion hands out to be scheduled (call_soon), in registration
/// order. None or one (the common case: the awaiting task's wake-up) is held inline and allocates
/// nothing; more come in one array. Read with `Count` and the indexer.
[<Struct; NoEquality; NoComparison>]
type CallbackIds =
    val private single: HandleId
    val private many: HandleId array
    /// How many callbacks to schedule.
    val Count: int

    private new(count: int, single: HandleId, many: HandleId array) = { Count = count; single = single; many = many }

    /// The `i`-th callback in registration order.
    member x.Item
        with get (i: int) : HandleId =
            if not (isNull x.many) then x.many[i]
            elif i = 0 && x.Count = 1 then x.single
            else raise (System.IndexOutOfRangeException())

    /// A copy as an array, in registration order.
    member x.ToArray() : HandleId array =
        if not (isNull x.many) then Array.copy x.many
        elif x.Count = 1 then [| x.single |]
        else [||]

    /// From a list kept newest first (a pending future's callbacks).
    static member internal OfNewestFirst(cbs: HandleId list) =
        match cbs with
        | [] -> CallbackIds(0, 0L, null)
        | [ id ] -> CallbackIds(1, id, null)
        | _ ->
            let a = Array.ofList cbs
            System.Array.Reverse a
            CallbackIds(a.Length, 0L, a)

/// What `TaskCore.Cancel` decided (the core's `CancelDecision`, without its message).
type TaskCancelDecision =
    /// The task is done: `cancel()` returns false and nothing changed.
    | AlreadyDone = 0
    /// Cancel the future the task waits on, then report with `TaskCore.WaiterCancelOutcome`.
    | CancelWaiter = 1
    /// The must-cancel flag is set: the task's next step throws the cancellation in.
    | Flagged = 2
    /// The task is cancelling its waiter and this cancel came back round a cycle: refused
    /// (`cancel()` returns false, nothing changed).
    | BeingCancelled = 3

/// How to run a step (`TaskCore.BeginStep`; the core's `StepAction`).
type TaskStepStart =
    /// First run of the coroutine.
    | FirstRun = 0
    /// Resume it where it awaits.
    | Resume = 1
    /// Resume it with a cancellation thrown in at its await (the message comes beside).
    | ResumeCancelled = 2
    /// Cancelled before it ever ran: the body never runs and the task ends cancelled.
    | NeverStarted = 3
    /// The task is already finished: the wake-up's continuation (an un-awaited call's) runs free.
    | LeftoverFree = 4

/// What woke a task's step (`TaskCore.StepArrives`; the core's `StepOrigin`).
type TaskStepOrigin =
    /// The loop ran it: the first step, a yield's, or a loop future's wake-up (not a cancellation).
    | FromLoop = 0
    /// A loop future's wake-up, and that future was cancelled.
    | FromCancelledWaiter = 1
    /// A .NET await's continuation posted back to the task.
    | FromOutside = 2
    /// The same, after the task's CancellationToken fired.
    | FromOutsideAfterToken = 3

/// What is awaited where a task is current (`TaskCore.AwaitIn`).
type TaskAwaitKind =
    /// A loop future that is not done.
    | Future = 0
    /// A one-tick yield.
    | Yield = 1

/// Where that await goes (`TaskCore.AwaitIn`; the core's `AwaitAnswer`).
type TaskAwaitAnswer =
    /// No step of the task runs: the continuation is a free one (no task).
    | NotInStep = 0
    /// The task waits on it.
    | Parked = 1
    /// The task waits on it; the step's earlier loop-future wait becomes a free continuation.
    | ParkedDisplacingFuture = 2
    /// The task waits on it; the step's earlier yield becomes a free continuation on the next tick.
    | ParkedDisplacingYield = 3

/// How a step whose coroutine did not finish ends (`TaskCore.Suspend`).
type TaskSuspension =
    /// The task waits on the loop future it awaited last.
    | WaitsOnFuture = 0
    /// The same, and the task was flagged: cancel that future now (message beside), then report
    /// with `TaskCore.WaiterCancelOutcome`.
    | WaitsOnFutureCancelIt = 1
    /// It yielded: schedule its next step.
    | Yields = 2
    /// It awaits something outside the loop: its continuation will be posted back.
    | WaitsOutside = 3

/// What a continuation posted from outside the loop does (`TaskCore.ResumeOutside`; the core's `OutsideResume`).
type TaskOutsideResume =
    /// Not the task's: run it free.
    | RunFree = 0
    /// The coroutine's own: run it as the task's step (origin FromOutside).
    | Resume = 1
    /// The coroutine's own: release the task's loop-future wait as a free continuation, then step.
    | ReleaseWaitThenResume = 2

/// How a step (or the coroutine, between steps) ended, as the shell observed it (the core's `StepEnd`).
type TaskStepEnd =
    | Returned = 0
    /// Raised a cancellation (its message comes beside).
    | RaisedCancellation = 1
    | Raised = 2
    /// Awaits a loop future that is not done.
    | AwaitedFuture = 3
    /// Yielded one tick.
    | Yielded = 4
    /// Awaits something outside the loop (a .NET Task).
    | AwaitedExternal = 5

/// A task's final outcome (`TaskCore.Outcome`).
type TaskOutcome =
    /// Not finished yet.
    | NotDone = -1
    | Succeeded = 0
    | Faulted = 1
    /// Cancelled (the message comes beside).
    | Cancelled = 2

/// The C#-friendly face of the scheduler core: plain arrays, out-parameters and exceptions instead of
/// F# lists, options and Result, and no per-callback allocation on the paths the shell calls per tick.
[<AbstractClass; Sealed>]
type LoopCore =
    static member private Unwrap(r: Result<LoopState * Effect list, Rejection>) =
        match r with
        | Ok (s, es) -> s, es
        | Error rej -> raise (RejectedInputException rej)

    /// A fresh loop whose clock reads `now` (ticks).
    static member Create(now: int64) = LoopState.startingAt now

    /// The general step, for tests and rarely used inputs.
    static member Step(state: LoopState, input: Input, [<Out>] effects: byref<Effect array>) : LoopState =
        let s, es = LoopCore.Unwrap(Loop.step input state)
        effects <- Array.ofList es
        s

    /// Appends a tick's call_soon handles (the array is the core's from now on).
    static member CallSoonMany(state: LoopState, ids: HandleId array) : LoopState =
        fst (LoopCore.Unwrap(Loop.step (CallSoonMany ids) state))

    /// Appends a tick's call_at handles, in order.
    static member CallAtMany(state: LoopState, entries: struct (HandleId * int64) array) : LoopState =
        fst (LoopCore.Unwrap(Loop.step (CallAtMany entries) state))

    static member CancelSoon(state: LoopState, id: HandleId) =
        fst (LoopCore.Unwrap(Loop.step (CancelSoon id) state))

    static member CancelTimer(state: LoopState, id: HandleId) =
        fst (LoopCore.Unwrap(Loop.step (CancelTimer id) state))

    static member Start(state: LoopState) = fst (LoopCore.Unwrap(Loop.step Start state))

    static member Stop(state: LoopState) = fst (LoopCore.Unwrap(Loop.step Stop state))

    /// The poll raised: the run ends (idle), nothing queued is lost.
    static member PollFailed(state: LoopState) = fst (LoopCore.Unwrap(Loop.step PollFailed state))

    /// Closes the loop; returns the closed state.
    static member Close(state: LoopState) = fst (LoopCore.Unwrap(Loop.step Close state))

    /// Watches an I/O source: its readiness admits `read` / `write` (null: none); both null unwatches.
    static member Watch(state: LoopState, token: IoToken, read: System.Nullable<HandleId>, write: System.Nullable<HandleId>) =
        let opt (n: System.Nullable<HandleId>) = if n.HasValue then ValueSome n.Value else ValueNone
        fst (LoopCore.Unwrap(Loop.step (Watch (token, opt read, opt write)) state))

    static member Unwatch(state: LoopState, token: IoToken) =
        fst (LoopCore.Unwrap(Loop.step (Unwatch token) state))

    /// Tick step 1-2: the posts taken in join the ready queue (the array is the core's from now on);
    /// the answer is how long the poll may wait.
    static member BeginTick(state: LoopState, now: int64, posted: HandleId array, [<Out>] timeout: byref<PollTimeout>) : LoopState =
        let s, es = LoopCore.Unwrap(Loop.step (BeginTick (now, posted)) state)

        timeout <-
            match es with
            | [ Poll t ] -> t
            | _ -> PollTimeout.UntilPost

        s

    /// Tick step 3-4: the posts and I/O readiness of the poll go in (the arrays are the core's from
    /// now on); the batch of handles to run now comes out, in order.
    static member Polled(state: LoopState, now: int64, posted: HandleId array, io: IoEvent array, [<Out>] batch: byref<HandleId array>) : LoopState =
        let s, es = LoopCore.Unwrap(Loop.step (Polled (now, posted, io)) state)

        batch <-
            match es with
            | [ Run b ] -> b
            | _ -> [||]

        s

    /// Ends the tick; `stopped` says whether the run is over.
    static member EndTick(state: LoopState, [<Out>] stopped: byref<bool>) : LoopState =
        let s, es = LoopCore.Unwrap(Loop.step EndTick state)
        stopped <- List.contains Stopped es
        s

    static member IsClosed(state: LoopState) = state.Closed
    static member IsRunning(state: LoopState) = LoopState.isRunning state
    static member IsStopping(state: LoopState) = state.Stopping
    static member Now(state: LoopState) = state.Now

    /// The deadline (absolute ticks) of the earliest live timer; false when no timer is queued.
    static member TryNextDeadline(state: LoopState, [<Out>] deadline: byref<int64>) : bool =
        let s = Loop.dropCancelledTimers state

        match TimerQueue.tryPeek s.Timers with
        | ValueSome e ->
            deadline <- e.Deadline
            true
        | ValueNone ->
            deadline <- 0L
            false

    static member WatchedCount(state: LoopState) = state.Watched.Count
    static member ReadyCount(state: LoopState) = ReadyQueue.count state.Ready
    static member TimerCount(state: LoopState) = TimerQueue.count state.Timers

/// The future state machine for C#.
[<AbstractClass; Sealed>]
type FutureCore =
    static member Pending = FutureState.pending

    static member IsDone(s: FutureState) = FutureState.isDone s
    static member IsCancelled(s: FutureState) = FutureState.isCancelled s

    /// Registers a done-callback; `scheduleNow` is true when the future is already done (the caller
    /// schedules the callback at once).
    static member AddCallback(s: FutureState, cb: HandleId, [<Out>] scheduleNow: byref<bool>) =
        let s', now = FutureState.addCallback cb s
        scheduleNow <- not (List.isEmpty now)
        s'

    static member RemoveCallback(s: FutureState, cb: HandleId, [<Out>] removed: byref<int>) =
        let s', n = FutureState.removeCallback cb s
        removed <- n
        s'

    /// The callbacks still registered, in registration order.
    static member Callbacks(s: FutureState) : HandleId array = FutureState.callbacks s |> Array.ofList

    /// set_result / set_exception; throws RejectedInputException(InvalidState) if done. `toSchedule`:
    /// the callbacks to schedule, in registration order.
    static member Complete(s: FutureState, faulted: bool, [<Out>] toSchedule: byref<CallbackIds>) : FutureState =
        match FutureState.completeNewestFirst (if faulted then Faulted else Succeeded) s with
        | Ok (s', cbs) ->
            toSchedule <- CallbackIds.OfNewestFirst cbs
            s'
        | Error r -> raise (RejectedInputException r)

    /// cancel(msg); returns whether it was pending (and so is now cancelled).
    static member Cancel(s: FutureState, message: string, [<Out>] next: byref<FutureState>, [<Out>] toSchedule: byref<CallbackIds>) : bool =
        let ok, s', cbs = FutureState.cancelNewestFirst (Option.ofObj message) s
        next <- s'
        toSchedule <- CallbackIds.OfNewestFirst cbs
        ok

    /// The cancel message of a cancelled future (null if none or not cancelled).
    static member CancelMessage(s: FutureState) : string =
        match s with
        | Done (Cancelled (Some m)) -> m
        | _ -> null

    static member IsFaulted(s: FutureState) = (s = Done Faulted)

/// The task state machine for C#.
[<AbstractClass; Sealed>]
type TaskCore =
    static member Created = TaskState.created

    static member private Unwrap(r: Result<'a, Rejection>) =
        match r with
        | Ok v -> v
        | Error rej -> raise (RejectedInputException rej)

    static member Cancel(s: TaskState, message: string, [<Out>] next: byref<TaskState>) : TaskCancelDecision =
        let struct (d, s') = TaskState.cancel (Option.ofObj message) s
        next <- s'

        match d with
        | AlreadyDone -> TaskCancelDecision.AlreadyDone
        | CancelWaiter _ -> TaskCancelDecision.CancelWaiter
        | Flagged -> TaskCancelDecision.Flagged
        | BeingCancelled -> TaskCancelDecision.BeingCancelled

    static member WaiterCancelOutcome(s: TaskState, accepted: bool) = TaskState.waiterCancelOutcome accepted s

    static member private StartOf(action: StepAction, [<Out>] message: byref<string>) : TaskStepStart =
        message <- null

        match action with
        | FirstRun -> TaskStepStart.FirstRun
        | Resume -> TaskStepStart.Resume
        | ResumeCancelled m ->
            message <- Option.toObj m
            TaskStepStart.ResumeCancelled
        | NeverStarted m ->
            message <- Option.toObj m
            TaskStepStart.NeverStarted
        | LeftoverFree -> TaskStepStart.LeftoverFree

    /// How to run the next step; `message`: the cancellation's message for ResumeCancelled and
    /// NeverStarted (else null).
    static member BeginStep(s: TaskState, incomingIsCancellation: bool, [<Out>] next: byref<TaskState>, [<Out>] message: byref<string>) : TaskStepStart =
        let struct (action, s') = TaskCore.Unwrap(TaskState.beginStep incomingIsCancellation s)
        next <- s'
        TaskCore.StartOf(action, &message)

    /// The task's step handle ran, or a posted continuation of the coroutine resumes it (`origin`):
    /// wakes a waiting or suspended task, then answers how to run the step (`LeftoverFree` for a
    /// finished task); `message` as for BeginStep.
    static member StepArrives(s: byref<TaskState>, origin: TaskStepOrigin, [<Out>] message: byref<string>) : TaskStepStart =
        // The commonest arrival, in place: a started task that owes no cancellation resumes (stepArrives
        // then beginStepFrom's last case, whatever the origin: it matters only when a cancel is owed).
        if s.Started && not s.MustCancel && (s.Phase.IsWaiting || s.Phase.IsScheduled || s.Phase.IsSuspended) then
            s.Phase <- Running
            message <- null
            TaskStepStart.Resume
        else

        let o =
            match origin with
            | TaskStepOrigin.FromLoop -> FromLoop
            | TaskStepOrigin.FromCancelledWaiter -> FromCancelledWaiter
            | TaskStepOrigin.FromOutside -> FromOutside
            | TaskStepOrigin.FromOutsideAfterToken -> FromOutsideAfterToken
            | _ -> invalidArg (nameof origin) "not a TaskStepOrigin"

        let struct (action, s') = TaskCore.Unwrap(TaskState.stepArrives o s)
        s <- s'
        TaskCore.StartOf(action, &message)

    /// An await of `kind` is made where this task is current: where it goes (`s` is updated in place,
    /// as every hot-path face below: the state is not copied in and out).
    static member AwaitIn(s: byref<TaskState>, kind: TaskAwaitKind) : TaskAwaitAnswer =
        // TaskState.awaitIn, in place (it changes Wait only, and only while a step runs).
        if not s.Phase.IsRunning then
            TaskAwaitAnswer.NotInStep
        else
            let answer =
                match s.Wait with
                | NoWait -> TaskAwaitAnswer.Parked
                | OnFuture -> TaskAwaitAnswer.ParkedDisplacingFuture
                | OnYield -> TaskAwaitAnswer.ParkedDisplacingYield

            s.Wait <- (if kind = TaskAwaitKind.Yield then OnYield else OnFuture)
            answer

    /// A loop await's result is read in the task's step: true when a cancellation is due, to be raised
    /// now with `message` (null for none).
    static member TakeThrowIn(s: byref<TaskState>, [<Out>] message: byref<string>) : bool =
        // Every loop await's result passes here: nothing is owed almost always (takeThrowIn's first case).
        if s.ThrowIn.IsNotDue then
            message <- null
            false
        else
            let struct (raiseIt, m, s') = TaskState.takeThrowIn s
            s <- s'
            message <- Option.toObj m
            raiseIt

    /// The step ended and its coroutine did not finish: how the task suspends (`message`: the cancel
    /// message for WaitsOnFutureCancelIt, else null).
    static member Suspend(s: byref<TaskState>, [<Out>] message: byref<string>) : TaskSuspension =
        // TaskState.suspend's cases that cancel nothing, in place (a flagged task's wait on a future
        // goes through the function: it asks for that future's cancellation).
        if s.Phase.IsRunning && not (s.MustCancel && s.Wait.IsOnFuture) then
            message <- null

            match s.Wait with
            | OnFuture ->
                s.Phase <- Waiting
                s.Wait <- NoWait
                TaskSuspension.WaitsOnFuture
            | OnYield ->
                s.Phase <- Scheduled
                s.Wait <- NoWait
                TaskSuspension.Yields
            | NoWait ->
                s.Phase <- Suspended
                TaskSuspension.WaitsOutside
        else

        let struct (s', d) = TaskCore.Unwrap(TaskState.suspend s)
        s <- s'
        message <- null

        match s'.Phase, d with
        | _, Some (CancelWaiter m) ->
            message <- Option.toObj m
            TaskSuspension.WaitsOnFutureCancelIt
        | Waiting, _ -> TaskSuspension.WaitsOnFuture
        | Scheduled, _ -> TaskSuspension.Yields
        | _ -> TaskSuspension.WaitsOutside

    /// A continuation was posted to the task from outside the loop: whether it resumes the task.
    static member ResumeOutside(s: TaskState, isCoroutineContinuation: bool) : TaskOutsideResume =
        match TaskState.resumeOutside isCoroutineContinuation s with
        | RunFree -> TaskOutsideResume.RunFree
        | ResumeTask -> TaskOutsideResume.Resume
        | ReleaseWaitThenResume -> TaskOutsideResume.ReleaseWaitThenResume

    static member private StepEndOf(how: TaskStepEnd, cancelMessage: string) =
        match how with
        | TaskStepEnd.Returned -> Returned
        | TaskStepEnd.RaisedCancellation -> RaisedCancellation (Option.ofObj cancelMessage)
        | TaskStepEnd.Raised -> Raised
        | TaskStepEnd.AwaitedFuture -> AwaitedFuture
        | TaskStepEnd.Yielded -> Yielded
        | TaskStepEnd.AwaitedExternal -> AwaitedExternal
        | _ -> invalidArg (nameof how) "not a TaskStepEnd"

    /// The step ended `how` (`cancelMessage`: the message of a RaisedCancellation). `cancelWaiter`: the
    /// new waiter must be cancelled (with `message`), then WaiterCancelOutcome called.
    static member EndStep(s: TaskState, how: TaskStepEnd, cancelMessage: string, [<Out>] cancelWaiter: byref<bool>, [<Out>] message: byref<string>) : TaskState =
        let struct (s', d) = TaskCore.Unwrap(TaskState.endStep (TaskCore.StepEndOf(how, cancelMessage)) s)

        match d with
        | Some (CancelWaiter m) ->
            cancelWaiter <- true
            message <- Option.toObj m
        | _ ->
            cancelWaiter <- false
            message <- null

        s'

    static member WakeUp(s: TaskState) = TaskCore.Unwrap(TaskState.wakeUp s)

    /// The coroutine ended between steps: `how` is Returned, RaisedCancellation (`cancelMessage`) or
    /// Raised; the core rejects the others.
    static member FinishOutside(s: TaskState, how: TaskStepEnd, cancelMessage: string) : TaskState =
        TaskCore.Unwrap(TaskState.finishOutside (TaskCore.StepEndOf(how, cancelMessage)) s)

    /// FinishOutside where the core accepts it (between steps of a started task): false, and `next`
    /// unchanged, while a step runs (the step's end finishes the task) or once finished.
    static member TryFinishOutside(s: byref<TaskState>, how: TaskStepEnd, cancelMessage: string) : bool =
        match s.Phase with
        // finishOutside's refusals for a step that runs (the common case: the coroutine ended inside
        // its step) and a finished task, answered without building the rejection.
        | Running
        | Finished _ -> false
        | _ ->
            match TaskState.finishOutside (TaskCore.StepEndOf(how, cancelMessage)) s with
            | Ok s' ->
                s <- s'
                true
            | Error _ -> false

    static member IsRunning(s: TaskState) = s.Phase.IsRunning

    static member IsStarted(s: TaskState) = s.Started

    static member Uncancel(s: TaskState, [<Out>] remaining: byref<int>) =
        let struct (n, s') = TaskState.uncancel s
        remaining <- n
        s'

    static member IsDone(s: TaskState) = TaskState.isDone s
    static member Cancelling(s: TaskState) = s.CancelRequests
    static member IsWaiting(s: TaskState) = (s.Phase = Waiting)

    /// The final outcome (`message`: the cancel message when Cancelled, else null); NotDone if not finished.
    static member Outcome(s: TaskState, [<Out>] message: byref<string>) : TaskOutcome =
        message <- null

        match s.Phase with
        | Finished Succeeded -> TaskOutcome.Succeeded
        | Finished Faulted -> TaskOutcome.Faulted
        | Finished (Cancelled m) ->
            message <- Option.toObj m
            TaskOutcome.Cancelled
        | _ -> TaskOutcome.NotDone

/// The protocol callback grammar for C#.
[<AbstractClass; Sealed>]
type ProtocolCore =
    /// The phase after `call`; throws RejectedInputException if the grammar forbids it.
    static member Next(phase: ProtocolPhase, call: ProtocolCall) =
        match ProtocolGrammar.next call phase with
        | Ok p -> p
        | Error r -> raise (RejectedInputException r)
