/// Scenarios that change the whole process, run in a child (`Tulip.Tests --child NAME ARGS...`) so the
/// test process is never touched: running out of file descriptors. The child prints what it saw, one
/// fact per line, and the test (FaultTests) checks it.
module Tulip.Tests.FaultChild

open System
open System.Net
open System.Net.Sockets
open System.Threading
open System.Threading.Tasks
open Tulip
open Tulip.Io
open Tulip.Tests.NetSupport

let private say (line: string) =
    Console.Out.WriteLine line
    Console.Out.Flush()

/// asyncio's _accept_connection on EMFILE: report 'socket.accept() out of system resource', stop
/// accepting for ACCEPT_RETRY_DELAY (1 s), then start again. Run under `ulimit -n` (a few hundred),
/// the child takes every descriptor left (after one warm-up connection), waits for the parent's connection to bounce off accept
/// for a while, gives the descriptors back, and echoes the connection once it is accepted.
let acceptOutOfDescriptors (kind: ReactorKind) =
    use loop = new EventLoop()
    loop.Reactor <- kind
    let reports = ResizeArray<float * ExceptionContext>()
    // Only recorded: formatting a stack trace may open files, and there are none to open.
    loop.SetExceptionHandler(ExceptionHandler(fun _ ctx -> reports.Add((loop.Time(), ctx))))
    let signal = Signal(loop)
    let accepted = ResizeArray<Recorder>()

    let factory () =
        let r = Recorder(signal, "server side")
        r.Echo <- true
        accepted.Add r
        r :> BaseProtocol

    loop.RunUntilComplete(
        Func<Task<unit>>(fun () ->
            task {
                let! server = loop.CreateServerAsync(Func<BaseProtocol>(factory), loopback, 0)
                say $"PORT {portOf server}"
                // Warm up first: the accept path loads code from files the first time it runs (.NET's
                // socket telemetry, for one), and with no descriptor left that would fail for good.
                let warm = Recorder(signal, "warm-up")
                let! struct (t, _) = loop.CreateConnectionAsync(Func<Recorder>(fun () -> warm), loopback, portOf server)
                write t "warm"B
                do! waitFor signal (fun () -> warm.ReceivedCount = 4)
                t.Close()
                do! waitFor signal (fun () -> warm.IsLost && accepted.Count = 1 && accepted[0].IsLost)
                let hogs = ResizeArray<Socket>()

                try
                    while true do
                        hogs.Add(new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp))
                with :? SocketException as e when e.SocketErrorCode = SocketError.TooManyOpenSockets ->
                    ()

                say $"FULL {hogs.Count}"
                do! poll (fun () -> reports.Count > 0)
                // Still out of descriptors for two more retry delays.
                do! Asyncio.Sleep 2.2

                for h in hogs do
                    h.Dispose()

                say "FREED"
                do! waitFor signal (fun () -> accepted.Count = 2 && accepted[1].IsLost)
                server.Close()
                do! server.WaitClosedAsync()
            })
    )

    let first = fst reports[0]

    for t, ctx in reports do
        let code =
            match ctx.Exception with
            | :? SocketException as e -> string e.SocketErrorCode
            | e -> string e

        say $"REPORT {t - first:F3} {code} {ctx.Message}"

    let reactor = loop.ReactorInstanceIfAny
    say $"""ECHOED {Text.Encoding.ASCII.GetString accepted[1].Received}"""
    say $"REACTOR {(if isNull reactor then 0 else reactor.Count)}"
    say "DONE"
    0

/// Issue 16: a console program written with Tulip and no signal code of its own. Its main task
/// sleeps; the parent sends SIGINT. Asyncio.Run cancels the main task (its finally runs), then raises
/// KeyboardInterruptException, which this "program" turns into exit code 130 as Python does. With
/// `stubborn`, the main task swallows the first cancellation and sleeps on: the second SIGINT must then
/// end the process by the default action.
/// The same, with SIGTERM handling asked for (Asyncio.Run's handleSigterm), or not.
let runUnder (stubborn: bool) (handleSigterm: bool) =
    try
        Asyncio.Run((fun () ->
            task {
                try
                    try
                        say "READY"
                        do! Asyncio.Sleep 30.0
                        say "SLEPT"
                    with :? OperationCanceledException when stubborn ->
                        say "IGNORED"
                        do! Asyncio.Sleep 30.0
                finally
                    say "FINALLY"
            }
            :> Task), handleSigterm = handleSigterm)

        say "RETURNED"
        0
    with :? KeyboardInterruptException as e ->
        say $"INTERRUPTED {e.Signal}"
        130

/// Started with SIGINT ignored (a background job): a loop's SIGINT handler is refused with a clear
/// error (the runtime would never deliver it), and Asyncio.Run installs none and runs normally.
let runUnderSigint (stubborn: bool) = runUnder stubborn false

let sigintIgnored () =
    use loop = new EventLoop()

    try
        loop.AddSignalHandler(2, (fun () -> ()))
        say "ACCEPTED"
    with e ->
        say $"REFUSED {e.GetType().Name}"

    Asyncio.Run(fun () -> task { say "RAN" } :> Task)
    0

/// The main task blocks the loop's thread (sync-over-async, a hung call): the first SIGINT's delivery
/// can never run on the loop, and the second must still end the process by the default action.
let runStuck () =
    Asyncio.Run(fun () ->
        task {
            say "READY"
            Thread.Sleep 30_000
            say "SLEPT"
        }
        :> Task)

    say "RETURNED"
    0

/// The program handles SIGINT itself on the Runner's loop before Run: Run installs nothing (asyncio's
/// Runner only installs where SIGINT has its default handler), so the program's handler gets the signal
/// and the main task is not cancelled.
let runnerOwnSigint () =
    use runner = new Runner()
    let loop = runner.GetLoop()
    let got = loop.CreateFuture<int>()
    loop.AddSignalHandler(UnixSignal.SIGINT, fun () -> say "OWN"; if not got.Done then got.SetResult 2)

    runner.Run(fun () ->
        task {
            say "READY"
            let! _ = got
            say "DONE"
        }
        :> Task)

    say (sprintf "HANDLED %b" (loop.RemoveSignalHandler UnixSignal.SIGINT))
    0

let run (args: string list) =
    match args with
    | [ "accept-emfile"; kind ] -> acceptOutOfDescriptors (Enum.Parse<ReactorKind> kind)
    | [ "run-sigint" ] -> runUnderSigint false
    | [ "run-sigint-stubborn" ] -> runUnderSigint true
    | [ "sigint-ignored" ] -> sigintIgnored ()
    | [ "run-sigint-stuck" ] -> runStuck ()
    | [ "runner-own-sigint" ] -> runnerOwnSigint ()
    | [ "run-sigterm"; opt ] -> runUnder false (opt = "handled")
    | _ ->
        eprintfn "unknown child scenario: %A" args
        2
