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
    | StepArrives of StepOrigin
    | AwaitIn of StepWait
    | TakeThrowIn
    | Suspend
    | ResumeOutside of isCoroutineContinuation: bool

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
            4, Gen.elements [ FromLoop; FromCancelledWaiter; FromOutside; FromOutsideAfterToken ] |> Gen.map StepArrives
            4, Gen.elements [ OnFuture; OnYield; OnFuture; NoWait ] |> Gen.map AwaitIn
            2, Gen.constant TakeThrowIn
            3, Gen.constant Suspend
            1, Gen.elements [ true; false ] |> Gen.map ResumeOutside
        ]
    |> Gen.listOf
    |> Arb.fromGen

type private Answer =
    | Decision of CancelDecision
    | Action of StepAction
    | CancelNewWaiter of CancelDecision option
    | AwaitGoes of AwaitAnswer
    | ThrowIn of bool * string option
    | Outside of OutsideResume
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
    | StepArrives origin -> TaskState.stepArrives origin s |> orRejected (fun (struct (a, s')) -> s', Action a)
    | AwaitIn kind ->
        let struct (a, s') = TaskState.awaitIn kind s
        s', AwaitGoes a
    | TakeThrowIn ->
        let struct (raiseIt, m, s') = TaskState.takeThrowIn s
        s', ThrowIn(raiseIt, m)
    | Suspend -> TaskState.suspend s |> orRejected (fun (struct (s', d)) -> s', CancelNewWaiter d)
    | ResumeOutside coro -> s, Outside(TaskState.resumeOutside coro s)

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
                    | StepArrives _, Action LeftoverFree
                    | AwaitIn _, AwaitGoes NotInStep
                    | TakeThrowIn, ThrowIn(false, None)
                    | Suspend, Rejected(OutOfPhase _)
                    | ResumeOutside _, Outside RunFree
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
                    | Some(CancelTask _, Decision d) when d <> AlreadyDone && d <> BeingCancelled -> model + 1
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

/// Each transition of `ops` as (before, op, answer, after).
let private transitions ops =
    run ops
    |> List.pairwise
    |> List.choose (fun ((before: TaskState, _), (after: TaskState, step)) ->
        step |> Option.map (fun (op, answer) -> before, op, answer, after))

let invariantAlways =
    testPropertyWithConfig config "every reachable task state satisfies the invariant written on TaskState"
    <| Prop.forAll ops (fun ops ->
        for s, step in run ops do
            if not (TaskState.invariantHolds s) then
                failtestf "after %A the invariant fails: %A" step s)

let lastAwaitIsTheTasks =
    testPropertyWithConfig
        config
        "a step waits on its last await: a new one displaces the one before (handed back free); outside a running step an await is not the task's"
    <| Prop.forAll ops (fun ops ->
        for before, op, answer, after in transitions ops do
            match op with
            | AwaitIn kind ->
                let expected =
                    match before.Phase, kind with
                    | Running, (OnFuture | OnYield) ->
                        let displaced =
                            match before.Wait with
                            | NoWait -> Parked
                            | OnFuture -> ParkedDisplacingFuture
                            | OnYield -> ParkedDisplacingYield

                        AwaitGoes displaced, { before with Wait = kind }
                    | _ -> AwaitGoes NotInStep, before

                if (answer, after) <> expected then
                    failtestf "await %A from %A answered %A, left %A" kind before answer after
            | _ -> ())

let suspendsOnLastAwait =
    testPropertyWithConfig
        config
        "a step whose coroutine did not finish suspends on its last await: a future (cancelled at once if flagged), a yield, or outside the loop"
    <| Prop.forAll ops (fun ops ->
        for before, op, answer, after in transitions ops do
            match op with
            | Suspend ->
                match before.Phase with
                | Running ->
                    let phase, cancelIt =
                        match before.Wait with
                        | OnFuture -> Waiting, before.MustCancel
                        | OnYield -> Scheduled, false
                        | NoWait -> Suspended, false

                    let expectedAnswer =
                        CancelNewWaiter(if cancelIt then Some(CancelWaiter before.CancelMessage) else None)

                    if answer <> expectedAnswer || after <> { before with Phase = phase; Wait = NoWait } then
                        failtestf "suspend from %A answered %A, left %A" before answer after
                | _ ->
                    match answer with
                    | Rejected _ when after = before -> ()
                    | _ -> failtestf "suspend outside a step (%A) answered %A" before answer
            | _ -> ())

let throwInIsDeliveredOnce =
    testPropertyWithConfig
        config
        "a cancellation thrown in is owed from the step's start, raised once at a loop await of that task's step, and a return while it is owed ends cancelled unless it came through the token"
    <| Prop.forAll ops (fun ops ->
        for before, op, answer, after in transitions ops do
            match op, answer with
            | (StepArrives _ | BeginStep _), Action(ResumeCancelled m) ->
                let viaToken =
                    match op with
                    | StepArrives FromOutsideAfterToken -> true
                    | _ -> false

                if after.ThrowIn <> (if viaToken then DueViaToken else Due) || after.ThrowInMessage <> m then
                    failtestf "%A resumed cancelled but owes %A %A" op after.ThrowIn after.ThrowInMessage
            | TakeThrowIn, ThrowIn(raiseIt, m) ->
                let due = before.Phase = Running && before.ThrowIn <> NotDue

                if raiseIt <> due || (due && m <> before.ThrowInMessage) || after.ThrowIn <> (if due then NotDue else before.ThrowIn) then
                    failtestf "take from %A answered %A, left %A" before answer after
            | EndStep Returned, CancelNewWaiter _ ->
                let expected =
                    match before.ThrowIn with
                    | Due -> Cancelled before.ThrowInMessage
                    | _ when before.MustCancel -> Cancelled before.CancelMessage
                    | _ -> Succeeded

                if after.Phase <> Finished expected then
                    failtestf "return from %A ended %A" before after.Phase
            | _ -> ())

let cancelRoundTheCycleRefused =
    testPropertyWithConfig
        config
        "while a task cancels its waiter a cancel that comes back round is refused and changes nothing; the waiter's answer ends that"
    <| Prop.forAll ops (fun ops ->
        for before, op, answer, after in transitions ops do
            match op, answer with
            | CancelTask _, Decision BeingCancelled when before.CancellingWaiter && not (TaskState.isDone before) && after = before -> ()
            | CancelTask _, Decision BeingCancelled -> failtestf "refused a cancel of %A, left %A" before after
            | CancelTask _, Decision d when before.CancellingWaiter && not (TaskState.isDone before) ->
                failtestf "a task cancelling its waiter (%A) decided %A" before d
            | CancelTask _, Decision(CancelWaiter _) when not after.CancellingWaiter -> failtestf "CancelWaiter without the guard: %A" after
            | WaiterOutcome _, _ when after.CancellingWaiter -> failtestf "the waiter answered, still cancelling: %A" after
            | _ -> ())

let stepArrivalRule =
    testPropertyWithConfig
        config
        "a step that arrives wakes a waiting or suspended task and begins it; for a finished task its continuation is a leftover that runs free"
    <| Prop.forAll ops (fun ops ->
        for before, op, answer, after in transitions ops do
            match op with
            | StepArrives origin ->
                let expected =
                    match before.Phase with
                    | Finished _ -> Some(Action LeftoverFree, before)
                    | Running -> None
                    | _ ->
                        match TaskState.beginStepFrom origin { before with Phase = Scheduled } with
                        | Ok(struct (a, s')) -> Some(Action a, s')
                        | Error _ -> None

                match expected with
                | Some e when e = (answer, after) -> ()
                | None when after = before && (match answer with Rejected _ -> true | _ -> false) -> ()
                | _ -> failtestf "step arriving (%A) at %A answered %A, left %A" origin before answer after
            | _ -> ())

let outsideResumeRule =
    testPropertyWithConfig
        config
        "a continuation posted from outside resumes a suspended task, or a waiting one when it is the coroutine's own (releasing the wait); anything else runs free"
    <| Prop.forAll ops (fun ops ->
        for before, op, answer, after in transitions ops do
            match op with
            | ResumeOutside coro ->
                let expected =
                    match before.Phase with
                    | Suspended -> ResumeTask
                    | Waiting when coro -> ReleaseWaitThenResume
                    | _ -> RunFree

                if answer <> Outside expected || after <> before then
                    failtestf "outside continuation (own %b) at %A answered %A" coro before answer
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
                | TaskCancelDecision.BeingCancelled -> BeingCancelled
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
        | StepArrives origin ->
            let o =
                match origin with
                | FromLoop -> TaskStepOrigin.FromLoop
                | FromCancelledWaiter -> TaskStepOrigin.FromCancelledWaiter
                | FromOutside -> TaskStepOrigin.FromOutside
                | FromOutsideAfterToken -> TaskStepOrigin.FromOutsideAfterToken

            let mutable next = s
            let mutable message = null
            let a = TaskCore.StepArrives(&next, o, &message)

            let a' =
                match a with
                | TaskStepStart.FirstRun -> FirstRun
                | TaskStepStart.Resume -> Resume
                | TaskStepStart.ResumeCancelled -> ResumeCancelled (ofObj message)
                | TaskStepStart.NeverStarted -> NeverStarted (ofObj message)
                | TaskStepStart.LeftoverFree -> LeftoverFree
                | other -> failtestf "StepArrives answered %A" other

            next, Action a'
        | AwaitIn kind when kind <> NoWait ->
            let mutable next = s
            let k = if kind = OnYield then TaskAwaitKind.Yield else TaskAwaitKind.Future

            let a =
                match TaskCore.AwaitIn(&next, k) with
                | TaskAwaitAnswer.NotInStep -> NotInStep
                | TaskAwaitAnswer.Parked -> Parked
                | TaskAwaitAnswer.ParkedDisplacingFuture -> ParkedDisplacingFuture
                | TaskAwaitAnswer.ParkedDisplacingYield -> ParkedDisplacingYield
                | other -> failtestf "AwaitIn answered %A" other

            next, AwaitGoes a
        | AwaitIn _ -> apply s op // the C# face has no "await nothing"
        | TakeThrowIn ->
            let mutable next = s
            let mutable message = null
            let r = TaskCore.TakeThrowIn(&next, &message)
            next, ThrowIn(r, ofObj message)
        | Suspend ->
            let mutable next = s
            let mutable message = null

            let d =
                match TaskCore.Suspend(&next, &message) with
                | TaskSuspension.WaitsOnFutureCancelIt -> Some (CancelWaiter (ofObj message))
                | _ -> None

            next, CancelNewWaiter d
        | ResumeOutside coro ->
            let r =
                match TaskCore.ResumeOutside(s, coro) with
                | TaskOutsideResume.RunFree -> RunFree
                | TaskOutsideResume.Resume -> ResumeTask
                | TaskOutsideResume.ReleaseWaitThenResume -> ReleaseWaitThenResume
                | other -> failtestf "ResumeOutside answered %A" other

            s, Outside r
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
            let mutable tried = s
            let accepted = TaskCore.TryFinishOutside(&tried, h, m)

            try
                let next = TaskCore.FinishOutside(s, h, m)

                if not accepted || tried <> next then
                    failtestf "TryFinishOutside of %A answered %b, %A" s accepted tried

                next, Done'
            with :? RejectedInputException when accepted || tried <> s ->
                failtestf "TryFinishOutside of %A accepted what FinishOutside refuses" s
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
    testList
        "TaskState laws"
        [ finishedIsFinal
          cancellingCounts
          mustCancelIsObeyed
          finishOutsideRule
          invariantAlways
          lastAwaitIsTheTasks
          suspendsOnLastAwait
          throwInIsDeliveredOnce
          cancelRoundTheCycleRefused
          stepArrivalRule
          outsideResumeRule
          interopAgrees ]
