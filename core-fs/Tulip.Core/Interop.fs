namespace Tulip.Core.Interop

open System.Runtime.InteropServices
open Tulip.Core

/// The core refused an input (the state the caller holds is still valid and unchanged). The shell
/// catches it where a rejection is a user's error and raises the exception asyncio would.
type RejectedInputException(rejection: Rejection) =
    inherit System.InvalidOperationException(rejection.ToString())
    member _.Rejection = rejection

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

    /// Tick step 1-2: the poll timeout in ticks, or -1 for "no limit".
    static member BeginTick(state: LoopState, now: int64, [<Out>] timeout: byref<int64>) : LoopState =
        let s, es = LoopCore.Unwrap(Loop.step (BeginTick now) state)

        timeout <-
            match es with
            | [ Poll (Some t) ] -> t
            | _ -> -1L

        s

    /// Tick step 3-4: the batch of handles to run now, in order.
    static member Polled(state: LoopState, now: int64, [<Out>] batch: byref<HandleId array>) : LoopState =
        let s, es = LoopCore.Unwrap(Loop.step (Polled now) state)

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

    /// The deadline (absolute ticks) of the earliest live timer, or Int64.MinValue when none is queued.
    static member NextDeadline(state: LoopState) : int64 =
        let s = Loop.dropCancelledTimers state

        match TimerQueue.tryPeek s.Timers with
        | ValueSome e -> e.Deadline
        | ValueNone -> System.Int64.MinValue

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

    static member Callbacks(s: FutureState) = FutureState.callbacks s |> Array.ofList

    /// set_result / set_exception; throws RejectedInputException(InvalidState) if done. The callbacks
    /// to schedule come as an F# list in registration order (walk it with IsEmpty / Head / Tail).
    static member Complete(s: FutureState, faulted: bool, [<Out>] toSchedule: HandleId list byref) =
        match FutureState.complete (if faulted then Faulted else Succeeded) s with
        | Ok (s', cbs) ->
            toSchedule <- cbs
            s'
        | Error r -> raise (RejectedInputException r)

    /// cancel(msg); returns whether it was pending (and so is now cancelled).
    static member Cancel(s: FutureState, message: string, [<Out>] next: byref<FutureState>, [<Out>] toSchedule: HandleId list byref) : bool =
        let ok, s', cbs = FutureState.cancel (Option.ofObj message) s
        next <- s'
        toSchedule <- cbs
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

    /// 0 = already done (cancel returns false), 1 = cancel the waiter (then call WaiterCancelOutcome),
    /// 2 = flagged (the next step throws the cancellation in).
    static member Cancel(s: TaskState, message: string, [<Out>] next: byref<TaskState>) : int =
        let struct (d, s') = TaskState.cancel (Option.ofObj message) s
        next <- s'

        match d with
        | AlreadyDone -> 0
        | CancelWaiter _ -> 1
        | Flagged -> 2

    static member WaiterCancelOutcome(s: TaskState, accepted: bool) = TaskState.waiterCancelOutcome accepted s

    /// 0 = start, 1 = resume, 2 = resume with a cancellation (message in `message`), 3 = never started
    /// (ends cancelled, body never runs).
    static member BeginStep(s: TaskState, incomingIsCancellation: bool, [<Out>] next: byref<TaskState>, [<Out>] message: byref<string>) : int =
        let struct (action, s') = TaskCore.Unwrap(TaskState.beginStep incomingIsCancellation s)
        next <- s'
        message <- null

        match action with
        | FirstRun -> 0
        | Resume -> 1
        | ResumeCancelled m ->
            message <- Option.toObj m
            2
        | NeverStarted m ->
            message <- Option.toObj m
            3

    /// `how`: 0 returned, 1 raised a cancellation (message), 2 raised, 3 awaited a loop future,
    /// 4 yielded, 5 awaited something outside the loop. `cancelWaiter`: the new waiter must be cancelled
    /// (with `message`), then WaiterCancelOutcome called.
    static member EndStep(s: TaskState, how: int, cancelMessage: string, [<Out>] cancelWaiter: byref<bool>, [<Out>] message: byref<string>) : TaskState =
        let e =
            match how with
            | 0 -> Returned
            | 1 -> RaisedCancellation (Option.ofObj cancelMessage)
            | 2 -> Raised
            | 3 -> AwaitedFuture
            | 4 -> Yielded
            | 5 -> AwaitedExternal
            | _ -> invalidArg (nameof how) "step end code out of range"

        let struct (s', d) = TaskCore.Unwrap(TaskState.endStep e s)

        match d with
        | Some (CancelWaiter m) ->
            cancelWaiter <- true
            message <- Option.toObj m
        | _ ->
            cancelWaiter <- false
            message <- null

        s'

    static member WakeUp(s: TaskState) = TaskCore.Unwrap(TaskState.wakeUp s)

    /// The coroutine ended between steps. `how`: 0 returned, 1 raised a cancellation (message), 2 raised.
    static member FinishOutside(s: TaskState, how: int, cancelMessage: string) : TaskState =
        let e =
            match how with
            | 0 -> Returned
            | 1 -> RaisedCancellation (Option.ofObj cancelMessage)
            | 2 -> Raised
            | _ -> invalidArg (nameof how) "end code out of range"

        TaskCore.Unwrap(TaskState.finishOutside e s)

    static member IsStarted(s: TaskState) = s.Started

    static member Uncancel(s: TaskState, [<Out>] remaining: byref<int>) =
        let struct (n, s') = TaskState.uncancel s
        remaining <- n
        s'

    static member IsDone(s: TaskState) = TaskState.isDone s
    static member Cancelling(s: TaskState) = s.CancelRequests
    static member IsWaiting(s: TaskState) = (s.Phase = Waiting)

    /// The final outcome: 0 succeeded, 1 faulted, 2 cancelled (message in `message`); -1 if not done.
    static member Outcome(s: TaskState, [<Out>] message: byref<string>) : int =
        message <- null

        match s.Phase with
        | Finished Succeeded -> 0
        | Finished Faulted -> 1
        | Finished (Cancelled m) ->
            message <- Option.toObj m
            2
        | _ -> -1

/// The protocol callback grammar for C#.
[<AbstractClass; Sealed>]
type ProtocolCore =
    /// The phase after `call`; throws RejectedInputException if the grammar forbids it.
    static member Next(phase: ProtocolPhase, call: ProtocolCall) =
        match ProtocolGrammar.next call phase with
        | Ok p -> p
        | Error r -> raise (RejectedInputException r)
