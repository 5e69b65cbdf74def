/// Support for the integration tests on loopback (DESIGN.md §5): recording protocols, a test body run
/// on a real-clock loop with a chosen reactor under a time limit, the hygiene gate every such test ends
/// with, and CPython peers started as child processes.
module Tulip.Tests.NetSupport

open System
open System.Collections.Concurrent
open System.Collections.Generic
open System.Diagnostics
open System.IO
open System.Net
open System.Net.Sockets
open System.Text
open System.Threading.Tasks
open Expecto
open Tulip
open Tulip.Core
open Tulip.Io
open Tulip.Tests.ShellSupport

let loopback = "127.0.0.1"

/// Deterministic test bytes: byte i is (i + seed) mod 251 (the CPython peers make the same).
let payload (seed: int) (n: int) =
    Array.init n (fun i -> byte ((i + seed) % 251))

let portOf (server: Server) =
    (server.Sockets[0].LocalEndPoint :?> IPEndPoint).Port

let span (bytes: byte[]) = ReadOnlySpan<byte>(bytes)

/// "Something happened" (bytes, EOF, a lost connection, a flow-control call): whoever waits for a
/// condition looks at it again. Event-driven, so waits never poll.
[<AllowNullLiteral>]
type Signal(loop: EventLoop) =
    let mutable next: Future<unit> = null

    member _.Pulse() =
        let f = next
        next <- null

        if not (isNull f) && not f.Done then
            f.SetResult(())

    member _.Next() =
        if isNull next then
            next <- loop.CreateFuture<unit>()

        next

/// Waits (in a loop task) until `cond` holds, looking again at each pulse of `signal`.
let waitFor (signal: Signal) (cond: unit -> bool) : Task<unit> =
    task {
        while not (cond ()) do
            let! () = signal.Next()
            ()
    }

/// Waits for a condition nothing pulses for (a server's connection count, a reactor's registrations).
let poll (cond: unit -> bool) : Task<unit> =
    task {
        while not (cond ()) do
            do! Asyncio.Sleep 0.002
    }

/// A protocol whose calls the hygiene gate checks against the core's grammar.
type IRecorded =
    abstract Calls: ProtocolCall list
    abstract Describe: string

/// A stream protocol that records every call (ProtocolGrammar's alphabet) and what it received, with
/// hooks a test sets to act at each call.
type Recorder(signal: Signal, name: string) =
    inherit Protocol()
    let calls = ResizeArray<ProtocolCall>()
    let received = new MemoryStream()
    let mutable transport: ITransport = null
    let mutable lostWith: exn = null

    member val Echo = false with get, set
    member val KeepOpenOnEof = false with get, set
    member val PauseReadingOnMade = false with get, set
    member val OnMade: ITransport -> unit = ignore with get, set
    member val OnData: byte[] -> unit = ignore with get, set
    member val OnEof: unit -> unit = ignore with get, set
    member val OnLost: exn -> unit = ignore with get, set
    member val OnPause: unit -> unit = ignore with get, set
    member val OnResume: unit -> unit = ignore with get, set
    member val Pauses = 0 with get, set
    member val Resumes = 0 with get, set
    member _.Name = name
    member _.Transport = transport
    member _.Calls = List.ofSeq calls
    member _.Received = received.ToArray()
    member _.ReceivedCount = int received.Length
    member _.IsMade = calls.Contains ProtocolCall.ConnectionMade
    member _.EofSeen = calls.Contains ProtocolCall.EofReceived
    member _.IsLost = calls.Contains ProtocolCall.ConnectionLost
    /// The exception ConnectionLost was called with (null: a clean close).
    member _.LostWith = lostWith

    override this.ConnectionMade(t) =
        calls.Add ProtocolCall.ConnectionMade
        transport <- t :?> ITransport

        if this.PauseReadingOnMade then
            transport.PauseReading()

        (this.OnMade) transport
        signal.Pulse()

    override this.DataReceived(data) =
        calls.Add ProtocolCall.DataReceived
        let bytes = data.ToArray()
        received.Write(bytes, 0, bytes.Length)

        if this.Echo then
            transport.Write(span bytes)

        (this.OnData) bytes
        signal.Pulse()

    override this.EofReceived() =
        calls.Add ProtocolCall.EofReceived
        (this.OnEof) ()
        signal.Pulse()
        this.KeepOpenOnEof

    override this.ConnectionLost(e) =
        calls.Add ProtocolCall.ConnectionLost
        lostWith <- e
        (this.OnLost) e
        signal.Pulse()

    override this.PauseWriting() =
        this.Pauses <- this.Pauses + 1
        (this.OnPause) ()
        signal.Pulse()

    override this.ResumeWriting() =
        this.Resumes <- this.Resumes + 1
        (this.OnResume) ()
        signal.Pulse()

    interface IRecorded with
        member this.Calls = this.Calls
        member this.Describe = $"{name}: %A{this.Calls}"

/// asyncio.BufferedProtocol that records: the transport reads straight into a small buffer of its own.
type BufferedRecorder(signal: Signal, bufferSize: int) =
    inherit BufferedProtocol()
    let calls = ResizeArray<ProtocolCall>()
    let buffer = Array.zeroCreate<byte> bufferSize
    let received = new MemoryStream()
    let mutable transport: ITransport = null

    member val GetBufferCalls = 0 with get, set
    member val MaxFill = 0 with get, set
    member _.Calls = List.ofSeq calls
    member _.Received = received.ToArray()
    member _.ReceivedCount = int received.Length
    member _.Transport = transport
    member _.IsLost = calls.Contains ProtocolCall.ConnectionLost

    override _.ConnectionMade(t) =
        calls.Add ProtocolCall.ConnectionMade
        transport <- t :?> ITransport
        signal.Pulse()

    override this.GetBuffer(_sizeHint) =
        this.GetBufferCalls <- this.GetBufferCalls + 1
        Memory<byte>(buffer)

    override this.BufferUpdated(count) =
        calls.Add ProtocolCall.DataReceived
        this.MaxFill <- max this.MaxFill count
        received.Write(buffer, 0, count)
        signal.Pulse()

    override _.EofReceived() =
        calls.Add ProtocolCall.EofReceived
        signal.Pulse()
        false

    override _.ConnectionLost(_e) =
        calls.Add ProtocolCall.ConnectionLost
        signal.Pulse()

    interface IRecorded with
        member this.Calls = this.Calls
        member this.Describe = $"buffered: %A{this.Calls}"

/// asyncio.DatagramProtocol that records (datagrams count as DataReceived in the grammar).
type DatagramRecorder(signal: Signal) =
    inherit DatagramProtocol()
    let calls = ResizeArray<ProtocolCall>()
    let datagrams = ResizeArray<byte[] * EndPoint>()
    let errors = ResizeArray<exn>()
    let mutable transport: IDatagramTransport = null

    member val Echo = false with get, set
    member _.Calls = List.ofSeq calls
    member _.Datagrams = List.ofSeq datagrams
    member _.Errors = List.ofSeq errors
    member _.Transport = transport
    member _.IsLost = calls.Contains ProtocolCall.ConnectionLost

    override _.ConnectionMade(t) =
        calls.Add ProtocolCall.ConnectionMade
        transport <- t :?> IDatagramTransport
        signal.Pulse()

    override this.DatagramReceived(data, from) =
        calls.Add ProtocolCall.DataReceived
        let bytes = data.ToArray()
        datagrams.Add((bytes, from))

        if this.Echo then
            transport.SendTo(span bytes, from)

        signal.Pulse()

    override _.ErrorReceived(e) =
        errors.Add e
        signal.Pulse()

    override _.ConnectionLost(_e) =
        calls.Add ProtocolCall.ConnectionLost
        signal.Pulse()

    interface IRecorded with
        member this.Calls = this.Calls
        member this.Describe = $"datagram: %A{this.Calls}"

/// One integration test's world: its loop, what it made (for the gate and for cleaning up after a
/// failure), and what reached the exception handler.
type Net(loop: EventLoop, kind: ReactorKind) =
    let errors = collectErrors loop
    let signal = Signal(loop)
    let recorded = ResizeArray<IRecorded>()
    let servers = ResizeArray<Server>()
    let sockets = ResizeArray<Socket>()
    let transports = ResizeArray<ITransportBase>()

    member _.Loop = loop
    member _.Kind = kind
    member _.Signal = signal

    /// Exception-handler calls so far (the gate wants none left: take the ones the test expects).
    member _.Errors = List.ofSeq errors

    member _.TakeErrors() =
        let taken = List.ofSeq errors
        errors.Clear()
        taken

    member _.Track(r: IRecorded) = recorded.Add r

    member _.Track(server: Server) =
        servers.Add server
        server

    /// A raw socket the test owns: the gate wants it closed, the cleanup closes it.
    member _.Own(sock: Socket) =
        sockets.Add sock
        sock

    member this.Recorder(?name: string) =
        let r = Recorder(signal, defaultArg name "protocol")
        this.Track(r :> IRecorded)
        r

    member this.BufferedRecorder(size: int) =
        let r = BufferedRecorder(signal, size)
        this.Track(r :> IRecorded)
        r

    member this.DatagramRecorder() =
        let r = DatagramRecorder(signal)
        this.Track(r :> IRecorded)
        r

    /// A server on 127.0.0.1 port 0 whose connections get recorders set up by `configure`; returns the
    /// server and the list its protocols are added to as connections arrive.
    member this.Serve(configure: Recorder -> unit, ?startServing: bool, ?host: string) =
        task {
            let accepted = ResizeArray<Recorder>()

            let factory () =
                let r = this.Recorder "server side"
                configure r
                accepted.Add r
                r :> BaseProtocol

            let! server =
                loop.CreateServerAsync(
                    Func<BaseProtocol>(factory),
                    defaultArg host loopback,
                    0,
                    startServing = defaultArg startServing true
                )

            return this.Track server, accepted
        }

    /// A client connection to 127.0.0.1:`port` with a recorder set up by `configure`.
    member this.Connect(port: int, configure: Recorder -> unit, ?host: string) =
        task {
            let make () =
                let r = this.Recorder "client side"
                configure r
                r

            let! struct (transport, protocol) = loop.CreateConnectionAsync(Func<Recorder>(make), defaultArg host loopback, port)
            transports.Add transport
            return protocol
        }

    member _.TrackTransport(t: ITransportBase) = transports.Add t

    member _.ReactorCount =
        let r = loop.ReactorInstanceIfAny
        if isNull r then 0 else r.Count

    member private this.Pending =
        let current = loop.CurrentTask

        loop.AllTasks()
        |> Seq.filter (fun t -> not (obj.ReferenceEquals(t, current)))
        |> List.ofSeq

    member private this.Clean =
        this.ReactorCount = 0
        && List.isEmpty this.Pending
        && servers |> Seq.forall (fun s -> s.ActiveConnections = 0)

    /// Lets closes already under way finish (ConnectionLost is called soon, not at once): runs the loop
    /// until nothing is left or 2 s have passed. What is still there then is a leak.
    member this.Settle() =
        let deadline = loop.Time() + 2.0

        loop.RunUntilComplete(
            Func<Task<unit>>(fun () ->
                task {
                    while not this.Clean && loop.Time() < deadline do
                        do! Asyncio.Sleep 0.005
                })
        )

    /// The hygiene gate (uvloop's per-test check): no socket left registered, every server closed and
    /// empty, no pending task, every protocol's calls a sentence of the grammar (or none at all), every
    /// owned socket closed, and no exception-handler call the test did not take.
    member this.Gate() =
        Expect.equal this.ReactorCount 0 "hygiene: no socket is left registered with the reactor"

        for s in servers do
            Expect.equal s.ActiveConnections 0 $"hygiene: server {s} has no connection left"
            Expect.isFalse s.IsServing $"hygiene: server {s} is closed"
            Expect.isEmpty s.Sockets $"hygiene: server {s} has no listening socket left"

        Expect.isEmpty (loop.AllTasks()) "hygiene: no task is left pending"

        for r in recorded do
            let calls = r.Calls
            Expect.isTrue (List.isEmpty calls || ProtocolGrammar.accepts calls) $"grammar: {r.Describe}"

        for s in sockets do
            Expect.isTrue s.SafeHandle.IsClosed "hygiene: every socket the test made is closed"

        let unexpected = List.ofSeq errors
        let shown = unexpected |> List.map string |> String.concat "\n---\n"
        Expect.isEmpty unexpected $"hygiene: no unexpected exception-handler call:\n{shown}"

    /// After a failure: close whatever the test left, so one failing test does not leak into others.
    member _.Cleanup() =
        for s in servers do
            try
                s.Close()
                s.AbortClients()
            with _ ->
                ()

        for t in transports do
            try
                match t with
                | :? ITransport as st -> st.Abort()
                | :? IDatagramTransport as dt -> dt.Abort()
                | _ -> t.Close()
            with _ ->
                ()

        for r in recorded do
            try
                match r with
                | :? Recorder as p when not (isNull p.Transport) -> p.Transport.Abort()
                | :? DatagramRecorder as p when not (isNull p.Transport) -> p.Transport.Abort()
                | _ -> ()
            with _ ->
                ()

        for s in sockets do
            s.Dispose()

        if not loop.IsClosed && not loop.IsRunning then
            try
                loop.RunUntilComplete(Func<Task<unit>>(fun () -> task { do! Asyncio.Sleep 0.05 }))
            with _ ->
                ()

/// Runs `body` on a new real-clock loop using `kind`'s reactor, bounded by `timeout` seconds (the main
/// task is cancelled when it passes), then settles and applies the hygiene gate.
let runNet (kind: ReactorKind) (timeout: float) (body: Net -> Task<unit>) =
    let loop = new EventLoop()
    loop.Reactor <- kind
    let net = Net(loop, kind)
    let mutable passed = false

    try
        let main = loop.CreateTask(Func<Task<unit>>(fun () -> body net), "test main")
        let mutable timedOut = false

        let guard =
            loop.CallLater(
                timeout,
                fun () ->
                    timedOut <- true
                    main.Cancel "the test's time limit passed" |> ignore
            )

        try
            try
                loop.RunUntilComplete(main)
            with e when timedOut ->
                failtestf "timed out after %g s (%s: %s)" timeout (e.GetType().Name) e.Message
        finally
            guard.Cancel()

        net.Settle()
        net.Gate()
        passed <- true
    finally
        if not passed then
            net.Cleanup()

        loop.Close()

/// A test body written once, instantiated for a reactor (uvloop's "one test body, two loops").
type NetCase = ReactorKind -> Test

let netCase (name: string) (body: Net -> Task<unit>) : NetCase =
    fun kind -> testCase name (fun () -> runNet kind 20.0 body)

let netCaseWithin (timeout: float) (name: string) (body: Net -> Task<unit>) : NetCase =
    fun kind -> testCase name (fun () -> runNet kind timeout body)

let reactors = [ ReactorKind.Epoll; ReactorKind.Select ]

/// A list of cases run once per reactor; each reactor's cases run one after another (they share no
/// state, but many real-clock loops at once on 2 cores only make each slower), the two reactors side
/// by side.
let perReactor (name: string) (cases: NetCase list) =
    testList
        name
        [ for kind in reactors ->
              testSequencedGroup $"{name}/{kind}" (testList (string kind) [ for c in cases -> c kind ]) ]

// -------------------------------------------------------------------------------------------------
// CPython peers

/// A child process whose stdout lines are read as they come (a CPython peer, or this test program
/// re-run for a scenario that changes the whole process). Disposing kills it if it is still there.
type Child(psi: ProcessStartInfo, cleanup: unit -> unit) =
    do
        psi.RedirectStandardOutput <- true
        psi.RedirectStandardError <- true
        psi.RedirectStandardInput <- true
        psi.UseShellExecute <- false

    let lines = new BlockingCollection<string>()
    let stderr = StringBuilder()
    let proc = Process.Start psi

    do
        proc.OutputDataReceived.Add(fun e ->
            if isNull e.Data then
                lines.CompleteAdding()
            else
                lines.Add e.Data)

        proc.ErrorDataReceived.Add(fun e ->
            if not (isNull e.Data) then
                lock stderr (fun () -> stderr.AppendLine e.Data |> ignore))

        proc.BeginOutputReadLine()
        proc.BeginErrorReadLine()

    member _.Stderr = lock stderr (fun () -> stderr.ToString())

    /// The next stdout line, waiting at most `seconds` (blocking: call it before the loop runs, or
    /// when a short block is harmless).
    member this.ReadLine(?seconds: float) =
        let wait = TimeSpan.FromSeconds(defaultArg seconds 15.0)
        let mutable line = null

        if lines.TryTake(&line, wait) then
            line
        else
            failtestf "the child printed no line within %O; its stderr:\n%s" wait this.Stderr

    /// Stdout lines ready now.
    member _.TakeLines() =
        [ let mutable line = null

          while lines.TryTake(&line) do
              yield line ]

    member _.HasExited = proc.HasExited

    /// The child's process id (a signal's target).
    member _.Id = proc.Id

    /// Waits (in a loop task, without blocking the loop) for the process to end; its exit code.
    member _.Exited() =
        task {
            while not proc.HasExited do
                do! Asyncio.Sleep 0.01

            proc.WaitForExit() // and for its output to be read
            return proc.ExitCode
        }

    /// Waits (blocking) for the process to end; its exit code.
    member _.WaitExit(seconds: float) =
        if not (proc.WaitForExit(TimeSpan.FromSeconds seconds)) then
            failtestf "the child did not exit within %g s" seconds

        proc.WaitForExit()
        proc.ExitCode

    member _.CloseInput() = proc.StandardInput.Close()

    interface IDisposable with
        member _.Dispose() =
            try
                if not proc.HasExited then
                    proc.Kill true
                    proc.WaitForExit 5000 |> ignore
            with _ ->
                ()

            proc.Dispose()
            lines.Dispose()
            cleanup ()

/// A CPython peer: python3 running `script` (written to a temporary directory) with `args`.
let python (script: string) (args: string list) =
    let dir = Directory.CreateTempSubdirectory "tulip-peer-"
    let path = Path.Combine(dir.FullName, "peer.py")
    File.WriteAllText(path, script)
    let psi = ProcessStartInfo("python3")
    psi.ArgumentList.Add "-u"
    psi.ArgumentList.Add path

    for a in args do
        psi.ArgumentList.Add a

    new Child(
        psi,
        fun () ->
            try
                dir.Delete true
            with _ ->
                ()
    )

/// This test program again, as `Tulip.Tests --child NAME ARGS...`, under a shell command run first
/// (`ulimit -n 512`, for instance).
let selfChild (shellPrefix: string) (args: string list) =
    let host = Environment.ProcessPath
    let dll = Reflection.Assembly.GetExecutingAssembly().Location

    let command =
        if Path.GetFileNameWithoutExtension host = "dotnet" then
            [ host; dll ]
        else
            [ host ]

    let psi = ProcessStartInfo("/bin/bash")
    psi.ArgumentList.Add "-c"
    psi.ArgumentList.Add(shellPrefix + " && exec \"$0\" \"$@\"")

    for a in command @ [ "--child" ] @ args do
        psi.ArgumentList.Add a

    new Child(psi, ignore)

// -------------------------------------------------------------------------------------------------
// Small helpers (spans stay out of task { } bodies: they cannot live in a state machine)

let write (t: ITransport) (bytes: byte[]) = t.Write(ReadOnlySpan<byte>(bytes))

let writeLines (t: ITransport) (lines: byte[] list) =
    t.WriteLines([ for l in lines -> ReadOnlyMemory<byte>(l) ])

let sendTo (t: IDatagramTransport) (bytes: byte[]) (toAddress: EndPoint) =
    t.SendTo(ReadOnlySpan<byte>(bytes), toAddress)

let send (t: IDatagramTransport) (bytes: byte[]) = t.SendTo(ReadOnlySpan<byte>(bytes))

/// Compares byte arrays without printing megabytes: the lengths, then the first difference.
let expectBytes (actual: byte[]) (expected: byte[]) (what: string) =
    let firstDiff =
        Seq.zip actual expected |> Seq.tryFindIndex (fun (a, b) -> a <> b)

    match firstDiff with
    | Some i -> failtestf "%s: first difference at byte %d (got %d, wanted %d)" what i actual[i] expected[i]
    | None -> Expect.equal actual.Length expected.Length $"{what}: length"

let KiB = 1024
let MiB = 1024 * 1024
