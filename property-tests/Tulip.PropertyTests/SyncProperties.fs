/// Cancel-safety of the synchronisation primitives (issue 5): schedules of acquirers, putters, getters
/// and waiters, each starting at a generated time and cancelled (or not) at another, run on a
/// virtual-time loop, and are checked against a simple model: the lock is never held by two (nor a
/// semaphore by more than its value), no item is lost or duplicated and items come out in FIFO order,
/// no wake-up is lost (a waiter cancelled after it was woken passes its turn on), and waiters that are
/// never cancelled are served first come, first served. Each cancellation comes either as a task cancel
/// or through a CancellationToken passed to the operation (issue 14.1: the same laws hold, and a wait
/// cancelled through a token fails with a CancelledException carrying that token).
module Tulip.PropertyTests.SyncProperties

open System
open System.Collections.Generic
open System.Threading
open System.Threading.Tasks
open Expecto
open FsCheck
open FsCheck.FSharp
open Tulip
open Tulip.Testing
open Tulip.PropertyTests.LoopProperties

/// One actor of a schedule: starts at `Start` (ms of loop time), is cancelled at `CancelAt` if any —
/// (ms, then so many ticks later) — and holds what it took for `Hold` ms. The extra ticks let a
/// cancellation land anywhere: before the call, while waiting, between the wake-up and the waiter's
/// resumption (the window where a wake-up is lost if it is not passed on), or after.
type Actor = { Start: int; CancelAt: (int * int) option; Hold: int; ViaToken: bool }

let private ms (n: int) = float n / 1000.0

let private actor maxStart =
    gen {
        let! start = Gen.choose (0, maxStart)
        let! cancel = Gen.optionOf (Gen.zip (Gen.choose (0, maxStart + 6)) (Gen.choose (0, 3)))
        let! hold = Gen.choose (0, 2)
        let! viaToken = Gen.elements [ false; true ]
        return { Start = start; CancelAt = cancel; Hold = hold; ViaToken = viaToken }
    }

let private actors maxStart =
    gen {
        let! n = Gen.choose (1, 8)
        return! Gen.listOfLength n (actor maxStart)
    }

let private show (xs: 'a list) = xs |> List.mapi (sprintf "  %d: %A") |> String.concat "\n"

/// Runs `main` on a fresh virtual-time loop (it never sleeps).
let private run (main: EventLoop -> Task<'T>) : 'T =
    use loop = TestLoop.Create()
    loop.RunUntilComplete(Func<Task<'T>>(fun () -> main loop))

/// Waits (in loop time) until every task is done or a long quiet time has passed; returns the pending ones.
let private settle (tasks: Future list) =
    task {
        if List.isEmpty tasks then
            return []
        else
            let! struct (_, pending) = Asyncio.Wait(tasks, timeout = Nullable 10.0)
            return List.ofSeq pending
    }

/// Cancels `t` at `at` ms — the task, or through its token source when `cts` is given — noting first
/// (in `early`) whether it had not yet got what it waited for.
let private cancelAt (loop: EventLoop) (t: Future) (at: (int * int) option) (cts: CancellationTokenSource option) (beforeServed: unit -> bool) (early: bool ref) =
    let cancel () =
        if not t.Done then
            if beforeServed () then early.Value <- true

            match cts with
            | Some c -> c.Cancel()
            | None -> t.Cancel() |> ignore

    let rec later n () =
        if n = 0 then cancel () else loop.CallSoon(later (n - 1)) |> ignore

    match at with
    | Some(at, ticks) -> loop.CallLater(ms at, later ticks) |> ignore
    | None -> ()

/// The token an actor passes to its operation (None: default, cancelled as a task instead).
let private tokenSource (a: Actor) = if a.ViaToken then Some(new CancellationTokenSource()) else None

let private tokenOf (cts: CancellationTokenSource option) =
    match cts with
    | Some c -> c.Token
    | None -> CancellationToken.None

/// What a law records about token cancellations: the ones that came without their token, and whether
/// the law is cleaning up (cancelling the tasks still waiting: those cancels are the task's).
type private TokenLog = { Bad: List<string>; Cleaning: bool ref }

let private tokenLog () = { Bad = List<string>(); Cleaning = ref false }

/// Runs an operation with an actor's token: a failure that is a cancellation through the token must
/// carry it (recorded otherwise); the exception goes on either way.
let private withToken (log: TokenLog) (who: string) (cts: CancellationTokenSource option) (op: CancellationToken -> Task<'T>) =
    task {
        try
            return! op (tokenOf cts)
        with
        | :? OperationCanceledException as e when cts.IsSome && not log.Cleaning.Value ->
            match e with
            | :? CancelledException as ce when ce.CancellationToken = cts.Value.Token -> ()
            | _ -> log.Bad.Add(sprintf "%s: %s without its token" who (e.GetType().Name))

            return raise e
    }

/// The common shape of the lock and semaphore laws: `capacity` holders at most; never-cancelled
/// acquirers all get in, in the order they asked; nothing is left held or waiting.
let private holdersLaw (capacity: int) (acquire: CancellationToken -> ValueTask<bool>) (release: unit -> unit) (isFree: unit -> bool) (schedule: Actor list) =
    let holders = ref 0
    let maxHolders = ref 0
    let asked = List<int>()
    let entered = List<int>()
    let bad = tokenLog ()

    let pending, early =
        run (fun loop ->
            task {
                let early = schedule |> List.map (fun _ -> ref false)

                let tasks =
                    schedule
                    |> List.mapi (fun i a ->
                        let cts = tokenSource a

                        let t =
                            loop.CreateTask(
                                Func<Task>(fun () ->
                                    task {
                                        do! Asyncio.Sleep(ms a.Start)
                                        asked.Add i
                                        let! _ = withToken bad (string i) cts (fun ct -> (acquire ct).AsTask())
                                        entered.Add i
                                        holders.Value <- holders.Value + 1
                                        maxHolders.Value <- max maxHolders.Value holders.Value

                                        try
                                            do! Asyncio.Sleep(ms a.Hold)
                                        finally
                                            holders.Value <- holders.Value - 1
                                            release ()
                                    })
                            )

                        cancelAt loop t a.CancelAt cts (fun () -> not (entered.Contains i)) early[i]
                        t :> Future)

                let! pending = settle tasks
                return pending, early |> List.map (fun r -> r.Value)
            })

    let info () =
        sprintf "schedule:\n%s\nasked %A\nentered %A\nearly-cancelled %A" (show schedule) (List.ofSeq asked) (List.ofSeq entered) early

    if maxHolders.Value > capacity then failtestf "held by %d at once (capacity %d)\n%s" maxHolders.Value capacity (info ())
    if bad.Bad.Count > 0 then failtestf "token cancellations without their token: %A\n%s" (List.ofSeq bad.Bad) (info ())
    if not (List.isEmpty pending) then failtestf "%d tasks never finished: a wake-up was lost\n%s" pending.Length (info ())
    if not (isFree ()) then failtestf "left held at the end\n%s" (info ())

    // Acquirers never cancelled before they got in: all got in, in the order they asked.
    let neverCancelled = schedule |> List.mapi (fun i _ -> i) |> List.filter (fun i -> not early[i])
    let askedOrder = asked |> Seq.filter (fun i -> List.contains i neverCancelled) |> List.ofSeq
    let enteredOrder = entered |> Seq.filter (fun i -> List.contains i neverCancelled) |> List.ofSeq

    if List.sort enteredOrder <> List.sort neverCancelled then
        failtestf "a never-cancelled acquirer did not get in\n%s" (info ())

    if enteredOrder <> askedOrder then failtestf "not first come, first served\n%s" (info ())

let lockLaw =
    testPropertyWithConfig config "AsyncLock: never held by two; cancelled waiters pass their turn on; FIFO; no lost wake-up"
    <| Prop.forAll (Arb.fromGen (actors 6)) (fun schedule ->
        let lk = AsyncLock()
        holdersLaw 1 (fun ct -> lk.AcquireAsync ct) (fun () -> lk.Release()) (fun () -> not lk.Locked && lk.Waiters = 0) schedule)

let semaphoreLaw =
    testPropertyWithConfig config "AsyncSemaphore: at most value holders; a cancelled waiter gives its unit on; FIFO; no lost wake-up"
    <| Prop.forAll (Arb.fromGen (Gen.zip (Gen.choose (1, 3)) (actors 6))) (fun (value, schedule) ->
        let sem = AsyncSemaphore value
        holdersLaw value (fun ct -> sem.AcquireAsync ct) (fun () -> sem.Release()) (fun () -> sem.Value = value) schedule)

/// A queue schedule: putters (each putting its own item) and getters, all with cancellations.
type QueueSchedule = { MaxSize: int; Putters: Actor list; Getters: Actor list }

let private queueSchedules =
    gen {
        let! maxSize = Gen.choose (0, 3)
        let! putters = actors 6
        let! getters = actors 6
        return { MaxSize = maxSize; Putters = putters; Getters = getters }
    }

let queueLaw =
    testPropertyWithConfig config "AsyncQueue: no item lost or duplicated, FIFO order, no getter waits beside an item nor putter beside room"
    <| Prop.forAll (Arb.fromGen queueSchedules) (fun s ->
        let q = AsyncQueue<int>(s.MaxSize)
        let putDone = List<int>() // items whose Put returned, in the order they entered the queue
        let got = List<int>()
        let waitingGetters = ref 0
        let waitingPutters = ref 0
        let bad = tokenLog ()

        let pendingPutters, pendingGetters =
            run (fun loop ->
                task {
                    let never = ref false

                    let putters =
                        s.Putters
                        |> List.mapi (fun i a ->
                            let cts = tokenSource a

                            let t =
                                loop.CreateTask(
                                    Func<Task>(fun () ->
                                        task {
                                            do! Asyncio.Sleep(ms a.Start)
                                            // The item enters the queue inside Put, synchronously after any wait;
                                            // record it in queue order right after.
                                            do! withToken bad (sprintf "putter %d" i) cts (fun ct -> task { do! q.PutAsync(i, ct) })
                                            putDone.Add i
                                        })
                                )

                            cancelAt loop t a.CancelAt cts (fun () -> true) never
                            t :> Future)

                    let getters =
                        s.Getters
                        |> List.mapi (fun i a ->
                            let cts = tokenSource a

                            let t =
                                loop.CreateTask(
                                    Func<Task>(fun () ->
                                        task {
                                            do! Asyncio.Sleep(ms a.Start)
                                            let! v = withToken bad (sprintf "getter %d" i) cts (fun ct -> q.GetAsync(ct).AsTask())
                                            got.Add v
                                        })
                                )

                            cancelAt loop t a.CancelAt cts (fun () -> true) never
                            t :> Future)

                    let! _ = settle (putters @ getters)
                    let pp = putters |> List.filter (fun t -> not t.Done) |> List.length
                    let pg = getters |> List.filter (fun t -> not t.Done) |> List.length
                    // Release whoever still waits, so the loop ends clean.
                    bad.Cleaning.Value <- true
                    q.Shutdown(immediate = false)
                    let! _ = settle (putters @ getters)
                    return pp, pg
                })

        let remaining = [ while q.QSize > 0 do q.GetNowait() ]

        let info () =
            sprintf "maxsize %d\nputters:\n%s\ngetters:\n%s\nput %A\ngot %A\nleft %A" s.MaxSize (show s.Putters) (show s.Getters) (List.ofSeq putDone) (List.ofSeq got) remaining

        let gotL = List.ofSeq got
        if bad.Bad.Count > 0 then failtestf "token cancellations without their token: %A\n%s" (List.ofSeq bad.Bad) (info ())
        if List.distinct gotL <> gotL then failtestf "an item was got twice\n%s" (info ())
        // Every item put is either got or still in the queue, in the order it was put.
        if gotL @ remaining <> List.ofSeq putDone then failtestf "items lost, invented or out of order\n%s" (info ())
        if pendingGetters > 0 && not (List.isEmpty remaining) then failtestf "a getter waits while items are queued (lost wake-up)\n%s" (info ())
        if pendingPutters > 0 && not (s.MaxSize > 0 && remaining.Length >= s.MaxSize) then
            failtestf "a putter waits while there is room (lost wake-up)\n%s" (info ()))

/// An event schedule: waiters (at even ms), one Set at an odd time and maybe a Clear at a later odd time.
type EventSchedule = { Waiters: Actor list; SetAt: int; ClearAt: int option }

let private eventSchedules =
    gen {
        let! waiters = actors 6
        let! setAt = Gen.choose (0, 6)
        let! clearAt = Gen.optionOf (Gen.choose (setAt + 1, 8))
        let waiters = waiters |> List.map (fun a -> { a with Start = 2 * a.Start })
        return { Waiters = waiters; SetAt = 2 * setAt + 1; ClearAt = clearAt |> Option.map (fun c -> 2 * c + 1) }
    }

let eventLaw =
    testPropertyWithConfig config "AsyncEvent: every waiter not cancelled that waited before the Clear is woken; the others wait"
    <| Prop.forAll (Arb.fromGen eventSchedules) (fun s ->
        let ev = AsyncEvent()
        let bad = tokenLog ()

        let outcome =
            run (fun loop ->
                task {
                    loop.CallLater(ms s.SetAt, (fun () -> ev.Set())) |> ignore

                    match s.ClearAt with
                    | Some c -> loop.CallLater(ms c, (fun () -> ev.Clear())) |> ignore
                    | None -> ()

                    let tasks =
                        s.Waiters
                        |> List.map (fun a ->
                            let cts = tokenSource a

                            let t =
                                loop.CreateTask(
                                    Func<Task<bool>>(fun () ->
                                        task {
                                            do! Asyncio.Sleep(ms a.Start)
                                            return! withToken bad "waiter" cts (fun ct -> ev.WaitAsync(ct).AsTask())
                                        })
                                )

                            cancelAt loop t a.CancelAt cts (fun () -> true) (ref false)
                            t)

                    let! _ = settle [ for t in tasks -> t :> Future ]
                    let outcome = tasks |> List.map (fun t -> if t.Cancelled then None else Some t.Done)
                    bad.Cleaning.Value <- true
                    for t in tasks do t.Cancel() |> ignore
                    let! _ = settle [ for t in tasks -> t :> Future ]
                    return outcome
                })

        if bad.Bad.Count > 0 then failtestf "token cancellations without their token: %A" (List.ofSeq bad.Bad)

        List.zip s.Waiters outcome
        |> List.iteri (fun i (a, o) ->
            let expected = s.ClearAt |> Option.forall (fun c -> a.Start < c)

            match o with
            | None -> if a.CancelAt.IsNone then failtestf "waiter %d was cancelled without a request" i
            | Some isDone ->
                if isDone <> expected then
                    failtestf "waiter %d: done=%b, expected %b\n%A" i isDone expected s))

/// A condition schedule: waiters (even ms) and one Notify(k) at an odd time.
type ConditionSchedule = { CondWaiters: Actor list; NotifyAt: int; K: int }

let private conditionSchedules =
    gen {
        let! waiters = actors 6
        let! notifyAt = Gen.choose (0, 7)
        let! k = Gen.choose (1, 4)
        return { CondWaiters = waiters |> List.map (fun a -> { a with Start = 2 * a.Start }); NotifyAt = 2 * notifyAt + 1; K = k }
    }

let conditionLaw =
    testPropertyWithConfig config "Condition: Notify(k) wakes k waiters even when woken ones are cancelled (passed on); the lock is held by one"
    <| Prop.forAll (Arb.fromGen conditionSchedules) (fun s ->
        let cond = Condition()
        let holders = ref 0
        let maxHolders = ref 0
        let woken = List<int>()
        let bad = tokenLog ()

        let early =
            run (fun loop ->
                task {
                    let early = s.CondWaiters |> List.map (fun _ -> ref false)
                    let notified = ref false

                    loop.CreateTask(
                        Func<Task>(fun () ->
                            task {
                                do! Asyncio.Sleep(ms s.NotifyAt)
                                let! r = cond.LockAsync()
                                cond.Notify s.K
                                notified.Value <- true
                                r.Dispose()
                            })
                    )
                    |> ignore

                    let tasks =
                        s.CondWaiters
                        |> List.mapi (fun i a ->
                            let cts = tokenSource a

                            let t =
                                loop.CreateTask(
                                    Func<Task>(fun () ->
                                        task {
                                            do! Asyncio.Sleep(ms a.Start)
                                            let! r = withToken bad (sprintf "%d lock" i) cts (fun ct -> cond.LockAsync(ct).AsTask())

                                            try
                                                holders.Value <- holders.Value + 1
                                                maxHolders.Value <- max maxHolders.Value holders.Value
                                                holders.Value <- holders.Value - 1
                                                let! _ = withToken bad (sprintf "%d wait" i) cts (fun ct -> cond.WaitAsync ct)
                                                holders.Value <- holders.Value + 1
                                                maxHolders.Value <- max maxHolders.Value holders.Value
                                                woken.Add i

                                                try
                                                    do! Asyncio.Sleep(ms a.Hold)
                                                finally
                                                    holders.Value <- holders.Value - 1
                                            finally
                                                r.Dispose()
                                        })
                                )

                            // "Early": cancelled at or before the notification's tick could deliver it.
                            cancelAt loop t a.CancelAt cts (fun () -> not (woken.Contains i)) early[i]
                            t :> Future)

                    let! _ = settle tasks
                    let early = early |> List.map (fun r -> r.Value)
                    bad.Cleaning.Value <- true
                    for t in tasks do t.Cancel() |> ignore
                    let! _ = settle tasks
                    return early
                })

        let info () = sprintf "%A\nwoken %A\nearly %A" s (List.ofSeq woken) early
        if maxHolders.Value > 1 then failtestf "the lock was held by two\n%s" (info ())
        if bad.Bad.Count > 0 then failtestf "token cancellations without their token: %A\n%s" (List.ofSeq bad.Bad) (info ())
        // Waiters that were waiting when Notify ran; the candidates are those never cancelled early.
        let waiting =
            s.CondWaiters |> List.mapi (fun i a -> i, a) |> List.filter (fun (_, a) -> a.Start < s.NotifyAt) |> List.map fst

        let candidates = waiting |> List.filter (fun i -> not early[i])
        let wokenCandidates = candidates |> List.filter (fun i -> woken.Contains i) |> List.length
        // A waiter cancelled through its token after it was notified, while it takes the lock back, keeps
        // its wake-up and returns normally (the token cancels the wait for the notification, not the
        // re-acquisition): it consumed one of the K wake-ups, so it is not lost and the candidates are
        // owed the others.
        let wokenEarly = waiting |> List.filter (fun i -> early[i] && woken.Contains i) |> List.length
        let expected = min (s.K - wokenEarly) candidates.Length

        if wokenCandidates < expected then
            failtestf "only %d of %d expected wake-ups reached a waiter (lost wake-up)\n%s" wokenCandidates expected (info ()))

[<Tests>]
let tests = testList "Sync cancel-safety" [ lockLaw; semaphoreLaw; queueLaw; eventLaw; conditionLaw ]
