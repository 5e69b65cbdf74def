namespace Tulip.Core

/// A recorded run: the state it started from, and each input with what the core answered. Replaying the
/// inputs from the same state must give the same answers (the core is deterministic), which turns any
/// run seen in the shell into a test case of the core.
type Trace =
    { Initial: LoopState
      Steps: (Input * Result<Effect list, Rejection>) list }

[<RequireQualifiedAccess>]
module Trace =
    /// Runs `inputs` from `initial`, recording every answer.
    let record (inputs: Input list) (initial: LoopState) : Trace * LoopState =
        let final, results = Loop.run inputs initial

        { Initial = initial
          Steps = List.zip inputs results },
        final

    /// Replays a trace; returns the first step (index, input, recorded, replayed) whose answer differs.
    let firstDivergence (t: Trace) =
        let _, replayed = Loop.run (List.map fst t.Steps) t.Initial

        List.zip t.Steps replayed
        |> List.indexed
        |> List.tryFind (fun (_, ((_, recorded), again)) -> recorded <> again)
        |> Option.map (fun (i, ((input, recorded), again)) -> i, input, recorded, again)

    let replays (t: Trace) = (firstDivergence t).IsNone

    /// The effects only, in order (rejections dropped): what a shell interpreting the trace would do.
    let effects (t: Trace) : Effect list =
        t.Steps
        |> List.collect (fun (_, r) ->
            match r with
            | Ok es -> es
            | Error _ -> [])
