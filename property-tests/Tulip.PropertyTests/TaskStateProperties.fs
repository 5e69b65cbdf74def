module Tulip.PropertyTests.TaskStateProperties

open Expecto
open FsCheck
open FsCheck.FSharp
open Tulip.Core
open Tulip.Core.Interop
open Tulip.PropertyTests.LoopProperties

type TaskOp =
    | CancelTask of message: string option
    | WaiterOutcome of accepted: bool
    | BeginStep of incomingIsCancellation: bool
    | EndStep of StepEnd
    | WakeUp
    | Uncancel
    | FinishOutside of StepEnd

let private ops =
    let message = Gen.elements [ None; Some "a"; Some "b" ]

    let stepEnd =
        Gen.oneof
            [
                Gen.elements [ Returned; Raised; AwaitedFuture; Yielded; AwaitedExternal ]
                message |> Gen.map RaisedCancellation
            ]

    Gen.frequency
        [
            3, message |> Gen.map CancelTask
            2, Gen.elements [ true; false ] |> Gen.map WaiterOutcome
            4, Gen.elements [ true; false ] |> Gen.map BeginStep
            4, stepEnd |> Gen.map EndStep
            3, Gen.constant WakeUp
            2, Gen.constant Uncancel
            2, stepEnd |> Gen.map FinishOutside
        ]
    |> Gen.listOf
    |> Arb.fromGen

type private Answer =
    | Decision of CancelDecision
    | Action of StepAction
    | CancelNewWaiter of CancelDecision option
    | Count of int
    | Done'
    | Rejected of Rejection

let private apply (s: TaskState) (op: TaskOp) : TaskState * Answer =
    let orRejected f r =
        match r with
        | Ok v -> f v
        | Error e -> s, Rejected e

    match op with
    | CancelTask m ->
        let struct (d, s') = TaskState.cancel m s
        s', Decision d
    | WaiterOutcome a -> TaskState.waiterCancelOutcome a s, Done'
    | BeginStep incoming -> TaskState.beginStep incoming s |> orRejected (fun (struct (a, s')) -> s', Action a)
    | EndStep how -> TaskState.endStep how s |> orRejected (fun (struct (s', d)) -> s', CancelNewWaiter d)
    | WakeUp -> TaskState.wakeUp s |> orRejected (fun s' -> s', Done')
    | Uncancel ->
        let struct (n, s') = TaskState.uncancel s
        s', Count n
    | FinishOutside how -> TaskState.finishOutside how s |> orRejected (fun s' -> s', Done')

let private run (ops: TaskOp list) =
    ops
    |> List.scan (fun (s, _) op -> apply s op |> fun (s', a) -> s', Some(op, a)) (TaskState.created, None)

let finishedIsFinal =
    testPropertyWithConfig
        config
        "a finished task never changes again (steps rejected, cancel false); only uncancel still counts down, as in 3.11"
    <| Prop.forAll ops (fun ops ->
        run ops
        |> List.pairwise
        |> List.iter (fun ((before, _), (after, answer)) ->
            match before.Phase, answer with
            | Finished _, Some(op, a) ->
                let same =
                    { after with
                        CancelRequests = before.CancelRequests
                    }
                        =
                        before

                let countOk =
                    match op with
                    | Uncancel -> after.CancelRequests = max 0 (before.CancelRequests - 1)
                    | _ -> after.CancelRequests = before.CancelRequests

                let answerOk =
                    match op, a with
                    | CancelTask _, Decision AlreadyDone
                    | WaiterOutcome _, Done'
                    | BeginStep _, Rejected(InvalidState _)
                    | EndStep _, Rejected(OutOfPhase _)
                    | WakeUp, Rejected(OutOfPhase _)
                    | FinishOutside _, Rejected(InvalidState _)
                    | Uncancel, Count _ -> true
                    | _ -> false

                if not (same && countOk && answerOk) then
                    failtestf "%A on the finished task %A answered %A and left %A" op before a after
            | _ -> ()))

let cancellingCounts =
    testPropertyWithConfig
        config
        "cancelling() counts the cancel requests a live task accepted minus the uncancels, never below 0"
    <| Prop.forAll ops (fun ops ->
        run ops
        |> List.fold
            (fun model (s: TaskState, step) ->
                let model =
                    match step with
                    | Some(CancelTask _, Decision d) when d <> AlreadyDone -> model + 1
                    | Some(Uncancel, _) -> max 0 (model - 1)
                    | _ -> model

                if s.CancelRequests <> model || s.CancelRequests < 0 then
                    failtestf "after %A: cancelling() = %d, model %d" step s.CancelRequests model

                model)
            0
        |> ignore)

let mustCancelIsObeyed =
    testPropertyWithConfig
        config
        "a flagged task's next step is a cancellation unless one is coming in; the body starts at most once and never after NeverStarted"
    <| Prop.forAll ops (fun ops ->
        let trace = run ops
        let mutable firstRuns = 0
        let mutable neverStarted = false

        for (before: TaskState, _), (after: TaskState, step) in List.pairwise trace do
            match step with
            | Some(BeginStep incoming, Action a) ->
                match a with
                | FirstRun ->
                    firstRuns <- firstRuns + 1

                    if neverStarted || firstRuns > 1 then
                        failtestf "the body started again: %A" trace
                | NeverStarted _ -> neverStarted <- true
                | _ -> ()

                if before.MustCancel && not incoming then
                    match a with
                    | ResumeCancelled m
                    | NeverStarted m when m = before.CancelMessage -> ()
                    | _ -> failtestf "a flagged task (%A) began with %A" before a

                if before.MustCancel && incoming && before.Started && a <> Resume then
                    failtestf "a flagged task given a cancellation began with %A" a

                if after.MustCancel then
                    failtestf "the flag survived a step's beginning: %A" after
            | _ -> ()

            if TaskState.isDone after && after.MustCancel then
                failtestf "a finished task is flagged: %A" after)

let finishOutsideRule =
    testPropertyWithConfig
        config
        "a coroutine that ends between steps ends the task as a step ending so would (a flagged return is a cancellation), only once started and never while a step runs"
    <| Prop.forAll ops (fun ops ->
        for (before: TaskState, _), (after: TaskState, step) in List.pairwise (run ops) do
            match step with
            | Some(FinishOutside how, answer) ->
                let expected =
                    match before.Phase, how with
                    | Finished _, _ -> None
                    | Running, _ -> None
                    | Scheduled, _ when not before.Started -> None
                    | _, Returned -> Some(if before.MustCancel then Cancelled before.CancelMessage else Succeeded)
                    | _, RaisedCancellation m -> Some(Cancelled m)
                    | _, Raised -> Some Faulted
                    | _ -> None

                match expected, answer with
                | Some o, Done' when after.Phase = Finished o && not after.MustCancel && after.CancelRequests = before.CancelRequests -> ()
                | None, Rejected _ when after = before -> ()
                | _ -> failtestf "finishOutside %A from %A answered %A, left %A" how before answer after
            | _ -> ())

/// One operation through the C# face (TaskCore), its enums read back into the core's answers.
let private applyInterop (s: TaskState) (op: TaskOp) : TaskState * Answer =
    let ofObj = Option.ofObj

    let stepEnd how =
        match how with
        | Returned -> struct (TaskStepEnd.Returned, null)
        | RaisedCancellation m -> struct (TaskStepEnd.RaisedCancellation, Option.toObj m)
        | Raised -> struct (TaskStepEnd.Raised, null)
        | AwaitedFuture -> struct (TaskStepEnd.AwaitedFuture, null)
        | Yielded -> struct (TaskStepEnd.Yielded, null)
        | AwaitedExternal -> struct (TaskStepEnd.AwaitedExternal, null)

    try
        match op with
        | CancelTask m ->
            let mutable next = s
            let d = TaskCore.Cancel(s, Option.toObj m, &next)

            let d' =
                match d with
                | TaskCancelDecision.AlreadyDone -> AlreadyDone
                | TaskCancelDecision.CancelWaiter -> CancelWaiter next.CancelMessage
                | TaskCancelDecision.Flagged -> Flagged
                | other -> failtestf "Cancel answered %A" other

            next, Decision d'
        | WaiterOutcome a -> TaskCore.WaiterCancelOutcome(s, a), Done'
        | BeginStep incoming ->
            let mutable next = s
            let mutable message = null
            let a = TaskCore.BeginStep(s, incoming, &next, &message)

            let a' =
                match a with
                | TaskStepStart.FirstRun -> FirstRun
                | TaskStepStart.Resume -> Resume
                | TaskStepStart.ResumeCancelled -> ResumeCancelled (ofObj message)
                | TaskStepStart.NeverStarted -> NeverStarted (ofObj message)
                | other -> failtestf "BeginStep answered %A" other

            next, Action a'
        | EndStep how ->
            let struct (h, m) = stepEnd how
            let mutable cancelWaiter = false
            let mutable message = null
            let next = TaskCore.EndStep(s, h, m, &cancelWaiter, &message)
            next, CancelNewWaiter (if cancelWaiter then Some (CancelWaiter (ofObj message)) else None)
        | WakeUp -> TaskCore.WakeUp s, Done'
        | Uncancel ->
            let mutable n = 0
            let next = TaskCore.Uncancel(s, &n)
            next, Count n
        | FinishOutside how ->
            let struct (h, m) = stepEnd how
            TaskCore.FinishOutside(s, h, m), Done'
    with :? RejectedInputException as e ->
        s, Rejected e.Rejection

let interopAgrees =
    testPropertyWithConfig config "TaskCore (the C# face, enums) answers as TaskState on every input, and Outcome reads the phase"
    <| Prop.forAll ops (fun ops ->
        for (before: TaskState, _), (after: TaskState, step) in List.pairwise (run ops) do
            match step with
            | Some (op, answer) ->
                let after', answer' = applyInterop before op

                if (after', answer') <> (after, answer) then
                    failtestf "%A from %A: the face gave %A, the core %A" op before (after', answer') (after, answer)

                let mutable message = null

                let outcome =
                    match TaskCore.Outcome(after, &message), after.Phase with
                    | TaskOutcome.NotDone, Finished _ -> false
                    | TaskOutcome.NotDone, _ -> true
                    | TaskOutcome.Succeeded, Finished Succeeded
                    | TaskOutcome.Faulted, Finished Faulted -> isNull message
                    | TaskOutcome.Cancelled, Finished (Cancelled m) -> Option.ofObj message = m
                    | _ -> false

                if not outcome then
                    failtestf "Outcome of %A answered %A" after (TaskCore.Outcome(after, &message))
            | None -> ())

[<Tests>]
let tests =
    testList "TaskState laws" [ finishedIsFinal; cancellingCounts; mustCancelIsObeyed; finishOutsideRule; interopAgrees ]
