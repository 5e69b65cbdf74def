module Tulip.PropertyTests.ReadyQueueProperties

open Expecto
open FsCheck
open FsCheck.FSharp
open Tulip.Core
open Tulip.PropertyTests.LoopProperties

// Model-based: the ready queue against a plain list (FIFO).

type ReadyOp =
    | Enqueue of HandleId
    | EnqueueMany of HandleId list
    | Drain
    /// Keep the ids not divisible by this (2..4).
    | FilterOut of modulus: int64

let private ops =
    let id = Gen.choose64 (0L, 100L)

    Gen.frequency
        [
            8, id |> Gen.map Enqueue
            4, Gen.listOf id |> Gen.map EnqueueMany
            2, Gen.constant Drain
            1, Gen.choose64 (2L, 4L) |> Gen.map FilterOut
        ]
    |> Gen.listOf
    |> Arb.fromGen

let readyQueueIsFifo =
    testPropertyWithConfig config "the ready queue behaves like a FIFO list"
    <| Prop.forAll ops (fun ops ->
        ops
        |> List.fold
            (fun (q: ReadyQueue, model: HandleId list) op ->
                let q, model =
                    match op with
                    | Enqueue id -> ReadyQueue.enqueue id q, model @ [ id ]
                    | EnqueueMany ids -> ReadyQueue.enqueueMany (Array.ofList ids) q, model @ ids
                    | Drain ->
                        let ids, q' = ReadyQueue.drain q

                        if List.ofArray ids <> model then
                            failtestf "drain gave %A, model %A" ids model

                        q', []
                    | FilterOut m ->
                        let keep id = id % m <> 0L
                        ReadyQueue.filter keep q, List.filter keep model

                if ReadyQueue.toList q <> model then
                    failtestf "after %A: %A, model %A" op (ReadyQueue.toList q) model

                if
                    ReadyQueue.count q <> List.length model
                    || ReadyQueue.isEmpty q <> List.isEmpty model
                then
                    failtestf "after %A: count %d, model %d" op (ReadyQueue.count q) (List.length model)

                q, model)
            (ReadyQueue.empty, [])
        |> ignore)

[<Tests>]
let tests = testList "ReadyQueue laws" [ readyQueueIsFifo ]
