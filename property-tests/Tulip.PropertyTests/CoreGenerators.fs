module Tulip.PropertyTests.CoreGenerators

open FsCheck
open FsCheck.FSharp
open Tulip.Core

// Programs for the loop core. The core trusts the shell on a few preconditions it does not check
// (LoopState.fs: handle ids are unique and never reused; CancelSoon / CancelTimer name a handle that
// is queued and neither run nor cancelled). So a program is generated as a list of abstract shell
// *commands* ("call_soon something", "cancel the k-th queued timer", "let time pass"), translated
// into inputs while a small model of the shell's knowledge is simulated. The translation is total
// for any command list, so FsCheck can shrink the commands and every shrunk program is still valid.

/// What the shell does, abstractly.
type Command =
    /// call_soon of a fresh handle.
    | Soon
    /// A tick's batch of call_soon (CallSoonMany), 0..n fresh handles.
    | SoonMany of count: int
    /// call_at(now + delay) of a fresh handle (delays may be <= 0: already due).
    | At of delay: int64
    | AtMany of delays: int64 list
    /// Cancel the k-th (mod n) queued, uncancelled call_soon handle (no-op if none).
    | CancelSoonNth of k: int
    /// Cancel the k-th (mod n) timer still in the timer queue (no-op if none).
    | CancelTimerNth of k: int
    /// A callback of the running batch cancels the k-th handle of that batch not yet cancelled: the
    /// shell knows it from the Run effect and cancels it as a ready handle (CancelSoon), then skips it.
    | CancelBatchNth of k: int
    /// Cancel every queued timer except every n-th: builds queues that are more than half cancelled.
    | CancelTimersExceptEvery of n: int
    /// The next input of the tick recipe (Start, BeginTick, Polled, EndTick, by phase), `dt` ticks later.
    | Advance of dt: int64
    /// As Advance, with arrivals: at BeginTick `posts` fresh posted handles; at Polled as many posts
    /// and the readiness `io` (token, readiness bits 1..3) in the reactor's order.
    | AdvanceWith of dt: int64 * posts: int * io: (int * int) list
    /// Watch `token` with fresh handles for the chosen interests (neither: a Watch that unwatches).
    | WatchTok of token: int * read: bool * write: bool
    | UnwatchTok of token: int
    | StopLoop
    /// The poll raised (a virtual clock's deadlock): sent only while polling (the valid use).
    | FailPoll
    /// Close, sent only while the loop is idle (the valid use).
    | CloseLoop
    // What a valid shell never sends, or sends and gets rejected: for the rejection laws.
    /// A tick input of kind 0..4 (Start, BeginTick, Polled, EndTick, PollFailed) at now + offset, whatever the phase.
    | RawTick of kind: int * offset: int64
    /// Close whatever the phase.
    | RawClose
    /// Cancel a queued handle twice in a row (the second is NotPending).
    | CancelTwice of k: int

type ModelPhase =
    | MIdle
    | MBetween
    | MPolling
    | MRunning

/// The shell's knowledge while a program is generated (not the core's state: only what a shell
/// knows from its own inputs and the spec).
type Model =
    {
        Now: int64
        Phase: ModelPhase
        Stopping: bool
        Closed: bool
        NextId: HandleId
        /// call_soon handles queued and not cancelled, in order.
        Soon: HandleId list
        /// Timers still in the timer queue and not cancelled: id -> deadline.
        Timers: Map<HandleId, int64>
        /// Handles of the running batch not cancelled.
        Batch: HandleId list
        /// The ids of Batch that were timers (the shell cancels those with CancelTimer).
        BatchTimers: Set<HandleId>
        /// The watched sources: token -> (reader, writer) handle ids.
        Watched: Map<IoToken, IoWatch>
    }

[<RequireQualifiedAccess>]
module Model =
    let start (now: int64) =
        {
            Now = now
            Phase = MIdle
            Stopping = false
            Closed = false
            NextId = 1L
            Soon = []
            Timers = Map.empty
            Batch = []
            BatchTimers = Set.empty
            Watched = Map.empty
        }

    let private without id ids = ids |> List.filter (fun x -> x <> id)

    /// What the spec says an input does (rejected inputs change nothing).
    let apply (m: Model) (input: Input) : Model =
        match input with
        | CallSoon _
        | CallSoonMany _
        | CallAt _
        | CallAtMany _
        | Watch _ when m.Closed -> m
        | Watch (token, ValueNone, ValueNone)
        | Unwatch token -> { m with Watched = Map.remove token m.Watched }
        | Watch (token, r, w) ->
            { m with
                Watched = Map.add token { Read = r; Write = w } m.Watched
            }
        | CallSoon id -> { m with Soon = m.Soon @ [ id ] }
        | CallSoonMany ids ->
            { m with
                Soon = m.Soon @ List.ofArray ids
            }
        | CallAt(id, d) ->
            { m with
                Timers = Map.add id d m.Timers
            }
        | CallAtMany es ->
            { m with
                Timers = es |> Array.fold (fun t (struct (id, d)) -> Map.add id d t) m.Timers
            }
        | CancelSoon id
        | CancelTimer id ->
            { m with
                Soon = without id m.Soon
                Batch = without id m.Batch
                Timers = Map.remove id m.Timers
            }
        | Start when not m.Closed && m.Phase = MIdle -> { m with Phase = MBetween }
        | BeginTick (t, posted) when m.Phase = MBetween && t >= m.Now ->
            { m with
                Phase = MPolling
                Now = t
                Soon = m.Soon @ List.ofArray posted
            }
        | Polled (t, posted, _) when m.Phase = MPolling && t >= m.Now ->
            let due =
                m.Timers
                |> Map.toList
                |> List.filter (fun (_, d) -> d <= t)
                |> List.sortBy (fun (id, d) -> d, id)
                |> List.map fst

            { m with
                Phase = MRunning
                Now = t
                // The I/O handles of the batch are not in it: the shell never cancels them as callbacks.
                Batch = m.Soon @ List.ofArray posted @ due
                BatchTimers = Set.ofList due
                Soon = []
                Timers = due |> List.fold (fun ts id -> Map.remove id ts) m.Timers
            }
        | EndTick when m.Phase = MRunning ->
            { m with
                Phase = (if m.Stopping then MIdle else MBetween)
                Stopping = false
                Batch = []
                BatchTimers = Set.empty
            }
        | PollFailed when m.Phase = MPolling -> { m with Phase = MIdle; Stopping = false }
        | Stop -> { m with Stopping = true }
        | Close when m.Phase = MIdle && not m.Closed ->
            { start m.Now with
                Closed = true
                NextId = m.NextId
            }
        | _ -> m

    let private nth (k: int) (xs: 'a list) =
        match xs with
        | [] -> None
        | _ -> Some(List.item (abs (k % List.length xs)) xs)

    /// The inputs a command stands for in this model state.
    let inputsOf (m: Model) (c: Command) : Input list =
        let fresh n =
            [ for i in 0L .. int64 n - 1L -> m.NextId + i ]

        let deadline d = Time.addSaturating m.Now d

        let tick kind offset =
            let t = m.Now + offset

            match kind with
            | 0 -> Start
            | 1 -> BeginTick(t, [||])
            | 2 -> Polled(t, [||], [||])
            | 3 -> EndTick
            | _ -> PollFailed

        match c with
        | Soon -> [ CallSoon m.NextId ]
        | SoonMany n -> [ CallSoonMany(Array.ofList (fresh n)) ]
        | At d -> [ CallAt(m.NextId, deadline d) ]
        | AtMany ds ->
            [
                CallAtMany(
                    ds
                    |> List.mapi (fun i d -> struct (m.NextId + int64 i, deadline d))
                    |> Array.ofList
                )
            ]
        | CancelSoonNth k -> nth k m.Soon |> Option.map CancelSoon |> Option.toList
        | CancelTimerNth k ->
            nth k (m.Timers |> Map.keys |> List.ofSeq)
            |> Option.map CancelTimer
            |> Option.toList
        | CancelBatchNth k ->
            // A due timer in the batch is still a TimerHandle to the shell: it cancels it as a timer.
            nth k m.Batch
            |> Option.map (fun id -> if Set.contains id m.BatchTimers then CancelTimer id else CancelSoon id)
            |> Option.toList
        | CancelTimersExceptEvery n ->
            m.Timers
            |> Map.keys
            |> Seq.indexed
            |> Seq.filter (fun (i, _) -> i % max n 2 <> 0)
            |> Seq.map (snd >> CancelTimer)
            |> List.ofSeq
        | Advance dt ->
            match m.Phase with
            | MIdle -> [ Start ]
            | MBetween -> [ BeginTick(m.Now + dt, [||]) ]
            | MPolling -> [ Polled(m.Now + dt, [||], [||]) ]
            | MRunning -> [ EndTick ]
        | AdvanceWith (dt, posts, io) ->
            let posted = Array.ofList (fresh posts)

            match m.Phase with
            | MIdle -> [ Start ]
            | MBetween -> [ BeginTick(m.Now + dt, posted) ]
            | MPolling ->
                let events =
                    io
                    |> List.map (fun (t, r) -> { Token = t; Readiness = enum<Readiness> r })
                    |> Array.ofList

                [ Polled(m.Now + dt, posted, events) ]
            | MRunning -> [ EndTick ]
        | WatchTok (token, r, w) ->
            let read = if r then ValueSome m.NextId else ValueNone
            let write = if w then ValueSome(m.NextId + 1L) else ValueNone
            [ Watch(token, read, write) ]
        | UnwatchTok token -> [ Unwatch token ]
        | StopLoop -> [ Stop ]
        | FailPoll -> if m.Phase = MPolling then [ PollFailed ] else []
        | CloseLoop -> if m.Phase = MIdle then [ Close ] else []
        | RawTick(kind, offset) -> [ tick kind offset ]
        | RawClose -> [ Close ]
        | CancelTwice k ->
            let soon = m.Soon |> List.map CancelSoon
            let timers = m.Timers |> Map.keys |> Seq.map CancelTimer |> List.ofSeq

            nth k (soon @ timers)
            |> Option.map (fun i -> [ i; i ])
            |> Option.defaultValue []

    /// How many fresh ids a command uses (ids are never reused, even by a rejected input).
    let private idsUsed (c: Command) =
        match c with
        | Soon
        | At _ -> 1L
        | SoonMany n -> int64 n
        | AtMany ds -> int64 (List.length ds)
        | AdvanceWith (_, posts, _) -> int64 posts
        | WatchTok _ -> 2L
        | _ -> 0L

    let step (m: Model) (c: Command) : Model * Input list =
        let inputs = inputsOf m c
        let m' = List.fold apply m inputs

        { m' with
            NextId = m.NextId + idsUsed c
        },
        inputs

    /// Inputs that run everything still scheduled (unless the loop is closed): finish the tick in
    /// progress, then ticks at the latest deadline until nothing is left.
    let flush (m: Model) : Input list =
        let rec go (m: Model) (budget: int) acc =
            let latest = m.Timers |> Map.fold (fun t _ d -> max t d) m.Now
            let empty = List.isEmpty m.Soon && Map.isEmpty m.Timers

            let next =
                match m.Phase with
                | _ when m.Closed || budget = 0 -> None
                | MIdle -> if empty then None else Some Start
                | MBetween -> if empty then None else Some(BeginTick(latest, [||]))
                | MPolling -> Some(Polled(latest, [||], [||]))
                | MRunning -> Some EndTick

            match next with
            | None -> List.rev acc
            | Some input -> go (apply m input) (budget - 1) (input :: acc)

        go m 16 []

/// A generated program: where the loop's clock starts, and the commands.
[<StructuredFormatDisplay("{Display}")>]
type Program =
    {
        StartAt: int64
        Commands: Command list
    }

    /// The inputs: the commands translated, then the flush.
    member p.Inputs =
        let m, inputs =
            p.Commands
            |> List.fold
                (fun (m, acc) c ->
                    let m', is = Model.step m c
                    m', List.rev is @ acc)
                (Model.start p.StartAt, [])

        List.rev inputs @ Model.flush m

    member p.Initial = LoopState.startingAt p.StartAt

    member p.Display =
        sprintf "Program (start at %d)\ncommands: %A\ninputs: %A" p.StartAt p.Commands p.Inputs

let private delay: Gen<int64> =
    Gen.frequency
        [
            3, Gen.choose64 (-3L, 0L)
            8, Gen.choose64 (1L, 12L)
            3, Gen.choose64 (13L, 80L)
            1, Gen.elements [ 2L * Time.MaxPollTimeout; System.Int64.MaxValue ]
        ]

let private dt: Gen<int64> =
    Gen.frequency [ 5, Gen.constant 0L; 4, Gen.choose64 (1L, 10L); 1, Gen.choose64 (11L, 100L) ]

let private k = Gen.choose (0, 1000)

let private token = Gen.choose (0, 5)

let private ioEvents: Gen<(int * int) list> =
    Gen.choose (0, 4)
    |> Gen.bind (fun n -> Gen.listOfLength n (Gen.zip token (Gen.choose (1, 3))))

let private advanceWith: Gen<Command> =
    Gen.map3 (fun d p io -> AdvanceWith(d, p, io)) (Gen.frequency [ 5, Gen.constant 0L; 4, Gen.choose64 (1L, 10L) ]) (Gen.choose (0, 3)) ioEvents

let private validWeighted: (int * Gen<Command>) list =
    [
        60, Gen.constant Soon
        15, Gen.choose (0, 4) |> Gen.map SoonMany
        45, delay |> Gen.map At
        12,
        Gen.choose (0, 6)
        |> Gen.bind (fun n -> Gen.listOfLength n delay)
        |> Gen.map AtMany
        21, k |> Gen.map CancelSoonNth
        21, k |> Gen.map CancelTimerNth
        12, k |> Gen.map CancelBatchNth
        2, Gen.choose (2, 4) |> Gen.map CancelTimersExceptEvery
        105, dt |> Gen.map Advance
        45, advanceWith
        15, Gen.map3 (fun t r w -> WatchTok(t, r, w)) token (Gen.elements [ true; false ]) (Gen.elements [ true; false ])
        5, token |> Gen.map UnwatchTok
        6, Gen.constant StopLoop
        2, Gen.constant FailPoll
        1, Gen.constant CloseLoop
    ]

/// Commands a valid shell sends.
let validCommand: Gen<Command> = Gen.frequency validWeighted

/// Valid commands with inputs the core must reject (or that a shell must not send but the core
/// checks) mixed in.
let mixedCommand: Gen<Command> =
    Gen.frequency (
        validWeighted
        @ [
            20, Gen.zip (Gen.choose (0, 4)) (Gen.choose64 (-4L, 4L)) |> Gen.map RawTick
            5, Gen.constant RawClose
            10, k |> Gen.map CancelTwice
        ]
    )

/// Timer-heavy commands: queues of more than 100 timers, often more than half cancelled (compaction).
let timerHeavyCommand: Gen<Command> =
    Gen.frequency
        [
            5, Gen.constant Soon
            10,
            Gen.choose (10, 60)
            |> Gen.bind (fun n -> Gen.listOfLength n (Gen.choose64 (0L, 60L)))
            |> Gen.map AtMany
            5, Gen.choose (2, 4) |> Gen.map CancelTimersExceptEvery
            8, k |> Gen.map CancelTimerNth
            // Due timers cancelled inside their own batch must not be counted as queued (see Loop.fs).
            8, k |> Gen.map CancelBatchNth
            20, dt |> Gen.map Advance
            1, Gen.constant StopLoop
        ]

let private programArb (command: Gen<Command>) : Arbitrary<Program> =
    let commands = Arb.list (Arb.fromGen command)

    let gen =
        Gen.map2
            (fun start cs -> { StartAt = start; Commands = cs })
            (Gen.elements [ 0L; 1_000L; -50L ])
            (Arb.toGen commands)

    let shrink (p: Program) =
        Arb.toShrink commands p.Commands |> Seq.map (fun cs -> { p with Commands = cs })

    Arb.fromGenShrink (gen, shrink)

/// Programs a valid shell could send (then flushed).
let validPrograms = programArb validCommand

/// Valid programs with rejected and out-of-phase inputs mixed in.
let mixedPrograms = programArb mixedCommand

/// Programs with many timers, many of them cancelled.
let timerHeavyPrograms = programArb timerHeavyCommand

/// Any input at all, with small ids and times: tried at reachable states by the rejection laws.
/// (It may break the shell's unchecked preconditions; only its acceptance or rejection is looked at.)
let anyInput: Gen<Input> =
    let id = Gen.choose64 (0L, 40L)
    let time = Gen.choose64 (-60L, 1_200L)
    let ids = Gen.arrayOf id
    let optId = Gen.optionOf id |> Gen.map ValueOption.ofOption

    let events =
        Gen.arrayOf (Gen.zip token (Gen.choose (0, 3)) |> Gen.map (fun (t, r) -> { Token = t; Readiness = enum<Readiness> r }))

    Gen.oneof
        [
            id |> Gen.map CallSoon
            Gen.arrayOf id |> Gen.map CallSoonMany
            Gen.zip id time |> Gen.map CallAt
            Gen.arrayOf (Gen.zip id time |> Gen.map (fun (i, t) -> struct (i, t)))
            |> Gen.map CallAtMany
            id |> Gen.map CancelSoon
            id |> Gen.map CancelTimer
            Gen.constant Start
            Gen.zip time ids |> Gen.map BeginTick
            Gen.zip3 time ids events |> Gen.map Polled
            Gen.zip3 token optId optId |> Gen.map Watch
            token |> Gen.map Unwatch
            Gen.constant EndTick
            Gen.constant PollFailed
            Gen.constant Stop
            Gen.constant Close
        ]
