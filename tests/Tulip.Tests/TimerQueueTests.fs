module Tulip.Tests.TimerQueueTests

open Expecto
open Tulip.Core

let private entry (deadline: int64) (seq: int64) (id: HandleId) : TimerEntry =
    {
        Deadline = deadline
        Seq = seq
        Id = id
    }

let private ofList (entries: TimerEntry list) =
    entries |> List.fold (fun q e -> TimerQueue.add e q) TimerQueue.empty

let rec private popAll (q: TimerQueue) =
    match TimerQueue.tryPeek q with
    | ValueSome e -> e :: popAll (TimerQueue.pop false q)
    | ValueNone -> []

[<Tests>]
let tests =
    testList
        "TimerQueue"
        [
            testCase "entries leave in (deadline, seq) order whatever the insertion order"
            <| fun () ->
                let es =
                    [
                        entry 30L 0L 1L
                        entry 10L 1L 2L
                        entry 20L 2L 3L
                        entry 10L 3L 4L
                        entry 30L 4L 5L
                    ]

                let q = ofList (List.rev es)
                Expect.equal (popAll q |> List.map (fun e -> e.Id)) [ 2L; 4L; 3L; 1L; 5L ] "popped"
                Expect.equal (TimerQueue.toList q) (popAll q) "toList agrees with popping"

            testCase "equal deadlines: the lower seq first (FIFO, as libuv's start_id; CPython's heapq is not stable)"
            <| fun () ->
                // Inserted in a scrambled order: only Seq may decide.
                let seqs =
                    [
                        7L
                        0L
                        19L
                        3L
                        12L
                        1L
                        18L
                        5L
                        9L
                        2L
                        16L
                        4L
                        11L
                        6L
                        15L
                        8L
                        14L
                        10L
                        17L
                        13L
                    ]

                let q = ofList [ for s in seqs -> entry 100L s (1000L + s) ]
                Expect.equal (popAll q |> List.map (fun e -> e.Seq)) [ 0L .. 19L ] "seq order"

            testCase "peek and pop on an empty queue"
            <| fun () ->
                Expect.equal (TimerQueue.tryPeek TimerQueue.empty) ValueNone "nothing to peek"
                Expect.isTrue (TimerQueue.isEmpty (TimerQueue.pop false TimerQueue.empty)) "pop of empty is empty"

            testCase "noteCancelled counts; popping a cancelled head uncounts"
            <| fun () ->
                let q = ofList [ entry 1L 0L 1L; entry 2L 1L 2L ] |> TimerQueue.noteCancelled
                Expect.equal (TimerQueue.cancelledCount q) 1 "one cancelled"
                let q = TimerQueue.pop true q
                Expect.equal (TimerQueue.cancelledCount q) 0 "uncounted"
                Expect.equal (TimerQueue.count q) 1 "one left"

            testCase "needsCompaction: more than 100 timers and more than half cancelled (CPython's 100 / 0.5)"
            <| fun () ->
                let withCancelled n c =
                    let q = ofList [ for i in 0L .. int64 n - 1L -> entry i i i ]
                    List.fold (fun q _ -> TimerQueue.noteCancelled q) q [ 1..c ]

                Expect.isTrue (TimerQueue.needsCompaction (withCancelled 101 51)) "101 / 51"
                Expect.isFalse (TimerQueue.needsCompaction (withCancelled 101 50)) "101 / 50"
                Expect.isFalse (TimerQueue.needsCompaction (withCancelled 102 51)) "102 / 51: exactly half"
                Expect.isFalse (TimerQueue.needsCompaction (withCancelled 100 100)) "100 / 100: too few"

            testCase "compact drops the named entries, keeps the order and resets the count"
            <| fun () ->
                let q = ofList [ for i in 0L .. 9L -> entry (i % 3L) i i ]
                let q = List.fold (fun q _ -> TimerQueue.noteCancelled q) q [ 1..4 ]
                let q', dropped = TimerQueue.compact (fun id -> id % 2L = 1L) q
                Expect.equal (List.sort dropped) [ 1L; 3L; 5L; 7L; 9L ] "dropped"
                Expect.equal (TimerQueue.toList q' |> List.map (fun e -> e.Id)) [ 0L; 6L; 4L; 2L; 8L ] "kept, in order"
                Expect.equal (TimerQueue.count q') 5 "count"
                Expect.equal (TimerQueue.cancelledCount q') 0 "no cancelled left"

            testCase "100 000 timers with one deadline pop in seq order without overflowing the stack"
            <| fun () ->
                let n = 100_000

                let q =
                    [ 0L .. int64 n - 1L ]
                    |> List.fold (fun q i -> TimerQueue.add (entry 5L i i) q) TimerQueue.empty

                let rec drain (q: TimerQueue) expected =
                    match TimerQueue.tryPeek q with
                    | ValueSome e ->
                        if e.Seq <> expected then
                            failtestf "popped seq %d, expected %d" e.Seq expected

                        drain (TimerQueue.pop false q) (expected + 1L)
                    | ValueNone -> expected

                Expect.equal (drain q 0L) (int64 n) "all popped in order"
        ]
