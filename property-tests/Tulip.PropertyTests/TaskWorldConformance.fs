/// The task modelled (issue 12.3): programs of spawns, awaits, cancels, uncancels and completions run
/// through a pure model (TaskState for every decision a task makes, FutureState for futures and the
/// tasks' own future face, Loop.step for the ready queue) and through the real shell (EventLoop,
/// LoopTask, Future, .NET TaskCompletionSource), and must leave the same trace. Un-awaited helper calls
/// exercise the displaced waits, the leftover wake-ups and the released wait of "whose continuation is it".
module Tulip.PropertyTests.TaskWorldConformance

open System
open System.Collections.Generic
open System.Threading.Tasks
open Expecto
open FsCheck
open FsCheck.FSharp
open Tulip
open Tulip.Core
open Tulip.Scheduling
open Tulip.Testing

/// What a helper the coroutine calls and does not await awaits (its only await).
type HelperAwait =
    | HelperFuture of k: int
    | HelperYield

/// What a task's coroutine awaits, in order.
type Await =
    /// One of the three futures f0..f2 (its result is 10 + k).
    | AwaitFuture of k: int
    /// Task k mod the number spawned so far (skipped when that is the task itself).
    | AwaitTask of k: int
    /// `await Sleep(0)`: one tick.
    | Yield
    /// A new external operation x<n> (a .NET TaskCompletionSource, result 100 + n), awaited directly
    /// or through the task's CancellationToken (`WaitAsync(token)`).
    | AwaitExternal of withToken: bool
    /// Calls a helper h<n> that awaits, and does not await it (fire-and-forget): the helper's wait is
    /// the task's until the coroutine's own next await displaces it (then it runs free), and a wake-up
    /// of it that comes after the task finished runs free too (DESIGN.md, "whose continuation is it").
    | Unawaited of HelperAwait

/// A task's coroutine: its awaits, then it returns its number; a cancellation is caught, traced, and
/// swallowed (the coroutine returns -1) or raised again.
type Script = { Awaits: Await list; Swallow: bool }

type Op =
    | Spawn of Script
    | CancelTask of k: int * message: string option
    | Uncancel of k: int
    | SetFuture of k: int
    | CancelFuture of k: int * message: string option
    /// Completes external k mod the number made so far (if pending).
    | CompleteExternal of k: int
    /// Runs one loop iteration; the other ops run as callbacks of the next one.
    | Tick

let private maxTasks = 8
let private futureCount = 3
let private settleTicks = 40

let private show (m: string option) =
    match m with
    | Some m -> sprintf "'%s'" m
    | None -> "none"

let private message = Gen.elements [ None; Some "a"; Some "b" ]

let private scriptGen =
    let awaitGen =
        Gen.frequency
            [ 3, Gen.choose (0, futureCount - 1) |> Gen.map AwaitFuture
              2, Gen.choose (0, maxTasks - 1) |> Gen.map AwaitTask
              2, Gen.constant Yield
              3, Gen.elements [ true; false ] |> Gen.map AwaitExternal
              3,
              Gen.oneof [ Gen.choose (0, futureCount - 1) |> Gen.map HelperFuture; Gen.constant HelperYield ]
              |> Gen.map Unawaited ]

    Gen.map2
        (fun awaits swallow -> { Awaits = awaits; Swallow = swallow })
        (Gen.choose (0, 4) |> Gen.bind (fun n -> Gen.listOfLength n awaitGen))
        (Gen.elements [ true; false ])

let private opGen =
    Gen.frequency
        [ 3, scriptGen |> Gen.map Spawn
          3, Gen.map2 (fun k m -> CancelTask(k, m)) (Gen.choose (0, maxTasks - 1)) message
          1, Gen.choose (0, maxTasks - 1) |> Gen.map Uncancel
          2, Gen.choose (0, futureCount - 1) |> Gen.map SetFuture
          1, Gen.map2 (fun k m -> CancelFuture(k, m)) (Gen.choose (0, futureCount - 1)) message
          4, Gen.choose (0, 7) |> Gen.map CompleteExternal
          5, Gen.constant Tick ]

let programs =
    Gen.choose (5, 30) |> Gen.bind (fun n -> Gen.listOfLength n opGen) |> Arb.fromGen

// ------------------------------------------------------------------------------------------------
// (a) The pure model. Each task's decisions are TaskState's; what remains is the coroutine (a script
// position) and the plumbing the shell does: parking a task's wake-up on a future, posting a .NET
// await's continuation, firing the token.

/// Where a model coroutine is parked.
type private Parked =
    | NotYet
    | OnFuture of k: int
    | OnTask of j: int
    | OnYield
    | OnExternal of x: int
    | Over

/// The loop future a task's step handle is parked on (LoopTask._waiter).
type private Waiter =
    | NoWaiter
    | WaitsFuture of k: int
    | WaitsTask of j: int

/// What the task's step handle resumes (LoopTask._continuation).
type private Continuation =
    | NoContinuation
    | Coroutine
    | Helper of h: int

type private ModelTask =
    { Script: Await array
      Swallow: bool
      mutable Ts: TaskState
      mutable Fut: FutureState
      mutable Value: int
      /// The index of the await it is parked at.
      mutable Pc: int
      mutable Parked: Parked
      mutable Waiter: Waiter
      /// The id the step's wake-up has on the waiter's callbacks.
      mutable ParkId: HandleId
      mutable Continuation: Continuation
      /// The task's CancellationTokenSource: 0 not made, 1 made, 2 fired.
      mutable Token: int }

type private External =
    { mutable Done: bool
      /// The task whose await is still listening (and whether through the token).
      mutable Listener: (int * bool) option }

type private ExternalDelivery =
    | Value of int
    | TokenCancelled

type private Handle =
    | RunOp of Op
    | StepOf of int
    | ResumeOutsideOf of int * ExternalDelivery
    /// A helper's continuation that belongs to no task.
    | Free of h: int

/// What a coroutine's run in a step came to.
type private Ran =
    | StillRunning
    | Ended of StepEnd * int

let runModel (ops: Op list) : string list =
    let trace = List<string>()
    let tasks = List<ModelTask>()
    let futures = Array.create futureCount FutureState.pending
    let externals = List<External>()
    let handles = Dictionary<HandleId, Handle>()
    let helpers = List<HelperAwait>()
    let mutable loop = LoopState.initial
    let mutable nextId = 0L

    let step input =
        match Loop.step input loop with
        | Ok (s, effects) ->
            loop <- s
            effects
        | Error r -> failwithf "the core rejected %A: %A" input r

    let soon (h: Handle) =
        let id = nextId
        nextId <- nextId + 1L
        handles[id] <- h
        step (CallSoon id) |> ignore

    let scheduleAll (ids: HandleId list) =
        for id in ids do
            step (CallSoon id) |> ignore

    let ok r =
        match r with
        | Ok v -> v
        | Error e -> failwithf "the core rejected a task transition: %A" e

    /// Adds a done-callback to a future (scheduled at once if it is done); returns its id.
    let addCallback (h: Handle) (fut: FutureState) =
        let id = nextId
        nextId <- nextId + 1L
        handles[id] <- h
        let s', now = FutureState.addCallback id fut
        scheduleAll now
        struct (id, s')

    let futureOf (w: Waiter) =
        match w with
        | WaitsFuture k -> Some futures[k]
        | WaitsTask j -> Some tasks[j].Fut
        | NoWaiter -> None

    let setFutureOf (w: Waiter) (s: FutureState) =
        match w with
        | WaitsFuture k -> futures[k] <- s
        | WaitsTask j -> tasks[j].Fut <- s
        | NoWaiter -> ()

    /// LoopTask.ReleaseWait: the continuation parked on the task's waiter becomes a free one there.
    let releaseWait (i: int) (h: int) =
        let t = tasks[i]

        match futureOf t.Waiter with
        | Some f ->
            // The wake-up's id is released too: on a done future it is already queued, and then it
            // finds nothing when its turn comes (the shell releases the step handle's slot).
            let f', _ = FutureState.removeCallback t.ParkId f
            handles.Remove t.ParkId |> ignore
            let struct (_, f'') = addCallback (Free h) f'
            setFutureOf t.Waiter f''
            t.Waiter <- NoWaiter
        | None -> ()

    let helperOf (c: Continuation) =
        match c with
        | Helper h -> h
        | c -> failwithf "a displaced or released wait resumed %A, not a helper" c

    let cancelFuture (k: int) (m: string option) =
        let accepted, s', cbs = FutureState.cancel m futures[k]
        futures[k] <- s'
        scheduleAll cbs
        accepted

    /// LoopTask.CompleteFromCore: the task's future takes the outcome TaskState decided.
    let completeTask (i: int) =
        let t = tasks[i]
        t.Parked <- Over

        let s', cbs =
            match TaskState.outcome t.Ts with
            | Some (Cancelled m) ->
                let _, s', cbs = FutureState.cancel m t.Fut
                s', cbs
            | Some o -> ok (FutureState.complete o t.Fut)
            | None -> failwith "completing an unfinished task"

        t.Fut <- s'
        scheduleAll cbs

    let fireToken (j: int) =
        let t = tasks[j]

        if t.Token = 1 then
            t.Token <- 2

            match t.Parked with
            | OnExternal x when externals[x].Listener = Some(j, true) ->
                externals[x].Listener <- None
                soon (ResumeOutsideOf(j, TokenCancelled))
            | _ -> ()

    /// LoopTask.CancelOnLoop.
    let rec cancelTask (j: int) (m: string option) : bool =
        let t = tasks[j]
        let struct (d, s') = TaskState.cancel m t.Ts
        t.Ts <- s'

        match d with
        | AlreadyDone
        | BeingCancelled -> false
        | CancelWaiter _
        | Flagged ->
            if d.IsCancelWaiter then
                let accepted = cancelWaiterOf j m
                t.Ts <- TaskState.waiterCancelOutcome accepted t.Ts

            fireToken j
            true

    and cancelWaiterOf (j: int) (m: string option) =
        match tasks[j].Waiter with
        | WaitsFuture k -> cancelFuture k m
        | WaitsTask w -> cancelTask w m
        | NoWaiter -> false

    /// The coroutine's catch: traced, then swallowed (returns -1) or raised again.
    let caught (i: int) (m: string option) =
        let t = tasks[i]
        trace.Add(sprintf "t%d caught cancel %s" i (show m))

        if t.Swallow then
            trace.Add(sprintf "t%d swallows" i)
            Ended(Returned, -1)
        else
            Ended(RaisedCancellation m, 0)

    /// A loop awaiter's GetResult in task i's step: a cancellation owed is raised first (TaskState).
    let takeThrowIn (i: int) =
        let struct (raiseIt, m, s') = TaskState.takeThrowIn tasks[i].Ts
        tasks[i].Ts <- s'
        if raiseIt then Some m else None

    /// TryAwait / TryYield: the await is the task's; a wait it displaces runs free.
    let awaitIn (i: int) kind =
        let t = tasks[i]
        let struct (answer, s') = TaskState.awaitIn kind t.Ts
        t.Ts <- s'
        let c = t.Continuation
        t.Continuation <- NoContinuation

        match answer, c with
        | _, NoContinuation
        | AwaitAnswer.Parked, _ -> ()
        | ParkedDisplacingFuture, c -> releaseWait i (helperOf c)
        | ParkedDisplacingYield, c -> soon (Free(helperOf c))
        | NotInStep, _ -> failwithf "t%d awaited outside its step" i

    /// Parks the task's step on a loop future (after awaitIn).
    let parkOn (i: int) (w: Waiter) (c: Continuation) =
        let t = tasks[i]
        t.Waiter <- w
        t.Continuation <- c

        match futureOf w with
        | Some f ->
            let struct (id, f') = addCallback (StepOf i) f
            t.ParkId <- id
            setFutureOf w f'
        | None -> ()

    /// A helper's only await, now delivered: in task `inStep`'s step a cancellation owed to that task
    /// is raised first (the awaiter's GetResult); free, nothing is owed.
    let helperResumes (h: int) (inStep: int option) =
        let owed =
            match inStep with
            | Some i ->
                let struct (raiseIt, m, s') = TaskState.takeThrowIn tasks[i].Ts
                tasks[i].Ts <- s'
                if raiseIt then Some m else None
            | None -> None

        match owed, helpers[h] with
        | Some m, _ -> trace.Add(sprintf "h%d caught cancel %s" h (show m))
        | None, HelperYield -> trace.Add(sprintf "h%d resumed" h)
        | None, HelperFuture k ->
            match futures[k] with
            | Done (Cancelled m) -> trace.Add(sprintf "h%d caught cancel %s" h (show m))
            | _ -> trace.Add(sprintf "h%d got %d" h (10 + k))

    /// The helper is called in task i's step: it runs to its await.
    let startHelper (i: int) (ha: HelperAwait) =
        let h = helpers.Count
        helpers.Add ha
        trace.Add(sprintf "t%d calls h%d" i h)

        match ha with
        | HelperFuture k ->
            trace.Add(sprintf "h%d awaits f%d" h k)

            if FutureState.isDone futures[k] then
                helperResumes h (Some i)
            else
                awaitIn i StepWait.OnFuture
                parkOn i (WaitsFuture k) (Helper h)
        | HelperYield ->
            trace.Add(sprintf "h%d yields" h)
            awaitIn i StepWait.OnYield
            tasks[i].Continuation <- Helper h

    /// Runs task i's coroutine from await `pc` on, inside its step, until it parks or ends.
    let rec runFrom (i: int) (pc: int) : Ran =
        let t = tasks[i]
        t.Pc <- pc

        if pc >= t.Script.Length then
            trace.Add(sprintf "t%d returns" i)
            Ended(Returned, i)
        else
            match t.Script[pc] with
            | AwaitFuture k -> awaitLoopFuture i pc (OnFuture k) (sprintf "f%d" k) (fun () -> futures[k]) (10 + k)
            | AwaitTask k ->
                let j = k % tasks.Count

                if j = i then
                    trace.Add(sprintf "t%d skips itself" i)
                    runFrom i (pc + 1)
                else
                    awaitLoopFuture i pc (OnTask j) (sprintf "t%d" j) (fun () -> tasks[j].Fut) tasks[j].Value
            | Yield ->
                trace.Add(sprintf "t%d yields" i)
                awaitIn i StepWait.OnYield
                t.Continuation <- Coroutine
                t.Parked <- OnYield
                StillRunning
            | Unawaited ha ->
                startHelper i ha
                runFrom i (pc + 1)
            | AwaitExternal withToken ->
                let x = externals.Count
                externals.Add { Done = false; Listener = None }
                trace.Add(sprintf "t%d awaits x%d%s" i x (if withToken then " with token" else ""))

                if withToken && t.Token = 0 then
                    // LoopTask.CancellationToken: made on first use, fired at once if a cancel is pending.
                    t.Token <- if t.Ts.CancelRequests > 0 then 2 else 1

                if withToken && t.Token = 2 then
                    // WaitAsync of a fired token completes at once: no .NET await, no loop await.
                    caught i None
                else
                    externals[x].Listener <- Some(i, withToken)
                    t.Parked <- OnExternal x
                    StillRunning

    and awaitLoopFuture i pc parked name (fut: unit -> FutureState) value =
        let t = tasks[i]
        trace.Add(sprintf "t%d awaits %s" i name)

        if FutureState.isDone (fut ()) then
            deliver i pc fut value
        else
            awaitIn i StepWait.OnFuture
            t.Parked <- parked

            match parked with
            | OnFuture k -> parkOn i (WaitsFuture k) Coroutine
            | OnTask j -> parkOn i (WaitsTask j) Coroutine
            | _ -> ()

            StillRunning

    /// The GetResult of a done loop future (or task): the owed cancellation, else its outcome.
    and deliver i pc (fut: unit -> FutureState) value =
        match takeThrowIn i with
        | Some m -> caught i m
        | None ->
            match fut () with
            | Done (Cancelled m) -> caught i m
            | _ ->
                trace.Add(sprintf "t%d got %d" i value)
                runFrom i (pc + 1)

    /// LoopTask.AfterStep / Finish.
    let afterStep (i: int) (ran: Ran) =
        let t = tasks[i]

        match ran with
        | Ended (how, value) ->
            let struct (s', _) = ok (TaskState.endStep how t.Ts)
            t.Ts <- s'
            t.Value <- value
            completeTask i
        | StillRunning ->
            let struct (s', cancelIt) = ok (TaskState.suspend t.Ts)
            t.Ts <- s'

            match cancelIt with
            | Some (CancelWaiter m) -> t.Ts <- TaskState.waiterCancelOutcome (cancelWaiterOf i m) t.Ts
            | _ -> ()

            if t.Ts.Phase = Scheduled then soon (StepOf i)

    /// The coroutine resumes where it is parked (a loop await's continuation).
    let resumeLoop (i: int) : Ran =
        let t = tasks[i]

        match t.Parked with
        | OnYield ->
            match takeThrowIn i with
            | Some m -> caught i m
            | None ->
                trace.Add(sprintf "t%d resumed" i)
                runFrom i (t.Pc + 1)
        | OnFuture k -> deliver i t.Pc (fun () -> futures[k]) (10 + k)
        | OnTask j -> deliver i t.Pc (fun () -> tasks[j].Fut) tasks[j].Value
        | p -> failwithf "t%d resumed by the loop while parked %A" i p

    /// LoopTask.Step (the task's step handle ran).
    let stepOf (i: int) =
        let t = tasks[i]

        let origin =
            match futureOf t.Waiter with
            | Some f when FutureState.isCancelled f -> FromCancelledWaiter
            | _ -> FromLoop

        let struct (action, s') = ok (TaskState.stepArrives origin t.Ts)
        t.Ts <- s'

        match action with
        | LeftoverFree ->
            let c = t.Continuation
            t.Continuation <- NoContinuation

            match c with
            | Helper h -> helperResumes h None
            | NoContinuation -> ()
            | Coroutine -> failwithf "t%d finished, its coroutine's wake-up came after" i
        | _ ->
            t.Waiter <- NoWaiter

            match action with
            | NeverStarted _ -> completeTask i
            | FirstRun ->
                trace.Add(sprintf "t%d starts" i)
                afterStep i (runFrom i 0)
            | _ ->
                let c = t.Continuation
                t.Continuation <- NoContinuation

                match c with
                | Coroutine -> afterStep i (resumeLoop i)
                | Helper h ->
                    helperResumes h (Some i)
                    afterStep i StillRunning
                | NoContinuation -> afterStep i StillRunning

    /// LoopTask.ResumeExternal (a .NET await's continuation was posted back).
    let resumeOutside (i: int) (delivery: ExternalDelivery) =
        let t = tasks[i]

        match TaskState.resumeOutside true t.Ts with
        | ReleaseWaitThenResume
        | ResumeTask as how ->
            if how = ReleaseWaitThenResume then
                let c = t.Continuation
                t.Continuation <- NoContinuation

                match c with
                | NoContinuation -> ()
                | c -> releaseWait i (helperOf c)

            let origin = if t.Token = 2 then FromOutsideAfterToken else FromOutside
            let struct (action, s') = ok (TaskState.stepArrives origin t.Ts)
            t.Ts <- s'

            match action, delivery with
            | (Resume | ResumeCancelled _), Value v ->
                trace.Add(sprintf "t%d got %d" i v)
                afterStep i (runFrom i (t.Pc + 1))
            | (Resume | ResumeCancelled _), TokenCancelled -> afterStep i (caught i None)
            | a, _ -> failwithf "t%d resumed from outside as %A" i a
        | other -> failwithf "t%d: a continuation from outside went %A" i other

    let runOp (op: Op) =
        match op with
        | Spawn script ->
            if tasks.Count < maxTasks then
                let i = tasks.Count

                tasks.Add
                    { Script = Array.ofList script.Awaits
                      Swallow = script.Swallow
                      Ts = TaskState.created
                      Fut = FutureState.pending
                      Value = 0
                      Pc = 0
                      Parked = NotYet
                      Waiter = NoWaiter
                      ParkId = -1L
                      Continuation = NoContinuation
                      Token = 0 }

                trace.Add(sprintf "spawn t%d" i)
                soon (StepOf i)
        | CancelTask (k, m) ->
            if tasks.Count > 0 then
                let j = k % tasks.Count
                let r = cancelTask j m
                trace.Add(sprintf "cancel t%d %s -> %b" j (show m) r)
        | Uncancel k ->
            if tasks.Count > 0 then
                let j = k % tasks.Count
                let struct (n, s') = TaskState.uncancel tasks[j].Ts
                tasks[j].Ts <- s'
                trace.Add(sprintf "uncancel t%d -> %d" j n)
        | SetFuture k ->
            match FutureState.setResult futures[k] with
            | Ok (s', cbs) ->
                futures[k] <- s'
                scheduleAll cbs
                trace.Add(sprintf "set f%d" k)
            | Error _ -> trace.Add(sprintf "f%d is done" k)
        | CancelFuture (k, m) ->
            let r = cancelFuture k m
            trace.Add(sprintf "cancel f%d %s -> %b" k (show m) r)
        | CompleteExternal k ->
            if externals.Count > 0 then
                let x = k % externals.Count
                let e = externals[x]

                if e.Done then
                    trace.Add(sprintf "x%d is done" x)
                else
                    e.Done <- true
                    trace.Add(sprintf "complete x%d" x)

                    match e.Listener with
                    | Some (j, _) ->
                        e.Listener <- None
                        soon (ResumeOutsideOf(j, Value(100 + x)))
                    | None -> ()
        | Tick -> ()

    let tick () =
        step Stop |> ignore
        step Start |> ignore
        step (BeginTick(0L, [||])) |> ignore

        match step (Polled(0L, [||], [||])) with
        | [ Run batch ] ->
            for id in batch do
                match handles.TryGetValue id with
                | true, h ->
                    handles.Remove id |> ignore

                    match h with
                    | RunOp op -> runOp op
                    | StepOf i -> stepOf i
                    | ResumeOutsideOf (i, d) -> resumeOutside i d
                    | Free h -> helperResumes h None
                | false, _ -> () // released while queued
        | _ -> ()

        step EndTick |> ignore

    for op in ops do
        match op with
        | Tick ->
            trace.Add "tick"
            tick ()
        | op -> soon (RunOp op)

    for _ in 1..settleTicks do
        tick ()

    for i in 0 .. tasks.Count - 1 do
        let t = tasks[i]

        let state =
            match TaskState.outcome t.Ts with
            | None -> "pending"
            | Some Succeeded -> sprintf "result %d" t.Value
            | Some (Cancelled m) -> sprintf "cancelled %s" (show m)
            | Some Faulted -> "faulted"

        trace.Add(sprintf "final t%d %s cancelling=%d" i state t.Ts.CancelRequests)

    for k in 0 .. futureCount - 1 do
        let state =
            match futures[k] with
            | Pending _ -> "pending"
            | Done Succeeded -> sprintf "result %d" (10 + k)
            | Done (Cancelled m) -> sprintf "cancelled %s" (show m)
            | Done Faulted -> "faulted"

        trace.Add(sprintf "final f%d %s" k state)

    List.ofSeq trace

// ------------------------------------------------------------------------------------------------
// (b) The shell: the same program on a real EventLoop with LoopTask coroutines.

let runShell (kind: SchedulerKind) (ops: Op list) : string list =
    let loop = new EventLoop(VirtualClock(), kind)
    let trace = List<string>()
    let tasks = List<LoopTask<int>>()
    let futures = Array.init futureCount (fun _ -> loop.CreateFuture<int>())
    let externals = List<TaskCompletionSource<int>>()
    loop.SetExceptionHandler(ExceptionHandler(fun _ ctx -> trace.Add("handler: " + ctx.Message)))

    let helpers = ref 0

    let helper (h: int) (ha: HelperAwait) : Task =
        task {
            try
                match ha with
                | HelperFuture k ->
                    trace.Add(sprintf "h%d awaits f%d" h k)
                    let! v = futures[k]
                    trace.Add(sprintf "h%d got %d" h v)
                | HelperYield ->
                    trace.Add(sprintf "h%d yields" h)
                    do! Asyncio.Sleep 0.0
                    trace.Add(sprintf "h%d resumed" h)
            with :? OperationCanceledException as e ->
                let m =
                    match e with
                    | :? CancelledException as c -> Option.ofObj c.CancelMessage
                    | _ -> None

                trace.Add(sprintf "h%d caught cancel %s" h (show m))
        }

    let body (i: int) (script: Script) () : Task<int> =
        task {
            trace.Add(sprintf "t%d starts" i)

            try
                for a in script.Awaits do
                    match a with
                    | AwaitFuture k ->
                        trace.Add(sprintf "t%d awaits f%d" i k)
                        let! v = futures[k]
                        trace.Add(sprintf "t%d got %d" i v)
                    | AwaitTask k ->
                        let j = k % tasks.Count

                        if j = i then
                            trace.Add(sprintf "t%d skips itself" i)
                        else
                            trace.Add(sprintf "t%d awaits t%d" i j)
                            let! v = tasks[j]
                            trace.Add(sprintf "t%d got %d" i v)
                    | Yield ->
                        trace.Add(sprintf "t%d yields" i)
                        do! Asyncio.Sleep 0.0
                        trace.Add(sprintf "t%d resumed" i)
                    | AwaitExternal withToken ->
                        let x = externals.Count
                        // Continuations run synchronously where it completes (on the loop thread): the
                        // coroutine's own is posted back to its task, so the order is deterministic.
                        let tcs = TaskCompletionSource<int>()
                        externals.Add tcs
                        trace.Add(sprintf "t%d awaits x%d%s" i x (if withToken then " with token" else ""))
                        let! v = if withToken then tcs.Task.WaitAsync(tasks[i].CancellationToken) else tcs.Task
                        trace.Add(sprintf "t%d got %d" i v)
                    | Unawaited ha ->
                        let h = helpers.Value
                        helpers.Value <- h + 1
                        trace.Add(sprintf "t%d calls h%d" i h)
                        helper h ha |> ignore

                trace.Add(sprintf "t%d returns" i)
                return i
            with :? OperationCanceledException as e ->
                let m =
                    match e with
                    | :? CancelledException as c -> Option.ofObj c.CancelMessage
                    | _ -> None

                trace.Add(sprintf "t%d caught cancel %s" i (show m))

                if script.Swallow then
                    trace.Add(sprintf "t%d swallows" i)
                    return -1
                else
                    return raise e
        }

    let runOp (op: Op) =
        match op with
        | Spawn script ->
            if tasks.Count < maxTasks then
                let i = tasks.Count
                trace.Add(sprintf "spawn t%d" i)
                tasks.Add(loop.CreateTask(Func<Task<int>>(body i script), sprintf "t%d" i))
        | CancelTask (k, m) ->
            if tasks.Count > 0 then
                let j = k % tasks.Count
                let r = tasks[j].Cancel(Option.toObj m)
                trace.Add(sprintf "cancel t%d %s -> %b" j (show m) r)
        | Uncancel k ->
            if tasks.Count > 0 then
                let j = k % tasks.Count
                trace.Add(sprintf "uncancel t%d -> %d" j (tasks[j].Uncancel()))
        | SetFuture k ->
            if futures[k].Done then
                trace.Add(sprintf "f%d is done" k)
            else
                // Traced after: the model traces once the callbacks are scheduled, nothing runs inline.
                futures[k].SetResult(10 + k)
                trace.Add(sprintf "set f%d" k)
        | CancelFuture (k, m) ->
            let r = futures[k].Cancel(Option.toObj m)
            trace.Add(sprintf "cancel f%d %s -> %b" k (show m) r)
        | CompleteExternal k ->
            if externals.Count > 0 then
                let x = k % externals.Count

                if externals[x].Task.IsCompleted then
                    trace.Add(sprintf "x%d is done" x)
                else
                    trace.Add(sprintf "complete x%d" x)
                    externals[x].SetResult(100 + x)
        | Tick -> ()

    let tick () =
        loop.Stop()
        loop.RunForever()

    for op in ops do
        match op with
        | Tick ->
            trace.Add "tick"
            tick ()
        | op -> loop.CallSoon(fun () -> runOp op) |> ignore

    for _ in 1..settleTicks do
        tick ()

    for i in 0 .. tasks.Count - 1 do
        let t = tasks[i]

        let state =
            if not t.Done then "pending"
            elif t.Cancelled then
                try
                    t.Result() |> ignore
                    "cancelled?"
                with :? CancelledException as e ->
                    sprintf "cancelled %s" (show (Option.ofObj e.CancelMessage))
            else
                match t.Exception() with
                | null -> sprintf "result %d" (t.Result())
                | _ -> "faulted"

        trace.Add(sprintf "final t%d %s cancelling=%d" i state (t.Cancelling()))

    for k in 0 .. futureCount - 1 do
        let f = futures[k]

        let state =
            if not f.Done then "pending"
            elif f.Cancelled then
                try
                    f.Result() |> ignore
                    "cancelled?"
                with :? CancelledException as e ->
                    sprintf "cancelled %s" (show (Option.ofObj e.CancelMessage))
            else
                sprintf "result %d" (f.Result())

        trace.Add(sprintf "final f%d %s" k state)

    List.ofSeq trace

let private agree (kind: SchedulerKind) (ops: Op list) =
    let model = runModel ops
    let shell = runShell kind ops

    if model <> shell then
        let firstDiff =
            Seq.zip (Seq.append model (Seq.replicate 1 "<end>")) (Seq.append shell (Seq.replicate 1 "<end>"))
            |> Seq.tryFindIndex (fun (a, b) -> a <> b)

        failtestf "the model and the shell (%A) differ at line %A\nmodel:\n%s\nshell:\n%s" kind firstDiff (String.Join("\n", model)) (String.Join("\n", shell))

let private config = { FsCheckConfig.defaultConfig with maxTest = 500 }

[<Tests>]
let tests =
    testList
        "The task modelled"
        [ testPropertyWithConfig
              config
              "programs of spawns, awaits, cancels, uncancels and completions trace the same through the task model and the shell"
          <| Prop.forAll programs (agree SchedulerKind.Fast)
          testPropertyWithConfig
              { config with maxTest = 200 }
              "the same on the shell's model scheduler"
          <| Prop.forAll programs (agree SchedulerKind.Model) ]
