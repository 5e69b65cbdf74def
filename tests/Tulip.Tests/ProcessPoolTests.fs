/// Issue 18: the process pool. Worker processes (Tulip.Worker under the same dotnet host) run static
/// methods of this assembly, named by method group; arguments and results cross as JSON. CPython 3.11's
/// concurrent.futures pinned: BrokenProcessPool's messages, shutdown(wait, cancel_futures), reuse of
/// workers. Every test shuts its pool down and checks that no worker process is left.
module Tulip.Tests.ProcessPoolTests

open System
open System.Diagnostics
open System.IO
open System.Threading
open System.Threading.Tasks
open Expecto
open Tulip
open Tulip.Tests.ShellSupport
open Tulip.Tests.ExecutorTests

/// What the workers run: static methods (an F# module's functions).
module Work =
    let square (x: int) : int = x * x

    let pid () : int = Environment.ProcessId

    let divide (x: int) : int = 100 / (x - x)

    let failNamed (n: int) : int =
        if n % 7 = 0 then raise (InvalidDataException(sprintf "item %d refused" n)) else n + 1

    let sleepMs (ms: int) : int =
        Thread.Sleep ms
        Environment.ProcessId

    /// Makes the file `marker` (the item has started: a test can wait for it), then sleeps 300 ms.
    let markThenSleep (marker: string) : int =
        File.WriteAllText(marker, "started")
        Thread.Sleep 300
        Environment.ProcessId

    let chatty (s: string) : string =
        Console.WriteLine "this goes to stderr, not into the protocol"
        Console.Out.Flush()
        s.ToUpperInvariant()

    let exitNow (code: int) : int = exit code

    let callIt (f: Func<int>) : int = f.Invoke()

    let handle () : nativeint = 0n

    let logRun (i: int) : int =
        match Environment.GetEnvironmentVariable "TULIP_TEST_RUNLOG" with
        | null -> ()
        | path -> File.AppendAllText(sprintf "%s.%d" path Environment.ProcessId, sprintf "%d\n" i) // one file per worker: appends of two processes to one file race
        if i % 9 = 0 then failwithf "item %d failed" i
        i * 3

let private limit = TimeSpan.FromSeconds 60.0

/// The pool's hygiene gate: shut down (waiting), every worker process gone.
let finish (pool: ProcessPoolExecutor) (pids: int seq) =
    pool.Shutdown(wait = true)
    Expect.isTrue pool.AllWorkersExited "every worker process has exited"
    for pid in pids do
        let alive =
            try
                use p = Process.GetProcessById pid
                not p.HasExited
            with :? ArgumentException -> false
        Expect.isFalse alive (sprintf "worker %d is gone" pid)

let private waitTask (t: Task) = try t.Wait limit |> ignore with :? AggregateException -> ()

[<Tests>]
let tests =
    testSequenced
    <| testList
        "Executors (processes)"
        [ testCase "static methods run in worker processes, which are reused (at most maxWorkers of them)" (fun () ->
              let pool = new ProcessPoolExecutor(2)
              let pids = [ for _ in 1..20 -> pool.Submit(Func<int>(Work.pid)) ] |> List.map (fun t -> t.Wait limit |> ignore; t.Result)
              let squares = pool.Map(Func<int, int>(Work.square), [ 1..10 ]) |> List.ofSeq
              Expect.equal squares [ for i in 1..10 -> i * i ] "map, in order"
              Expect.isLessThanOrEqual (List.distinct pids).Length 2 "reused: at most 2 processes"
              Expect.isFalse (List.contains Environment.ProcessId pids) "not this process"
              finish pool pids)

          testCase "from a loop: RunInExecutor(pool, Work.Square, 7) resolves on the loop" (fun () ->
              let pool = new ProcessPoolExecutor(1)
              let r, pid =
                  runReal (fun () ->
                      task {
                          let loop = Asyncio.GetRunningLoop()
                          let! r = loop.RunInExecutor(pool, Func<int, int>(Work.square), 7)
                          let! pid = loop.RunInExecutor(pool, Func<int>(Work.pid))
                          return r, pid
                      })
              Expect.equal r 49 ""
              finish pool [ pid ])

          testCase "an exception in the worker comes back typed: remote type name, message and stack" (fun () ->
              let pool = new ProcessPoolExecutor(1)
              let t = pool.Submit(Func<int, int>(Work.divide), 3)
              waitTask t
              let e = t.Exception.InnerException :?> RemoteWorkerException
              Expect.equal e.RemoteType "System.DivideByZeroException" "the remote type's name"
              Expect.stringContains e.Message "divide by zero" "its message"
              Expect.stringContains e.RemoteStackTrace "ProcessPoolTests" "its stack in the worker"
              let ok = pool.Submit(Func<int, int>(Work.square), 3)
              Expect.isTrue (ok.Wait limit) "the worker goes on"
              Expect.equal ok.Result 9 ""
              let loud = pool.Submit(Func<string, string>(Work.chatty), "quiet")
              Expect.isTrue (loud.Wait limit) "a worker printing to Console.Out does not corrupt the protocol"
              Expect.equal loud.Result "QUIET" ""
              finish pool pool.WorkerProcessIds)

          testCase "a lambda, an instance method or an unserialisable type is refused before anything is sent" (fun () ->
              let pool = new ProcessPoolExecutor(1)
              let k = Environment.ProcessorCount // a runtime value: the lambda is a closure
              let e1 = throws<ArgumentException> (fun () -> pool.Submit(Func<int, int>(fun x -> x + k), 1) |> ignore)
              Expect.stringContains e1.Message "is not a static method" "a closure cannot be named in another process"
              let sb = Text.StringBuilder()
              let e2 = throws<ArgumentException> (fun () -> pool.Submit(Func<string>(sb.ToString)) |> ignore)
              Expect.stringContains e2.Message "is not a static method" "an instance method neither"
              let e3 = throws<ArgumentException> (fun () -> pool.Submit(Func<Func<int>, int>(Work.callIt), Func<int>(Work.pid)) |> ignore)
              Expect.stringContains e3.Message "cannot be serialised with System.Text.Json" "a delegate argument"
              let e4 = throws<ArgumentException> (fun () -> pool.Submit(Func<nativeint>(Work.handle)) |> ignore)
              Expect.stringContains e4.Message "cannot be serialised with System.Text.Json" "a pointer-sized handle result"
              let e5 =
                  runReal (fun () -> task { return throws<ArgumentException> (fun () -> Asyncio.GetRunningLoop().RunInExecutor(pool, Func<int>(fun () -> k)) |> ignore) })
              Expect.stringContains e5.Message "is not a static method" "RunInExecutor refuses it too"
              Expect.isEmpty pool.WorkerProcessIds "nothing was started, nothing sent"
              finish pool [])

          testCase "1,000 process-pool items, some throwing and some cancelled, all resolve correctly; cancelled ones never run" (fun () ->
              let log = Path.GetTempFileName()
              Environment.SetEnvironmentVariable("TULIP_TEST_RUNLOG", log)
              let pool = new ProcessPoolExecutor(2)
              try
                  let outcomes =
                      runReal (fun () ->
                          task {
                              let loop = Asyncio.GetRunningLoop()
                              let fs = [| for i in 0..999 -> loop.RunInExecutor(pool, Func<int, int>(Work.logRun), i) |]
                              // Cancelled at once, on the loop: the workers are still starting (a process
                              // launch takes far longer than this loop), and a cancel claims the item.
                              for i in 0..999 do
                                  if i % 10 = 3 then fs[i].Cancel() |> ignore
                              let! r = Asyncio.Gather(fs |> Array.map (fun f -> f :> Future), returnExceptions = true)
                              return r
                          })
                  let logs = Directory.GetFiles(Path.GetDirectoryName log, Path.GetFileName log + ".*")
                  let ran = logs |> Array.collect File.ReadAllLines |> Array.map int |> Set.ofArray
                  for f in logs do File.Delete f
                  for i in 0..999 do
                      let o = outcomes[i]
                      if i % 10 = 3 then
                          Expect.isTrue (o :? CancelledException) (sprintf "%d cancelled" i)
                          Expect.isFalse (ran.Contains i) (sprintf "%d never ran" i)
                      elif i % 9 = 0 then
                          match o with
                          | :? RemoteWorkerException as e -> Expect.equal e.Message (sprintf "item %d failed" i) "its message"
                          | o -> failwithf "%d: expected a remote error, got %A" i o
                      else Expect.equal (unbox<int> o) (i * 3) (sprintf "%d result" i)
                  Expect.equal ran.Count 900 "every other item ran once"
              finally
                  Environment.SetEnvironmentVariable("TULIP_TEST_RUNLOG", null)
                  finish pool []
                  File.Delete log)

          testCase "a killed worker fails the running and pending work with BrokenProcessPool within a bounded time" (fun () ->
              let pool = new ProcessPoolExecutor(1)
              let first = pool.Submit(Func<int>(Work.pid))
              Expect.isTrue (first.Wait limit) "the worker runs"
              let running = pool.Submit(Func<int, int>(Work.sleepMs), 60000)
              let pending = pool.Submit(Func<int, int>(Work.square), 2)
              Thread.Sleep 200
              use p = Process.GetProcessById first.Result
              let sw = Stopwatch.StartNew()
              p.Kill()
              waitTask running
              waitTask pending
              Expect.isLessThan sw.Elapsed (TimeSpan.FromSeconds 10.0) "within a bounded time, no hang"
              for t in [ running; pending ] do
                  let e = t.Exception.InnerException :?> BrokenProcessPoolException
                  Expect.equal e.Message BrokenProcessPoolException.TerminatedMessage "CPython's message"
              let e = throws<BrokenProcessPoolException> (fun () -> pool.Submit(Func<int>(Work.pid)) |> ignore)
              Expect.equal e.Message BrokenProcessPoolException.NotUsableMessage "later submits are refused (CPython's message)"
              finish pool [ first.Result ])

          testCase "a worker killed while idle breaks the pool at once: the next Submit is refused (CPython watches each worker's sentinel)" (fun () ->
              let pool = new ProcessPoolExecutor(1)
              let first = pool.Submit(Func<int>(Work.pid))
              Expect.isTrue (first.Wait limit) "the worker runs, then idles"
              use p = Process.GetProcessById first.Result
              p.Kill()
              Expect.isTrue (p.WaitForExit(int limit.TotalMilliseconds)) "killed"
              // Nothing is submitted while waiting: only the exit watch can notice the death.
              let sw = Stopwatch.StartNew()
              while not pool.Broken && sw.Elapsed < TimeSpan.FromSeconds 10.0 do Thread.Sleep 10
              Expect.isTrue pool.Broken "the pool noticed the idle worker's death with no work sent"
              let e = throws<BrokenProcessPoolException> (fun () -> pool.Submit(Func<int>(Work.pid)) |> ignore)
              Expect.equal e.Message BrokenProcessPoolException.NotUsableMessage "the next Submit fails at once (CPython's message)"
              finish pool [ first.Result ])

          testCase "a worker host that cannot be started fails the work with a broken-pool error saying why" (fun () ->
              let pool = new ProcessPoolExecutor(1, "/nonexistent/Tulip.Worker.dll")
              let t = pool.Submit(Func<int, int>(Work.square), 2)
              waitTask t
              let e = t.Exception.InnerException :?> BrokenProcessPoolException
              Expect.stringContains e.Message "could not start a worker process" "says what failed"
              Expect.stringContains e.Message "/nonexistent/Tulip.Worker.dll" "and where it looked"
              finish pool [])

          testCase "a worker that exits by itself breaks the pool too (os._exit in CPython)" (fun () ->
              let pool = new ProcessPoolExecutor(1)
              let t = pool.Submit(Func<int, int>(Work.exitNow), 3)
              waitTask t
              Expect.isTrue (t.Exception.InnerException :? BrokenProcessPoolException) "broken pool"
              finish pool [])

          testCase "shutdown(wait, cancel_futures): running work finishes, pending work is cancelled, workers exit" (fun () ->
              let pool = new ProcessPoolExecutor(1)
              let marker = Path.Combine(Path.GetTempPath(), sprintf "tulip-pool-%s" (Guid.NewGuid().ToString "N"))
              let a = pool.Submit(Func<string, int>(Work.markThenSleep), marker)
              let rest = [ for i in 1..5 -> pool.Submit(Func<int, int>(Work.square), i) ]
              // Shut down once the first item runs (a worker's start takes a while on a busy machine).
              let sw = Stopwatch.StartNew()
              while not (File.Exists marker) && sw.Elapsed < limit do Thread.Sleep 10
              File.Delete marker
              pool.Shutdown(wait = true, cancelPending = true)
              Expect.isTrue a.IsCompletedSuccessfully "the running (or first) item finished"
              Expect.isTrue (rest |> List.forall (fun t -> t.IsCanceled)) "the pending ones were cancelled"
              finish pool [ a.Result ]) 
          // The hygiene gate of the whole suite's executors, run with the sequenced tests (after the
          // parallel ones, which include the examples' pools): no worker process or thread is left.
          testCase "no executor thread or worker process is left" (fun () ->
              let me = string Environment.ProcessId

              let workers () =
                  [ for d in Directory.GetDirectories "/proc" do
                        let stat = Path.Combine(d, "stat")
                        let cmd = Path.Combine(d, "cmdline")
                        try
                            // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces.
                            let text = File.ReadAllText stat
                            let fields = text.Substring(text.LastIndexOf ')' + 2).Split ' '
                            if fields[1] = me && File.ReadAllText(cmd).Contains "Tulip.Worker.dll" then yield Path.GetFileName d
                        with _ -> () ]

              let deadline = DateTime.UtcNow.AddSeconds 10.0
              while (not (List.isEmpty (workers ())) || ThreadPoolExecutor.LiveThreadsInProcess > 0) && DateTime.UtcNow < deadline do
                  Thread.Sleep 50
              Expect.isEmpty (workers ()) "no Tulip.Worker child process"
              Expect.equal ThreadPoolExecutor.LiveThreadsInProcess 0 "no thread-pool executor thread") ]
