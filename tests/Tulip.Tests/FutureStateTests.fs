module Tulip.Tests.FutureStateTests

open Expecto
open Tulip.Core

let private withCallbacks (ids: HandleId list) =
    ids
    |> List.fold (fun s id -> FutureState.addCallback id s |> fst) FutureState.pending

let private okOrFail r =
    match r with
    | Ok v -> v
    | Error e -> failtestf "rejected: %A" e

// CPython 3.11 futures.py, checked with python3 (set twice -> InvalidStateError('invalid state'),
// cancel of a done future -> False, remove_done_callback of a twice-added callback -> 2).
[<Tests>]
let tests =
    testList
        "FutureState (asyncio.Future, 3.11)"
        [
            testCase "set_result returns the done-callbacks in registration order, to be scheduled"
            <| fun () ->
                let s, cbs = withCallbacks [ 3L; 1L; 2L ] |> FutureState.setResult |> okOrFail
                Expect.equal s (Done Succeeded) "done"
                Expect.equal cbs [ 3L; 1L; 2L ] "registration order"
                Expect.isEmpty (FutureState.callbacks s) "a done future keeps no callbacks"

            testCase "set_exception likewise"
            <| fun () ->
                let s, cbs = withCallbacks [ 1L ] |> FutureState.setException |> okOrFail
                Expect.equal s (Done Faulted) "faulted"
                Expect.equal cbs [ 1L ] "scheduled"

            testCase "set twice: InvalidState \"invalid state\", whatever the first outcome"
            <| fun () ->
                for first in [ Succeeded; Faulted; Cancelled None; Cancelled(Some "m") ] do
                    for second in [ Succeeded; Faulted ] do
                        Expect.equal
                            (FutureState.complete second (Done first))
                            (Error(InvalidState "invalid state"))
                            (sprintf "%A then %A" first second)

            testCase "cancel of a pending future: true, cancelled with the message, callbacks to schedule"
            <| fun () ->
                let accepted, s, cbs = withCallbacks [ 1L; 2L ] |> FutureState.cancel (Some "why")
                Expect.isTrue accepted "cancel() returns True"
                Expect.equal s (Done(Cancelled(Some "why"))) "cancelled with its message"
                Expect.isTrue (FutureState.isCancelled s) "cancelled()"
                Expect.equal cbs [ 1L; 2L ] "registration order"

            testCase "cancel of a done future returns false and changes nothing"
            <| fun () ->
                for done' in [ Done Succeeded; Done Faulted; Done(Cancelled(Some "first")) ] do
                    let accepted, s, cbs = FutureState.cancel (Some "second") done'
                    Expect.isFalse accepted "cancel() returns False"
                    Expect.equal s done' "unchanged"
                    Expect.isEmpty cbs "nothing scheduled"

            testCase
                "add_done_callback on a done future returns it to be scheduled at once (call_soon), state unchanged"
            <| fun () ->
                let s, now = FutureState.addCallback 9L (Done Succeeded)
                Expect.equal s (Done Succeeded) "unchanged"
                Expect.equal now [ 9L ] "schedule now"

            testCase "remove_done_callback counts every registration it removes and keeps the others' order"
            <| fun () ->
                let s, n = withCallbacks [ 1L; 2L; 1L; 3L; 1L ] |> FutureState.removeCallback 1L
                Expect.equal n 3 "three registrations"
                Expect.equal (FutureState.callbacks s) [ 2L; 3L ] "the others, in order"
                let s', n' = FutureState.removeCallback 42L s
                Expect.equal n' 0 "absent: 0"
                Expect.equal s' s "absent: unchanged"

            testCase "remove_done_callback on a done future removes nothing (its callbacks were scheduled)"
            <| fun () ->
                let s, n = FutureState.removeCallback 1L (Done Succeeded)
                Expect.equal n 0 "0"
                Expect.equal s (Done Succeeded) "unchanged"

            testCase "result() per state"
            <| fun () ->
                Expect.equal (FutureState.resultAccess FutureState.pending) FutureState.NotReady "pending"
                Expect.equal (FutureState.resultAccess (Done Succeeded)) FutureState.ReturnValue "result"
                Expect.equal (FutureState.resultAccess (Done Faulted)) FutureState.RaiseStored "exception"

                Expect.equal
                    (FutureState.resultAccess (Done(Cancelled(Some "m"))))
                    (FutureState.RaiseCancelled(Some "m"))
                    "cancelled"
        ]
