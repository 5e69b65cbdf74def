/// Issue 13 (asyncio fidelity): each test runs the Tulip twin of a small asyncio program kept in
/// tests/asyncio-programs/, compares what it prints with the output pinned here, and runs the program
/// with python3 (CPython 3.11, the reference) to check that the pin is still asyncio's output.
module Tulip.Tests.FidelityTests

open System
open System.Collections.Generic
open System.Diagnostics
open System.IO
open System.Runtime.CompilerServices
open System.Threading
open System.Threading.Tasks
open Expecto
open Tulip
open Tulip.Testing
open Tulip.Tests.ShellSupport

let private programs = Path.Combine(__SOURCE_DIRECTORY__, "..", "asyncio-programs")

/// The interpreter the pins were taken from: CPython 3.11 at 3.11.7 or later (3.11.2, Debian's, lacks
/// the Timeout/TaskGroup fixes that items 2 and 3 pin). `python3` on PATH when it is one (pyenv's here),
/// else pyenv's 3.11 builds; TULIP_PYTHON overrides.
let private interpreter: Lazy<string option> =
    lazy
        (let version (exe: string) =
            try
                let psi = ProcessStartInfo(exe, "-c \"import sys; print(*sys.version_info[:3])\"")
                psi.RedirectStandardOutput <- true
                psi.UseShellExecute <- false
                use p = Process.Start psi
                let out = p.StandardOutput.ReadToEnd()
                p.WaitForExit 10000 |> ignore
                match out.Trim().Split(' ') |> Array.map int with
                | [| a; b; c |] -> Some(a, b, c)
                | _ -> None
            with _ ->
                None

         let pyenvRoot =
             match Environment.GetEnvironmentVariable "PYENV_ROOT" with
             | null
             | "" -> Path.Combine(Environment.GetFolderPath Environment.SpecialFolder.UserProfile, ".pyenv")
             | r -> r

         let pyenv311 =
             let dir = Path.Combine(pyenvRoot, "versions")
             if Directory.Exists dir then
                 Directory.GetDirectories(dir, "3.11.*")
                 |> Array.map (fun d -> Path.Combine(d, "bin", "python3"))
                 |> Array.filter File.Exists
                 |> List.ofArray
             else
                 []

         let candidates =
             [ match Environment.GetEnvironmentVariable "TULIP_PYTHON" with
               | null
               | "" -> ()
               | p -> p
               "python3"
               yield! pyenv311 ]

         candidates
         |> List.tryFind (fun exe ->
             match version exe with
             | Some(3, 11, patch) -> patch >= 7
             | _ -> false))

/// The lines python3 prints for tests/asyncio-programs/<name>.
let private python (name: string) : string list =
    let exe =
        match interpreter.Force() with
        | Some exe -> exe
        | None -> failwith "no CPython 3.11.7+ found (python3 on PATH, pyenv's 3.11, or TULIP_PYTHON): the pins are 3.11.7's"

    let psi = ProcessStartInfo(exe, Path.Combine(programs, name))
    psi.RedirectStandardOutput <- true
    psi.RedirectStandardError <- true
    psi.UseShellExecute <- false
    use p = Process.Start psi
    let out = p.StandardOutput.ReadToEndAsync()
    let err = p.StandardError.ReadToEndAsync()
    if not (p.WaitForExit 30000) then
        p.Kill()
        failwithf "python3 %s did not finish" name
    if p.ExitCode <> 0 then failwithf "python3 %s failed (%d): %s" name p.ExitCode err.Result
    out.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries) |> List.ofArray

/// Tulip printed `tulip`; asyncio prints `pinned` for the same program (checked live with python3).
let private matches (program: string) (pinned: string list) (tulip: string list) =
    Expect.equal (python program) pinned (sprintf "python3 %s still prints the pinned output" program)
    Expect.equal tulip pinned (sprintf "Tulip prints what asyncio prints for %s" program)

let private collect () =
    for _ in 1..3 do
        GC.Collect()
        GC.WaitForPendingFinalizers()

/// Python's repr of a bool.
let private py (b: bool) = if b then "True" else "False"

/// asyncio's ValueError, as the programs raise it.
type private ValueError(message: string) =
    inherit ArgumentException(message)

[<MethodImpl(MethodImplOptions.NoInlining)>]
let private faultedFuture (loop: EventLoop) (cancel: bool) (out: Log) =
    let f = loop.CreateFuture<int>()
    f.SetException(ValueError "boom")
    if cancel then out.Add(sprintf "cancel: %s" (py (f.Cancel())))

/// A soon handle and a timer handle whose arguments only they reference.
[<MethodImpl(MethodImplOptions.NoInlining)>]
let private handlesHoldingArgs (loop: EventLoop) =
    let arg = obj ()
    let targ = obj ()
    let h = loop.CallSoon(Action<obj>(fun o -> ignore o), arg)
    let t = loop.CallLater(10.0, Action<obj>(fun o -> ignore o), targ)
    h, t, WeakReference arg, WeakReference targ

[<Tests>]
let fidelity =
    testList
        "Fidelity (issue 13)"
        [
          // cancel_faulted_future.py: Future.cancel() sets __log_traceback = False before refusing.
          testCase "4. cancelling a future that holds an exception marks it retrieved" (fun () ->
              use loop = newLoop ()
              let out = Log()
              loop.SetExceptionHandler(ExceptionHandler(fun _ ctx -> out.Add("handler: " + ctx.Message)))
              runMainUnit loop (fun () ->
                  task {
                      for cancel in [ false; true ] do
                          faultedFuture loop cancel out
                          collect ()
                          // A .NET finalizer reports from its own thread, posted to the loop: one more
                          // tick than CPython's report from __del__ inside gc.collect().
                          do! Asyncio.Sleep 0.0
                          do! Asyncio.Sleep 0.0
                      out.Add "done"
                  })
              matches "cancel_faulted_future.py" [ "handler: Future exception was never retrieved"; "cancel: False"; "done" ] out.Items)

          // handle_cancel_releases.py: Handle.cancel sets _callback and _args to None.
          testCase "5. Handle.Cancel releases the callback's state" (fun () ->
              use loop = newLoop ()
              let out = Log()
              runMainUnit loop (fun () ->
                  task {
                      let h, t, weak, tweak = handlesHoldingArgs loop
                      collect ()
                      out.Add(sprintf "alive before cancel: %s %s" (py weak.IsAlive) (py tweak.IsAlive))
                      h.Cancel()
                      t.Cancel()
                      collect ()
                      out.Add(sprintf "alive after cancel: %s %s" (py weak.IsAlive) (py tweak.IsAlive))
                      out.Add(sprintf "handle still held: %s %s" (py h.Cancelled) (py t.Cancelled))
                  })
              matches
                  "handle_cancel_releases.py"
                  [ "alive before cancel: True True"; "alive after cancel: False False"; "handle still held: True True" ]
                  out.Items)

          // current_task_no_loop.py: current_task() calls get_running_loop().
          testCase "8. CurrentTask() with no running loop raises 'no running event loop'" (fun () ->
              let out =
                  try
                      Asyncio.CurrentTask() |> ignore
                      "no error"
                  with :? EventLoopException as e ->
                      "RuntimeError: " + e.Message
              matches "current_task_no_loop.py" [ "RuntimeError: no running event loop" ] [ out ])

          // condition_wait_for_value.py: Condition.wait_for returns the predicate's result.
          testCase "10. Condition.WaitFor returns the predicate's last value" (fun () ->
              use loop = newLoop ()
              let out = Log()
              runMainUnit loop (fun () ->
                  task {
                      let cond = Condition()
                      let items = List<string>()
                      let consumer =
                          loop.CreateTask(fun () ->
                              task {
                                  let! _ = cond.AcquireAsync()
                                  try
                                      let! got = cond.WaitForAsync(fun () -> if items.Count > 0 then items[0] else null)
                                      out.Add("wait_for returned: " + got)
                                  finally
                                      cond.Release()
                              }
                              :> Task)
                      do! Asyncio.Sleep 0.0
                      let! _ = cond.AcquireAsync()
                      items.Add "first"
                      cond.NotifyAll()
                      cond.Release()
                      let! _ = consumer
                      let! _ = cond.AcquireAsync()
                      let! v = cond.WaitForAsync(fun () -> 42)
                      out.Add(sprintf "already true: %d" v)
                      cond.Release()
                  })
              matches "condition_wait_for_value.py" [ "wait_for returned: first"; "already true: 42" ] out.Items)
        ]

/// An asyncio program's `except RuntimeError as e: print("RuntimeError:", e)`.
let private runtimeError (out: Log) (f: unit -> unit) =
    try
        f ()
        out.Add "no error"
    with
    | :? InvalidOperationException as e -> out.Add("RuntimeError: " + e.Message)

let private work () =
    task {
        do! Asyncio.Sleep 0.0
        return 1
    }

/// C#'s `await using (d) { body }`: F#'s task has no async `use`.
let private awaitUsing (d: IAsyncDisposable) (body: unit -> Task) : Task =
    task {
        let mutable error: exn = null
        try
            do! body ()
        with e ->
            error <- e
        do! d.DisposeAsync()
        if not (isNull error) then Runtime.ExceptionServices.ExceptionDispatchInfo.Throw error
    }

[<Tests>]
let composition =
    testList
        "Fidelity (issue 13) composition"
        [
          // as_completed_order.py: each awaitable takes the next completion when awaited.
          testCase "1. AsCompleted: an item gives the next completion when it is awaited, not when enumerated" (fun () ->
              use loop = newLoop ()
              let out = Log()
              let workAfter (name: string) (delay: float) =
                  Func<Task<string>>(fun () ->
                      task {
                          do! Asyncio.Sleep delay
                          return name
                      })
              runMainUnit loop (fun () ->
                  task {
                      let its = Asyncio.AsCompleted([ workAfter "slow" 0.3; workAfter "fast" 0.1; workAfter "mid" 0.2 ]) |> Array.ofSeq
                      let! third = its[2]
                      out.Add("third awaited first: " + third)
                      let! first = its[0]
                      out.Add("first: " + first)
                      let! second = its[1]
                      out.Add("second: " + second)
                  })
              matches "as_completed_order.py" [ "third awaited first: fast"; "first: mid"; "second: slow" ] out.Items)

          // timeout_pending_cancel.py, under python3 = 3.11.7 (3.11.2 lets the CancelledError escape).
          testCase "2. a timeout entered with a cancel request pending still raises TimeoutException (3.11.7 rule)" (fun () ->
              use loop = newLoop ()
              let out = Log()
              runMainUnit loop (fun () ->
                  task {
                      let me = Asyncio.CurrentTask()
                      me.Cancel() |> ignore
                      try
                          do! Asyncio.Sleep 1.0
                      with :? CancelledException ->
                          out.Add(sprintf "caught cancel, cancelling = %d" (me.Cancelling()))
                      try
                          do! Asyncio.Timeout(Nullable 0.1, fun _ -> task { do! Asyncio.Sleep 1.0 } :> Task)
                      with
                      | :? TimeoutException -> out.Add(sprintf "TimeoutError, cancelling = %d" (me.Cancelling()))
                      | :? CancelledException -> out.Add(sprintf "CancelledError escaped, cancelling = %d" (me.Cancelling()))
                  })
              matches "timeout_pending_cancel.py" [ "caught cancel, cancelling = 1"; "TimeoutError, cancelling = 1" ] out.Items)

          // timeout_states.py: Timeout's states, repr and state errors; created before entry.
          testCase "3. Timeout: created before entry, asyncio's states, repr and errors" (fun () ->
              use loop = newLoop ()
              let out = Log()
              runMainUnit loop (fun () ->
                  task {
                      let t = Asyncio.CreateTimeoutAt(Nullable 1000012.3456)
                      out.Add(string t)
                      runtimeError out (fun () -> t.Reschedule(Nullable 5.0))
                      do!
                          t.RunAsync(fun t ->
                              task {
                                  out.Add(string t)
                                  runtimeError out (fun () -> t.Enter() |> ignore)
                                  t.Reschedule(Nullable<float>())
                                  out.Add(string t)
                                  t.Reschedule(Nullable 2000000.25)
                                  out.Add(string t)
                                  return 0
                              })
                          :> Task
                      out.Add(string t)
                      runtimeError out (fun () -> t.Reschedule(Nullable 1.0))
                      let t2 = Asyncio.CreateTimeout(Nullable 0.0)
                      try
                          do!
                              awaitUsing (t2.Enter()) (fun () ->
                                  task {
                                      try
                                          do! Asyncio.Sleep 1.0
                                      with :? CancelledException as e ->
                                          out.Add("inside: " + string t2)
                                          return raise e
                                  })
                      with :? TimeoutException ->
                          out.Add(sprintf "TimeoutError: %O %s" t2 (py t2.Expired))
                      runtimeError out (fun () -> t2.Reschedule(Nullable 1.0))
                  })
              matches
                  "timeout_states.py"
                  [ "<Timeout [created]>"
                    "RuntimeError: Timeout has not been entered"
                    "<Timeout [active] when=1000012.346>"
                    "RuntimeError: Timeout has already been entered"
                    "<Timeout [active] when=None>"
                    "<Timeout [active] when=2000000.25>"
                    "<Timeout [finished]>"
                    "RuntimeError: Cannot change state of finished Timeout"
                    "inside: <Timeout [expiring]>"
                    "TimeoutError: <Timeout [expired]> True"
                    "RuntimeError: Cannot change state of expired Timeout" ]
                  out.Items)

          // taskgroup_states.py: a TaskGroup created before entry, and its errors.
          testCase "3. TaskGroup: created before entry, asyncio's errors for create_task and entering twice" (fun () ->
              use loop = newLoop ()
              let out = Log()
              runMainUnit loop (fun () ->
                  task {
                      let tg = TaskGroup.Create()
                      out.Add(string tg)
                      runtimeError out (fun () -> tg.CreateTask(Func<Task<int>>(work)) |> ignore)
                      let mutable t = Unchecked.defaultof<LoopTask<int>>
                      do!
                          awaitUsing (tg.Enter()) (fun () ->
                              task {
                                  out.Add(string tg)
                                  runtimeError out (fun () -> tg.Enter() |> ignore)
                                  t <- tg.CreateTask(Func<Task<int>>(work))
                                  out.Add(string tg)
                              })
                      out.Add(sprintf "%O %d" tg (t.Result()))
                      runtimeError out (fun () -> tg.CreateTask(Func<Task<int>>(work)) |> ignore)
                  })
              matches
                  "taskgroup_states.py"
                  [ "<TaskGroup>"
                    "RuntimeError: TaskGroup <TaskGroup> has not been entered"
                    "<TaskGroup entered>"
                    "RuntimeError: TaskGroup <TaskGroup entered> has already been entered"
                    "<TaskGroup tasks=1 entered>"
                    "<TaskGroup entered> 1"
                    "RuntimeError: TaskGroup <TaskGroup entered> is finished" ]
                  out.Items)
        ]

/// A connected pair of loopback TCP sockets (socket.socketpair()).
let private socketPair () =
    use listener = new Net.Sockets.Socket(Net.Sockets.SocketType.Stream, Net.Sockets.ProtocolType.Tcp)
    listener.Bind(Net.IPEndPoint(Net.IPAddress.Loopback, 0))
    listener.Listen 1
    let a = new Net.Sockets.Socket(Net.Sockets.SocketType.Stream, Net.Sockets.ProtocolType.Tcp)
    a.Connect listener.LocalEndPoint
    a, listener.Accept()

[<Tests>]
let loopLevel =
    testList
        "Fidelity (issue 13) loop"
        [
          // closed_loop_readers.py: _check_closed in add_*; remove_* answer False on a closed loop.
          testCase "6. a closed loop keeps no reader or writer; RemoveReader/RemoveWriter return false" (fun () ->
              let out = Log()
              let a, b = socketPair ()
              try
                  let loop = new EventLoop()
                  loop.AddReader(a, ignore)
                  loop.Close()
                  out.Add("remove_reader after close: " + py (loop.RemoveReader a))
                  let loop = new EventLoop()
                  loop.Close()
                  for name, add in [ "add_reader", (fun () -> loop.AddReader(a, ignore)); "add_writer", (fun () -> loop.AddWriter(a, ignore)) ] do
                      try
                          add ()
                          out.Add(name + ": no error")
                      with :? EventLoopException as e ->
                          out.Add(name + ": " + e.Message)
                  out.Add("remove_reader: " + py (loop.RemoveReader a))
                  out.Add("remove_writer: " + py (loop.RemoveWriter a))
              finally
                  a.Dispose()
                  b.Dispose()
              matches
                  "closed_loop_readers.py"
                  [ "remove_reader after close: False"
                    "add_reader: Event loop is closed"
                    "add_writer: Event loop is closed"
                    "remove_reader: False"
                    "remove_writer: False" ]
                  out.Items)
        ]

[<Tests>]
let ordering =
    testList
        "Fidelity (issue 13) ordering"
        [
          // threadsafe_fifo.py: call_soon_threadsafe and call_soon share one ready queue.
          testCase "7. CallSoonThreadsafe and CallSoon are one FIFO (loop thread; other thread before the run)" (fun () ->
              let out = Log()
              use loop = newLoop ()
              runMainUnit loop (fun () ->
                  task {
                      loop.CallSoonThreadsafe(fun () -> out.Add "a: threadsafe from the loop thread") |> ignore
                      loop.CallSoon(fun () -> out.Add "b: call_soon") |> ignore
                      do! Asyncio.Sleep 0.0
                      do! Asyncio.Sleep 0.0
                  })
              use loop = newLoop ()
              let th = Thread(fun () -> loop.CallSoonThreadsafe(fun () -> out.Add "c: threadsafe from another thread") |> ignore)
              th.Start()
              th.Join()
              loop.CallSoon(fun () -> out.Add "d: call_soon") |> ignore
              loop.CallSoon(fun () -> loop.Stop()) |> ignore
              loop.RunForever()
              matches
                  "threadsafe_fifo.py"
                  [ "a: threadsafe from the loop thread"
                    "b: call_soon"
                    "c: threadsafe from another thread"
                    "d: call_soon" ]
                  out.Items)
        ]

let private contextVar = AsyncLocal<string>()

let private varGet () = if isNull contextVar.Value then "unset" else contextVar.Value

/// asyncio's `ctx = copy_context(); ctx.run(var.set, value)`.
let private contextWith (value: string) =
    let saved = contextVar.Value
    contextVar.Value <- value
    let ctx = ExecutionContext.Capture()
    contextVar.Value <- saved
    ctx

[<Tests>]
let context =
    testList
        "Fidelity (issue 13) context"
        [
          // task_context.py: tasks copy the creator's contextvars context; create_task(context=).
          testCase "9. a task runs in a copy of its creator's ExecutionContext; CreateTask(…, context)" (fun () ->
              use loop = newLoop ()
              let out = Log()
              let child (tag: string) =
                  fun () ->
                      task {
                          out.Add(tag + " sees: " + varGet ())
                          contextVar.Value <- "child"
                          do! Asyncio.Sleep 0.0
                          out.Add(tag + " after await: " + varGet ())
                      }
                      :> Task
              runMainUnit loop (fun () ->
                  task {
                      contextVar.Value <- "parent"
                      let! _ = Asyncio.CreateTask(Func<Task>(child "task"))
                      out.Add("parent after child: " + varGet ())
                      let ctx = contextWith "explicit"
                      let! _ = Asyncio.CreateTask(Func<Task>(child "explicit"), null, ctx)
                      do!
                          TaskGroup.RunAsync(fun tg ->
                              let ctx2 = contextWith "group context"
                              tg.CreateTask(Func<Task>(child "group"), null, ctx2) |> ignore
                              Task.CompletedTask)
                      out.Add("parent still: " + varGet ())
                  })
              matches
                  "task_context.py"
                  [ "task sees: parent"
                    "task after await: child"
                    "parent after child: parent"
                    "explicit sees: explicit"
                    "explicit after await: child"
                    "group sees: group context"
                    "group after await: child"
                    "parent still: parent" ]
                  out.Items)
        ]

/// .NET appends " (Parameter 'name')" to an ArgumentException's message; asyncio's text is before it.
let private withoutParameter (e: ArgumentException) =
    match e.ParamName with
    | null -> e.Message
    | p -> e.Message.Replace(sprintf " (Parameter '%s')" p, "")

[<Tests>]
let errors =
    testList
        "Fidelity (issue 13) errors"
        [
          // loop_mismatch.py: ensure_future's ValueError, and Queue.task_done's.
          testCase "11. a future of another loop: asyncio's message (ArgumentException); TaskDone too often (InvalidOperationException)" (fun () ->
              let out = Log()
              use a = newLoop ()
              use b = newLoop ()
              let fa = a.CreateFuture<int>()
              let fb = b.CreateFuture<int>()
              try
                  b.RunUntilComplete fa |> ignore
              with :? ArgumentException as e ->
                  out.Add("run_until_complete: ValueError: " + withoutParameter e)
              try
                  runMainUnit b (fun () -> task { Asyncio.Gather(fb, fa) |> ignore })
              with :? ArgumentException as e ->
                  out.Add("gather: ValueError: " + withoutParameter e)
              let q = AsyncQueue<int>()
              try
                  q.TaskDone()
              with :? InvalidOperationException as e ->
                  out.Add("task_done: ValueError: " + e.Message)
              matches
                  "loop_mismatch.py"
                  [ "run_until_complete: ValueError: The future belongs to a different loop than the one specified as the loop argument"
                    "gather: ValueError: The future belongs to a different loop than the one specified as the loop argument"
                    "task_done: ValueError: task_done() called too many times" ]
                  out.Items)

          // drain_connection_reset.py: drain's ConnectionResetError('Connection lost'); the reader's after a reset.
          testCase "12. DrainAsync (and reads) after the connection is lost or reset raise ConnectionResetException" (fun () ->
              use loop = new EventLoop()
              loop.CallLater(30.0, (fun () -> loop.Stop())) |> ignore
              let out = Log()
              runMainUnit loop (fun () ->
                  task {
                      let! server =
                          Asyncio.StartServer(
                              (fun reader writer ->
                                  task {
                                      let! first = reader.ReadAsync 1
                                      if first = "R"B then
                                          // Linger 0: closing sends RST instead of FIN.
                                          (writer.GetExtraInfo "socket" :?> Net.Sockets.Socket).LingerState <- Net.Sockets.LingerOption(true, 0)
                                          writer.Transport.Abort()
                                      else
                                          let! _ = reader.ReadAsync()
                                          writer.Close()
                                  }
                                  :> Task),
                              "127.0.0.1",
                              0
                          )
                      let port = (server.Sockets[0].LocalEndPoint :?> Net.IPEndPoint).Port
                      let! (_, w) = Asyncio.OpenConnection("127.0.0.1", port)
                      w.Write(ReadOnlySpan "C"B)
                      w.Close()
                      try
                          do! w.DrainAsync()
                          out.Add "drain after close: no error"
                      with :? ConnectionResetException as e ->
                          out.Add("drain after close: ConnectionResetError: " + e.Message)
                      let! (r, w) = Asyncio.OpenConnection("127.0.0.1", port)
                      w.Write(ReadOnlySpan "R"B)
                      try
                          let! _ = r.ReadAsync 100
                          out.Add "read after peer reset: no error"
                      with :? ConnectionResetException ->
                          out.Add "read after peer reset: ConnectionResetError"
                      try
                          do! w.DrainAsync()
                          out.Add "drain after peer reset: no error"
                      with :? ConnectionResetException ->
                          out.Add "drain after peer reset: ConnectionResetError"
                      w.Close()
                      server.Close()
                      do! server.WaitClosedAsync()
                  })
              matches
                  "drain_connection_reset.py"
                  [ "drain after close: ConnectionResetError: Connection lost"
                    "read after peer reset: ConnectionResetError"
                    "drain after peer reset: ConnectionResetError" ]
                  out.Items)
        ]

[<Tests>]
let smallApis =
    testList
        "Fidelity (issue 13) small APIs"
        [
          // waiter_counts.py: the counts asyncio shows in its reprs.
          testCase "waiter counts on Event, Condition, Semaphore, Queue (getters, putters), Barrier" (fun () ->
              use loop = newLoop ()
              let out = Log()
              runMainUnit loop (fun () ->
                  task {
                      let ev, cond, sem = AsyncEvent(), Condition(), AsyncSemaphore(0)
                      let empty, full, barrier = AsyncQueue<int>(), AsyncQueue<int>(1), AsyncBarrier(3)
                      full.PutNowait 0
                      let condWait () =
                          task {
                              let! _ = cond.AcquireAsync()
                              try
                                  let! _ = cond.WaitAsync()
                                  ()
                              finally
                                  cond.Release()
                          }
                          :> Task
                      let tasks =
                          [ for _ in 1..2 -> loop.CreateTask(fun () -> ev.WaitAsync().AsTask() :> Task) :> Future
                            for _ in 1..3 -> loop.CreateTask(Func<Task>(condWait)) :> Future
                            yield loop.CreateTask(fun () -> sem.AcquireAsync().AsTask() :> Task) :> Future
                            for _ in 1..2 -> loop.CreateTask(fun () -> empty.GetAsync().AsTask() :> Task) :> Future
                            for _ in 1..4 -> loop.CreateTask(fun () -> full.PutAsync(1).AsTask()) :> Future
                            for _ in 1..2 -> loop.CreateTask(fun () -> barrier.WaitAsync() :> Task) :> Future ]
                      do! Asyncio.Sleep 0.0
                      for ``when`` in [ "waiting"; "after cancel" ] do
                          out.Add(
                              sprintf "%s event %d condition %d semaphore %d getters %d putters %d barrier %d"
                                  ``when`` ev.Waiters cond.Waiters sem.Waiters empty.Getters full.Putters barrier.NWaiting
                          )
                          for t in tasks do
                              t.Cancel() |> ignore
                          let! _ = Asyncio.Gather(tasks, true)
                          ()
                  })
              matches
                  "waiter_counts.py"
                  [ "waiting event 2 condition 3 semaphore 1 getters 2 putters 4 barrier 2"
                    "after cancel event 0 condition 0 semaphore 0 getters 0 putters 0 barrier 0" ]
                  out.Items)

          // timer_handle_order.py: TimerHandle's comparisons by when().
          testCase "TimerHandle orders by When" (fun () ->
              use loop = newLoop ()
              let out = Log()
              runMainUnit loop (fun () ->
                  task {
                      let f = Action ignore
                      let g = Action ignore
                      let h1, h2, h3 = loop.CallAt(10.0, f), loop.CallAt(20.0, f), loop.CallAt(10.0, g)
                      out.Add(
                          String.Join(
                              " ",
                              // The C# operators (F#'s own < <= use IComparable, a total order).
                              [ TimerHandle.op_LessThan(h1, h2)
                                TimerHandle.op_GreaterThan(h2, h1)
                                TimerHandle.op_LessThanOrEqual(h1, h2)
                                TimerHandle.op_GreaterThanOrEqual(h2, h1)
                                TimerHandle.op_LessThan(h1, h3)
                                TimerHandle.op_LessThanOrEqual(h1, h3)
                                TimerHandle.op_LessThanOrEqual(h1, h1)
                                TimerHandle.op_GreaterThanOrEqual(h1, h1) ]
                              |> List.map py
                          )
                      )
                      let sorted = [ h2; h1; h3 ] |> List.sortWith (fun a b -> a.CompareTo b) |> List.map (fun h -> sprintf "%.1f" h.When)
                      out.Add("[" + String.Join(", ", sorted) + "]")
                      for h in [ h1; h2; h3 ] do
                          h.Cancel()
                  })
              matches "timer_handle_order.py" [ "True True True True False False True True"; "[10.0, 10.0, 20.0]" ] out.Items)

          // sleep_handle.py: the timer behind a sleep (asyncio: loop._scheduled[0]).
          testCase "SleepAwaitable.Timer: the TimerHandle behind a sleep, cancelled with it" (fun () ->
              use loop = newLoop ()
              let out = Log()
              runMainUnit loop (fun () ->
                  task {
                      let mutable h: TimerHandle = null
                      let t =
                          loop.CreateTask(fun () ->
                              task {
                                  let s = Asyncio.Sleep 5.0
                                  h <- s.Timer
                                  do! s
                              }
                              :> Task)
                      do! Asyncio.Sleep 0.0
                      out.Add(sprintf "due in: %.1f cancelled: %s" (Math.Round(h.When - loop.Time(), 1)) (py h.Cancelled))
                      t.Cancel() |> ignore
                      do! Asyncio.Sleep 0.0
                      out.Add(sprintf "after cancel: %s %s" (py h.Cancelled) (py t.Cancelled))
                  })
              matches "sleep_handle.py" [ "due in: 5.0 cancelled: False"; "after cancel: True True" ] out.Items)

          // stream_peek_abort.py: reader._buffer without consuming; transport._force_close(exc).
          testCase "LoopStreamReader.Buffered/Peek (also after an exception); ITransport.Abort(exception) reaches stream users" (fun () ->
              use loop = new EventLoop()
              loop.CallLater(30.0, (fun () -> loop.Stop())) |> ignore
              let out = Log()
              let pyBytes (b: byte[]) = "b'" + Text.Encoding.ASCII.GetString b + "'"
              runMainUnit loop (fun () ->
                  task {
                      let r = LoopStreamReader(loop)
                      r.FeedData(ReadOnlySpan "hello world"B)
                      out.Add(sprintf "peek: %s %d" (pyBytes (r.Peek 5)) r.Buffered.Length)
                      let! first = r.ReadExactlyAsync 6
                      out.Add("read: " + pyBytes first)
                      r.SetException(ValueError "boom")
                      out.Add("after exception: " + pyBytes (r.Buffered.ToArray()))
                      try
                          let! _ = r.ReadAsync 1
                          out.Add "read: no error"
                      with :? ValueError as e ->
                          out.Add("read raises: " + e.Message)
                      out.Add("still buffered: " + pyBytes (r.Peek()))
                      let! server =
                          Asyncio.StartServer(
                              (fun reader writer ->
                                  task {
                                      let! _ = reader.ReadAsync()
                                      writer.Close()
                                  }
                                  :> Task),
                              "127.0.0.1",
                              0
                          )
                      let port = (server.Sockets[0].LocalEndPoint :?> Net.IPEndPoint).Port
                      let! (reader, writer) = Asyncio.OpenConnection("127.0.0.1", port)
                      writer.Transport.Abort(ValueError "forced")
                      try
                          let! _ = reader.ReadAsync 10
                          out.Add "read after abort(exc): no error"
                      with :? ValueError as e ->
                          out.Add("read after abort(exc): " + e.Message)
                      try
                          do! writer.WaitClosedAsync()
                          out.Add "wait_closed after abort(exc): no error"
                      with :? ValueError as e ->
                          out.Add("wait_closed after abort(exc): " + e.Message)
                      server.Close()
                      do! server.WaitClosedAsync()
                  })
              matches
                  "stream_peek_abort.py"
                  [ "peek: b'hello' 11"
                    "read: b'hello '"
                    "after exception: b'world'"
                    "read raises: boom"
                    "still buffered: b'world'"
                    "read after abort(exc): forced"
                    "wait_closed after abort(exc): forced" ]
                  out.Items)
        ]

[<Tests>]
let runner =
    testList
        "Fidelity (issue 13) Runner"
        [
          // runner.py: asyncio.Runner's life cycle.
          testCase "Runner: several runs on one loop, GetLoop, Close cancels what is left and closes the loop" (fun () ->
              let out = Log()
              let worker () =
                  task {
                      let mutable i = 0
                      try
                          while true do
                              out.Add(sprintf "tick %d" i)
                              i <- i + 1
                              do! Asyncio.Sleep 1.0
                      with :? CancelledException as e ->
                          out.Add "worker cancelled at close"
                          return raise e
                  }
                  :> Task
              let first () =
                  task {
                      Asyncio.CreateTask(Func<Task>(worker)) |> ignore
                      do! Asyncio.Sleep 1.5
                      out.Add "first run done"
                      return 1
                  }
              let second () =
                  task {
                      do! Asyncio.Sleep 1.0
                      out.Add(sprintf "second run, tasks: %d" (Asyncio.AllTasks().Count))
                      return 2
                  }
              let runner = new Runner(clock = VirtualClock())
              let loop =
                  use runner = runner
                  out.Add(sprintf "result %d" (runner.Run(Func<Task<int>>(first))))
                  let loop = runner.GetLoop()
                  out.Add(sprintf "result %d" (runner.Run(Func<Task<int>>(second))))
                  out.Add("same loop: " + py (obj.ReferenceEquals(runner.GetLoop(), loop)))
                  loop
              out.Add("closed: " + py loop.IsClosed)
              try
                  runner.GetLoop() |> ignore
              with :? EventLoopException as e ->
                  out.Add("RuntimeError: " + e.Message)
              matches
                  "runner.py"
                  [ "tick 0"
                    "tick 1"
                    "first run done"
                    "result 1"
                    "tick 2"
                    "second run, tasks: 2"
                    "result 2"
                    "same loop: True"
                    "worker cancelled at close"
                    "closed: True"
                    "RuntimeError: Runner is closed" ]
                  out.Items)
        ]

/// task_factory.py's MyTask: a user's own task types (one per result shape in .NET).
type private MyTask<'T>(loop: EventLoop, coroutine: Func<Task<'T>>, name: string) =
    inherit LoopTask<'T>(loop, coroutine, name)

type private MyVoidTask(loop: EventLoop, coroutine: Func<Task>, name: string) =
    inherit LoopTask(loop, coroutine, name)

type private MyFactory(created: List<Future>) =
    interface ITaskFactory with
        member _.CreateTask<'T>(loop: EventLoop, coroutine: Func<Task<'T>>, name: string) : LoopTask<'T> =
            let t = MyTask<'T>(loop, coroutine, name)
            created.Add t
            t :> LoopTask<'T>

        member _.CreateTask(loop: EventLoop, coroutine: Func<Task>, name: string) : LoopTask =
            let t = MyVoidTask(loop, coroutine, name)
            created.Add t
            t :> LoopTask

let private kind (t: Future) =
    match t with
    | :? MyTask<int>
    | :? MyVoidTask -> "MyTask"
    | _ -> "Task"

[<Tests>]
let instrumentation =
    testList
        "Fidelity (issue 13) instrumentation"
        [
          // iteration_hook.py: a recording selector's timeouts and the callbacks of each iteration.
          testCase "IterationHook reports each iteration's poll timeout and callbacks run" (fun () ->
              use loop = newLoop ()
              let iterations = List<string>()
              loop.IterationHook <-
                  Action<LoopIteration>(fun it ->
                      let timeout =
                          if not it.PollTimeout.HasValue then "None"
                          elif it.PollTimeout.Value = TimeSpan.Zero then "0"
                          else sprintf "%g" (Math.Round(it.PollTimeout.Value.TotalSeconds, 3))
                      iterations.Add(sprintf "iteration %d: timeout=%s callbacks=%d" (iterations.Count + 1) timeout it.CallbacksRun))
              let cb = Action ignore
              loop.CallSoon cb |> ignore
              loop.CallSoon cb |> ignore
              loop.CallLater(0.1, cb) |> ignore
              loop.CallLater(0.25, cb) |> ignore
              loop.CallLater(0.25, (fun () -> loop.Stop())) |> ignore
              loop.RunForever()
              matches
                  "iteration_hook.py"
                  [ "iteration 1: timeout=0 callbacks=2"
                    "iteration 2: timeout=0.1 callbacks=1"
                    "iteration 3: timeout=0.15 callbacks=2" ]
                  (List.ofSeq iterations))

          // task_factory.py: set_task_factory / get_task_factory.
          testCase "SetTaskFactory / GetTaskFactory: the user's task type for every task creation" (fun () ->
              use loop = newLoop ()
              let out = Log()
              let created = List<Future>()
              let child () = Task.FromResult 5
              runMainUnit loop (fun () ->
                  task {
                      out.Add("factory before: " + py (isNull (loop.GetTaskFactory())))
                      let factory = MyFactory(created)
                      loop.SetTaskFactory factory
                      out.Add("factory set: " + py (obj.ReferenceEquals(loop.GetTaskFactory(), factory)))
                      let t = Asyncio.CreateTask(Func<Task<int>>(child), "kid")
                      let! v = t
                      out.Add(sprintf "%s %s %d" (kind t) t.Name v)
                      let mutable t2 = null
                      do!
                          TaskGroup.RunAsync(fun tg ->
                              t2 <- tg.CreateTask(Func<Task<int>>(child))
                              Task.CompletedTask)
                      out.Add("group: " + kind t2)
                      loop.SetTaskFactory null
                      let t3 = Asyncio.CreateTask(Func<Task<int>>(child))
                      let! _ = t3
                      out.Add(sprintf "reset: %s created: %d" (kind t3) created.Count)
                  })
              matches
                  "task_factory.py"
                  [ "factory before: True"; "factory set: True"; "MyTask kid 5"; "group: MyTask"; "reset: Task created: 2" ]
                  out.Items)
        ]
