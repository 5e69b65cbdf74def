/// Lock, Event, Condition, Semaphore, Barrier and the queues against CPython 3.11 (/tmp/py5/sync.py
/// printed the expected values; each test names its scenario). Queue shutdown is 3.13's (queues.py of
/// 3.13; python3 here is 3.11, so those tests follow the 3.13 source).
module Tulip.Tests.SyncTests

open System
open System.Threading
open System.Threading.Tasks
open Expecto
open Tulip
open Tulip.Tests.ShellSupport
open Tulip.Tests.CompositionTests

let private all (loop: EventLoop) (ts: LoopTask<'T> list) =
    task {
        let! _ = Asyncio.Wait ts
        for t in ts do t.Result() |> ignore
    }

[<Tests>]
let locks =
    testList
        "AsyncLock"
        [ // sync.py lock_fifo.
          testCase "tasks take the lock in arrival order, one at a time" (fun () ->
              use loop = newLoop ()
              let log = Log()
              let lk = AsyncLock()

              runMainUnit loop (fun () ->
                  task {
                      let w n () =
                          task {
                              let! r = lk.LockAsync()
                              use _ = r
                              log.Add(sprintf "%d in" n)
                              do! sleep 0.1
                              log.Add(sprintf "%d out" n)
                          }

                      do! all loop [ for i in 0..2 -> createTask loop (w i) ]
                  })

              Expect.equal log.Items [ "0 in"; "0 out"; "1 in"; "1 out"; "2 in"; "2 out" ] "as asyncio"
              Expect.isFalse lk.Locked "released")

          // sync.py lock_release_unlocked: RuntimeError('Lock is not acquired.').
          testCase "releasing an unlocked lock is an error" (fun () ->
              let e = throws<InvalidOperationException> (fun () -> AsyncLock().Release())
              Expect.equal e.Message "Lock is not acquired." "asyncio's message")

          // sync.py lock_cancel_passes_on: ['2 acquired'], t1 cancelled, unlocked.
          testCase "a waiter cancelled after it was woken passes the lock on" (fun () ->
              use loop = newLoop ()
              let log = Log()
              let lk = AsyncLock()

              let r =
                  runMain loop (fun () ->
                      task {
                          let! _ = lk.AcquireAsync()

                          let a n () =
                              task {
                                  let! _ = lk.AcquireAsync()
                                  log.Add(sprintf "%d acquired" n)
                                  lk.Release()
                              }

                          let t1 = createTask loop (a 1)
                          let _t2 = createTask loop (a 2)
                          do! yieldTick ()
                          lk.Release()
                          t1.Cancel() |> ignore
                          do! sleep 0.01
                          return t1.Cancelled, lk.Locked
                      })

              Expect.equal log.Items [ "2 acquired" ] "t2 got it"
              Expect.equal r (true, false) "t1 cancelled; the lock is free")

          // sync.py lock_no_barging: [1, 2].
          testCase "a newcomer queues behind a woken waiter (no barging)" (fun () ->
              use loop = newLoop ()
              let log = Log()
              let lk = AsyncLock()

              runMainUnit loop (fun () ->
                  task {
                      let! _ = lk.AcquireAsync()

                      let b n () =
                          task {
                              let! r = lk.LockAsync()
                              use _ = r
                              log.Add(string n)
                          }

                      let _t1 = createTask loop (b 1)
                      do! yieldTick ()
                      lk.Release()
                      let _t2 = createTask loop (b 2)
                      do! sleep 0.01
                  })

              Expect.equal log.Items [ "1"; "2" ] "as asyncio") ]

[<Tests>]
let events =
    testList
        "AsyncEvent"
        [ // sync.py event.
          testCase "Set wakes every waiter; Wait on a set event returns at once; Clear" (fun () ->
              use loop = newLoop ()
              let log = Log()
              let ev = AsyncEvent()

              runMainUnit loop (fun () ->
                  task {
                      let w n () =
                          task {
                              log.Add(sprintf "%d waiting" n)
                              let! _ = ev.WaitAsync()
                              log.Add(sprintf "%d woke" n)
                          }

                      let ts = [ for i in 0..1 -> createTask loop (w i) ]
                      do! yieldTick ()
                      ev.Set()
                      log.Add "set"
                      do! all loop ts
                      let! v = ev.WaitAsync()
                      log.Add(sprintf "wait when set: %b" v)
                      ev.Clear()
                      log.Add(sprintf "cleared %b" ev.IsSet)
                  })

              Expect.equal log.Items [ "0 waiting"; "1 waiting"; "set"; "0 woke"; "1 woke"; "wait when set: true"; "cleared false" ] "as asyncio") ]

[<Tests>]
let conditions =
    testList
        "Condition"
        [ // sync.py condition.
          testCase "a notify before anyone waits is lost; Notify(n) and NotifyAll wake in order; errors without the lock" (fun () ->
              use loop = newLoop ()
              let log = Log()
              let cond = Condition()

              runMainUnit loop (fun () ->
                  task {
                      let! r = cond.LockAsync()
                      cond.Notify()
                      r.Dispose()
                      log.Add "notify before anyone waits"

                      let w n () =
                          task {
                              let! r = cond.LockAsync()
                              use _ = r
                              let! _ = cond.WaitAsync()
                              log.Add(sprintf "%d woke" n)
                          }

                      let ts = [ for i in 0..3 -> createTask loop (w i) ]
                      do! sleep 0.1
                      log.Add(sprintf "still waiting %A" [ for t in ts -> t.Done ])

                      for notify in [ (fun () -> cond.Notify 1); (fun () -> cond.Notify 2); cond.NotifyAll ] do
                          let! r = cond.LockAsync()
                          notify ()
                          r.Dispose()
                          do! sleep 0.1

                      do! all loop ts

                      try
                          cond.Notify()
                      with :? InvalidOperationException as e ->
                          log.Add e.Message

                      try
                          let! _ = cond.WaitAsync()
                          ()
                      with :? InvalidOperationException as e ->
                          log.Add e.Message

                      let items = ResizeArray<int>()

                      let consumer () =
                          task {
                              let! r = cond.LockAsync()
                              use _ = r
                              let! v = cond.WaitForAsync(fun () -> items.Count >= 2)
                              log.Add(sprintf "wait_for -> %b %A" v (List.ofSeq items))
                          }

                      let t = createTask loop consumer

                      for i in 0..2 do
                          do! sleep 0.1
                          let! r = cond.LockAsync()
                          items.Add i
                          cond.Notify()
                          r.Dispose()

                      let! _ = t
                      ()
                  })

              Expect.equal
                  log.Items
                  [ "notify before anyone waits"
                    "still waiting [false; false; false; false]"
                    "0 woke"
                    "1 woke"
                    "2 woke"
                    "3 woke"
                    "cannot notify on un-acquired lock"
                    "cannot wait on un-acquired lock"
                    "wait_for -> true [0; 1]" ]
                  "as asyncio")

          // 3.13 (gh-112202): a waiter notified and then cancelled hands the notification on; 3.11 lost it.
          testCase "a notified waiter that is cancelled passes the notification on; it still holds the lock when it raises" (fun () ->
              use loop = newLoop ()
              let log = Log()
              let cond = Condition()

              runMainUnit loop (fun () ->
                  task {
                      let w n () =
                          task {
                              let! r = cond.LockAsync()
                              use _ = r

                              try
                                  let! _ = cond.WaitAsync()
                                  log.Add(sprintf "%d woke" n)
                              with :? CancelledException as e ->
                                  log.Add(sprintf "%d cancelled, locked=%b" n cond.Locked)
                                  raise e
                          }

                      let t1 = createTask loop (w 1)
                      let t2 = createTask loop (w 2)
                      do! yieldTick ()
                      let! r = cond.LockAsync()
                      cond.Notify 1
                      t1.Cancel() |> ignore
                      r.Dispose()
                      do! sleep 0.1
                      log.Add(sprintf "t1 cancelled %b, t2 done %b" t1.Cancelled t2.Done)
                  })

              Expect.equal log.Items [ "1 cancelled, locked=true"; "2 woke"; "t1 cancelled true, t2 done true" ] "the wake-up reached t2") ]

[<Tests>]
let semaphores =
    testList
        "AsyncSemaphore"
        [ // sync.py semaphore: 0 in 0.0, 1 in 0.0, 2 in 0.1, 3 in 0.1, 4 in 0.2.
          testCase "at most value holders; the others enter in arrival order" (fun () ->
              use loop = newLoop ()
              let log = Log()
              let sem = AsyncSemaphore 2

              runMainUnit loop (fun () ->
                  task {
                      let start = loop.Time()

                      let w n () =
                          task {
                              let! r = sem.LockAsync()
                              use _ = r
                              log.Add(sprintf "%d in %.1f" n (at loop start))
                              do! sleep 0.1
                          }

                      do! all loop [ for i in 0..4 -> createTask loop (w i) ]
                  })

              Expect.equal log.Items [ "0 in 0.0"; "1 in 0.0"; "2 in 0.1"; "3 in 0.1"; "4 in 0.2" ] "as asyncio"
              Expect.equal sem.Value 2 "all given back")

          // sync.py bounded / negative.
          testCase "BoundedSemaphore refuses an over-release; a negative value is refused" (fun () ->
              let e = throws<SemaphoreFullException> (fun () -> BoundedSemaphore(1).Release())
              Expect.equal e.Message "BoundedSemaphore released too many times" "asyncio's message"
              let e2 = throws<ArgumentOutOfRangeException> (fun () -> AsyncSemaphore(-1) |> ignore)
              Expect.stringStarts e2.Message "Semaphore initial value must be >= 0" "asyncio's message")

          testCase "a waiter handed a unit and then cancelled gives it to the next" (fun () ->
              use loop = newLoop ()
              let log = Log()
              let sem = AsyncSemaphore 0

              runMainUnit loop (fun () ->
                  task {
                      let a n () =
                          task {
                              let! _ = sem.AcquireAsync()
                              log.Add(sprintf "%d acquired" n)
                          }

                      let t1 = createTask loop (a 1)
                      let _t2 = createTask loop (a 2)
                      do! yieldTick ()
                      sem.Release()
                      t1.Cancel() |> ignore
                      do! sleep 0.01
                      log.Add(sprintf "value %d" sem.Value)
                  })

              Expect.equal log.Items [ "2 acquired"; "value 0" ] "handed on") ]

[<Tests>]
let barriers =
    testList
        "AsyncBarrier"
        [ // sync.py barrier: indexes by arrival (1 -> 0, 2 -> 1, 0 -> 2), all at 0.3.
          testCase "all parties go on together; Wait returns the arrival index" (fun () ->
              use loop = newLoop ()
              let log = Log()
              let b = AsyncBarrier 3

              runMainUnit loop (fun () ->
                  task {
                      let start = loop.Time()

                      let w n d () =
                          task {
                              do! sleep d
                              let! i = b.WaitAsync()
                              log.Add(sprintf "%d index %d at %.1f" n i (at loop start))
                          }

                      do! all loop [ createTask loop (w 0 0.3); createTask loop (w 1 0.1); createTask loop (w 2 0.2) ]
                  })

              Expect.equal (List.sort log.Items) [ "0 index 2 at 0.3"; "1 index 0 at 0.3"; "2 index 1 at 0.3" ] "as asyncio"
              Expect.equal (b.NWaiting, b.Broken) (0, false) "drained")

          // sync.py barrier_abort.
          testCase "a barrier aborted while tasks wait breaks them and every later Wait" (fun () ->
              use loop = newLoop ()
              let log = Log()
              let b = AsyncBarrier 3

              runMainUnit loop (fun () ->
                  task {
                      let w n () =
                          task {
                              try
                                  let! _ = b.WaitAsync()
                                  log.Add(sprintf "%d passed" n)
                              with :? BrokenBarrierException as e ->
                                  log.Add(sprintf "%d broken %s" n e.Message)
                          }

                      let ts = [ for i in 0..1 -> createTask loop (w i) ]
                      do! sleep 0.1
                      log.Add(sprintf "n_waiting %d" b.NWaiting)
                      do! b.AbortAsync()
                      do! all loop ts

                      try
                          let! _ = b.WaitAsync()
                          ()
                      with :? BrokenBarrierException as e ->
                          log.Add("later " + e.Message)

                      log.Add(sprintf "broken %b" b.Broken)
                  })

              Expect.equal
                  log.Items
                  [ "n_waiting 2"
                    "0 broken Abort or reset of barrier"
                    "1 broken Abort or reset of barrier"
                    "later Barrier aborted"
                    "broken true" ]
                  "as asyncio")

          // sync.py barrier_reset: the waiter breaks; afterwards the barrier works again.
          testCase "Reset breaks the waiters of the round and starts afresh" (fun () ->
              use loop = newLoop ()
              let log = Log()
              let b = AsyncBarrier 2

              runMainUnit loop (fun () ->
                  task {
                      let w n () =
                          task {
                              try
                                  let! _ = b.WaitAsync()
                                  log.Add(sprintf "%d passed" n)
                              with :? BrokenBarrierException as e ->
                                  log.Add(sprintf "%d broken %s" n e.Message)
                          }

                      let t0 = createTask loop (w 0)
                      do! sleep 0.1
                      do! b.ResetAsync()
                      do! all loop [ t0 ]
                      log.Add(sprintf "after reset broken=%b n=%d" b.Broken b.NWaiting)
                      do! all loop [ createTask loop (w 1); createTask loop (w 2) ]
                  })

              Expect.equal
                  (log.Items |> List.take 2)
                  [ "0 broken Abort or reset of barrier"; "after reset broken=false n=0" ]
                  "as asyncio"

              Expect.equal (log.Items |> List.skip 2 |> List.sort) [ "1 passed"; "2 passed" ] "a new round")

          testCase "parties must be > 0" (fun () ->
              Expect.stringStarts (throws<ArgumentOutOfRangeException> (fun () -> AsyncBarrier 0 |> ignore)).Message "parties must be > 0" "asyncio's message") ]

[<Tests>]
let queues =
    testList
        "AsyncQueue"
        [ // sync.py queue.
          testCase "nowait errors; a bounded producer waits for the consumer; TaskDone/Join" (fun () ->
              use loop = newLoop ()
              let log = Log()
              let q = AsyncQueue<int>(2)

              runMainUnit loop (fun () ->
                  task {
                      q.PutNowait 1
                      q.PutNowait 2

                      try
                          q.PutNowait 3
                      with :? QueueFullException ->
                          log.Add "full"

                      log.Add(sprintf "%d %d" (q.GetNowait()) (q.GetNowait()))
                      q.TaskDone()
                      q.TaskDone()

                      try
                          q.GetNowait() |> ignore
                      with :? QueueEmptyException ->
                          log.Add "empty"

                      let start = loop.Time()

                      let prod () =
                          task {
                              for i in 0..4 do
                                  do! q.PutAsync i
                                  log.Add(sprintf "put %d at %.1f qsize %d" i (at loop start) q.QSize)
                          }

                      let cons () =
                          task {
                              for _ in 0..4 do
                                  do! sleep 0.1
                                  let! v = q.GetAsync()
                                  log.Add(sprintf "got %d" v)
                                  q.TaskDone()
                          }

                      do! all loop [ createTask loop prod; createTask loop cons ]
                      do! q.JoinAsync()
                      log.Add "joined"

                      try
                          q.TaskDone()
                      with :? InvalidOperationException as e ->
                          log.Add e.Message
                  })

              Expect.equal
                  log.Items
                  [ "full"
                    "1 2"
                    "empty"
                    "put 0 at 0.0 qsize 1"
                    "put 1 at 0.0 qsize 2"
                    "got 0"
                    "put 2 at 0.1 qsize 2"
                    "got 1"
                    "put 3 at 0.2 qsize 2"
                    "got 2"
                    "put 4 at 0.3 qsize 2"
                    "got 3"
                    "got 4"
                    "joined"
                    "task_done() called too many times" ]
                  "as asyncio")

          // sync.py pq: [1, 2, 3]; lifo: [2, 1, 3].
          testCase "priority and LIFO orders" (fun () ->
              let pq = AsyncPriorityQueue<int>()
              let lq = AsyncLifoQueue<int>()

              for x in [ 3; 1; 2 ] do
                  pq.PutNowait x
                  lq.PutNowait x

              Expect.equal [ for _ in 1..3 -> pq.GetNowait() ] [ 1; 2; 3 ] "smallest first"
              Expect.equal [ for _ in 1..3 -> lq.GetNowait() ] [ 2; 1; 3 ] "last first")

          // sync.py queue_getter_cancel: ['2 got x'], t1 cancelled, qsize 0.
          testCase "a getter cancelled after it was woken passes the item on" (fun () ->
              use loop = newLoop ()
              let log = Log()
              let q = AsyncQueue<string>()

              let r =
                  runMain loop (fun () ->
                      task {
                          let g n () =
                              task {
                                  let! v = q.GetAsync()
                                  log.Add(sprintf "%d got %s" n v)
                              }

                          let t1 = createTask loop (g 1)
                          let _t2 = createTask loop (g 2)
                          do! yieldTick ()
                          q.PutNowait "x"
                          t1.Cancel() |> ignore
                          do! sleep 0.01
                          return t1.Cancelled, q.QSize
                      })

              Expect.equal log.Items [ "2 got x" ] "t2 got it"
              Expect.equal r (true, 0) "as asyncio")

          // sync.py queue_barging: a newcomer's GetNowait takes the item a woken getter was told of.
          testCase "as asyncio, an item put while a getter waits can be taken by a newcomer first" (fun () ->
              use loop = newLoop ()
              let log = Log()
              let q = AsyncQueue<string>()

              runMainUnit loop (fun () ->
                  task {
                      let _t1 =
                          createTask loop (fun () ->
                              task {
                                  let! v = q.GetAsync()
                                  log.Add(sprintf "1 got %s" v)
                              })

                      do! yieldTick ()
                      q.PutNowait "a"
                      log.Add(sprintf "nowait by newcomer %s" (q.GetNowait()))
                      q.PutNowait "b"
                      do! sleep 0.01
                  })

              Expect.equal log.Items [ "nowait by newcomer a"; "1 got b" ] "as asyncio")

          // 3.13 queues.py shutdown: waiting getters (empty queue) and putters (full queue) are woken and
          // raise QueueShutDown; remaining items can still be got; then gets raise too.
          testCase "Shutdown with waiting getters and putters wakes them with QueueShutDownException" (fun () ->
              use loop = newLoop ()
              let log = Log()

              runMainUnit loop (fun () ->
                  task {
                      let empty = AsyncQueue<int>()
                      let full = AsyncQueue<int>(1)
                      full.PutNowait 7

                      let getter n () =
                          task {
                              try
                                  let! v = empty.GetAsync()
                                  log.Add(sprintf "getter %d got %d" n v)
                              with :? QueueShutDownException ->
                                  log.Add(sprintf "getter %d shut down" n)
                          }

                      let putter n () =
                          task {
                              try
                                  do! full.PutAsync n
                                  log.Add(sprintf "putter %d put" n)
                              with :? QueueShutDownException ->
                                  log.Add(sprintf "putter %d shut down" n)
                          }

                      let ts = [ createTask loop (getter 1); createTask loop (getter 2); createTask loop (putter 1); createTask loop (putter 2) ]
                      do! yieldTick ()
                      empty.Shutdown()
                      full.Shutdown()
                      do! all loop ts
                      log.Add(sprintf "left %d" (full.GetNowait()))

                      try
                          let! _ = full.GetAsync()
                          ()
                      with :? QueueShutDownException ->
                          log.Add "get after: shut down"

                      try
                          full.PutNowait 1
                      with :? QueueShutDownException ->
                          log.Add "put after: shut down"
                  })

              Expect.equal
                  log.Items
                  [ "getter 1 shut down"
                    "getter 2 shut down"
                    "putter 1 shut down"
                    "putter 2 shut down"
                    "left 7"
                    "get after: shut down"
                    "put after: shut down" ]
                  "3.13's order")

          testCase "Shutdown(immediate) drops the items and releases Join" (fun () ->
              use loop = newLoop ()

              let r =
                  runMain loop (fun () ->
                      task {
                          let q = AsyncQueue<int>()
                          q.PutNowait 1
                          q.PutNowait 2
                          let j = createTask loop (fun () -> task { do! q.JoinAsync() })
                          do! yieldTick ()
                          q.Shutdown(immediate = true)
                          let! _ = j

                          let! got =
                              task {
                                  try
                                      let! _ = q.GetAsync()
                                      return "got"
                                  with :? QueueShutDownException ->
                                      return "shut down"
                              }

                          return q.QSize, j.Done, got
                      })

              Expect.equal r (0, true, "shut down") "3.13")

          testCase "the consumer side as an async stream ends when the queue is shut down and empty" (fun () ->
              use loop = newLoop ()

              let r =
                  runMain loop (fun () ->
                      task {
                          let q = AsyncQueue<int>(1)

                          let _p =
                              createTask loop (fun () ->
                                  task {
                                      for i in 1..3 do
                                          do! q.PutAsync i

                                      q.Shutdown()
                                  })

                          let got = ResizeArray()
                          let e = (q :> Collections.Generic.IAsyncEnumerable<int>).GetAsyncEnumerator()
                          let! more = e.MoveNextAsync()
                          let mutable more = more

                          while more do
                              got.Add e.Current
                              let! m = e.MoveNextAsync()
                              more <- m

                          return List.ofSeq got
                      })

              Expect.equal r [ 1; 2; 3 ] "every item, then the end") ]
