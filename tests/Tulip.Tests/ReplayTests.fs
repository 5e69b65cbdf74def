/// Issue 12: arrivals have one door. A real run — sockets, posts from another thread, timers — is
/// recorded at the core's boundary (RecordingScheduler), and the pure core, fed the recorded inputs
/// (arrivals included), must answer every one exactly as the run saw: every poll timeout and every
/// batch. Nothing that decides an order is left outside the core.
module Tulip.Tests.ReplayTests

open System
open System.Threading
open System.Threading.Tasks
open Expecto
open Tulip
open Tulip.Core
open Tulip.Scheduling
open Tulip.Tests.ShellSupport

let private b (s: string) = Text.Encoding.ASCII.GetBytes s

let private effectsText (es: Effect seq) =
    es
    |> Seq.map (fun e ->
        match e with
        | Run batch -> sprintf "Run %A" (List.ofArray batch)
        | e -> sprintf "%A" e)
    |> List.ofSeq

/// Runs `program` on a real-clock loop whose scheduler (`inner`) is recorded; returns the record.
let private record (inner: int64 -> ITickScheduler) (program: EventLoop -> Task) =
    let mutable recorder = Unchecked.defaultof<RecordingScheduler>

    let loop =
        new EventLoop(
            MonotonicClock(),
            Func<int64, ITickScheduler>(fun now ->
                recorder <- RecordingScheduler(inner now, now)
                recorder :> ITickScheduler),
            SchedulerKind.Fast
        )

    try
        loop.RunUntilComplete(Func<Task>(fun () -> program loop))
    finally
        loop.Close()

    recorder

/// Feeds the recorded inputs to Loop.step from the recorded start; fails at the first answer that
/// differs. Returns the number of inputs replayed.
let private replay (r: RecordingScheduler) =
    let mutable s = LoopState.startingAt r.StartedAt

    for i in 0 .. r.Steps.Count - 1 do
        let struct (input, effects, rejected) = r.Steps[i]

        match Loop.step input s with
        | Ok (s', es) ->
            if not (isNull (box rejected)) then
                failtestf "input #%d %A: the run was refused (%A), the core accepts it" i input rejected

            let recorded = effectsText effects
            let again = effectsText es

            if recorded <> again then
                failtestf "input #%d %A: the run answered %A, the core %A" i input recorded again

            s <- s'
        | Error r ->
            if isNull (box rejected) || rejected <> r then
                failtestf "input #%d %A: the core refuses it (%A), the run answered %A" i input r rejected

    r.Steps.Count

/// Sockets, posts and timers at once: an echo server and a client exchanging lines, another thread
/// posting callbacks throughout, timers firing between.
let private busyProgram (loop: EventLoop) : Task =
    task {
        let! server =
            Asyncio.StartServer(
                (fun reader writer ->
                    task {
                        let e = reader.ReadLinesAsBytesAsync().GetAsyncEnumerator()
                        let mutable go = true

                        while go do
                            let! more = e.MoveNextAsync()

                            if more then
                                writer.Write(ReadOnlySpan(e.Current))
                                do! writer.DrainAsync()
                            else
                                go <- false

                        writer.Close()
                        do! writer.WaitClosedAsync()
                    }
                    :> Task),
                "127.0.0.1",
                0
            )

        let port = (server.Sockets[0].LocalEndPoint :?> Net.IPEndPoint).Port
        let! (reader, writer) = Asyncio.OpenConnection("127.0.0.1", port)
        let mutable posted = 0
        let postsDone = new ManualResetEventSlim(false)

        // Another thread talks to the server over a blocking socket and posts right after each send,
        // so posts often arrive while the loop polls, beside the readiness of the same poll.
        let poster =
            Thread(fun () ->
                use sock = new Net.Sockets.Socket(Net.Sockets.SocketType.Stream, Net.Sockets.ProtocolType.Tcp)
                sock.Connect("127.0.0.1", port)
                let echo = Array.zeroCreate<byte> 2

                for _ in 1..200 do
                    sock.Send(b "p\n") |> ignore
                    loop.CallSoonThreadsafe(fun () -> posted <- posted + 1) |> ignore
                    let mutable got = 0

                    while got < 2 do
                        got <- got + sock.Receive(echo, got, 2 - got, Net.Sockets.SocketFlags.None)

                sock.Shutdown(Net.Sockets.SocketShutdown.Send)
                postsDone.Set())

        poster.Start()
        let mutable fired = 0

        for i in 1..5 do
            loop.CallLater(float i * 0.001, (fun () -> fired <- fired + 1)) |> ignore

        for i in 1..30 do
            writer.Write(ReadOnlySpan(b (sprintf "line %d\n" i)))
            do! writer.DrainAsync()
            let! line = reader.ReadLineBytesAsync()
            Expect.equal (Text.Encoding.ASCII.GetString line) (sprintf "line %d\n" i) "the echo"

            if i % 10 = 0 then
                do! Asyncio.Sleep 0.002

        while not postsDone.IsSet || posted < 200 do
            do! Asyncio.Sleep 0.001

        while fired < 5 do
            do! Asyncio.Sleep 0.001

        writer.Close()
        do! writer.WaitClosedAsync()
        server.Close()
        do! server.WaitClosedAsync()
        poster.Join()
    }

/// Issue 16: resolver completions and signals reach the loop through the same door as every post, so
/// a run of lookups and signal deliveries replays through the core too. SIGXCPU (held by a registration
/// of "other code" for the run, so a late one cannot dump core) is sent by nothing else in the tests.
let private namesAndSignalsProgram (loop: EventLoop) : Task =
    task {
        use _safety =
            Runtime.InteropServices.PosixSignalRegistration.Create(
                enum<Runtime.InteropServices.PosixSignal> UnixSignal.SIGXCPU,
                fun c -> c.Cancel <- true
            )

        for _ in 1..5 do
            let! r = loop.GetAddrInfoAsync("localhost", 80)
            Expect.isNonEmpty r "localhost resolved"
            let! _ = loop.GetNameInfoAsync(Net.IPEndPoint(Net.IPAddress.Loopback, 80))
            ()

        let mutable got = loop.CreateFuture<unit>()
        loop.AddSignalHandler(UnixSignal.SIGXCPU, fun () -> if not got.Done then got.SetResult(()))

        for _ in 1..5 do
            got <- loop.CreateFuture<unit>()
            UnixSignal.SendToSelf UnixSignal.SIGXCPU
            do! got

        loop.RemoveSignalHandler UnixSignal.SIGXCPU |> ignore
    }

let private kinds (r: RecordingScheduler) =
    let inputs = r.Steps |> Seq.map (fun (struct (i, _, _)) -> i) |> List.ofSeq

    let ioEvents =
        inputs
        |> List.sumBy (fun i ->
            match i with
            | Polled (_, _, io) -> io.Length
            | _ -> 0)

    let posts =
        inputs
        |> List.sumBy (fun i ->
            match i with
            | BeginTick (_, p) -> p.Length
            | Polled (_, p, _) -> p.Length
            | _ -> 0)

    let timers =
        inputs
        |> List.sumBy (fun i ->
            match i with
            | CallAt _ -> 1
            | _ -> 0)

    let watches =
        inputs
        |> List.sumBy (fun i ->
            match i with
            | Watch _ -> 1
            | _ -> 0)

    ioEvents, posts, timers, watches

[<Tests>]
let tests =
    testList
        "Replay through the core"
        [ testCase "a run with sockets, posts and timers is reproduced exactly by the pure core fed its recorded arrivals (Fast twin)" (fun () ->
              let r = record (fun now -> MutableScheduler(now)) busyProgram
              let ioEvents, posts, timers, watches = kinds r
              // Not vacuous: the record holds every kind of arrival.
              Expect.isGreaterThan ioEvents 30 "I/O readiness arrived through Polled"
              Expect.isGreaterThanOrEqual posts 200 "every post arrived through BeginTick / Polled"
              Expect.isGreaterThanOrEqual timers 5 "timers were scheduled"
              Expect.isGreaterThan watches 2 "sources were watched"
              let n = replay r
              Expect.isGreaterThan n 500 "a long record")

          testCase "resolver completions and signal deliveries arrive as posts and replay exactly through the core (issue 16)" (fun () ->
              let r = record (fun now -> MutableScheduler(now)) namesAndSignalsProgram
              let _, posts, _, _ = kinds r
              // 10 lookups (localhost and a reverse lookup go to the resolver pool) and 5 signals.
              Expect.isGreaterThanOrEqual posts 15 "every completion and delivery came through the door"
              replay r |> ignore)

          testCase "the same with the pure core as the loop's scheduler (Model)" (fun () ->
              let r = record (fun now -> CoreScheduler(now)) busyProgram
              let ioEvents, posts, _, _ = kinds r
              Expect.isGreaterThan ioEvents 30 "I/O readiness arrived through Polled"
              Expect.isGreaterThanOrEqual posts 200 "every post arrived"
              replay r |> ignore) ]
