namespace Tulip.Core

/// How a future ended. The values themselves (the result object, the exception) stay in the shell;
/// the core decides only the transitions and which callbacks to schedule.
type Outcome =
    | Succeeded
    | Faulted
    /// Cancelled, with asyncio's optional cancel message.
    | Cancelled of message: string option

/// A future's state machine (asyncio.Future, CPython 3.11 futures.py):
///
///     Pending(callbacks) --set_result/set_exception/cancel--> Done(outcome)
///
/// Done is final: setting a result or exception again is InvalidStateError; cancelling a done future
/// returns false and changes nothing. Done-callbacks are ids of handles the shell keeps; on completion
/// they are *scheduled* (call_soon) in registration order, never run inline; a callback added to a
/// done future is scheduled at once.
type FutureState =
    /// Callbacks newest first (so adding is O(1)); `callbacks` gives registration order.
    | Pending of callbacksNewestFirst: HandleId list
    | Done of Outcome

[<RequireQualifiedAccess>]
module FutureState =
    let pending: FutureState = Pending []

    // The done states without a message are shared values: completing a future allocates nothing.
    let private succeeded = Done Succeeded
    let private faulted = Done Faulted

    let private doneWith (o: Outcome) =
        match o with
        | Succeeded -> succeeded
        | Faulted -> faulted
        | Cancelled _ -> Done o

    let isDone (s: FutureState) =
        match s with
        | Done _ -> true
        | Pending _ -> false

    let isCancelled (s: FutureState) =
        match s with
        | Done (Cancelled _) -> true
        | _ -> false

    /// The callbacks still registered, in registration order.
    let callbacks (s: FutureState) =
        match s with
        | Pending cbs -> List.rev cbs
        | Done _ -> []

    /// add_done_callback: on a pending future the callback is kept; on a done one it is returned to be
    /// scheduled now (CPython: `self._loop.call_soon(fn, self)`).
    let addCallback (cb: HandleId) (s: FutureState) : FutureState * HandleId list =
        match s with
        | Pending cbs -> Pending (cb :: cbs), []
        | Done _ -> s, [ cb ]

    /// remove_done_callback: drops every registration of `cb`; returns how many were removed.
    let removeCallback (cb: HandleId) (s: FutureState) : FutureState * int =
        match s with
        | Pending cbs ->
            let kept = cbs |> List.filter (fun c -> c <> cb)
            let removed = List.length cbs - List.length kept
            (if removed = 0 then s else Pending kept), removed
        | Done _ -> s, 0

    /// `complete` with the callbacks newest first, as the state keeps them (no list is built): the C#
    /// face copies them into registration order itself (`FutureCore.Complete`).
    let completeNewestFirst (outcome: Outcome) (s: FutureState) : Result<FutureState * HandleId list, Rejection> =
        match s with
        | Pending cbs -> Ok (doneWith outcome, cbs)
        | Done _ -> Error (InvalidState "invalid state")

    /// set_result / set_exception: the done state and the callbacks to schedule, in registration order;
    /// InvalidStateError('invalid state') if already done (CPython's message).
    let complete (outcome: Outcome) (s: FutureState) : Result<FutureState * HandleId list, Rejection> =
        match completeNewestFirst outcome s with
        | Ok (_, ([] | [ _ ])) as r -> r // nothing to reverse
        | Ok (d, cbs) -> Ok (d, List.rev cbs)
        | Error _ as e -> e

    let setResult s = complete Succeeded s

    let setException s = complete Faulted s

    /// cancel(msg): true and the callbacks to schedule if it was pending; false and no change if done.
    let cancel (message: string option) (s: FutureState) : bool * FutureState * HandleId list =
        match s with
        | Pending cbs -> true, Done (Cancelled message), List.rev cbs
        | Done _ -> false, s, []

    /// `cancel` with the callbacks newest first, as the state keeps them (see `completeNewestFirst`).
    let cancelNewestFirst (message: string option) (s: FutureState) : bool * FutureState * HandleId list =
        match s with
        | Pending cbs -> true, Done (Cancelled message), cbs
        | Done _ -> false, s, []

    /// What `result()` does in this state (the shell supplies the value or raises the stored exception).
    type ResultAccess =
        | ReturnValue
        | RaiseStored
        | RaiseCancelled of message: string option
        /// InvalidStateError('Result is not set.')
        | NotReady

    let resultAccess (s: FutureState) =
        match s with
        | Pending _ -> NotReady
        | Done Succeeded -> ReturnValue
        | Done Faulted -> RaiseStored
        | Done (Cancelled m) -> RaiseCancelled m
