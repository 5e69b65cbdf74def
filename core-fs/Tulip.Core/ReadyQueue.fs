namespace Tulip.Core

/// The ready queue: handle ids in FIFO order. Persistent, and shaped for the batch rule of the tick:
/// ids arrive in chunks (one array per batch the shell hands over) and leave all at once (`drain`), so
/// a tick costs one allocation per chunk, not one per id.
///
/// Invariant: `Count` is the total length of `Chunks`; `Chunks` holds the newest chunk first; no chunk
/// is empty. Arrays handed to `enqueueMany` belong to the queue from then on (never mutated after).
type ReadyQueue =
    private
        { Chunks: HandleId array list
          Count: int }

[<RequireQualifiedAccess>]
module ReadyQueue =
    let empty: ReadyQueue = { Chunks = []; Count = 0 }

    let isEmpty (q: ReadyQueue) = q.Count = 0

    let count (q: ReadyQueue) = q.Count

    let enqueue (id: HandleId) (q: ReadyQueue) =
        { Chunks = [| id |] :: q.Chunks
          Count = q.Count + 1 }

    /// Appends a batch, in its order. The queue keeps the array: the caller must not change it again.
    let enqueueMany (ids: HandleId array) (q: ReadyQueue) =
        if ids.Length = 0 then
            q
        else
            { Chunks = ids :: q.Chunks
              Count = q.Count + ids.Length }

    /// Every id, oldest first, and the empty queue. A single chunk is returned as it is (no copy).
    let drain (q: ReadyQueue) : HandleId array * ReadyQueue =
        match q.Chunks with
        | [] -> [||], empty
        | [ only ] -> only, empty
        | chunks -> Array.concat (List.rev chunks), empty

    let toList (q: ReadyQueue) : HandleId list =
        q.Chunks |> List.rev |> List.collect List.ofArray

    /// Keeps the ids for which `keep` holds, in order (used when compacting away cancelled handles).
    let filter (keep: HandleId -> bool) (q: ReadyQueue) =
        let ids, _ = drain q
        enqueueMany (Array.filter keep ids) empty
