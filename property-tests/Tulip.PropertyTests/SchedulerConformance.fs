/// The mutable twin (MutableScheduler) against the pure core (Loop.step), and the whole shell against the
/// core's prediction (DESIGN.md §1: "prove it equal to the model: FsCheck generates input sequences,
/// both run them, their effect traces must be identical").
module Tulip.PropertyTests.SchedulerConformance

open System
open System.Collections.Generic
open System.Threading.Tasks
open Expecto
open FsCheck
open FsCheck.FSharp
open Tulip
open Tulip.Core
open Tulip.Core.Interop
open Tulip.Scheduling
open Tulip.Testing
open Tulip.PropertyTests.CoreGenerators

let config = { FsCheckConfig.defaultConfig with maxTest = 1000 }

/// Feeds one core input to a scheduler through ITickScheduler and reports what the core would have
/// answered: the same effects, or the same rejection.
let feed (s: ITickScheduler) (input: Input) : Result<Effect list, Rejection> =
    try
        match input with
        // The twin takes batches one id at a time; an empty batch still meets the closed-loop check.
        | CallSoonMany [||]
        | CallAtMany [||] when s.IsClosed -> Error LoopClosed
        | CallSoon id ->
            s.CallSoon id
            Ok []
        | CallSoonMany ids ->
            for id in ids do
                s.CallSoon id

            Ok []
        | CallAt (id, d) ->
            s.CallAt(id, d)
            Ok []
        | CallAtMany es ->
            for struct (id, d) in es do
                s.CallAt(id, d)

            Ok []
        | CancelSoon id ->
            s.CancelSoon id
            Ok []
        | CancelTimer id ->
            s.CancelTimer id
            Ok []
        | Watch (token, r, w) ->
            let n (v: HandleId voption) = if v.IsSome then Nullable v.Value else Nullable()
            s.Watch(token, n r, n w)
            Ok []
        | Unwatch token ->
            s.Unwatch token
            Ok []
        | Start ->
            s.Start()
            Ok []
        | BeginTick (now, posted) -> Ok [ Poll(s.BeginTick(now, ReadOnlySpan posted)) ]
        | Polled (now, posted, io) -> Ok [ Run((s.Polled(now, ReadOnlySpan posted, ReadOnlySpan io)).ToArray()) ]
        | EndTick -> Ok(if s.EndTick() then [ Stopped ] else [])
        | PollFailed ->
            s.PollFailed()
            Ok [ Stopped ]
        | Stop ->
            s.Stop()
            Ok []
        | Close ->
            let was = s.IsClosed
            s.Close()
            Ok(if was then [] else [ Closed ])
    with :? RejectedInputException as e ->
        Error e.Rejection

/// Run effects compared as lists (arrays compare by reference in F# unions).
let normalise (r: Result<Effect list, Rejection>) =
    match r with
    | Ok es ->
        es
        |> List.map (fun e ->
            match e with
            | Run b -> sprintf "Run %A" (List.ofArray b)
            | e -> sprintf "%A" e)
        |> Ok
    | Error rej -> Error(sprintf "%A" rej)

let twinAgrees (p: Program) =
    let fast = MutableScheduler(p.StartAt) :> ITickScheduler
    let mutable model = p.Initial

    p.Inputs
    |> List.iteri (fun i input ->
        let expected =
            match Loop.step input model with
            | Ok (s', effects) ->
                model <- s'
                Ok effects
            | Error r -> Error r

        let actual = feed fast input

        if normalise expected <> normalise actual then
            failwithf "input %d (%A): the core answered %A, the twin %A" i input (normalise expected) (normalise actual)

        // The queue sizes too: compaction happens at the same moments (the cancelled counts agree).
        let modelTimers = TimerQueue.count model.Timers

        if fast.TimerCount <> modelTimers then
            failwithf "after input %d (%A): the core holds %d timers, the twin %d" i input modelTimers fast.TimerCount

        if fast.WatchedCount <> model.Watched.Count then
            failwithf "after input %d (%A): the core watches %d sources, the twin %d" i input model.Watched.Count fast.WatchedCount)

    true

// ------------------------------------------------------------------------------------------------
// Programs of callbacks, timers, futures and tasks, run by the whole shell.

/// What a callback or a task step does when it runs.
type Act =
    | Soon of Act list
    | Later of delayMs: int * Act list
    /// Cancel the k-th handle created so far (mod count); cancelling twice or after it ran does nothing.
    | CancelHandle of k: int
    | NewFuture
    | Complete of k: int
    | CancelFuture of k: int
    | Spawn of TaskStep list
    | CancelTask of k: int
    | StopLoop

and TaskStep =
    | Yield
    | SleepMs of int
    | AwaitFuture of k: int
    | AwaitTask of k: int
    | Do of Act list

let rec private actGen (depth: int) : Gen<Act> =
    let leaf =
        [ 3, Gen.choose (0, 30) |> Gen.map CancelHandle
          3, Gen.constant NewFuture
          3, Gen.choose (0, 30) |> Gen.map Complete
          1, Gen.choose (0, 30) |> Gen.map CancelFuture
          2, Gen.choose (0, 30) |> Gen.map CancelTask
          1, Gen.constant StopLoop ]

    if depth <= 0 then
        Gen.frequency leaf
    else
        let sub = Gen.listOfLength 2 (actGen (depth - 1)) |> Gen.map (List.truncate 2)

        Gen.frequency (
            leaf
            @ [ 4, Gen.sized (fun _ -> Gen.choose (0, 2) |> Gen.bind (fun n -> Gen.listOfLength n (actGen (depth - 1)))) |> Gen.map Soon
                4,
                Gen.map2
                    (fun d acts -> Later(d, acts))
                    (Gen.elements [ 0; 1; 5; 5; 10; 50 ])
                    (Gen.choose (0, 2) |> Gen.bind (fun n -> Gen.listOfLength n (actGen (depth - 1))))
                3, Gen.choose (0, 4) |> Gen.bind (fun n -> Gen.listOfLength n (stepGen (depth - 1))) |> Gen.map Spawn ]
        )

and private stepGen (depth: int) : Gen<TaskStep> =
    Gen.frequency
        [ 3, Gen.constant Yield
          2, Gen.elements [ 0; 1; 5; 20 ] |> Gen.map SleepMs
          3, Gen.choose (0, 30) |> Gen.map AwaitFuture
          2, Gen.choose (0, 30) |> Gen.map AwaitTask
          2, Gen.choose (0, 2) |> Gen.bind (fun n -> Gen.listOfLength n (actGen depth)) |> Gen.map Do ]

type ShellProgram = { Acts: Act list }

let shellPrograms =
    Gen.choose (1, 8)
    |> Gen.bind (fun n -> Gen.listOfLength n (actGen 3))
    |> Gen.map (fun acts -> { Acts = acts })
    |> Arb.fromGen

/// Runs a program on a loop with the given scheduler; returns the trace of what ran, in order.
let runShell (kind: SchedulerKind) (program: ShellProgram) : string list =
    let loop = new EventLoop(VirtualClock(), kind)
    let trace = List<string>()
    let handles = List<Handle>()
    let futures = List<Future<int>>()
    let tasks = List<LoopTask>()
    let mutable seq = 0
    let pick (xs: List<'a>) k = if xs.Count = 0 then None else Some xs[k % xs.Count]
    let now () = int (Math.Round(loop.Time() * 1000.0))

    let rec perform (acts: Act list) =
        for act in acts do
            match act with
            | Soon body ->
                let n = seq
                seq <- seq + 1
                handles.Add(loop.CallSoon(fun () ->
                    trace.Add(sprintf "cb%d@%d" n (now ()))
                    perform body))
            | Later (ms, body) ->
                let n = seq
                seq <- seq + 1
                handles.Add(loop.CallLater(float ms / 1000.0, (fun () ->
                    trace.Add(sprintf "timer%d@%d" n (now ()))
                    perform body)))
            | CancelHandle k -> pick handles k |> Option.iter (fun h -> h.Cancel())
            | NewFuture -> futures.Add(loop.CreateFuture<int>())
            | Complete k ->
                pick futures k
                |> Option.iter (fun f -> if not f.Done then f.SetResult k)
            | CancelFuture k -> pick futures k |> Option.iter (fun f -> f.Cancel(sprintf "f%d" k) |> ignore)
            | CancelTask k -> pick tasks k |> Option.iter (fun t -> t.Cancel(sprintf "t%d" k) |> ignore)
            | StopLoop -> loop.Stop()
            | Spawn steps ->
                let n = seq
                seq <- seq + 1

                let body () : Task =
                    task {
                        try
                            for i, step in List.indexed steps do
                                trace.Add(sprintf "task%d.%d@%d" n i (now ()))

                                match step with
                                | Yield -> do! Asyncio.Sleep 0.0
                                | SleepMs ms -> do! Asyncio.Sleep(float ms / 1000.0)
                                | AwaitFuture k ->
                                    match pick futures k with
                                    | Some f ->
                                        try
                                            let! v = f
                                            trace.Add(sprintf "task%d got %d" n v)
                                        with :? CancelledException as e when not (obj.ReferenceEquals(e, null)) && f.Cancelled ->
                                            trace.Add(sprintf "task%d saw %s cancelled" n (string e.CancelMessage))
                                    | None -> ()
                                | AwaitTask k ->
                                    match pick tasks k with
                                    | Some t when not (obj.ReferenceEquals(t, Asyncio.CurrentTask())) ->
                                        try
                                            let! _ = t
                                            trace.Add(sprintf "task%d joined" n)
                                        with
                                        | :? CancelledException when t.Cancelled -> trace.Add(sprintf "task%d: joined a cancelled task" n)
                                    | _ -> ()
                                | Do acts -> perform acts

                            trace.Add(sprintf "task%d done" n)
                        with :? CancelledException as e ->
                            trace.Add(sprintf "task%d cancelled %s" n (string e.CancelMessage))
                            raise e
                    }

                tasks.Add(loop.CreateTask(Func<Task>(body), sprintf "t%d" n))

    loop.SetExceptionHandler(ExceptionHandler(fun _ ctx -> trace.Add("handler: " + ctx.Message)))
    perform program.Acts
    // Run until a far deadline: virtual time jumps; Stop acts end runs early, so run again until then.
    let finish = loop.CreateFuture<int>()
    loop.CallLater(3600.0, (fun () -> finish.SetResult 0)) |> ignore
    let mutable guard = 0

    while not finish.Done && guard < 1000 do
        guard <- guard + 1

        try
            loop.RunUntilComplete finish |> ignore
        with :? EventLoopException ->
            trace.Add "stopped early"

    for t in tasks do
        trace.Add(sprintf "final %s" (t.ToString()))

    List.ofSeq trace

let shellModelEqualsFast (p: ShellProgram) =
    let model = runShell SchedulerKind.Model p
    let fast = runShell SchedulerKind.Fast p

    if model <> fast then
        failwithf "model trace:\n%A\nfast trace:\n%A" model fast

    true

// ------------------------------------------------------------------------------------------------
// The core's own prediction for callback-and-timer programs: a tiny interpreter that drives Loop.step
// with ids and jumps virtual time to each poll timeout, exactly as the shell's driver does.

let predictCallbacks (acts: Act list) : string list =
    let trace = List<string>()
    let bodies = Dictionary<int64, string * Act list>()
    let kinds = Dictionary<int64, bool>() // id -> is timer
    let created = List<int64>()
    let finished = HashSet<int64>()
    let mutable state = LoopState.initial
    let mutable next = 0L
    let mutable seq = 0
    let mutable now = 0L

    let step input =
        match Loop.step input state with
        | Ok (s, effects) ->
            state <- s
            effects
        | Error r -> failwithf "core rejected %A: %A" input r

    let rec perform (acts: Act list) =
        for act in acts do
            match act with
            | Soon body ->
                let id = next
                next <- next + 1L
                bodies[id] <- (sprintf "cb%d" seq, body)
                seq <- seq + 1
                kinds[id] <- false
                created.Add id
                step (CallSoon id) |> ignore
            | Later (ms, body) ->
                let id = next
                next <- next + 1L
                bodies[id] <- (sprintf "timer%d" seq, body)
                seq <- seq + 1
                kinds[id] <- true
                created.Add id
                step (CallAt(id, now + int64 ms * 10_000L)) |> ignore
            | CancelHandle k when created.Count > 0 ->
                let id = created[k % created.Count]

                if not (finished.Contains id) then
                    finished.Add id |> ignore
                    step (if kinds[id] then CancelTimer id else CancelSoon id) |> ignore
            | StopLoop -> step Stop |> ignore
            | _ -> ()

    perform acts
    let finishId = -1L
    step (CallAt(finishId, now + 3600L * Time.TicksPerSecond)) |> ignore
    let mutable over = false
    let mutable guard = 0

    while not over && guard < 1000 do
        guard <- guard + 1
        step Start |> ignore
        let mutable stopped = false

        while not stopped do
            match step (BeginTick(now, [||])) with
            | [ Poll t ] when t.HasLimit -> now <- now + t.Ticks
            | _ -> ()

            match step (Polled(now, [||], [||])) with
            | [ Run batch ] ->
                for id in batch do
                    if not (finished.Contains id) then
                        finished.Add id |> ignore

                        if id = finishId then
                            over <- true
                            step Stop |> ignore
                        else
                            let name, body = bodies[id]
                            trace.Add(sprintf "%s@%d" name (int (now / 10_000L)))
                            perform body
            | _ -> ()

            stopped <- (step EndTick = [ Stopped ])

        if not over then trace.Add "stopped early"

    List.ofSeq trace

let rec private onlyCallbacks (acts: Act list) =
    acts
    |> List.choose (fun a ->
        match a with
        | Soon body -> Some(Soon(onlyCallbacks body))
        | Later (ms, body) -> Some(Later(ms, onlyCallbacks body))
        | CancelHandle _
        | StopLoop -> Some a
        | _ -> None)

let shellMatchesCorePrediction (p: ShellProgram) =
    let program = { Acts = onlyCallbacks p.Acts }
    let predicted = predictCallbacks program.Acts
    let actual = runShell SchedulerKind.Fast program |> List.filter (fun l -> not (l.StartsWith "final"))

    if predicted <> actual then
        failwithf "core predicted:\n%A\nshell ran:\n%A" predicted actual

    true

[<Tests>]
let tests =
    let prop name arb body = testPropertyWithConfig config name (Prop.forAll arb body)

    testList
        "Scheduler conformance"
        [ prop "the mutable twin answers every valid input sequence exactly as the pure core" validPrograms twinAgrees
          prop "the twin rejects exactly what the core rejects, with the same reason" mixedPrograms twinAgrees
          prop "the twin compacts and drops cancelled timers exactly as the core" timerHeavyPrograms twinAgrees
          prop
              "the shell runs callback-and-timer programs in the order the core predicts"
              shellPrograms
              shellMatchesCorePrediction
          prop
              "programs of callbacks, timers, futures and tasks trace the same on the model and the twin"
              shellPrograms
              shellModelEqualsFast ]
