namespace Tulip.Core

/// One scheduled timer: fires at `Deadline`; `Seq` (the core's insertion counter) breaks ties, so timers
/// with equal deadlines fire in the order they were scheduled.
/// (CPython 3.11 keeps them in a heapq keyed by the deadline alone, which is not stable: twenty call_at
/// with one deadline fire there as 0, 2, 6, 14, 13, … — see tests. Tulip pins FIFO, as libuv does with
/// its start_id.)
[<Struct>]
type TimerEntry =
    { Deadline: int64
      Seq: int64
      Id: HandleId }

/// A persistent pairing heap ordered by (Deadline, Seq). Insert O(1), find-min O(1), delete-min
/// O(log n) amortised; the pairing passes are loops, so 100 000 children never overflow the stack.
type internal Heap =
    | Empty
    | Node of TimerEntry * Heap list

[<RequireQualifiedAccess>]
module internal Heap =
    let inline before (a: TimerEntry) (b: TimerEntry) =
        a.Deadline < b.Deadline || (a.Deadline = b.Deadline && a.Seq < b.Seq)

    let merge (a: Heap) (b: Heap) =
        match a, b with
        | Empty, h
        | h, Empty -> h
        | Node (x, xs), Node (y, ys) -> if before x y then Node (x, b :: xs) else Node (y, a :: ys)

    /// The classic two-pass pairing, written as two loops: pair left to right, then fold right to left.
    let mergePairs (hs: Heap list) =
        let rec pairUp acc hs =
            match hs with
            | [] -> acc
            | [ h ] -> h :: acc
            | a :: b :: rest -> pairUp (merge a b :: acc) rest

        List.fold (fun acc h -> merge h acc) Empty (pairUp [] hs)

/// The timer queue: a heap of entries plus how many of them are cancelled (cancellation is lazy, as in
/// CPython: the entry stays until it reaches the head or the queue is compacted).
///
/// Invariants: `Count` = entries in `Heap`; 0 <= `CancelledCount` <= `Count`.
type TimerQueue =
    internal
        { Heap: Heap
          Count: int
          CancelledCount: int }

[<RequireQualifiedAccess>]
module TimerQueue =
    /// CPython's `_MIN_SCHEDULED_TIMER_HANDLES`: below this many timers the queue is never compacted.
    [<Literal>]
    let MinCompactSize = 100

    let empty: TimerQueue =
        { Heap = Empty
          Count = 0
          CancelledCount = 0 }

    let isEmpty (q: TimerQueue) = q.Count = 0

    let count (q: TimerQueue) = q.Count

    let cancelledCount (q: TimerQueue) = q.CancelledCount

    let add (e: TimerEntry) (q: TimerQueue) =
        { q with
            Heap = Heap.merge (Node (e, [])) q.Heap
            Count = q.Count + 1 }

    let tryPeek (q: TimerQueue) : TimerEntry voption =
        match q.Heap with
        | Empty -> ValueNone
        | Node (e, _) -> ValueSome e

    /// Removes the head. `wasCancelled` says whether the caller knows it as cancelled (it keeps the count).
    let pop (wasCancelled: bool) (q: TimerQueue) : TimerQueue =
        match q.Heap with
        | Empty -> q
        | Node (_, children) ->
            { Heap = Heap.mergePairs children
              Count = q.Count - 1
              CancelledCount = if wasCancelled then q.CancelledCount - 1 else q.CancelledCount }

    /// Records that one entry still in the queue has been cancelled.
    let noteCancelled (q: TimerQueue) =
        { q with CancelledCount = q.CancelledCount + 1 }

    /// Every entry in (Deadline, Seq) order. O(n log n); for tests, invariants and compaction.
    let toList (q: TimerQueue) : TimerEntry list =
        let rec go acc h =
            match h with
            | Empty -> List.rev acc
            | Node (e, cs) -> go (e :: acc) (Heap.mergePairs cs)

        go [] q.Heap

    /// CPython's rule: compact when more than MinCompactSize timers are queued and more than half of
    /// them are cancelled.
    let needsCompaction (q: TimerQueue) =
        q.Count > MinCompactSize && q.CancelledCount * 2 > q.Count

    /// Rebuilds the queue without the entries `isCancelled` names; returns the dropped ids too.
    let compact (isCancelled: HandleId -> bool) (q: TimerQueue) : TimerQueue * HandleId list =
        let keep, drop = toList q |> List.partition (fun e -> not (isCancelled e.Id))

        let heap = keep |> List.fold (fun h e -> Heap.merge (Node (e, [])) h) Empty

        { Heap = heap
          Count = List.length keep
          CancelledCount = 0 },
        drop |> List.map (fun e -> e.Id)
