module Tulip.Tests.ReadyQueueTests

open Expecto
open Tulip.Core

[<Tests>]
let tests =
    testList
        "ReadyQueue"
        [
            testCase "ids leave in the order they came, single and batched (call_soon is FIFO)"
            <| fun () ->
                let q =
                    ReadyQueue.empty
                    |> ReadyQueue.enqueue 1L
                    |> ReadyQueue.enqueueMany [| 2L; 3L |]
                    |> ReadyQueue.enqueue 4L
                    |> ReadyQueue.enqueueMany [||]
                    |> ReadyQueue.enqueueMany [| 5L |]

                Expect.equal (ReadyQueue.count q) 5 "count"
                Expect.equal (ReadyQueue.toList q) [ 1L .. 5L ] "toList"
                let ids, rest = ReadyQueue.drain q
                Expect.equal ids [| 1L .. 5L |] "drain"
                Expect.isTrue (ReadyQueue.isEmpty rest) "drained"

            testCase "draining an empty queue gives nothing"
            <| fun () ->
                let ids, rest = ReadyQueue.drain ReadyQueue.empty
                Expect.isEmpty ids "no ids"
                Expect.isTrue (ReadyQueue.isEmpty rest) "still empty"

            testCase "an empty batch is not a chunk (the count stays right)"
            <| fun () ->
                let q = ReadyQueue.empty |> ReadyQueue.enqueueMany [||]
                Expect.isTrue (ReadyQueue.isEmpty q) "empty"
                Expect.equal (ReadyQueue.toList q) [] "nothing inside"

            testCase "filter keeps order"
            <| fun () ->
                let q =
                    ReadyQueue.empty
                    |> ReadyQueue.enqueueMany [| 1L .. 6L |]
                    |> ReadyQueue.enqueue 7L
                    |> ReadyQueue.filter (fun id -> id % 2L = 1L)

                Expect.equal (ReadyQueue.toList q) [ 1L; 3L; 5L; 7L ] "odd ids in order"
                Expect.equal (ReadyQueue.count q) 4 "count follows"

            testCase "the queue is persistent: older versions are unchanged"
            <| fun () ->
                let q1 = ReadyQueue.empty |> ReadyQueue.enqueue 1L
                let q2 = q1 |> ReadyQueue.enqueue 2L
                let _ = ReadyQueue.drain q2
                Expect.equal (ReadyQueue.toList q1) [ 1L ] "q1"
                Expect.equal (ReadyQueue.toList q2) [ 1L; 2L ] "q2"
        ]
