namespace Tulip.Core

/// `Loop.step`: the scheduler as a pure, total function of (input, state). Deterministic given its
/// arguments; a rejected input returns the reason and the caller keeps its old state.
[<RequireQualifiedAccess>]
module Loop =
    type StepResult = Result<LoopState * Effect list, Rejection>

    let private accept (s: LoopState) : StepResult = Ok (s, [])

    let private enqueueTimer (id: HandleId) (deadline: int64) (s: LoopState) =
        { s with
            Timers =
                TimerQueue.add
                    { Deadline = deadline
                      Seq = s.NextSeq
                      Id = id }
                    s.Timers
            NextSeq = s.NextSeq + 1L }

    /// Step 1 of the tick: compact if more than half of a large queue is cancelled (CPython's 100 / 50%
    /// rule), otherwise drop the cancelled timers at the head.
    let dropCancelledTimers (s: LoopState) : LoopState =
        if TimerQueue.cancelledCount s.Timers = 0 then
            s
        elif TimerQueue.needsCompaction s.Timers then
            let timers, dropped = TimerQueue.compact (fun id -> Set.contains id s.Cancelled) s.Timers

            { s with
                Timers = timers
                Cancelled = List.fold (fun c id -> Set.remove id c) s.Cancelled dropped }
        else
            let rec dropHead (s: LoopState) =
                match TimerQueue.tryPeek s.Timers with
                | ValueSome e when Set.contains e.Id s.Cancelled ->
                    dropHead
                        { s with
                            Timers = TimerQueue.pop true s.Timers
                            Cancelled = Set.remove e.Id s.Cancelled }
                | _ -> s

            dropHead s

    /// Step 3 of the tick: every timer due by `now` moves to the ready queue in (deadline, seq) order;
    /// cancelled ones are dropped on the way.
    let moveDueTimers (now: int64) (s: LoopState) : LoopState =
        let rec go (due: HandleId list) (s: LoopState) =
            match TimerQueue.tryPeek s.Timers with
            | ValueSome e when e.Deadline <= now ->
                if Set.contains e.Id s.Cancelled then
                    go
                        due
                        { s with
                            Timers = TimerQueue.pop true s.Timers
                            Cancelled = Set.remove e.Id s.Cancelled }
                else
                    go (e.Id :: due) { s with Timers = TimerQueue.pop false s.Timers }
            | _ -> due, s

        match go [] s with
        | [], s -> s
        | due, s ->
            { s with
                Ready = ReadyQueue.enqueueMany (due |> List.rev |> Array.ofList) s.Ready }

    /// Step 2 of the batch rule: the handles the poll's readiness admits, in the reactor's order (for
    /// each event, the reader before the writer); each handle at most once per tick, events for
    /// tokens not watched (or for an interest the watch lacks) admit nothing.
    let admitIo (watched: Map<IoToken, IoWatch>) (io: IoEvent array) : HandleId array =
        if io.Length = 0 || Map.isEmpty watched then
            [||]
        else
            let admitted = ResizeArray<HandleId>(io.Length)
            let mutable seen = Set.empty

            let admit (id: HandleId voption) =
                match id with
                | ValueSome h when not (Set.contains h seen) ->
                    seen <- Set.add h seen
                    admitted.Add h
                | _ -> ()

            for e in io do
                match Map.tryFind e.Token watched with
                | Some w ->
                    if e.Readiness &&& Readiness.Readable <> Readiness.None then admit w.Read
                    if e.Readiness &&& Readiness.Writable <> Readiness.None then admit w.Write
                | None -> ()

            admitted.ToArray()

    let private checkTime (now: int64) (s: LoopState) =
        if now < s.Now then Error (TimeWentBackwards (s.Now, now)) else Ok ()

    let step (input: Input) (s: LoopState) : StepResult =
        match input with
        | CallSoon _
        | CallSoonMany _
        | CallAt _
        | CallAtMany _ when s.Closed -> Error LoopClosed
        | CallSoon id -> accept { s with Ready = ReadyQueue.enqueue id s.Ready }
        | CallSoonMany ids -> accept { s with Ready = ReadyQueue.enqueueMany ids s.Ready }
        | CallAt (id, deadline) -> accept (enqueueTimer id deadline s)
        | CallAtMany entries ->
            accept (Array.fold (fun s (struct (id, deadline)) -> enqueueTimer id deadline s) s entries)
        | Watch _ when s.Closed -> Error LoopClosed
        | Watch (token, ValueNone, ValueNone) -> accept { s with Watched = Map.remove token s.Watched }
        | Watch (token, read, write) ->
            accept { s with Watched = Map.add token { Read = read; Write = write } s.Watched }
        | Unwatch token -> accept { s with Watched = Map.remove token s.Watched }
        | CancelSoon _
        | CancelTimer _ when s.Closed -> accept s // its queue was discarded at close: nothing to cancel
        | CancelSoon id ->
            if Set.contains id s.Cancelled then
                Error (NotPending id)
            else
                accept { s with Cancelled = Set.add id s.Cancelled }
        | CancelTimer id ->
            if Set.contains id s.Cancelled then
                Error (NotPending id)
            else
                match s.Phase with
                | RunningBatch batch when Array.contains id batch ->
                    // Due already: it left the timer queue for this batch, so it is skipped like a
                    // ready handle (CPython: TimerHandle._scheduled is False by then).
                    accept { s with Cancelled = Set.add id s.Cancelled }
                | _ ->
                    accept
                        { s with
                            Cancelled = Set.add id s.Cancelled
                            Timers = TimerQueue.noteCancelled s.Timers }
        | Start ->
            if s.Closed then Error LoopClosed
            elif s.Phase <> Idle then Error AlreadyRunning
            else accept { s with Phase = BetweenTicks }
        | BeginTick (now, posted) ->
            match s.Phase with
            | BetweenTicks ->
                checkTime now s
                |> Result.map (fun () ->
                    let s =
                        dropCancelledTimers
                            { s with
                                Now = now
                                Phase = Polling
                                Ready = ReadyQueue.enqueueMany posted s.Ready }

                    s, [ Poll (LoopState.pollTimeout s) ])
            | _ -> Error (OutOfPhase "BetweenTicks")
        | Polled (now, posted, io) ->
            match s.Phase with
            | Polling ->
                checkTime now s
                |> Result.map (fun () ->
                    // The batch rule: what was ready, the posts, the I/O, then the due timers.
                    let ready = ReadyQueue.enqueueMany posted s.Ready
                    let ready = ReadyQueue.enqueueMany (admitIo s.Watched io) ready
                    let s = moveDueTimers now { s with Now = now; Ready = ready }
                    let ids, ready = ReadyQueue.drain s.Ready

                    // Handles cancelled before the tick began are skipped now, and forgotten.
                    let batch, cancelled =
                        if Set.isEmpty s.Cancelled then
                            ids, s.Cancelled
                        else
                            Array.filter (fun id -> not (Set.contains id s.Cancelled)) ids,
                            Array.fold (fun c id -> Set.remove id c) s.Cancelled ids

                    { s with
                        Ready = ready
                        Cancelled = cancelled
                        Phase = RunningBatch batch },
                    [ Run batch ])
            | _ -> Error (OutOfPhase "Polling")
        | EndTick ->
            match s.Phase with
            | RunningBatch batch ->
                // Handles of the batch cancelled while it ran were skipped by the shell: forget them.
                let cancelled =
                    if Set.isEmpty s.Cancelled then
                        s.Cancelled
                    else
                        Array.fold (fun c id -> Set.remove id c) s.Cancelled batch

                if s.Stopping then
                    Ok (
                        { s with
                            Cancelled = cancelled
                            Phase = Idle
                            Stopping = false },
                        [ Stopped ]
                    )
                else
                    accept
                        { s with
                            Cancelled = cancelled
                            Phase = BetweenTicks }
            | _ -> Error (OutOfPhase "RunningBatch")
        | PollFailed ->
            match s.Phase with
            | Polling -> Ok ({ s with Phase = Idle; Stopping = false }, [ Stopped ])
            | _ -> Error (OutOfPhase "Polling")
        | Stop -> accept { s with Stopping = true }
        | Close ->
            if s.Phase <> Idle then Error CloseWhileRunning
            elif s.Closed then accept s
            else
                Ok (
                    { LoopState.initial with
                        Now = s.Now
                        NextSeq = s.NextSeq
                        Closed = true },
                    [ Closed ]
                )

    /// Feeds inputs in order; rejected ones leave the state as it was. Returns the final state and,
    /// per input, what happened to it.
    let run (inputs: Input seq) (s: LoopState) : LoopState * Result<Effect list, Rejection> list =
        let folder (s, acc) input =
            match step input s with
            | Ok (s', effects) -> s', Ok effects :: acc
            | Error r -> s, Error r :: acc

        let s, results = Seq.fold folder (s, []) inputs
        s, List.rev results
