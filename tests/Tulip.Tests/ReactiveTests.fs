/// Tulip.Reactive under the virtual-time loop: the scheduler, the adapters, the overflow strategies and
/// the async-aware operators. No test sleeps: time jumps to the next timer.
module Tulip.Tests.ReactiveTests

open System
open System.Collections.Generic
open System.Reactive.Concurrency
open System.Reactive.Linq
open System.Reactive.Subjects
open System.Text
open System.Threading
open System.Threading.Tasks
open Expecto
open Tulip
open Tulip.Reactive
open Tulip.Tests.ShellSupport

type private Rx = System.Reactive.Linq.Observable

/// Records every notification with the loop time (rounded to ms) and checks it came on the loop thread.
type Recorder<'T>(loop: EventLoop) =
    let items = List<string>()
    let mutable offThread = 0
    let stamp (s: string) =
        if not loop.IsOnLoopThread && loop.IsRunning then offThread <- offThread + 1
        items.Add(sprintf "%.3f %s" (loop.Time()) s)
    member _.Items = List.ofSeq items
    member _.OffThread = offThread
    interface IObserver<'T> with
        member _.OnNext v = stamp (sprintf "%A" v)
        member _.OnError e = stamp (sprintf "error %s: %s" (e.GetType().Name) e.Message)
        member _.OnCompleted() = stamp "completed"

let private b (s: string) = Encoding.ASCII.GetBytes s
let private str (bytes: byte[]) = Encoding.ASCII.GetString bytes
let private secs (s: float) = TimeSpan.FromSeconds s

/// Live handles (queued or parked; cancelled timers are released at once even though the timer queue
/// drops them lazily).
let private live (loop: EventLoop) = loop.LiveHandles

[<Tests>]
let packaging =
    testList
        "Reactive packaging"
        [ testCase "Tulip does not reference System.Reactive; Tulip.Reactive does" (fun () ->
              let refs (t: Type) = t.Assembly.GetReferencedAssemblies() |> Array.map (fun a -> a.Name) |> Set.ofArray
              Expect.isFalse ((refs typeof<EventLoop>).Contains "System.Reactive") "the await package stays Rx-free"
              Expect.isTrue ((refs typeof<LoopScheduler>).Contains "System.Reactive") "the Rx face references it"
              Expect.isTrue ((refs typeof<LoopScheduler>).Contains "Tulip") "on top of Tulip") ]

[<Tests>]
let scheduler =
    testList
        "LoopScheduler"
        [ testCase "Now is loop time: it moves with Asyncio.Sleep and agrees with the TimeProvider" (fun () ->
              use loop = newLoop ()
              let s = LoopScheduler(loop)
              let r =
                  runMain loop (fun () ->
                      task {
                          let t0 = s.Now
                          let sw = s.StartStopwatch()
                          do! sleep 2.5
                          return s.Now - t0, sw.Elapsed, s.Now = loop.TimeProvider.GetUtcNow()
                      })
              Expect.equal r (secs 2.5, secs 2.5, true) "2.5 s of loop time")

          testCase "immediate work runs in FIFO order on later ticks; timed work by due time, ties in order" (fun () ->
              use loop = newLoop ()
              let s = LoopScheduler(loop) :> IScheduler
              let log = Log()
              let at (name: string) = Func<IScheduler, unit, IDisposable>(fun _ () -> log.Add(sprintf "%.1f %s" (loop.Time()) name); System.Reactive.Disposables.Disposable.Empty)
              runMainUnit loop (fun () ->
                  task {
                      s.Schedule((), secs 2.0, at "t2") |> ignore
                      s.Schedule((), secs 1.0, at "t1a") |> ignore
                      s.Schedule((), at "soon1") |> ignore
                      s.Schedule((), secs 1.0, at "t1b") |> ignore
                      s.Schedule((), s.Now + secs 1.5, at "abs1.5") |> ignore
                      s.Schedule((), secs -1.0, at "soon2") |> ignore
                      log.Add "scheduled"
                      do! sleep 3.0
                  })
              Expect.equal log.Items [ "scheduled"; "0.0 soon1"; "0.0 soon2"; "1.0 t1a"; "1.0 t1b"; "1.5 abs1.5"; "2.0 t2" ] "order")

          testCase "disposing scheduled work cancels its handle: it never runs and nothing stays queued" (fun () ->
              use loop = newLoop ()
              let s = LoopScheduler(loop) :> IScheduler
              let log = Log()
              runMainUnit loop (fun () ->
                  task {
                      let before = live loop
                      let d1 = s.Schedule((), secs 1.0, Func<IScheduler, unit, IDisposable>(fun _ () -> log.Add "timed"; System.Reactive.Disposables.Disposable.Empty))
                      let d2 = s.Schedule((), Func<IScheduler, unit, IDisposable>(fun _ () -> log.Add "soon"; System.Reactive.Disposables.Disposable.Empty))
                      Expect.equal (live loop) (before + 2) "two handles queued"
                      d1.Dispose()
                      d2.Dispose()
                      Expect.equal (live loop) before "cancelled at once"
                      do! sleep 2.0
                  })
              Expect.isEmpty log.Items "nothing ran")

          testCase "recursive work is cancelled by disposing the outer handle" (fun () ->
              use loop = newLoop ()
              let s = LoopScheduler(loop) :> IScheduler
              let log = Log()
              runMainUnit loop (fun () ->
                  task {
                      let before = live loop
                      let d =
                          s.Schedule(0, secs 1.0, Func<IScheduler, int, IDisposable>(fun sch n ->
                              log.Add(sprintf "outer %.0f" (loop.Time()))
                              sch.Schedule(n, secs 1.0, Func<IScheduler, int, IDisposable>(fun _ _ -> log.Add "inner"; System.Reactive.Disposables.Disposable.Empty))))
                      do! sleep 1.5
                      d.Dispose()
                      Expect.equal (live loop) before "the inner timer went with the outer"
                      do! sleep 2.0
                  })
              Expect.equal log.Items [ "outer 1" ] "inner never ran")

          testCase "periodic work runs at start + k*period until disposed" (fun () ->
              use loop = newLoop ()
              let s = LoopScheduler(loop)
              let log = Log()
              runMainUnit loop (fun () ->
                  task {
                      let before = live loop
                      let d = s.SchedulePeriodic(0, secs 1.0, Func<int, int>(fun n -> log.Add(sprintf "%d at %.1f" n (loop.Time())); n + 1))
                      do! sleep 3.5
                      d.Dispose()
                      Expect.equal (live loop) before "no handle left after dispose"
                      do! sleep 5.0
                  })
              Expect.equal log.Items [ "0 at 1.0"; "1 at 2.0"; "2 at 3.0" ] "three periods")

          testCase "Rx exposes the periodic and stopwatch services" (fun () ->
              use loop = newLoop ()
              let s = LoopScheduler(loop) :> IScheduler
              Expect.isNotNull (Scheduler.AsPeriodic s) "ISchedulerPeriodic"
              Expect.isNotNull (Scheduler.AsStopwatchProvider s) "IStopwatchProvider"
              Expect.isNull (Scheduler.AsLongRunning s) "no long-running threads on a loop")

          testCase "work scheduled from another thread runs on the loop thread" (fun () ->
              use loop = newLoop ()
              let s = LoopScheduler(loop) :> IScheduler
              let r =
                  runMain loop (fun () ->
                      task {
                          let loopThread = Thread.CurrentThread.ManagedThreadId
                          let f = loop.CreateFuture<int * float>()
                          let! _ =
                              Task.Run(fun () ->
                                  s.Schedule((), secs 1.0, Func<IScheduler, unit, IDisposable>(fun _ () ->
                                      f.SetResult((Thread.CurrentThread.ManagedThreadId, loop.Time()))
                                      System.Reactive.Disposables.Disposable.Empty)))
                          let! tid, at = f
                          return tid = loopThread, at >= 1.0
                      })
              Expect.equal r (true, true) "on the loop, a second later")

          testCase "Interval, Timer, Delay and Timeout run on loop time: an hour finishes at once" (fun () ->
              use loop = newLoop ()
              let s = LoopScheduler(loop)
              let started = DateTime.UtcNow
              let r =
                  runMain loop (fun () ->
                      task {
                          let! ticks = Rx.Interval(secs 600.0, s).Take(6).ToListFuture(loop)
                          let t1 = loop.Time()
                          let! delayed = Rx.Return(7).Delay(secs 10.0, s).FirstToFuture(loop)
                          let t2 = loop.Time()
                          let! timedOut =
                              task {
                                  try
                                      let! _ = Rx.Never<int>().Timeout(secs 5.0, s).FirstToFuture(loop)
                                      return "no timeout"
                                  with :? TimeoutException -> return sprintf "timeout at %.0f" (loop.Time())
                              }
                          let! timer = Rx.Timer(secs 1.0, s).FirstToFuture(loop)
                          return List.ofSeq ticks, t1, delayed, t2, timedOut, timer
                      })
              Expect.equal r ([ 0L; 1L; 2L; 3L; 4L; 5L ], 3600.0, 7, 3610.0, "timeout at 3615", 0L) "virtual hour"
              Expect.isLessThan (DateTime.UtcNow - started) (secs 5.0) "no real waiting")

          testCase "Throttle and Buffer follow loop time" (fun () ->
              use loop = newLoop ()
              let s = LoopScheduler(loop)
              let throttled = Recorder<int>(loop)
              let buffered = Recorder<string>(loop)
              runMainUnit loop (fun () ->
                  task {
                      use subject = new Subject<int>()
                      use _t = subject.Throttle(secs 1.0, s).Subscribe(throttled)
                      use _b = subject.Buffer(secs 2.0, s).Select(fun xs -> String.Join(",", xs)).Subscribe(buffered)
                      for (t, v) in [ 0.0, 1; 0.5, 2; 2.0, 3; 2.2, 4; 2.4, 5 ] do
                          do! sleep (t - loop.Time())
                          subject.OnNext v
                      do! sleep (4.5 - loop.Time())
                      subject.OnCompleted()
                      do! yieldTick ()
                  })
              Expect.equal throttled.Items [ "1.500 2"; "3.400 5"; "4.500 completed" ] "throttle: 1 s of quiet"
              Expect.equal buffered.Items [ "2.000 \"1,2\""; "4.000 \"3,4,5\""; "4.500 \"\""; "4.500 completed" ] "buffer: every 2 s"
              Expect.equal throttled.OffThread 0 "on the loop thread") ]

[<Tests>]
let futures =
    testList
        "Future adapters"
        [ testCase "a future's result: one value and completion, on a later tick" (fun () ->
              use loop = newLoop ()
              let rec1 = Recorder<int>(loop)
              runMainUnit loop (fun () ->
                  task {
                      let f = loop.CreateFuture<int>()
                      use _ = f.ToObservable().Subscribe(rec1)
                      loop.CallLater(1.0, fun () -> f.SetResult 42) |> ignore
                      do! sleep 2.0
                      // Subscribing to a done future: delivered on the next tick, not inline.
                      let rec2 = Recorder<int>(loop)
                      use _ = f.ToObservable().Subscribe(rec2)
                      Expect.isEmpty rec2.Items "not inline"
                      do! yieldTick ()
                      Expect.equal rec2.Items [ "2.000 42"; "2.000 completed" ] "late subscriber"
                  })
              Expect.equal rec1.Items [ "1.000 42"; "1.000 completed" ] "value then completion")

          testCase "an exception is OnError, a cancellation is OnError(CancelledException)" (fun () ->
              use loop = newLoop ()
              let r1 = Recorder<int>(loop)
              let r2 = Recorder<int>(loop)
              runMainUnit loop (fun () ->
                  task {
                      let f1 = loop.CreateFuture<int>()
                      let f2 = loop.CreateFuture<int>()
                      use _ = f1.ToObservable().Subscribe(r1)
                      use _ = f2.ToObservable().Subscribe(r2)
                      f1.SetException(InvalidOperationException "boom")
                      f2.Cancel("stop") |> ignore
                      do! yieldTick ()
                  })
              Expect.equal r1.Items [ "0.000 error InvalidOperationException: boom" ] "error"
              Expect.equal r2.Items [ "0.000 error CancelledException: stop" ] "cancelled")

          testCase "disposing cancels the task behind it; StopListening leaves it running; no callback after disposal" (fun () ->
              use loop = newLoop ()
              let r1 = Recorder<int>(loop)
              let r2 = Recorder<int>(loop)
              let outcome =
                  runMain loop (fun () ->
                      task {
                          let work (n: int) () =
                              task {
                                  do! sleep 1.0
                                  return n
                              }
                          let t1 = createTask loop (work 1)
                          let t2 = createTask loop (work 2)
                          let d1 = t1.ToObservable().Subscribe(r1)
                          let d2 = t2.ToObservable(OnDispose.StopListening).Subscribe(r2)
                          do! sleep 0.5
                          d1.Dispose()
                          d2.Dispose()
                          do! sleep 1.0
                          return t1.Cancelled, t2.Result()
                      })
              Expect.equal outcome (true, 2) "t1 cancelled, t2 finished"
              Expect.isEmpty r1.Items "nothing after disposal"
              Expect.isEmpty r2.Items "nothing after disposal")

          testCase "a coroutine per subscription: disposal cancels it" (fun () ->
              use loop = newLoop ()
              let log = Log()
              let r = Recorder<int>(loop)
              runMainUnit loop (fun () ->
                  task {
                      let obs =
                          LoopObservable.FromCoroutine(loop, fun ct ->
                              task {
                                  try
                                      do! sleep 1.0
                                      return 5
                                  with :? OperationCanceledException ->
                                      log.Add(sprintf "cancelled at %.1f" (loop.Time()))
                                      return -1
                              })
                      use _ = obs.Subscribe(r)
                      let d = obs.Subscribe(Recorder<int>(loop))
                      do! sleep 0.5
                      d.Dispose()
                      do! sleep 1.0
                  })
              Expect.equal log.Items [ "cancelled at 0.5" ] "the second run was cancelled"
              Expect.equal r.Items [ "1.000 5"; "1.000 completed" ] "the first ran to the end")

          testCase "a source on another thread: ToListFuture and ObserveOn(LoopScheduler) bring it onto the loop thread, in order" (fun () ->
              use loop = newLoop ()
              let r = Recorder<int>(loop)
              let values =
                  runMain loop (fun () ->
                      task {
                          let src = Rx.Range(1, 200).SubscribeOn(System.Reactive.Concurrency.TaskPoolScheduler.Default)
                          use _ = src.ObserveOn(LoopScheduler(loop)).Subscribe(r)
                          let! all = src.ToListFuture(loop)
                          while List.isEmpty r.Items || not ((List.last r.Items).EndsWith "completed") do
                              do! yieldTick ()
                          return List.ofSeq all
                      })
              Expect.equal values [ 1..200 ] "all, in order"
              Expect.equal r.Items.Length 201 "200 values and completion"
              Expect.equal r.OffThread 0 "never off the loop thread"
              Expect.equal (List.last r.Items) "0.000 completed" "completed last")

          testCase "first, last and to-list futures" (fun () ->
              use loop = newLoop ()
              let s = LoopScheduler(loop)
              let r =
                  runMain loop (fun () ->
                      task {
                          let src = Rx.Interval(secs 1.0, s).Take(4)
                          let! first = src.FirstToFuture(loop)
                          let t1 = loop.Time()
                          let! last = src.LastToFuture(loop)
                          let! all = src.ToListFuture(loop)
                          let! empty = Rx.Empty<int>().ToListFuture(loop)
                          let! noFirst = task { try let! _ = Rx.Empty<int>().FirstToFuture(loop) in return "?" with :? InvalidOperationException as e -> return e.Message }
                          let! err = task { try let! _ = Rx.Throw<int>(TimeoutException "late").LastToFuture(loop) in return "?" with :? TimeoutException as e -> return e.Message }
                          return first, t1, last, List.ofSeq all, empty.Count, noFirst, err
                      })
              Expect.equal r (0L, 1.0, 3L, [ 0L; 1L; 2L; 3L ], 0, "Sequence contains no elements.", "late") "values")

          testCase "the first value disposes the subscription; cancelling the future disposes it too" (fun () ->
              use loop = newLoop ()
              let s = LoopScheduler(loop)
              let log = Log()
              runMainUnit loop (fun () ->
                  task {
                      let src = Rx.Interval(secs 1.0, s).Finally(fun () -> log.Add(sprintf "unsubscribed at %.0f" (loop.Time())))
                      let! _ = src.FirstToFuture(loop)
                      let before = live loop
                      let f = src.ToListFuture(loop)
                      do! sleep 2.5
                      f.Cancel() |> ignore
                      do! yieldTick ()
                      Expect.equal (live loop) before "the interval is gone"
                      do! sleep 3.0
                  })
              Expect.equal log.Items [ "unsubscribed at 1"; "unsubscribed at 4" ] "both ended their subscription") ]

[<Tests>]
let streams =
    testList
        "Stream adapters"
        [ testCase "lines until EOF, then completion" (fun () ->
              use loop = newLoop ()
              let reader = LoopStreamReader(loop)
              let r = Recorder<string>(loop)
              runMainUnit loop (fun () ->
                  task {
                      use _ = reader.LinesObservable(loop).Select(str).Subscribe(r)
                      reader.FeedData(ReadOnlySpan(b "one\ntw"))
                      do! sleep 1.0
                      reader.FeedData(ReadOnlySpan(b "o\nthree"))
                      reader.FeedEof()
                      do! sleep 1.0
                  })
              Expect.equal r.Items [ "0.000 \"one\n\""; "1.000 \"two\n\""; "1.000 \"three\""; "1.000 completed" ] "lines")

          testCase "chunks of at most n bytes; a reader error is OnError" (fun () ->
              use loop = newLoop ()
              let reader = LoopStreamReader(loop)
              let r = Recorder<string>(loop)
              runMainUnit loop (fun () ->
                  task {
                      use _ = reader.ChunksObservable(loop, 4).Select(str).Subscribe(r)
                      reader.FeedData(ReadOnlySpan(b "abcdef"))
                      do! sleep 1.0
                      reader.SetException(IO.IOException "reset")
                      do! sleep 1.0
                  })
              Expect.equal r.Items [ "0.000 \"abcd\""; "0.000 \"ef\""; "1.000 error IOException: reset" ] "chunks then error")

          testCase "disposal cancels the pending read: later data stays in the reader, no callback" (fun () ->
              use loop = newLoop ()
              let reader = LoopStreamReader(loop)
              let r = Recorder<string>(loop)
              let left =
                  runMain loop (fun () ->
                      task {
                          let d = reader.LinesObservable(loop).Select(str).Subscribe(r)
                          reader.FeedData(ReadOnlySpan(b "a\n"))
                          do! yieldTick ()
                          do! yieldTick ()
                          d.Dispose()
                          do! yieldTick ()
                          reader.FeedData(ReadOnlySpan(b "b\n"))
                          do! sleep 1.0
                          let! line = reader.ReadLineBytesAsync()
                          return str line
                      })
              Expect.equal r.Items [ "0.000 \"a\n\"" ] "one line before disposal"
              Expect.equal left "b\n" "the next reader gets the rest")

          testCase "a server's connections: each is an OnNext; disposal closes the server and aborts them" (fun () ->
              use loop = newLoop ()
              let log = Log()
              runMainUnit loop (fun () ->
                  task {
                      let server = loop.CreateFuture<Server>()
                      let conns =
                          StreamObservables.Connections(loop, "127.0.0.1", 0, started = (fun s -> server.SetResult s))
                      let sub =
                          conns.SubscribeAsync(loop, (fun (c: LoopConnection) _ ->
                              task {
                                  let! line = c.Reader.ReadLineBytesAsync()
                                  c.Writer.Write(ReadOnlySpan(b ("echo " + str line)))
                                  log.Add("served " + (str line).Trim())
                              }), AsyncConcurrency.Parallel 8)
                      let! srv = server
                      let port = (srv.Sockets[0].LocalEndPoint :?> Net.IPEndPoint).Port
                      let! (r1, w1) = Asyncio.OpenConnection("127.0.0.1", port)
                      w1.Write(ReadOnlySpan(b "hello\n"))
                      let! reply = r1.ReadLineBytesAsync()
                      log.Add(str reply)
                      let! (r2, _w2) = Asyncio.OpenConnection("127.0.0.1", port)
                      // No timed sleep while sockets are watched: a virtual clock would wait for I/O first.
                      while srv.ActiveConnections < 2 do
                          do! yieldTick ()
                      sub.Dispose()
                      let! eof = r2.ReadAsync()
                      log.Add(sprintf "second client sees %d bytes, serving %b" eof.Length srv.IsServing)
                      w1.Close()
                  })
              Expect.equal log.Items [ "served hello"; "echo hello\n"; "second client sees 0 bytes, serving false" ] "served, then closed") ]

[<Tests>]
let serverStopListening =
    testList "Server adapter" [ testCase "a server's connections with StopListening: disposal stops accepting, open connections go on" (fun () ->
        use loop = newLoop ()
        let r =
            runMain loop (fun () ->
                task {
                    let server = loop.CreateFuture<Server>()
                    let conn = loop.CreateFuture<LoopConnection>()
                    let sub =
                        StreamObservables.Connections(loop, "127.0.0.1", 0, started = (fun s -> server.SetResult s), onDispose = OnDispose.StopListening)
                            .Subscribe(fun (c: LoopConnection) -> conn.SetResult c)
                    let! srv = server
                    let port = (srv.Sockets[0].LocalEndPoint :?> Net.IPEndPoint).Port
                    let! (reader, writer) = Asyncio.OpenConnection("127.0.0.1", port)
                    let! c = conn
                    sub.Dispose()
                    while srv.IsServing do
                        do! yieldTick ()
                    c.Writer.Write(ReadOnlySpan(b "still here\n"))
                    let! line = reader.ReadLineBytesAsync()
                    writer.Close()
                    c.Writer.Close()
                    return str line, srv.IsServing
                })
        Expect.equal r ("still here\n", false) "the connection outlived the subscription") ]

[<Tests>]
let queues =
    testList
        "Queue adapters"
        [ testCase "a queue's items until it is shut down; disposal cancels the pending get" (fun () ->
              use loop = newLoop ()
              let r = Recorder<int>(loop)
              let r2 = Recorder<int>(loop)
              let afterDispose =
                  runMain loop (fun () ->
                      task {
                          let q = AsyncQueue<int>()
                          use _ = q.ToObservable(loop).Subscribe(r)
                          do! q.PutAsync 1
                          do! sleep 1.0
                          do! q.PutAsync 2
                          q.Shutdown()
                          do! yieldTick ()
                          let q2 = AsyncQueue<int>()
                          let d = q2.ToObservable(loop).Subscribe(r2)
                          do! yieldTick ()
                          let waiting = string q2
                          d.Dispose()
                          do! yieldTick ()
                          q2.PutNowait 9
                          do! yieldTick ()
                          return waiting, string q2, q2.QSize
                      })
              Expect.equal r.Items [ "0.000 1"; "1.000 2"; "1.000 completed" ] "items then completion"
              Expect.equal afterDispose ("<AsyncQueue maxsize=0 _getters[1]>", "<AsyncQueue maxsize=0 tasks=1>", 1) "the getter is gone, the item stays"
              Expect.isEmpty r2.Items "no callback after disposal")

          let feed strategy =
              use loop = newLoop ()
              runMain loop (fun () ->
                  task {
                      let q = AsyncQueue<int>(2)
                      let feed = Rx.Range(1, 5).PipeTo(q, strategy, loop)
                      let inQueue = [ while not q.Empty do q.GetNowait() ]
                      do! yieldTick ()
                      let later = [ while not q.Empty do q.GetNowait() ]
                      for _ in 1..5 do
                          do! yieldTick ()
                      let rest = [ while not q.Empty do q.GetNowait() ]
                      let completion =
                          if not feed.Completion.Done then "pending"
                          elif feed.Completion.Cancelled then "cancelled"
                          else match feed.Completion.Exception() with null -> "done" | e -> e.GetType().Name
                      return inQueue, later @ rest, feed.Dropped, completion, q.IsShutdown
                  })

          testCase "overflow Wait: every item arrives, in order" (fun () ->
              Expect.equal (feed OverflowStrategy.Wait) ([ 1; 2 ], [ 3; 4; 5 ], 0, "done", true) "no loss")
          testCase "overflow DropNewest: the items that find the queue full are dropped" (fun () ->
              Expect.equal (feed OverflowStrategy.DropNewest) ([ 1; 2 ], [], 3, "done", true) "1 and 2 kept")
          testCase "overflow DropOldest: the newest items push the oldest out" (fun () ->
              Expect.equal (feed OverflowStrategy.DropOldest) ([ 4; 5 ], [], 3, "done", true) "4 and 5 kept")
          testCase "overflow Fail: the feed fails with QueueFullException and unsubscribes" (fun () ->
              Expect.equal (feed OverflowStrategy.Fail) ([ 1; 2 ], [], 0, "QueueFullException", true) "failed at 3")

          testCase "a feed's source error shuts the queue down and faults the completion; disposal stops the feed" (fun () ->
              use loop = newLoop ()
              let s = LoopScheduler(loop)
              let r =
                  runMain loop (fun () ->
                      task {
                          let q = AsyncQueue<int>()
                          let feed = Rx.Throw<int>(InvalidOperationException "src").PipeTo(q, OverflowStrategy.Wait, loop)
                          do! yieldTick ()
                          let err = feed.Completion.Exception().Message
                          let q2 = AsyncQueue<int64>(1)
                          let feed2 = Rx.Interval(secs 1.0, s).PipeTo(q2, OverflowStrategy.Wait, loop)
                          do! sleep 3.5
                          let waiting = feed2.Waiting
                          feed2.Dispose()
                          do! yieldTick ()
                          let timers = loop.TimerCount
                          let got = [ while not q2.Empty do q2.GetNowait() ]
                          do! sleep 3.0
                          return err, q.IsShutdown, waiting, feed2.Completion.Cancelled, timers, got, q2.QSize
                      })
              Expect.equal r ("src", true, 2, true, 0, [ 0L ], 0) "error passed on; disposal stops the interval and drops the waiting items") ]

/// An async sequence that logs when its enumeration ends.
let private numbers (log: Log) (n: int) (failAt: int option) : IAsyncEnumerable<int> =
    { new IAsyncEnumerable<int> with
        member _.GetAsyncEnumerator ct =
            let mutable i = 0
            { new IAsyncEnumerator<int> with
                member _.Current = i
                member _.MoveNextAsync() =
                    ValueTask<bool>(
                        task {
                            do! Asyncio.Sleep 1.0
                            ct.ThrowIfCancellationRequested()
                            i <- i + 1
                            if Some i = failAt then raise (InvalidOperationException("at " + string i))
                            return i <= n
                        })
                member _.DisposeAsync() =
                    log.Add(sprintf "enumeration ended at %.1f" (Asyncio.GetRunningLoop().Time()))
                    ValueTask.CompletedTask } }

[<Tests>]
let asyncEnumerables =
    testList
        "IAsyncEnumerable bridges"
        [ testCase "an async sequence as an observable: values, completion, error" (fun () ->
              use loop = newLoop ()
              let log = Log()
              let r1 = Recorder<int>(loop)
              let r2 = Recorder<int>(loop)
              runMainUnit loop (fun () ->
                  task {
                      use _ = (numbers log 2 None).ToLoopObservable(loop).Subscribe(r1)
                      use _ = (numbers log 5 (Some 2)).ToLoopObservable(loop).Subscribe(r2)
                      do! sleep 5.0
                  })
              Expect.equal r1.Items [ "1.000 1"; "2.000 2"; "3.000 completed" ] "values"
              Expect.equal r2.Items [ "1.000 1"; "2.000 error InvalidOperationException: at 2" ] "error")

          testCase "disposing the observable of an async sequence cancels the enumeration" (fun () ->
              use loop = newLoop ()
              let log = Log()
              let r = Recorder<int>(loop)
              runMainUnit loop (fun () ->
                  task {
                      let d = (numbers log 10 None).ToLoopObservable(loop).Subscribe(r)
                      do! sleep 2.5
                      d.Dispose()
                      do! sleep 5.0
                  })
              Expect.equal r.Items [ "1.000 1"; "2.000 2" ] "nothing after disposal"
              Expect.equal log.Items [ "enumeration ended at 2.5" ] "the enumerator was disposed")

          testCase "an observable as an async sequence: values, error, early exit disposes the subscription" (fun () ->
              use loop = newLoop ()
              let s = LoopScheduler(loop)
              let log = Log()
              let r =
                  runMain loop (fun () ->
                      task {
                          let got = List<int64>()
                          let e = Rx.Interval(secs 1.0, s).Take(3).ToLoopAsyncEnumerable().GetAsyncEnumerator()
                          let mutable go = true
                          while go do
                              let! more = e.MoveNextAsync()
                              if more then got.Add e.Current else go <- false
                          do! e.DisposeAsync()
                          let src = Rx.Interval(secs 1.0, s).Finally(fun () -> log.Add(sprintf "unsubscribed at %.0f" (loop.Time())))
                          let e2 = src.ToLoopAsyncEnumerable().GetAsyncEnumerator()
                          let! _ = e2.MoveNextAsync()
                          do! e2.DisposeAsync()
                          let e3 = Rx.Throw<int>(TimeoutException "t").ToLoopAsyncEnumerable().GetAsyncEnumerator()
                          let! err = task { try let! _ = e3.MoveNextAsync() in return "?" with :? TimeoutException as x -> return x.Message }
                          do! sleep 2.0
                          return List.ofSeq got, err, loop.TimerCount
                      })
              Expect.equal r ([ 0L; 1L; 2L ], "t", 0) "values and error"
              Expect.equal log.Items [ "unsubscribed at 4" ] "early exit unsubscribed")

          testCase "cancelling the token of an observable's async sequence ends it" (fun () ->
              use loop = newLoop ()
              let r =
                  runMain loop (fun () ->
                      task {
                          use cts = new CancellationTokenSource()
                          let e = Rx.Never<int>().ToLoopAsyncEnumerable(cts.Token).GetAsyncEnumerator()
                          loop.CallLater(1.0, fun () -> cts.Cancel()) |> ignore
                          try
                              let! _ = e.MoveNextAsync()
                              return "?"
                          with :? OperationCanceledException -> return sprintf "cancelled at %.0f" (loop.Time())
                      })
              Expect.equal r "cancelled at 1" "ended by the token") ]

/// Items pushed at given loop times through a subject; the selector takes `work` seconds per item.
let private selectRun (policy: AsyncConcurrency) (pushes: (float * int) list) (work: float) (failOn: int option) =
    use loop = newLoop ()
    let r = Recorder<int>(loop)
    let log = Log()
    runMainUnit loop (fun () ->
        task {
            use subject = new Subject<int>()
            let d =
                subject
                    .SelectAsync(loop, (fun (x: int) (ct: CancellationToken) ->
                        task {
                            log.Add(sprintf "start %d at %.1f" x (loop.Time()))
                            try
                                do! sleep work
                            with :? OperationCanceledException as e ->
                                log.Add(sprintf "cancel %d at %.1f" x (loop.Time()))
                                raise e
                            if Some x = failOn then failwithf "bad %d" x
                            return x * 10
                        }), policy)
                    .Subscribe(r)
            for (t, v) in pushes do
                do! sleep (t - loop.Time())
                subject.OnNext v
            subject.OnCompleted()
            do! sleep 10.0
            d.Dispose()
        })
    r.Items, log.Items

[<Tests>]
let operators =
    testList
        "Async-aware operators"
        [ testCase "Sequential: one call at a time, in order" (fun () ->
              let items, _ = selectRun AsyncConcurrency.Sequential [ 0.0, 1; 0.0, 2; 0.5, 3 ] 1.0 None
              Expect.equal items [ "1.000 10"; "2.000 20"; "3.000 30"; "3.000 completed" ] "in order")

          testCase "DropWhileBusy: items arriving during a call are dropped" (fun () ->
              let items, log = selectRun AsyncConcurrency.DropWhileBusy [ 0.0, 1; 0.5, 2; 1.5, 3 ] 1.0 None
              Expect.equal items [ "1.000 10"; "2.500 30"; "2.500 completed" ] "2 dropped"
              Expect.equal log [ "start 1 at 0.0"; "start 3 at 1.5" ] "never started")

          testCase "SwitchToLatest: a new item cancels the running call" (fun () ->
              let items, log = selectRun AsyncConcurrency.SwitchToLatest [ 0.0, 1; 0.5, 2; 2.0, 3 ] 1.0 None
              Expect.equal items [ "1.500 20"; "3.000 30"; "3.000 completed" ] "1 switched away"
              Expect.equal log [ "start 1 at 0.0"; "cancel 1 at 0.5"; "start 2 at 0.5"; "start 3 at 2.0" ] "1 cancelled")

          testCase "Parallel(2): at most two calls at once" (fun () ->
              let items, log = selectRun (AsyncConcurrency.Parallel 2) [ 0.0, 1; 0.0, 2; 0.0, 3; 0.5, 4 ] 1.0 None
              Expect.equal items [ "1.000 10"; "1.000 20"; "2.000 30"; "2.000 40"; "2.000 completed" ] "two by two"
              Expect.equal log [ "start 1 at 0.0"; "start 2 at 0.0"; "start 3 at 1.0"; "start 4 at 1.0" ] "starts")

          testCase "an exception ends the sequence with OnError and cancels the other calls" (fun () ->
              let items, log = selectRun (AsyncConcurrency.Parallel 2) [ 0.0, 1; 0.5, 2 ] 1.0 (Some 1)
              Expect.equal items [ "1.000 error Exception: bad 1" ] "error"
              Expect.contains log "cancel 2 at 1.0" "2 cancelled")

          testCase "disposal cancels the running call and nothing is emitted after it" (fun () ->
              use loop = newLoop ()
              let r = Recorder<int>(loop)
              let log = Log()
              runMainUnit loop (fun () ->
                  task {
                      use subject = new Subject<int>()
                      let d =
                          subject.SelectAsync(loop, (fun (x: int) (ct: CancellationToken) ->
                              task {
                                  use _ = ct.Register(fun () -> log.Add(sprintf "token %d at %.1f" x (loop.Time())))
                                  do! sleep 1.0
                                  return x
                              }), AsyncConcurrency.Sequential).Subscribe(r)
                      subject.OnNext 1
                      subject.OnNext 2
                      do! sleep 0.5
                      d.Dispose()
                      subject.OnNext 3
                      do! sleep 3.0
                      Expect.isFalse subject.HasObservers "unsubscribed from the source"
                  })
              Expect.isEmpty r.Items "nothing after disposal"
              Expect.equal log.Items [ "token 1 at 0.5" ] "the running call's token fired")

          testCase "SubscribeAsync runs the handler on the loop under the policy and reports completion" (fun () ->
              use loop = newLoop ()
              let s = LoopScheduler(loop)
              let log = Log()
              runMainUnit loop (fun () ->
                  task {
                      let finished = loop.CreateFuture()
                      use _ =
                          Rx.Range(1, 3).SubscribeAsync(loop, (fun x _ ->
                              task {
                                  do! sleep 1.0
                                  log.Add(sprintf "%d at %.0f on loop %b" x (loop.Time()) loop.IsOnLoopThread)
                              }), AsyncConcurrency.Sequential, onCompleted = (fun () -> finished.SetResult(ValueTuple())))
                      let! _ = finished
                      ()
                  })
              Expect.equal log.Items [ "1 at 1 on loop true"; "2 at 2 on loop true"; "3 at 3 on loop true" ] "sequential handler") ]
