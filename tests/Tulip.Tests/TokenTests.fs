/// Issue 14.1 for the synchronisation primitives, the queues and Sleep: a CancellationToken cancels a
/// wait exactly as asyncio's cancellation of that await (same cancel-safety), the wait throws a
/// CancelledException carrying the token, a token already cancelled fails the call at once with no
/// effect, and the token's registration exists only while the operation waits (no leak).
module Tulip.Tests.TokenTests

open System
open System.Reflection
open System.Threading
open System.Threading.Tasks
open Expecto
open Tulip
open Tulip.Tests.ShellSupport

/// How many callbacks are registered on `cts` now. There is no public count, so this reads the
/// source's internals (.NET 8-10: `_registrations.Callbacks`, a linked list of CallbackNode through
/// `Next`; null when none is left). If a runtime renames them the test fails loudly instead of passing.
let registrations (cts: CancellationTokenSource) =
    let flags = BindingFlags.Public ||| BindingFlags.NonPublic ||| BindingFlags.Instance
    let field (t: Type) name =
        match t.GetField(name, flags) with
        | null -> failwithf "CancellationTokenSource internals changed: no %s.%s" t.Name name
        | f -> f

    match (field typeof<CancellationTokenSource> "_registrations").GetValue cts with
    | null -> 0
    | regs ->
        let rec walk (node: obj) n =
            if isNull node then n else walk ((field (node.GetType()) "Next").GetValue node) (n + 1)

        walk ((field (regs.GetType()) "Callbacks").GetValue regs) 0

/// The operation's outcome, caught inside the task (a cancelled task keeps no exception).
let private attempt (op: unit -> Task<string>) : unit -> Task<Result<string, exn>> =
    fun () ->
        task {
            try
                let! v = op ()
                return Ok v
            with e ->
                return Error e
        }

let private expectTokenCancel (r: Result<string, exn>) (token: CancellationToken) what =
    match r with
    | Error(:? CancelledException as e) -> Expect.equal e.CancellationToken token (what + ": the exception carries the token")
    | other -> failtestf "%s: expected a CancelledException carrying the token, got %A" what other

/// One primitive's operation with what makes it wait, what completes it, and its observable state.
type Fixture =
    { Op: CancellationToken -> Task<string>
      /// Makes the operation wait when it starts (e.g. takes the lock).
      Block: unit -> unit
      /// Completes the waiting operation (e.g. releases the lock), synchronously in the current tick.
      Grant: unit -> unit
      State: unit -> string
      /// The state after a cancel before the call, with nothing blocking (no effect).
      Initial: string
      /// The state after the waiting operation was cancelled, the blocker still in place.
      Blocked: string
      /// The state after the grant reached the operation first (it completed, the token ignored).
      Granted: string
      /// The state after the cancel came first in the tick and then the grant (passed on / kept).
      Regranted: string }

/// The cases every primitive goes through.
let private casesWith (races: bool) (name: string) (make: EventLoop -> Fixture) =
    let withLoop (body: EventLoop -> Fixture -> CancellationTokenSource -> Task<unit>) =
        use loop = newLoop ()
        use cts = new CancellationTokenSource()
        let f = make loop
        runMain loop (fun () -> body loop f cts)
        Expect.equal (registrations cts) 0 "no registration left on the token"

    let start loop f (cts: CancellationTokenSource) =
        task {
            f.Block()
            let t = createTask loop (attempt (fun () -> f.Op cts.Token))
            do! yieldTick ()
            do! yieldTick ()
            return t
        }

    let raceCases =
        [ testCase "granted, then the token cancelled in the same tick: completes normally" (fun () ->
              withLoop (fun loop f cts ->
                  task {
                      let! t = start loop f cts
                      f.Grant()
                      cts.Cancel()
                      let! r = t
                      Expect.isOk r "the token is ignored once served"
                      Expect.equal (f.State()) f.Granted "served"
                  }))

          testCase "token cancelled, then granted in the same tick: cancelled, the grant passed on or kept" (fun () ->
              withLoop (fun loop f cts ->
                  task {
                      let! t = start loop f cts
                      cts.Cancel()
                      f.Grant()
                      let! r = t
                      expectTokenCancel r cts.Token "cancel first"
                      Expect.equal (f.State()) f.Regranted "nothing lost or granted twice"
                  })) ]

    let baseCases =
        [ testCase "token cancelled before the call: fails at once, no effect" (fun () ->
              withLoop (fun _ f cts ->
                  task {
                      cts.Cancel()
                      let! r = attempt (fun () -> f.Op cts.Token) ()
                      expectTokenCancel r cts.Token "before"
                      Expect.equal (f.State()) f.Initial "nothing taken or changed"
                  }))

          testCase "token cancelled while waiting, on the loop" (fun () ->
              withLoop (fun loop f cts ->
                  task {
                      let! t = start loop f cts
                      Expect.isFalse t.Done "it waits"
                      cts.Cancel()
                      let! r = t
                      expectTokenCancel r cts.Token "during"
                      Expect.equal (f.State()) f.Blocked "the waiter left, nothing taken"
                  }))

          testCase "token cancelled while waiting, from another thread" (fun () ->
              withLoop (fun loop f cts ->
                  task {
                      let! t = start loop f cts
                      let th = Thread(fun () -> cts.Cancel())
                      th.Start()
                      th.Join() // the token's callback only posts to the loop
                      let! r = t
                      expectTokenCancel r cts.Token "from a thread"
                      Expect.equal (f.State()) f.Blocked "the waiter left, nothing taken"
                  }))

          testCase "a task cancel stays the task's (not the token's)" (fun () ->
              withLoop (fun loop f cts ->
                  task {
                      let! t = start loop f cts
                      t.Cancel() |> ignore
                      let! r = t

                      match r with
                      | Error(:? CancelledException as e) ->
                          Expect.notEqual e.CancellationToken cts.Token "not the token's: the task's"
                      | other -> failtestf "expected the task's CancelledException, got %A" other

                      Expect.equal (f.State()) f.Blocked "the waiter left, nothing taken"
                  })) ]

    testList name (baseCases @ (if races then raceCases else []))

let private cases = casesWith true

let private lockFixture (lk: AsyncLock) (op: CancellationToken -> Task<string>) =
    let state () = sprintf "locked=%b waiters=%d" lk.Locked lk.Waiters

    { Op = op
      Block = fun () -> lk.AcquireAsync() |> ignore
      Grant = fun () -> lk.Release()
      State = state
      Initial = "locked=false waiters=0"
      Blocked = "locked=true waiters=0"
      Granted = "locked=true waiters=0"
      Regranted = "locked=false waiters=0" }

let private semaphoreFixture (sem: AsyncSemaphore) (op: CancellationToken -> Task<string>) =
    { Op = op
      Block = fun () -> sem.AcquireAsync() |> ignore
      Grant = fun () -> sem.Release()
      State = fun () -> sprintf "value=%d waiters=%d" sem.Value sem.Waiters
      Initial = "value=1 waiters=0"
      Blocked = "value=0 waiters=0"
      Granted = "value=0 waiters=0"
      Regranted = "value=1 waiters=0" }

let private conditionWaitFixture (waitFor: bool) =
    let cond = Condition()
    let flag = ref false
    let heldOnExit = ref true

    { Op =
        fun ct ->
            task {
                let! _ = cond.AcquireAsync()

                try
                    if waitFor then
                        let! v = cond.WaitForAsync(Func<bool>(fun () -> flag.Value), ct)
                        return string v
                    else
                        let! v = cond.WaitAsync ct
                        return string v
                finally
                    heldOnExit.Value <- cond.Locked
                    cond.Release()
            }
      Block = ignore
      Grant =
        fun () ->
            cond.AcquireAsync() |> ignore // free: the waiter released it
            flag.Value <- true
            cond.Notify()
            cond.Release()
      State = fun () -> sprintf "waiters=%d locked=%b heldOnExit=%b" cond.Waiters cond.Locked heldOnExit.Value
      Initial = "waiters=0 locked=false heldOnExit=true"
      Blocked = "waiters=0 locked=false heldOnExit=true"
      Granted = "waiters=0 locked=false heldOnExit=true"
      Regranted = "waiters=0 locked=false heldOnExit=true" }

let private queueState (q: AsyncQueue<int>) = sprintf "qsize=%d getters=%d putters=%d" q.QSize q.Getters q.Putters

let private getFixture (q: AsyncQueue<int>) =
    { Op = fun ct -> task { let! v = q.GetAsync ct in return string v }
      Block = ignore
      Grant = fun () -> q.PutNowait 7
      State = fun () -> queueState q
      Initial = "qsize=0 getters=0 putters=0"
      Blocked = "qsize=0 getters=0 putters=0"
      Granted = "qsize=0 getters=0 putters=0"
      // The item put for the cancelled getter stays in the queue.
      Regranted = "qsize=1 getters=0 putters=0" }

[<Tests>]
let primitives =
    testList
        "Token cancellation"
        [ cases "AsyncLock.AcquireAsync" (fun _ ->
              let lk = AsyncLock()
              lockFixture lk (fun ct -> task { let! v = lk.AcquireAsync ct in return string v }))
          cases "AsyncLock.LockAsync" (fun _ ->
              let lk = AsyncLock()
              lockFixture lk (fun ct -> task { let! _ = lk.LockAsync ct in return "releaser" }))
          cases "Condition.AcquireAsync" (fun _ ->
              let c = Condition()
              lockFixture c.Lock (fun ct -> task { let! v = c.AcquireAsync ct in return string v }))
          cases "Condition.LockAsync" (fun _ ->
              let c = Condition()
              lockFixture c.Lock (fun ct -> task { let! _ = c.LockAsync ct in return "releaser" }))
          cases "AsyncSemaphore.AcquireAsync" (fun _ ->
              let s = AsyncSemaphore 1
              semaphoreFixture s (fun ct -> task { let! v = s.AcquireAsync ct in return string v }))
          cases "AsyncSemaphore.LockAsync" (fun _ ->
              let s = AsyncSemaphore 1
              semaphoreFixture s (fun ct -> task { let! _ = s.LockAsync ct in return "releaser" }))
          cases "BoundedSemaphore.AcquireAsync" (fun _ ->
              let s = BoundedSemaphore 1
              semaphoreFixture s (fun ct -> task { let! v = s.AcquireAsync ct in return string v }))
          cases "BoundedSemaphore.LockAsync" (fun _ ->
              let s = BoundedSemaphore 1
              semaphoreFixture s (fun ct -> task { let! _ = s.LockAsync ct in return "releaser" }))
          cases "Condition.WaitAsync" (fun _ -> conditionWaitFixture false)
          cases "Condition.WaitForAsync" (fun _ -> conditionWaitFixture true)
          cases "AsyncEvent.WaitAsync" (fun _ ->
              let ev = AsyncEvent()

              { Op = fun ct -> task { let! v = ev.WaitAsync ct in return string v }
                Block = ignore
                Grant = fun () -> ev.Set()
                State = fun () -> sprintf "set=%b waiters=%d" ev.IsSet ev.Waiters
                Initial = "set=false waiters=0"
                Blocked = "set=false waiters=0"
                Granted = "set=true waiters=0"
                Regranted = "set=true waiters=0" })
          cases "AsyncQueue.GetAsync" (fun _ -> getFixture (AsyncQueue<int>()))
          cases "AsyncPriorityQueue.GetAsync" (fun _ -> getFixture (AsyncPriorityQueue<int>()))
          cases "AsyncLifoQueue.GetAsync" (fun _ -> getFixture (AsyncLifoQueue<int>()))
          cases "AsyncQueue.PutAsync" (fun _ ->
              let q = AsyncQueue<int>(1)

              { Op = fun ct -> task { let! _ = q.PutAsync(1, ct) in return "put" }
                Block = fun () -> q.PutNowait 0
                Grant = fun () -> q.GetNowait() |> ignore
                State = fun () -> queueState q
                Initial = "qsize=0 getters=0 putters=0"
                Blocked = "qsize=1 getters=0 putters=0"
                Granted = "qsize=1 getters=0 putters=0"
                // The slot freed for the cancelled putter stays free; its item was not put.
                Regranted = "qsize=0 getters=0 putters=0" })
          cases "AsyncQueue.JoinAsync" (fun _ ->
              let q = AsyncQueue<int>()

              { Op = fun ct -> task { let! _ = q.JoinAsync ct in return "joined" }
                Block = fun () -> q.PutNowait 0
                Grant =
                  fun () ->
                      q.GetNowait() |> ignore
                      q.TaskDone()
                State = fun () -> queueState q
                Initial = "qsize=0 getters=0 putters=0"
                Blocked = "qsize=1 getters=0 putters=0"
                Granted = "qsize=0 getters=0 putters=0"
                Regranted = "qsize=0 getters=0 putters=0" })
          casesWith false "AsyncBarrier.WaitAsync" (fun loop ->
              let b = AsyncBarrier 2

              { Op = fun ct -> task { let! i = b.WaitAsync ct in return string i }
                Block = ignore
                // The other party arrives in its own task (next tick): no same-tick race cases.
                Grant = ignore
                State = fun () -> sprintf "n_waiting=%d broken=%b" b.NWaiting b.Broken
                Initial = "n_waiting=0 broken=false"
                Blocked = "n_waiting=0 broken=false"
                Granted = ""
                Regranted = "" }) ]

/// Runs `body` on a fresh virtual-time loop with a fresh token source; afterwards the source holds no registration.
let private withToken (body: EventLoop -> CancellationTokenSource -> Task<unit>) =
    use loop = newLoop ()
    use cts = new CancellationTokenSource()
    runMain loop (fun () -> body loop cts)
    Expect.equal (registrations cts) 0 "no registration left on the token"

let private sleepFor (ct: CancellationToken) () =
    task {
        do! Asyncio.Sleep(1.0, ct)
        return "slept"
    }

[<Tests>]
let sleeps =
    testList
        "Token cancellation.Asyncio.Sleep"
        [ testCase "token cancelled before: fails at once, no timer, no time passes" (fun () ->
              withToken (fun loop cts ->
                  task {
                      cts.Cancel()
                      let t0 = loop.Time()
                      let s: SleepAwaitable = Asyncio.Sleep(1.0, cts.Token) // F# picks the token overload, not Sleep<T>
                      Expect.isNull s.Timer "no timer scheduled"
                      let! r = attempt (sleepFor cts.Token) ()
                      expectTokenCancel r cts.Token "before"
                      let! r0 = attempt (fun () -> task { let! _ = Asyncio.Sleep(0.0, cts.Token) in return "yielded" }) ()
                      expectTokenCancel r0 cts.Token "sleep(0) before"
                      Expect.equal (loop.Time()) t0 "no loop time passed"
                  }))

          testCase "token cancelled while sleeping, on the loop: the timer is cancelled" (fun () ->
              withToken (fun loop cts ->
                  task {
                      let s = Asyncio.Sleep(1.0, 42, cts.Token)
                      let t = createTask loop (attempt (fun () -> task { let! v = s in return string v }))
                      do! sleep 0.5
                      cts.Cancel()
                      let! r = t
                      expectTokenCancel r cts.Token "during"
                      Expect.isTrue s.Timer.Cancelled "the timer went with it"
                      Expect.isLessThan (loop.Time()) 1.0 "woken by the cancel, not the deadline"
                  }))

          testCase "token cancelled while sleeping (TimeSpan), from another thread" (fun () ->
              withToken (fun loop cts ->
                  task {
                      let t =
                          createTask loop (attempt (fun () -> task { let! _ = Asyncio.Sleep(TimeSpan.FromSeconds 1.0, cts.Token) in return "slept" }))

                      do! sleep 0.5
                      let th = Thread(fun () -> cts.Cancel())
                      th.Start()
                      th.Join()
                      let! r = t
                      expectTokenCancel r cts.Token "from a thread"
                      Expect.isLessThan (loop.Time()) 1.0 "woken by the cancel"
                  }))

          testCase "the deadline and the cancel in the same tick, deadline first: the sleep completes" (fun () ->
              withToken (fun loop cts ->
                  task {
                      let t = createTask loop (attempt (fun () -> task { let! v = Asyncio.Sleep(1.0, 42, cts.Token) in return string v }))
                      do! yieldTick ()
                      // Same deadline, scheduled after the sleep's timer: runs right after it in that tick.
                      loop.CallLater(1.0, (fun () -> cts.Cancel())) |> ignore
                      let! r = t
                      Expect.equal r (Ok "42") "completed with its value; the token ignored"
                  }))

          testCase "the cancel and the deadline in the same tick, cancel first: cancelled" (fun () ->
              withToken (fun loop cts ->
                  task {
                      loop.CallLater(1.0, (fun () -> cts.Cancel())) |> ignore
                      let t = createTask loop (attempt (sleepFor cts.Token))
                      let! r = t
                      expectTokenCancel r cts.Token "cancel first"
                  }))

          testCase "a task cancel of a sleep with a token stays the task's" (fun () ->
              withToken (fun loop cts ->
                  task {
                      let t = createTask loop (attempt (sleepFor cts.Token))
                      do! yieldTick ()
                      t.Cancel() |> ignore
                      let! r = t

                      match r with
                      | Error(:? CancelledException as e) -> Expect.notEqual e.CancellationToken cts.Token "the task's"
                      | other -> failtestf "expected the task's CancelledException, got %A" other
                  }))

          testCase "sleep(0) with a token cancelled during its tick fails as the tick ends" (fun () ->
              withToken (fun loop cts ->
                  task {
                      let t = createTask loop (attempt (fun () -> task { let! _ = Asyncio.Sleep(0.0, cts.Token) in return "yielded" }))
                      loop.CallSoon(fun () -> cts.Cancel()) |> ignore
                      let! r = t
                      expectTokenCancel r cts.Token "sleep(0)"
                  })) ]

[<Tests>]
let barrierOthers =
    testList
        "Token cancellation.AsyncBarrier"
        [ testCase "ResetAsync / AbortAsync with a token cancelled before: fail at once, nothing done" (fun () ->
              withToken (fun loop cts ->
                  task {
                      let b = AsyncBarrier 2
                      let w = createTask loop (fun () -> b.WaitAsync())
                      do! yieldTick ()
                      cts.Cancel()
                      let! r1 = attempt (fun () -> task { let! _ = b.AbortAsync cts.Token in return "aborted" }) ()
                      expectTokenCancel r1 cts.Token "abort"
                      let! r2 = attempt (fun () -> task { let! _ = b.ResetAsync cts.Token in return "reset" }) ()
                      expectTokenCancel r2 cts.Token "reset"
                      Expect.equal (b.NWaiting, b.Broken) (1, false) "the waiting party still waits"
                      let! i = b.WaitAsync()
                      let! j = w
                      Expect.equal (set [ i; j ]) (set [ 0; 1 ]) "the round completes"
                  }))

          testCase "ResetAsync / AbortAsync with a live token wait for the lock and act" (fun () ->
              withToken (fun loop cts ->
                  task {
                      let b = AsyncBarrier 2
                      let w = createTask loop (attempt (fun () -> task { let! i = b.WaitAsync cts.Token in return string i }))
                      do! yieldTick ()
                      do! b.AbortAsync cts.Token
                      let! r = w
                      Expect.isTrue (match r with Error(:? BrokenBarrierException) -> true | _ -> false) "the waiter sees the abort"
                      do! b.ResetAsync cts.Token
                      Expect.isFalse b.Broken "reset"
                  })) ]

[<Tests>]
let leak =
    testList
        "Token cancellation.no leak"
        [ testCase "100,000 waits with one long-lived token leave no registration behind" (fun () ->
              withToken (fun loop cts ->
                  task {
                      let n = 100_000
                      let q = AsyncQueue<int>()
                      let mutable maxRegs = 0

                      let consumer =
                          createTask loop (fun () ->
                              task {
                                  let mutable sum = 0L

                                  for _ in 1..n do
                                      let! v = q.GetAsync cts.Token
                                      sum <- sum + int64 v

                                  return sum
                              })

                      for i in 1..n do
                          do! yieldTick ()
                          // The consumer really waits each time: its registration is the only one.
                          Expect.equal q.Getters 1 "the getter waits"
                          if i % 1000 = 0 then maxRegs <- max maxRegs (registrations cts)
                          q.PutNowait i

                      let! sum = consumer
                      Expect.equal sum (int64 n * int64 (n + 1) / 2L) "every item got once"
                      // Seen while a getter waits (so the count does see registrations), never more than one.
                      Expect.equal maxRegs 1 "one registration at a time"
                  })) ]
