/// A load test on loopback: 2,000 concurrent connections, client and server on one Tulip loop (epoll),
/// echoing messages of varied sizes for about 3 seconds, with no error and no lost or changed byte.
module Tulip.Tests.LoadTests

open System
open System.Threading.Tasks
open Expecto
open Tulip
open Tulip.Io
open Tulip.Tests.ShellSupport
open Tulip.Tests.NetSupport

/// Shared by every connection of the run.
type LoadRun(loop: EventLoop) =
    member val Deadline = Double.PositiveInfinity with get, set
    member val ServerIn = 0L with get, set
    member val ServerOut = 0L with get, set
    member val Lost = 0 with get, set
    member val Signal = Signal(loop)

/// The server side: echoes, counting bytes.
type LoadEcho(run: LoadRun) =
    inherit Protocol()
    let mutable transport: ITransport = null

    override _.ConnectionMade t = transport <- t :?> ITransport

    override _.DataReceived data =
        run.ServerIn <- run.ServerIn + int64 data.Length
        transport.Write data
        run.ServerOut <- run.ServerOut + int64 data.Length

/// The client side: sends a message, checks its echo byte by byte, sends the next, until the deadline.
type LoadClient(loop: EventLoop, run: LoadRun, index: int) =
    inherit Protocol()
    let mutable transport: ITransport = null
    let mutable message: byte[] = [||]
    let mutable got = 0

    member val Sent = 0L with get, set
    member val Received = 0L with get, set
    member val Mismatches = 0 with get, set
    member val Rounds = 0 with get, set
    member val IsLost = false with get, set
    member val LostWith: exn = null with get, set

    member this.SendNext() =
        let size = 1 + (index * 131 + this.Rounds * 977) % 4000
        message <- payload (index + this.Rounds) size
        got <- 0
        this.Sent <- this.Sent + int64 size
        transport.Write(ReadOnlySpan<byte>(message))

    override this.ConnectionMade t =
        transport <- t :?> ITransport
        this.SendNext()

    override this.DataReceived data =
        for i in 0 .. data.Length - 1 do
            if got >= message.Length || data[i] <> message[got] then
                this.Mismatches <- this.Mismatches + 1

            got <- got + 1

        this.Received <- this.Received + int64 data.Length

        if got = message.Length then
            this.Rounds <- this.Rounds + 1

            if loop.Time() < run.Deadline then
                this.SendNext()
            else
                transport.Close()

    override this.ConnectionLost e =
        this.IsLost <- true
        this.LostWith <- e
        run.Lost <- run.Lost + 1
        run.Signal.Pulse()

let connections = 2000
let seconds = 3.0

let private body (net: Net) =
    task {
        let loop = net.Loop
        let run = LoadRun(loop)

        let! server =
            loop.CreateServerAsync(Func<BaseProtocol>(fun () -> LoadEcho run :> BaseProtocol), loopback, 0, backlog = 4096)

        net.Track server |> ignore
        let port = portOf server
        let clients = ResizeArray<LoadClient>()

        // In waves, so the listen queue never overflows (a dropped SYN is retried only after 1 s).
        for wave in 0 .. (connections / 200 - 1) do
            let connecting =
                [ for i in 0..199 ->
                      createTask loop (fun () ->
                          task {
                              let! struct (t, p) =
                                  loop.CreateConnectionAsync(Func<LoadClient>(fun () -> LoadClient(loop, run, wave * 200 + i)), loopback, port)

                              net.TrackTransport t
                              return p
                          }) ]

            for c in connecting do
                let! p = c
                clients.Add p

        do! poll (fun () -> server.ActiveConnections = connections)
        Expect.equal clients.Count connections "all connected"
        Expect.equal run.Lost 0 "none lost while connecting"
        run.Deadline <- loop.Time() + seconds
        do! Asyncio.Sleep seconds
        Expect.equal server.ActiveConnections connections $"{connections} connections open at once, for {seconds} s"
        do! waitFor run.Signal (fun () -> run.Lost = connections)
        let sent = clients |> Seq.sumBy (fun c -> c.Sent)
        let received = clients |> Seq.sumBy (fun c -> c.Received)
        let rounds = clients |> Seq.sumBy (fun c -> int64 c.Rounds)
        Expect.equal (clients |> Seq.sumBy (fun c -> c.Mismatches)) 0 "no byte changed"
        Expect.equal received sent "no byte lost (clients)"
        Expect.equal run.ServerIn sent "the server got every byte"
        Expect.equal run.ServerOut sent "and sent every one back"
        Expect.isTrue (clients |> Seq.forall (fun c -> c.Rounds > 0 && isNull c.LostWith)) "every connection echoed and closed cleanly"
        Expect.isGreaterThan rounds (int64 connections) "more than one message per connection"
        do! poll (fun () -> server.ActiveConnections = 0)
        server.Close()
        do! server.WaitClosedAsync()
    }

[<Tests>]
let tests =
    testSequenced (
        testList
            "Load"
            [ testCase $"{connections} concurrent connections echo for {seconds} s on one loop: no error, no lost byte"
              <| fun () -> runNet ReactorKind.Epoll 60.0 body ]
    )
