module Tulip.PropertyTests.LoopProperties

open Expecto
open FsCheck
open FsCheck.FSharp
open Tulip.Core
open Tulip.PropertyTests.CoreGenerators

/// At least 1,000 cases per law (the issue's bar); Expecto.FsCheck prints the seed of a failure.
let config =
    { FsCheckConfig.defaultConfig with
        maxTest = 1000
    }

/// Everything observable about a LoopState through its public API. ReadyQueue and TimerQueue hide
/// their representation (two heaps with the same entries may differ in shape), so states are
/// compared through this view.
type View =
    {
        Now: int64
        Ready: HandleId list
        Timers: TimerEntry list
        TimersCancelled: int
        Cancelled: Set<HandleId>
        NextSeq: int64
        Watched: Map<IoToken, IoWatch>
        Phase: TickPhase
        Stopping: bool
        Closed: bool
    }

let view (s: LoopState) : View =
    {
        Now = s.Now
        Ready = ReadyQueue.toList s.Ready
        Timers = TimerQueue.toList s.Timers
        TimersCancelled = TimerQueue.cancelledCount s.Timers
        Cancelled = s.Cancelled
        NextSeq = s.NextSeq
        Watched = s.Watched
        Phase = s.Phase
        Stopping = s.Stopping
        Closed = s.Closed
    }

/// One input of a walk through a program.
type Step =
    {
        Index: int
        Input: Input
        Before: LoopState
        Answer: Result<Effect list, Rejection>
        After: LoopState
    }

/// Feeds the inputs one by one through Loop.step (a rejected input keeps the state).
let walk (initial: LoopState) (inputs: Input list) : Step list =
    inputs
    |> List.indexed
    |> List.mapFold
        (fun s (i, input) ->
            let answer, after =
                match Loop.step input s with
                | Ok(s', effects) -> Ok effects, s'
                | Error r -> Error r, s

            {
                Index = i
                Input = input
                Before = s
                Answer = answer
                After = after
            },
            after)
        initial
    |> fst

let accepted (st: Step) = Result.isOk st.Answer

/// The rules of rejection, written from LoopState.fs / Loop.fs's documentation against the view:
/// which inputs the core must refuse, and why. (CancelSoon / CancelTimer of a handle that is not
/// queued is a precondition of the shell the core does not check: accepted here.)
let expectedRejection (v: View) (input: Input) : Rejection option =
    let running = v.Phase <> Idle

    match input with
    | CallSoon _
    | CallSoonMany _
    | CallAt _
    | CallAtMany _
    | Watch _ -> if v.Closed then Some LoopClosed else None
    | Unwatch _ -> None
    | CancelSoon id
    | CancelTimer id ->
        if not v.Closed && Set.contains id v.Cancelled then
            Some(NotPending id)
        else
            None
    | Start ->
        if v.Closed then Some LoopClosed
        elif running then Some AlreadyRunning
        else None
    | BeginTick (t, _) ->
        if v.Phase <> BetweenTicks then
            Some(OutOfPhase "BetweenTicks")
        elif t < v.Now then
            Some(TimeWentBackwards(v.Now, t))
        else
            None
    | Polled (t, _, _) ->
        if v.Phase <> Polling then Some(OutOfPhase "Polling")
        elif t < v.Now then Some(TimeWentBackwards(v.Now, t))
        else None
    | EndTick ->
        match v.Phase with
        | RunningBatch _ -> None
        | _ -> Some(OutOfPhase "RunningBatch")
    | PollFailed -> if v.Phase <> Polling then Some(OutOfPhase "Polling") else None
    | Stop -> None
    | Close -> if running then Some CloseWhileRunning else None

/// The poll-timeout rule, recomputed from the view of the state a BeginTick at `now` (with these posts)
/// starts from: 0 if anything is ready (cancelled or not: CPython tests `if self._ready`), posted, or a
/// stop is pending; otherwise the time to the earliest uncancelled timer, clamped to [0, 24 h]; with no
/// timer, until I/O when a source is watched, else until a post.
let expectedPollTimeout (v: View) (now: int64) (posted: HandleId array) : PollTimeout =
    if not (List.isEmpty v.Ready) || posted.Length > 0 || v.Stopping then
        PollTimeout.Of 0L
    else
        match v.Timers |> List.filter (fun e -> not (Set.contains e.Id v.Cancelled)) with
        | [] -> if Map.isEmpty v.Watched then PollTimeout.UntilPost else PollTimeout.UntilIo
        | live ->
            let d = live |> List.map (fun e -> e.Deadline) |> List.min
            let gap = bigint d - bigint now
            PollTimeout.Of(int64 (max 0I (min gap (bigint Time.MaxPollTimeout))))

/// The history of handles in a walk, from the inputs and answers alone.
type History =
    {
        /// id -> (index scheduled at, deadline; None for call_soon), for accepted schedulings.
        Scheduled: Map<HandleId, int * int64 option>
        /// id -> index of its first accepted cancellation.
        CancelledAt: Map<HandleId, int>
        /// index of each accepted Close (every handle queued before it is discarded).
        Closes: int list
        /// (index, now, batch) of every Run effect.
        Runs: (int * int64 * HandleId array) list
    }

let history (steps: Step list) : History =
    let scheduled =
        System.Collections.Generic.Dictionary<HandleId, int * int64 option>()

    let cancelledAt = System.Collections.Generic.Dictionary<HandleId, int>()
    let mutable closes = []
    let mutable runs = []

    for st in steps do
        match st.Answer with
        | Error _ -> ()
        | Ok effects ->
            let add id d =
                scheduled.TryAdd(id, (st.Index, d)) |> ignore

            match st.Input with
            | CallSoon id -> add id None
            | CallSoonMany ids
            | BeginTick (_, ids) -> ids |> Array.iter (fun id -> add id None)
            | Polled (_, ids, _) -> ids |> Array.iter (fun id -> add id None)
            | CallAt(id, d) -> add id (Some d)
            | CallAtMany es -> es |> Array.iter (fun (struct (id, d)) -> add id (Some d))
            | CancelSoon id
            | CancelTimer id -> cancelledAt.TryAdd(id, st.Index) |> ignore
            | _ -> ()

            for e in effects do
                match e, st.Input with
                | Run batch, Polled (now, _, _) -> runs <- (st.Index, now, batch) :: runs
                | Run _, other -> failtestf "Run answered %A" other
                | Closed, _ -> closes <- st.Index :: closes
                | _ -> ()

    {
        Scheduled = scheduled |> Seq.map (fun kv -> kv.Key, kv.Value) |> Map.ofSeq
        CancelledAt = cancelledAt |> Seq.map (fun kv -> kv.Key, kv.Value) |> Map.ofSeq
        Closes = List.rev closes
        Runs = List.rev runs
    }

let private failWith (p: Program) fmt =
    Printf.kprintf (fun msg -> failtestf "%s\n%s" msg p.Display) fmt

let private law name arb body =
    testPropertyWithConfig config name (Prop.forAll arb body)

let invariantsHold =
    law "invariants hold after every input (valid programs with rejected inputs mixed in)" mixedPrograms
    <| fun p ->
        for st in walk p.Initial p.Inputs do
            match Invariants.check st.After with
            | [] -> ()
            | broken -> failWith p "after input #%d %A: %A" st.Index st.Input broken

/// The handle ids a walk named in watches (they run once per readiness, not once).
let private watchIds (steps: Step list) =
    steps
    |> Seq.collect (fun st ->
        match st.Input with
        | Watch (_, r, w) -> [ r; w ] |> List.choose ValueOption.toOption
        | _ -> [])
    |> set

let runsExactlyOnce =
    law "every scheduled (or posted), uncancelled callback runs exactly once, never before its deadline" validPrograms
    <| fun p ->
        let steps = walk p.Initial p.Inputs
        let h = history steps
        let io = watchIds steps
        let runCount = System.Collections.Generic.Dictionary<HandleId, int>()

        for index, now, batch in h.Runs do
            for id in batch |> Array.filter (io.Contains >> not) do
                let seen =
                    match runCount.TryGetValue id with
                    | true, n -> n
                    | _ -> 0

                runCount[id] <- seen + 1

                match Map.tryFind id h.Scheduled with
                | None -> failWith p "handle %d ran at #%d but was never scheduled" id index
                | Some(at, deadline) ->
                    if at > index then
                        failWith p "handle %d ran at #%d before it was scheduled (#%d)" id index at

                    match Map.tryFind id h.CancelledAt with
                    | Some c when c < index ->
                        failWith p "handle %d ran at #%d after its cancellation at #%d" id index c
                    | _ -> ()

                    if h.Closes |> List.exists (fun c -> at < c && c < index) then
                        failWith p "handle %d ran at #%d though a Close discarded it" id index

                    match deadline with
                    | Some d when d > now -> failWith p "timer %d (deadline %d) ran at #%d, now = %d" id d index now
                    | _ -> ()

        for KeyValue(id, n) in runCount do
            if n > 1 then
                failWith p "handle %d ran %d times" id n

        for KeyValue(id, (at, _)) in h.Scheduled do
            let cancelled = Map.containsKey id h.CancelledAt
            let discarded = h.Closes |> List.exists (fun c -> c > at)

            if not cancelled && not discarded && not (runCount.ContainsKey id) then
                failWith p "handle %d (scheduled at #%d) never ran" id at

/// The ids a walk scheduled with call_soon (as opposed to call_at), accepted or not.
let private soonIds (steps: Step list) =
    steps
    |> Seq.collect (fun st ->
        match st.Input with
        | CallSoon id -> [| id |]
        | CallSoonMany ids
        | BeginTick (_, ids)
        | Polled (_, ids, _) -> ids
        | _ -> [||])
    |> set

/// For each Run: the call_soon handles (with the posts), the I/O handles and the timers it must hold,
/// from the history alone.
let private expectedBatches (steps: Step list) =
    let soonPending = ResizeArray<HandleId>()
    let mutable watched: Map<IoToken, IoWatch> = Map.empty
    let timersPending = ResizeArray<HandleId * int64 * int>() // id, deadline, scheduling order
    let cancelled = System.Collections.Generic.HashSet<HandleId>()
    let mutable order = 0
    let mutable out = []

    for st in steps do
        match st.Answer with
        | Error _ -> ()
        | Ok effects ->
            let timer id d =
                timersPending.Add((id, d, order))
                order <- order + 1

            match st.Input with
            | CallSoon id -> soonPending.Add id
            | CallSoonMany ids
            | BeginTick (_, ids)
            | Polled (_, ids, _) -> soonPending.AddRange ids
            | CallAt(id, d) -> timer id d
            | CallAtMany es -> es |> Array.iter (fun (struct (id, d)) -> timer id d)
            | CancelSoon id
            | CancelTimer id -> cancelled.Add id |> ignore
            | Watch (t, ValueNone, ValueNone)
            | Unwatch t -> watched <- Map.remove t watched
            | Watch (t, r, w) -> watched <- Map.add t { Read = r; Write = w } watched
            | Close ->
                soonPending.Clear()
                timersPending.Clear()
                watched <- Map.empty
            | _ -> ()

            for e in effects do
                match e, st.Input with
                | Run batch, Polled (now, _, events) ->
                    let soon = soonPending |> Seq.filter (cancelled.Contains >> not) |> List.ofSeq

                    // The documented admission: per event in order, the reader then the writer, each
                    // handle once, only for a watched interest.
                    let io =
                        events
                        |> List.ofArray
                        |> List.collect (fun ev ->
                            match Map.tryFind ev.Token watched with
                            | None -> []
                            | Some w ->
                                [ if ev.Readiness.HasFlag Readiness.Readable then yield! ValueOption.toList w.Read
                                  if ev.Readiness.HasFlag Readiness.Writable then yield! ValueOption.toList w.Write ])
                        |> List.distinct
                    let due = timersPending |> Seq.filter (fun (_, d, _) -> d <= now) |> List.ofSeq

                    let timers =
                        due
                        |> List.filter (fun (id, _, _) -> not (cancelled.Contains id))
                        |> List.sortBy (fun (_, d, o) -> d, o)
                        |> List.map (fun (id, _, _) -> id)

                    soonPending.Clear()
                    timersPending.RemoveAll(fun (_, d, _) -> d <= now) |> ignore
                    out <- (st, batch, soon, io, timers) :: out
                | _ -> ()

    List.rev out

let batchRule =
    law
        "a batch runs exactly the call_soon handles scheduled since the previous batch, FIFO, before the due timers"
        validPrograms
    <| fun p ->
        let steps = walk p.Initial p.Inputs
        let isSoon = soonIds steps

        for st, batch, soon, _, _ in expectedBatches steps do
            let soonPart = batch |> Array.filter isSoon.Contains |> List.ofArray

            if soonPart <> soon then
                failWith p "Run at #%d: call_soon part %A, expected %A" st.Index soonPart soon

            if List.ofArray (Array.truncate soonPart.Length batch) <> soonPart then
                failWith p "Run at #%d: %A does not start with its call_soon handles" st.Index batch

let timerOrder =
    law "timers fire in (deadline, seq) order, at the first poll at or after their deadline" validPrograms
    <| fun p ->
        let steps = walk p.Initial p.Inputs
        let isSoon = soonIds steps

        let io = watchIds steps

        for st, batch, _, _, timers in expectedBatches steps do
            let timerPart = batch |> Array.filter (fun id -> not (isSoon.Contains id || io.Contains id)) |> List.ofArray

            if timerPart <> timers then
                failWith p "Run at #%d (%A): timers %A, expected %A" st.Index st.Input timerPart timers

let timerOrderHeavy =
    law "timers fire in (deadline, seq) order in timer-heavy programs (compaction on the way)" timerHeavyPrograms
    <| fun p ->
        let steps = walk p.Initial p.Inputs
        let isSoon = soonIds steps

        let io = watchIds steps

        for st, batch, _, _, timers in expectedBatches steps do
            let timerPart = batch |> Array.filter (fun id -> not (isSoon.Contains id || io.Contains id)) |> List.ofArray

            if timerPart <> timers then
                failWith p "Run at #%d (%A): timers %A, expected %A" st.Index st.Input timerPart timers

let batchOrder =
    law
        "the batch rule: what was ready (call_soon, then the posts taken in at BeginTick), the poll's posts, the I/O handles in the reactor's order, then the due timers"
        validPrograms
    <| fun p ->
        for st, batch, soon, io, timers in expectedBatches (walk p.Initial p.Inputs) do
            let expected = soon @ io @ timers

            if List.ofArray batch <> expected then
                failWith p "Run at #%d (%A): %A, expected %A" st.Index st.Input batch expected

let ioOncePerTick =
    law "a watched handle is admitted at most once per tick, and only for an interest its watch has" validPrograms
    <| fun p ->
        let steps = walk p.Initial p.Inputs
        let io = watchIds steps

        for st, batch, _, expectedIo, _ in expectedBatches steps do
            let ioPart = batch |> Array.filter io.Contains |> List.ofArray

            if List.length (List.distinct ioPart) <> List.length ioPart then
                failWith p "Run at #%d admitted an I/O handle twice: %A" st.Index ioPart

            if ioPart |> List.exists (fun id -> not (List.contains id expectedIo)) then
                failWith p "Run at #%d admitted %A, but only %A are watched for what was reported" st.Index ioPart expectedIo

let postsRunInTheirTick =
    law "a post made before a tick begins runs in that tick, in post order (unless cancelled)" validPrograms
    <| fun p ->
        let steps = walk p.Initial p.Inputs |> Array.ofList
        let h = history (List.ofArray steps)

        for st in steps do
            match st.Input, st.Answer with
            | BeginTick (_, posted), Ok _ when posted.Length > 0 ->
                // The tick's batch is the next Run; a Close or a failed poll ends the run before it.
                let next =
                    steps
                    |> Array.tryFind (fun s ->
                        s.Index > st.Index
                        && Result.isOk s.Answer
                        && (match s.Input with
                            | Polled _
                            | PollFailed -> true
                            | _ -> false))

                match next with
                | Some s when (match s.Input with Polled _ -> true | _ -> false) ->
                    let batch = h.Runs |> List.find (fun (i, _, _) -> i = s.Index) |> fun (_, _, b) -> b

                    let live =
                        posted
                        |> Array.filter (fun id ->
                            match Map.tryFind id h.CancelledAt with
                            | Some c -> c > s.Index
                            | None -> true)

                    let inBatch = batch |> Array.filter (fun id -> Array.contains id posted)

                    if inBatch <> live then
                        failWith p "posts %A taken in at #%d ran as %A in the tick's batch (#%d)" live st.Index inBatch s.Index
                | _ -> ()
            | _ -> ()

let rejectionLeavesState =
    let arb =
        Arb.fromGen (Gen.zip (Arb.toGen mixedPrograms) (Gen.nonEmptyListOf anyInput))

    law "a rejected input never changes the state (any input, at any reachable state)" arb
    <| fun (p, extra) ->
        let extra = Array.ofList extra

        for st in walk p.Initial p.Inputs do
            let tryOne (input: Input) =
                let after, answers = Loop.run [ input ] st.Before

                match answers with
                | [ Error r ] ->
                    if not (obj.ReferenceEquals(after, st.Before)) || view after <> view st.Before then
                        failWith p "rejected %A (%A) at #%d changed the state" input r st.Index
                | _ -> ()

            tryOne st.Input
            tryOne extra[st.Index % extra.Length]

let rejectionFollowsRules =
    let arb =
        Arb.fromGen (Gen.zip (Arb.toGen mixedPrograms) (Gen.nonEmptyListOf anyInput))

    law "an input is rejected exactly when the rules say so, with their reason" arb
    <| fun (p, extra) ->
        let extra = Array.ofList extra

        for st in walk p.Initial p.Inputs do
            let v = view st.Before

            let check (input: Input) (answer: Result<Effect list, Rejection>) =
                let expected = expectedRejection v input

                let actual =
                    match answer with
                    | Error r -> Some r
                    | Ok _ -> None

                if actual <> expected then
                    failWith p "%A at #%d in phase %A: rejection %A, expected %A" input st.Index v.Phase actual expected

            check st.Input st.Answer
            let x = extra[st.Index % extra.Length]
            check x (Loop.step x st.Before |> Result.map snd)

let replay =
    law "replaying a recorded trace gives identical effects" mixedPrograms
    <| fun p ->
        let trace, final = Trace.record p.Inputs p.Initial

        match Trace.firstDivergence trace with
        | Some(i, input, recorded, again) ->
            failWith p "replay diverged at #%d %A: recorded %A, replayed %A" i input recorded again
        | None -> ()

        let steps = walk p.Initial p.Inputs

        let walked =
            steps
            |> List.collect (fun st ->
                match st.Answer with
                | Ok es -> es
                | Error _ -> [])

        if Trace.effects trace <> walked then
            failWith p "Trace.effects differs from the effects of stepping the inputs"

        let last =
            steps
            |> List.tryLast
            |> Option.map (fun st -> st.After)
            |> Option.defaultValue p.Initial

        if view final <> view last then
            failWith p "Trace.record's final state differs from stepping the inputs"

let pollTimeoutRule =
    law
        "the poll timeout follows the rule (0 if ready or stopping, else time to the first live timer clamped to 24 h, else none)"
        (Arb.fromGen (Gen.oneof [ Arb.toGen mixedPrograms; Arb.toGen timerHeavyPrograms ]))
    <| fun p ->
        for st in walk p.Initial p.Inputs do
            match st.Input, st.Answer with
            | BeginTick (now, posted), Ok effects ->
                let expected = [ Poll(expectedPollTimeout (view st.Before) now posted) ]

                if effects <> expected then
                    failWith p "BeginTick %d at #%d answered %A, expected %A" now st.Index effects expected
            | _ -> ()

let compactionRule =
    law
        "BeginTick compacts the timers when more than 100 are queued and more than half cancelled, else drops only cancelled heads"
        timerHeavyPrograms
    <| fun p ->
        for st in walk p.Initial p.Inputs do
            match st.Input, st.Answer with
            | BeginTick _, Ok _ ->
                let b = view st.Before
                let a = view st.After
                let isCancelled (e: TimerEntry) = Set.contains e.Id b.Cancelled
                let n = List.length b.Timers
                let c = b.Timers |> List.filter isCancelled |> List.length

                let expected =
                    if n > 100 && 2 * c > n then
                        List.filter (isCancelled >> not) b.Timers
                    else
                        List.skipWhile isCancelled b.Timers

                if a.Timers <> expected then
                    failWith
                        p
                        "BeginTick at #%d (%d timers, %d cancelled) left %d timers, expected %d"
                        st.Index
                        n
                        c
                        a.Timers.Length
                        expected.Length

                let dropped =
                    Set.difference
                        (b.Timers |> List.map (fun e -> e.Id) |> set)
                        (a.Timers |> List.map (fun e -> e.Id) |> set)

                if a.Cancelled <> Set.difference b.Cancelled dropped then
                    failWith p "BeginTick at #%d: the dropped timers' cancellations are not forgotten exactly" st.Index
            | _ -> ()

let stopRule =
    law "a run ends (Stopped, Idle) at the end of the first tick that sees a stop request, and only then" mixedPrograms
    <| fun p ->
        let mutable stopRequested = false

        for st in walk p.Initial p.Inputs do
            match st.Input, st.Answer with
            | Stop, Ok _ -> stopRequested <- true
            | Close, Ok [ Closed ] -> stopRequested <- false
            | EndTick, Ok effects ->
                let isStopped = List.contains Stopped effects

                if isStopped <> stopRequested then
                    failWith p "EndTick at #%d answered %A with stop requested = %b" st.Index effects stopRequested

                if isStopped <> (st.After.Phase = Idle) then
                    failWith p "EndTick at #%d: Stopped = %b but phase %A" st.Index isStopped st.After.Phase

                stopRequested <- false
            | PollFailed, Ok effects ->
                // A failed poll ends the run at once, stop requested or not, and forgets the request.
                if effects <> [ Stopped ] || st.After.Phase <> Idle then
                    failWith p "PollFailed at #%d answered %A, phase %A" st.Index effects st.After.Phase

                if st.After.Ready <> st.Before.Ready || st.After.Timers <> st.Before.Timers then
                    failWith p "PollFailed at #%d lost or changed queued work" st.Index

                stopRequested <- false
            | _ -> ()

[<Tests>]
let tests =
    testList
        "Loop laws"
        [
            invariantsHold
            runsExactlyOnce
            batchRule
            batchOrder
            ioOncePerTick
            postsRunInTheirTick
            timerOrder
            timerOrderHeavy
            rejectionLeavesState
            rejectionFollowsRules
            replay
            pollTimeoutRule
            compactionRule
            stopRule
        ]
