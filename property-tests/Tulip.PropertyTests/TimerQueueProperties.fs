module Tulip.PropertyTests.TimerQueueProperties

open Expecto
open FsCheck
open FsCheck.FSharp
open Tulip.Core
open Tulip.PropertyTests.LoopProperties

// Model-based: the timer queue against a sorted list of (entry, cancelled) — the simplest thing that
// could be the specification.

type TimerOp =
    /// Add an entry with this deadline (few distinct deadlines: ties are the point) and the next seq.
    | Add of deadline: int64
    | Pop
    /// Mark the k-th (mod n) uncancelled entry cancelled (noteCancelled).
    | CancelNth of k: int
    | Compact

let private ops =
    Gen.frequency
        [
            10, Gen.choose64 (0L, 6L) |> Gen.map Add
            4, Gen.constant Pop
            4, Gen.choose (0, 1000) |> Gen.map CancelNth
            1, Gen.constant Compact
        ]
    |> Gen.listOf
    |> Arb.fromGen

type private Model = (TimerEntry * bool) list // sorted by (Deadline, Seq)

let private insert (e: TimerEntry) (m: Model) : Model =
    List.sortBy (fun (x: TimerEntry, _) -> x.Deadline, x.Seq) ((e, false) :: m)

let timerQueueIsASortedList =
    testPropertyWithConfig config "the timer queue behaves like a list sorted by (deadline, seq)"
    <| Prop.forAll ops (fun ops ->
        let check (q: TimerQueue) (m: Model) (op: TimerOp) =
            let entries = List.map fst m
            let cancelled = m |> List.filter snd |> List.length

            if TimerQueue.toList q <> entries then
                failtestf "after %A: toList %A, model %A" op (TimerQueue.toList q) entries

            if
                TimerQueue.tryPeek q
                <> (match entries with
                    | e :: _ -> ValueSome e
                    | [] -> ValueNone)
            then
                failtestf "after %A: head %A, model %A" op (TimerQueue.tryPeek q) (List.tryHead entries)

            if TimerQueue.count q <> List.length m || TimerQueue.isEmpty q <> List.isEmpty m then
                failtestf "after %A: count %d, model %d" op (TimerQueue.count q) (List.length m)

            if TimerQueue.cancelledCount q <> cancelled then
                failtestf "after %A: cancelled %d, model %d" op (TimerQueue.cancelledCount q) cancelled

            let rule = List.length m > 100 && 2 * cancelled > List.length m

            if TimerQueue.needsCompaction q <> rule then
                failtestf "after %A: needsCompaction %b, rule %b" op (TimerQueue.needsCompaction q) rule

        ops
        |> List.fold
            (fun (q: TimerQueue, m: Model, seq: int64) op ->
                let q, m, seq =
                    match op with
                    | Add d ->
                        let e =
                            {
                                Deadline = d
                                Seq = seq
                                Id = 1000L + seq
                            }

                        TimerQueue.add e q, insert e m, seq + 1L
                    | Pop ->
                        match m with
                        | (_, wasCancelled) :: rest -> TimerQueue.pop wasCancelled q, rest, seq
                        | [] -> TimerQueue.pop false q, m, seq
                    | CancelNth k ->
                        let live = m |> List.indexed |> List.filter (fun (_, (_, c)) -> not c)

                        match live with
                        | [] -> q, m, seq
                        | _ ->
                            let i, _ = List.item (k % List.length live) live
                            TimerQueue.noteCancelled q, m |> List.mapi (fun j (e, c) -> e, c || j = i), seq
                    | Compact ->
                        let cancelledIds = m |> List.filter snd |> List.map (fun (e, _) -> e.Id) |> set
                        let q', dropped = TimerQueue.compact cancelledIds.Contains q

                        if set dropped <> cancelledIds || List.length dropped <> Set.count cancelledIds then
                            failtestf "compact dropped %A, expected %A" dropped cancelledIds

                        q', List.filter (snd >> not) m, seq

                check q m op
                q, m, seq)
            (TimerQueue.empty, [], 0L)
        |> ignore)

let popOrder =
    let entries =
        Gen.zip (Gen.choose64 (0L, 5L)) (Gen.choose (0, 1_000_000))
        |> Gen.listOf
        |> Arb.fromGen

    testPropertyWithConfig config "popping yields (deadline, seq) order, whatever the insertion order"
    <| Prop.forAll entries (fun pairs ->
        // seqs are distinct and handed out in a scrambled order, as happens when timers are merged
        let es =
            pairs
            |> List.mapi (fun i (d, salt) -> d, (int64 salt * 1024L) + int64 i)
            |> List.map (fun (d, s) -> { Deadline = d; Seq = s; Id = s })

        let q = es |> List.fold (fun q e -> TimerQueue.add e q) TimerQueue.empty

        let rec popAll (q: TimerQueue) acc =
            match TimerQueue.tryPeek q with
            | ValueSome e -> popAll (TimerQueue.pop false q) (e :: acc)
            | ValueNone -> List.rev acc

        let popped = popAll q []
        let expected = es |> List.sortBy (fun e -> e.Deadline, e.Seq)

        if popped <> expected then
            failtestf "popped %A, expected %A" popped expected)

[<Tests>]
let tests = testList "TimerQueue laws" [ timerQueueIsASortedList; popOrder ]
