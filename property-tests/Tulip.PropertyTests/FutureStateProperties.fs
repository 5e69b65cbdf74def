module Tulip.PropertyTests.FutureStateProperties

open Expecto
open FsCheck
open FsCheck.FSharp
open Tulip.Core
open Tulip.PropertyTests.LoopProperties

type FutureOp =
    | AddCallback of HandleId
    | RemoveCallback of HandleId
    | Complete of Outcome
    | CancelFuture of message: string option

let private ops =
    let id = Gen.choose64 (1L, 6L)
    let message = Gen.elements [ None; Some "a"; Some "b" ]

    Gen.frequency
        [
            6, id |> Gen.map AddCallback
            2, id |> Gen.map RemoveCallback
            2, Gen.elements [ Succeeded; Faulted ] |> Gen.map Complete
            1, message |> Gen.map (Cancelled >> Complete)
            2, message |> Gen.map CancelFuture
        ]
    |> Gen.listOf
    |> Arb.fromGen

/// One operation on the real state machine: the new state and what it answered, as data.
let private apply (s: FutureState) (op: FutureOp) =
    match op with
    | AddCallback id ->
        let s', now = FutureState.addCallback id s
        s', sprintf "schedule %A" now
    | RemoveCallback id ->
        let s', n = FutureState.removeCallback id s
        s', sprintf "removed %d" n
    | Complete o ->
        match FutureState.complete o s with
        | Ok(s', cbs) -> s', sprintf "schedule %A" cbs
        | Error r -> s, sprintf "rejected %A" r
    | CancelFuture m ->
        let ok, s', cbs = FutureState.cancel m s
        s', sprintf "%b, schedule %A" ok cbs

let finishedIsFinal =
    testPropertyWithConfig config "a finished future never changes again (set is InvalidState, cancel is false)"
    <| Prop.forAll ops (fun ops ->
        ops
        |> List.fold
            (fun s op ->
                match s with
                | Pending _ -> fst (apply s op)
                | Done _ ->
                    let s', answer = apply s op

                    if s' <> s then
                        failtestf "%A changed the done future %A into %A" op s s'

                    let expected =
                        match op with
                        | AddCallback id -> sprintf "schedule %A" [ id ]
                        | RemoveCallback _ -> "removed 0"
                        | Complete _ -> sprintf "rejected %A" (InvalidState "invalid state")
                        | CancelFuture _ -> sprintf "false, schedule %A" ([]: HandleId list)

                    if answer <> expected then
                        failtestf "%A on the done future %A answered %s, expected %s" op s answer expected

                    s')
            FutureState.pending
        |> ignore)

let callbacksInRegistrationOrder =
    testPropertyWithConfig
        config
        "completion schedules the registered callbacks in registration order, minus the removed ones; remove counts them"
    <| Prop.forAll ops (fun ops ->
        ops
        |> List.fold
            (fun (s, model: HandleId list, isDone) op ->
                if isDone then
                    s, model, true
                else
                    match op with
                    | AddCallback id ->
                        let s', now = FutureState.addCallback id s

                        if not (List.isEmpty now) then
                            failtestf "a pending future scheduled %A at once" now

                        s', model @ [ id ], false
                    | RemoveCallback id ->
                        let s', n = FutureState.removeCallback id s
                        let kept = List.filter (fun x -> x <> id) model

                        if n <> List.length model - List.length kept then
                            failtestf "remove %d counted %d, model %A" id n model

                        s', kept, false
                    | Complete o ->
                        match FutureState.complete o s with
                        | Ok(s', cbs) ->
                            if cbs <> model then
                                failtestf "complete scheduled %A, model %A" cbs model

                            if s' <> Done o then
                                failtestf "complete gave %A" s'

                            s', [], true
                        | Error r -> failtestf "complete of a pending future rejected: %A" r
                    | CancelFuture m ->
                        let ok, s', cbs = FutureState.cancel m s

                        if not ok || cbs <> model then
                            failtestf "cancel gave %b, %A, model %A" ok cbs model

                        if s' <> Done(Cancelled m) then
                            failtestf "cancel gave %A" s'

                        s', [], true)
            (FutureState.pending, [], false)
        |> ignore)

/// The C# face hands out what the pure functions answer: the same callbacks in the same order (as
/// CallbackIds: inline for none or one, an array for more), the same states, the same rejections.
let interopAgrees =
    testPropertyWithConfig config "FutureCore (the C# face) answers as FutureState: callbacks, order, states"
    <| Prop.forAll ops (fun ops ->
        let idsOf (c: Tulip.Core.Interop.CallbackIds) =
            let viaIndex = List.init c.Count (fun i -> c[i])

            if Array.toList (c.ToArray()) <> viaIndex then
                failtestf "ToArray %A differs from the indexer %A" (c.ToArray()) viaIndex

            viaIndex

        let check (s: FutureState) =
            if Array.toList (Tulip.Core.Interop.FutureCore.Callbacks s) <> FutureState.callbacks s then
                failtestf "Callbacks differ on %A" s

            for faulted in [ false; true ] do
                let expected = FutureState.complete (if faulted then Faulted else Succeeded) s

                let actual =
                    try
                        let mutable ids = Unchecked.defaultof<Tulip.Core.Interop.CallbackIds>
                        let s' = Tulip.Core.Interop.FutureCore.Complete(s, faulted, &ids)
                        Ok (s', idsOf ids)
                    with :? Tulip.Core.Interop.RejectedInputException as e ->
                        Error e.Rejection

                if actual <> expected then
                    failtestf "Complete(%b) on %A: %A, expected %A" faulted s actual expected

            for m in [ None; Some "m" ] do
                let ok, s', cbs = FutureState.cancel m s
                let mutable next = s
                let mutable ids = Unchecked.defaultof<Tulip.Core.Interop.CallbackIds>
                let ok2 = Tulip.Core.Interop.FutureCore.Cancel(s, Option.toObj m, &next, &ids)

                if (ok2, next, idsOf ids) <> (ok, s', cbs) then
                    failtestf "Cancel(%A) on %A: %A, expected %A" m s (ok2, next, idsOf ids) (ok, s', cbs)

        ops
        |> List.fold
            (fun s op ->
                check s
                fst (apply s op))
            FutureState.pending
        |> check)

[<Tests>]
let tests =
    testList "FutureState laws" [ finishedIsFinal; callbacksInRegistrationOrder; interopAgrees ]
