/// Unix signals (issue 16): AddSignalHandler / RemoveSignalHandler with real signals sent to this test
/// process (kill(getpid(), sig)), the process-wide dispatcher, and Asyncio.Run's Ctrl+C handling in a
/// child process. Every test waits on the loop for the handler, under a time limit, never sleeping
/// blindly; every test leaves no handler registered. A "safety" PosixSignalRegistration (other code's,
/// as far as Tulip knows) holds each signal a test sends for the test's whole length, so a signal that
/// arrives late can never take the default action (terminate) in the test process. The tests send
/// SIGUSR2, SIGVTALRM, SIGPROF and SIGPWR: SIGHUP, SIGUSR1 and SIGINT belong to the `signal` example,
/// which may run at the same time.
module Tulip.Tests.SignalTests

open System
open System.Runtime.InteropServices
open System.Threading
open System.Threading.Tasks
open Expecto
open Tulip
open Tulip.Signals
open Tulip.Tests.DnsTests
open Tulip.Tests.NetSupport

let private send (signal: int) = UnixSignal.SendToSelf signal

/// This test program as a child (`--child NAME`), started with SIGINT and SIGQUIT at their defaults
/// (`env --default-signal`): a test run as a background job inherits them ignored, and so would the child.
let private childWithDefaultSigint (prefix: string) (args: string list) =
    let host = Environment.ProcessPath
    let dll = Reflection.Assembly.GetExecutingAssembly().Location
    let command = if IO.Path.GetFileNameWithoutExtension host = "dotnet" then [ host; dll ] else [ host ]
    let psi = Diagnostics.ProcessStartInfo("/bin/bash")
    psi.ArgumentList.Add "-c"
    psi.ArgumentList.Add(prefix + " \"$0\" \"$@\"")

    for a in command @ [ "--child" ] @ args do
        psi.ArgumentList.Add a

    new Child(psi, ignore)

/// Other code's registrations for `signals` (they cancel the default action), held while `f` runs.
let private withSafety (signals: int list) (f: unit -> unit) =
    let regs =
        [ for s in signals -> PosixSignalRegistration.Create(enum<PosixSignal> s, fun ctx -> ctx.Cancel <- true) ]

    try
        f ()
    finally
        for r in regs do
            r.Dispose()

/// A loop future the handler completes; the test awaits it.
let private flag (loop: EventLoop) = loop.CreateFuture<unit>()

let private setFlag (f: Future<unit>) = if not f.Done then f.SetResult(())

[<Tests>]
let tests =
    testSequenced
    <| testList
        "Signals"
        [ testCase "each handler runs once per signal, on the loop's thread; removal reports whether one was registered"
          <| fun () ->
              withSafety [ UnixSignal.SIGUSR2; UnixSignal.SIGVTALRM; UnixSignal.SIGPROF ] (fun () ->
                  realLoop 10.0 (fun loop ->
                      task {
                          let loopThread = Environment.CurrentManagedThreadId
                          let counts = Collections.Generic.Dictionary<int, int>()
                          let threads = ResizeArray<int>()
                          let mutable waiting = flag loop

                          for s in [ UnixSignal.SIGUSR2; UnixSignal.SIGVTALRM; UnixSignal.SIGPROF ] do
                              counts[s] <- 0

                              loop.AddSignalHandler(
                                  s,
                                  (fun (sg: int) ->
                                      counts[sg] <- counts[sg] + 1
                                      threads.Add Environment.CurrentManagedThreadId
                                      setFlag waiting),
                                  s
                              )

                          for s in [ UnixSignal.SIGUSR2; UnixSignal.SIGVTALRM; UnixSignal.SIGPROF ] do
                              waiting <- flag loop
                              send s
                              do! waiting
                              Expect.equal counts[s] 1 $"signal {s}: its handler ran once"

                          // Nothing more comes: a last round trip through a signal shows no stray call.
                          waiting <- flag loop
                          send UnixSignal.SIGUSR2
                          do! waiting
                          Expect.equal (List.ofSeq counts.Values) [ 2; 1; 1 ] "one call per signal sent"
                          Expect.allEqual threads loopThread "handlers run on the loop's thread"
                          Expect.isTrue (loop.RemoveSignalHandler UnixSignal.SIGVTALRM) "removed"
                          Expect.isFalse (loop.RemoveSignalHandler UnixSignal.SIGVTALRM) "nothing left to remove"
                          Expect.isFalse (loop.RemoveSignalHandler UnixSignal.SIGTERM) "never registered"
                          Expect.isTrue (loop.RemoveSignalHandler UnixSignal.SIGUSR2) "removed"
                          Expect.isTrue (loop.RemoveSignalHandler UnixSignal.SIGPROF) "removed"
                          Expect.isEmpty loop.HandledSignals "no handler left"
                      }))

          testCase "a burst of 1,000 signals then a final one: calls may coalesce, but one always follows the last signal sent"
          <| fun () ->
              withSafety [ UnixSignal.SIGPWR ] (fun () ->
                  realLoop 20.0 (fun loop ->
                      task {
                          let mutable finalSent = false
                          let mutable calls = 0
                          let mutable sawFinal = flag loop

                          loop.AddSignalHandler(
                              UnixSignal.SIGPWR,
                              fun () ->
                                  calls <- calls + 1
                                  // Read after the call began: true only if the final kill() came before.
                                  if Volatile.Read(&finalSent) then setFlag sawFinal
                          )

                          let sender =
                              Task.Run(fun () ->
                                  for _ in 1..1000 do
                                      send UnixSignal.SIGPWR

                                  Volatile.Write(&finalSent, true)
                                  send UnixSignal.SIGPWR)

                          do! sender
                          do! sawFinal
                          Expect.isGreaterThanOrEqual calls 1 "the handler ran"
                          Expect.isLessThanOrEqual calls 1001 "never more calls than signals"
                          Expect.isTrue (loop.RemoveSignalHandler UnixSignal.SIGPWR) "removed"
                      }))

          testCase "refused: SIGKILL, SIGSTOP, numbers that are no signal, a closed loop; nothing is registered by a refusal"
          <| fun () ->
              let loop = new EventLoop()

              for s in [ UnixSignal.SIGKILL; UnixSignal.SIGSTOP ] do
                  let e = ShellSupport.throws<ArgumentException> (fun () -> loop.AddSignalHandler(s, ignore))
                  Expect.stringContains e.Message $"sig {s} cannot be caught" "asyncio's message"

              for s in [ 0; -1; 65; Int32.MaxValue ] do
                  ShellSupport.throws<ArgumentOutOfRangeException> (fun () -> loop.AddSignalHandler(s, ignore)) |> ignore
                  ShellSupport.throws<ArgumentOutOfRangeException> (fun () -> loop.RemoveSignalHandler s |> ignore) |> ignore

              ShellSupport.throws<ArgumentNullException> (fun () -> loop.AddSignalHandler(UnixSignal.SIGUSR1, (null: Action))) |> ignore
              Expect.isEmpty loop.HandledSignals "nothing registered"
              Expect.isFalse (SignalDispatcher.Registered() |> Array.contains UnixSignal.SIGKILL) "no SIGKILL registration"
              loop.Close()
              ShellSupport.throws<EventLoopException> (fun () -> loop.AddSignalHandler(UnixSignal.SIGUSR1, ignore)) |> ignore
              ShellSupport.throws<EventLoopException> (fun () -> loop.RemoveSignalHandler UnixSignal.SIGUSR1 |> ignore) |> ignore

          testCase "closing the loop removes its handlers: no registration is left in the process"
          <| fun () ->
              // SIGWINCH and SIGURG: nothing else in the tests uses them, and their default is to ignore.
              let loop = new EventLoop()
              loop.AddSignalHandler(UnixSignal.SIGWINCH, ignore)
              loop.AddSignalHandler(UnixSignal.SIGURG, ignore)
              let before = SignalDispatcher.Registered()
              Expect.contains before UnixSignal.SIGWINCH "registered while the loop lives"
              Expect.contains before UnixSignal.SIGURG "registered while the loop lives"
              loop.Close()
              let after = SignalDispatcher.Registered()
              Expect.isFalse (after |> Array.contains UnixSignal.SIGWINCH) "SIGWINCH's registration is gone"
              Expect.isFalse (after |> Array.contains UnixSignal.SIGURG) "SIGURG's registration is gone"
              Expect.isEmpty loop.HandledSignals "the loop keeps none"

          testCase "two loops handle one signal (one dispatcher fans out), beside other code's PosixSignalRegistration"
          <| fun () ->
              let mutable otherSaw = 0

              use other =
                  PosixSignalRegistration.Create(
                      enum<PosixSignal> UnixSignal.SIGUSR2,
                      fun ctx ->
                          Interlocked.Increment(&otherSaw) |> ignore
                          ctx.Cancel <- true
                  )

              let second = new EventLoop()

              try
                  let secondSaw = second.CreateFuture<unit>()
                  second.AddSignalHandler(UnixSignal.SIGUSR2, fun () -> setFlag secondSaw)

                  realLoop 10.0 (fun loop ->
                      task {
                          let mutable firstCalls = 0
                          let mutable firstSaw = flag loop

                          loop.AddSignalHandler(
                              UnixSignal.SIGUSR2,
                              fun () ->
                                  firstCalls <- firstCalls + 1
                                  setFlag firstSaw
                          )

                          Expect.equal (SignalDispatcher.TargetCount UnixSignal.SIGUSR2) 2 "one registration, two loops"
                          send UnixSignal.SIGUSR2
                          do! firstSaw
                          Expect.isTrue (loop.RemoveSignalHandler UnixSignal.SIGUSR2) "removed from the first loop"
                          // Other code's registration still sees signals; the removed handler does not.
                          let seen = Volatile.Read(&otherSaw)
                          send UnixSignal.SIGUSR2

                          while Volatile.Read(&otherSaw) = seen do
                              do! Asyncio.Sleep 0.002

                          do! Asyncio.Sleep 0.02
                          Expect.equal firstCalls 1 "the removed handler was not called again"
                      })

                  // The second loop (idle all along) got its delivery posted; running it delivers it.
                  second.RunUntilComplete(secondSaw)
                  Expect.isGreaterThanOrEqual (Volatile.Read(&otherSaw)) 2 "other code's handler saw both signals"
              finally
                  second.Close()

              Expect.equal (SignalDispatcher.TargetCount UnixSignal.SIGUSR2) 0 "no loop handles SIGUSR2 any more"

          testCase "a handler that throws reports to the loop's exception handler and stays registered"
          <| fun () ->
              withSafety [ UnixSignal.SIGPROF ] (fun () ->
                  realLoop 10.0 (fun loop ->
                      task {
                          let errors = ShellSupport.collectErrors loop
                          let mutable calls = 0
                          let mutable saw = flag loop

                          loop.AddSignalHandler(
                              UnixSignal.SIGPROF,
                              fun () ->
                                  calls <- calls + 1
                                  setFlag saw
                                  failwith "boom"
                          )

                          send UnixSignal.SIGPROF
                          do! saw
                          saw <- flag loop
                          send UnixSignal.SIGPROF
                          do! saw
                          Expect.equal calls 2 "still called"
                          Expect.equal errors.Count 2 "each error reported"
                          loop.RemoveSignalHandler UnixSignal.SIGPROF |> ignore
                      }))

          testCase "signals as an await foreach stream: one item per signal, in order; ending the enumeration removes the handlers"
          <| fun () ->
              withSafety [ UnixSignal.SIGUSR2; UnixSignal.SIGPROF ] (fun () ->
                  realLoop 10.0 (fun loop ->
                      task {
                          let e = loop.ReceiveSignalsAsync([| UnixSignal.SIGUSR2; UnixSignal.SIGPROF |]).GetAsyncEnumerator()
                          // The first MoveNext installs the handlers (synchronously, on the loop) and waits.
                          let first = e.MoveNextAsync().AsTask()
                          Expect.sequenceEqual (Seq.sort loop.HandledSignals) [ UnixSignal.SIGUSR2; UnixSignal.SIGPROF ] "handlers installed"
                          send UnixSignal.SIGUSR2
                          let! more = first
                          Expect.isTrue more "an item"
                          Expect.equal e.Current UnixSignal.SIGUSR2 "SIGUSR2 first"
                          let next = e.MoveNextAsync().AsTask()
                          send UnixSignal.SIGPROF
                          let! more = next
                          Expect.isTrue more "an item"
                          Expect.equal e.Current UnixSignal.SIGPROF "then SIGPROF"
                          do! e.DisposeAsync()
                          Expect.isEmpty loop.HandledSignals "disposing the enumerator removed the handlers"
                          // A token ends it too.
                          use cts = new CancellationTokenSource()
                          let e2 = loop.ReceiveSignalsAsync([| UnixSignal.SIGUSR2 |], cts.Token).GetAsyncEnumerator()
                          let pending = e2.MoveNextAsync().AsTask()
                          cts.Cancel()

                          try
                              let! _ = pending
                              failtest "ended without the token"
                          with :? OperationCanceledException ->
                              ()

                          do! e2.DisposeAsync()
                          Expect.isEmpty loop.HandledSignals "cancelled: no handler left"
                      }))

          testCase "signals as an IObservable (Tulip.Reactive): OnNext on the loop thread; disposing the subscription removes the handler"
          <| fun () ->
              withSafety [ UnixSignal.SIGUSR2 ] (fun () ->
                  realLoop 10.0 (fun loop ->
                      task {
                          let seen = ResizeArray<int * int>()
                          let mutable got = flag loop

                          let observer =
                              { new IObserver<int> with
                                  member _.OnNext s =
                                      seen.Add((s, Environment.CurrentManagedThreadId))
                                      setFlag got
                                  member _.OnError e = failtestf "OnError %O" e
                                  member _.OnCompleted() = () }

                          let sub = Tulip.Reactive.SignalObservables.ObserveSignals(loop, UnixSignal.SIGUSR2).Subscribe observer

                          while not (loop.HandledSignals |> Seq.contains UnixSignal.SIGUSR2) do
                              do! Asyncio.Sleep 0.0

                          send UnixSignal.SIGUSR2
                          do! got
                          Expect.equal (List.ofSeq seen) [ UnixSignal.SIGUSR2, Environment.CurrentManagedThreadId ] "one signal, observed on the loop thread"
                          sub.Dispose()

                          while not (Seq.isEmpty loop.HandledSignals) do
                              do! Asyncio.Sleep 0.0

                          Expect.equal (SignalDispatcher.TargetCount UnixSignal.SIGUSR2) 0 "no loop handles it any more"
                      }))

          testCase "Asyncio.Run under SIGINT (child process): the main task's finally runs, Run raises KeyboardInterrupt, exit 130"
          <| fun () ->
              use child = childWithDefaultSigint "exec env --default-signal=INT,QUIT" [ "run-sigint" ]
              Expect.equal (child.ReadLine 20.0) "READY" "the main task runs"
              Tulip.NameResolution.LibC.kill (child.Id, UnixSignal.SIGINT) |> ignore
              Expect.equal (child.ReadLine 10.0) "FINALLY" "the main task unwound"
              Expect.equal (child.ReadLine 10.0) $"INTERRUPTED {UnixSignal.SIGINT}" "Run raised KeyboardInterruptException"
              Expect.equal (child.WaitExit 10.0) 130 "the program's clean exit code"

          testCase "a second SIGINT gets the default action when the main task ignores the first (child process)"
          <| fun () ->
              use child = childWithDefaultSigint "exec env --default-signal=INT,QUIT" [ "run-sigint-stubborn" ]
              Expect.equal (child.ReadLine 20.0) "READY" "the main task runs"
              Tulip.NameResolution.LibC.kill (child.Id, UnixSignal.SIGINT) |> ignore
              Expect.equal (child.ReadLine 10.0) "IGNORED" "the first SIGINT cancelled the main task, which swallowed it"
              Tulip.NameResolution.LibC.kill (child.Id, UnixSignal.SIGINT) |> ignore
              let code = child.WaitExit 10.0
              Expect.equal code (128 + UnixSignal.SIGINT) "killed by SIGINT's default action"
              Expect.isFalse (child.TakeLines() |> List.exists (fun l -> l.StartsWith "INTERRUPTED")) "no orderly return"

          testCase "a second SIGINT ends the process even while the loop is stuck in blocking code (child process)"
          <| fun () ->
              // asyncio's _on_sigint raises KeyboardInterrupt on the second Ctrl+C whatever the loop does.
              use child = childWithDefaultSigint "exec env --default-signal=INT,QUIT" [ "run-sigint-stuck" ]
              Expect.equal (child.ReadLine 20.0) "READY" "the main task runs (and blocks the loop's thread)"
              Tulip.NameResolution.LibC.kill (child.Id, UnixSignal.SIGINT) |> ignore
              // Two separate deliveries: a signal still pending in the kernel would absorb the second.
              Thread.Sleep 1000
              Tulip.NameResolution.LibC.kill (child.Id, UnixSignal.SIGINT) |> ignore
              let code = child.WaitExit 15.0
              Expect.equal code (128 + UnixSignal.SIGINT) "killed by SIGINT's default action, not after the 30 s block"

          testCase "a program's own SIGINT handler on the Runner's loop keeps the signal: Run installs nothing (child process)"
          <| fun () ->
              use child = childWithDefaultSigint "exec env --default-signal=INT,QUIT" [ "runner-own-sigint" ]
              Expect.equal (child.ReadLine 20.0) "READY" "the main task runs"
              Tulip.NameResolution.LibC.kill (child.Id, UnixSignal.SIGINT) |> ignore
              Expect.equal (child.ReadLine 10.0) "OWN" "the program's handler ran"
              Expect.equal (child.ReadLine 10.0) "DONE" "the main task was not cancelled"
              Expect.equal (child.ReadLine 10.0) "HANDLED true" "and its handler is still registered after Run"
              Expect.equal (child.WaitExit 10.0) 0 "clean exit"

          testCase "a process started with SIGINT ignored (a background job): AddSignalHandler(SIGINT) is refused clearly, Run installs nothing"
          <| fun () ->
              use child = childWithDefaultSigint "trap '' INT; exec" [ "sigint-ignored" ]
              Expect.equal (child.ReadLine 20.0) "REFUSED SignalIgnoredException" "a typed refusal, not a handler that never runs"
              Expect.equal (child.ReadLine 10.0) "RAN" "Run runs as usual"
              Expect.equal (child.WaitExit 10.0) 0 "clean exit"

          testCase "SIGTERM is opt-in: with handleSigterm Run unwinds the main task and raises KeyboardInterrupt(15); without, the default action ends the process"
          <| fun () ->
              use child = childWithDefaultSigint "exec env --default-signal=INT,QUIT,TERM" [ "run-sigterm"; "handled" ]
              Expect.equal (child.ReadLine 20.0) "READY" "the main task runs"
              Tulip.NameResolution.LibC.kill (child.Id, UnixSignal.SIGTERM) |> ignore
              Expect.equal (child.ReadLine 10.0) "FINALLY" "the main task unwound"
              Expect.equal (child.ReadLine 10.0) $"INTERRUPTED {UnixSignal.SIGTERM}" "Run raised KeyboardInterruptException(SIGTERM)"
              Expect.equal (child.WaitExit 10.0) 130 "the program's exit code"
              use plain = childWithDefaultSigint "exec env --default-signal=INT,QUIT,TERM" [ "run-sigterm"; "default" ]
              Expect.equal (plain.ReadLine 20.0) "READY" "the main task runs"
              Tulip.NameResolution.LibC.kill (plain.Id, UnixSignal.SIGTERM) |> ignore
              let code = plain.WaitExit 10.0
              Expect.notEqual code 130 "not an orderly interrupt"
              Expect.isFalse (plain.TakeLines() |> List.exists (fun l -> l.StartsWith "INTERRUPTED")) "Run did not handle SIGTERM" ]
