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

/// The lines python3 prints for tests/asyncio-programs/<name>.
let private python (name: string) : string list =
    let psi = ProcessStartInfo("python3", Path.Combine(programs, name))
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
                                  let! _ = cond.Acquire()
                                  try
                                      let! got = cond.WaitFor(fun () -> if items.Count > 0 then items[0] else null)
                                      out.Add("wait_for returned: " + got)
                                  finally
                                      cond.Release()
                              }
                              :> Task)
                      do! Asyncio.Sleep 0.0
                      let! _ = cond.Acquire()
                      items.Add "first"
                      cond.NotifyAll()
                      cond.Release()
                      let! _ = consumer
                      let! _ = cond.Acquire()
                      let! v = cond.WaitFor(fun () -> 42)
                      out.Add(sprintf "already true: %d" v)
                      cond.Release()
                  })
              matches "condition_wait_for_value.py" [ "wait_for returned: first"; "already true: 42" ] out.Items)
        ]
