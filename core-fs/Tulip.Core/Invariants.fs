namespace Tulip.Core

/// The state invariants of LoopState, checked after every input by the properties. Each broken
/// invariant is reported as a sentence; an empty list means the state is sound.
[<RequireQualifiedAccess>]
module Invariants =
    let rec private heapOrdered (h: Heap) =
        match h with
        | Empty -> true
        | Node (e, children) ->
            children
            |> List.forall (fun c ->
                match c with
                | Empty -> false // a pairing heap never stores an empty child
                | Node (ce, _) -> not (Heap.before ce e) && heapOrdered c)

    let rec private heapSize (h: Heap) =
        match h with
        | Empty -> 0
        | Node (_, cs) -> 1 + List.sumBy heapSize cs

    let check (s: LoopState) : string list =
        let timers = TimerQueue.toList s.Timers
        let timerIds = timers |> List.map (fun e -> e.Id)
        let ready = ReadyQueue.toList s.Ready

        let batch =
            match s.Phase with
            | RunningBatch b -> List.ofArray b
            | _ -> []

        let queued = timerIds @ ready @ batch
        let queuedSet = Set.ofList queued

        [ if heapSize s.Timers.Heap <> s.Timers.Count then
              "timer count differs from the heap's size"
          if not (heapOrdered s.Timers.Heap) then
              "timer heap is out of (deadline, seq) order"
          if ReadyQueue.count s.Ready <> List.length ready then
              "ready count differs from its contents"
          if Set.count queuedSet <> List.length queued then
              "a handle id is queued twice"
          if not (Set.isSubset s.Cancelled queuedSet) then
              "a cancelled id is not queued anywhere"
          let cancelledTimers = timerIds |> List.filter (fun id -> Set.contains id s.Cancelled) |> List.length

          if cancelledTimers <> TimerQueue.cancelledCount s.Timers then
              sprintf
                  "cancelled timer count %d, but %d timers are cancelled"
                  (TimerQueue.cancelledCount s.Timers)
                  cancelledTimers
          let seqs = timers |> List.map (fun e -> e.Seq)

          if List.length (List.distinct seqs) <> List.length seqs then
              "two timers share a sequence number"
          if seqs |> List.exists (fun q -> q >= s.NextSeq) then
              "a timer's sequence number is not below NextSeq"
          let watchIds =
              s.Watched
              |> Map.toList
              |> List.collect (fun (_, w) -> List.choose ValueOption.toOption [ w.Read; w.Write ])

          if s.Watched |> Map.exists (fun _ w -> w.Read.IsNone && w.Write.IsNone) then
              "a watch names no handle"
          if List.length (List.distinct watchIds) <> List.length watchIds then
              "a handle is named by two watches"
          if watchIds |> List.exists (fun id -> List.contains id (timerIds @ ready)) then
              "a watched handle is also queued as a callback or timer"
          if s.Closed then
              if not (Map.isEmpty s.Watched) then "a closed loop still watches sources"
              if s.Phase <> Idle then "a closed loop is running"
              if not (List.isEmpty queued) then "a closed loop still holds handles"
              if not (Set.isEmpty s.Cancelled) then "a closed loop still remembers cancellations" ]
