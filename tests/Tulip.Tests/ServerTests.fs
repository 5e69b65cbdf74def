/// The Server object and the low-level sock_* functions, on loopback, against both reactors.
module Tulip.Tests.ServerTests

open System
open System.Net
open System.Net.Sockets
open System.Threading.Tasks
open Expecto
open Tulip
open Tulip.Core
open Tulip.Tests.ShellSupport
open Tulip.Tests.NetSupport

let private expectRefused (net: Net) (port: int) =
    task {
        try
            let! _ = net.Connect(port, ignore)
            failtest "the connection should have been refused"
        with :? SocketException as e ->
            Expect.equal e.SocketErrorCode SocketError.ConnectionRefused "refused"
    }

let servers: NetCase list =
    [ // asyncio 3.11: start_serving=False creates the sockets but does not listen until start_serving().
      netCase "startServing=false: bound but not listening; StartServing starts; Sockets and IsServing follow"
      <| fun net ->
          task {
              let! server, accepted = net.Serve((fun r -> r.Echo <- true), startServing = false)
              Expect.isFalse server.IsServing "not serving yet"
              Expect.equal server.Sockets.Count 1 "one socket for 127.0.0.1"
              Expect.equal (server.Sockets[0].LocalEndPoint :?> IPEndPoint).Address IPAddress.Loopback "bound"
              do! expectRefused net (portOf server)
              server.StartServing()
              server.StartServing() // twice: nothing
              Expect.isTrue server.IsServing "serving"
              let! client = net.Connect(portOf server, ignore)
              write client.Transport [| 1uy; 2uy; 3uy |]
              do! waitFor net.Signal (fun () -> client.ReceivedCount = 3)
              Expect.equal server.ActiveConnections 1 "one connection"
              client.Transport.Close()
              do! waitFor net.Signal (fun () -> client.IsLost && accepted.Count = 1 && accepted[0].IsLost)
              Expect.equal server.ActiveConnections 0 "gone"
              let port = portOf server
              server.Close()
              server.Close() // twice: nothing
              Expect.isFalse server.IsServing "closed"
              Expect.isEmpty server.Sockets "no sockets once closed"
              Expect.throws (fun () -> server.StartServing()) "a closed server cannot serve again"
              do! server.WaitClosedAsync()
              do! expectRefused net port
          }

      // asyncio 3.12: close() stops listening only; wait_closed() waits for the connections too.
      netCase "Close stops listening but leaves connections; WaitClosed completes once they are gone"
      <| fun net ->
          task {
              let! server, accepted = net.Serve(fun r -> r.Echo <- true)
              let! client = net.Connect(portOf server, ignore)
              let port = portOf server
              server.Close()
              do! expectRefused net port
              write client.Transport (payload 1 1000)
              do! waitFor net.Signal (fun () -> client.ReceivedCount = 1000)
              let waiting = createTaskUnit net.Loop (fun () -> server.WaitClosedAsync())
              do! Asyncio.Sleep 0.02
              Expect.isFalse waiting.Done "a connection is still open"
              client.Transport.Close()
              let! _ = waiting
              Expect.equal server.ActiveConnections 0 "none left"
              do! waitFor net.Signal (fun () -> accepted[0].IsLost)
          }

      netCase "CloseClients closes every connection after flushing what it buffered"
      <| fun net ->
          task {
              let greeting = payload 9 (2 * MiB)
              let! server, accepted = net.Serve(fun r -> r.OnMade <- fun t -> write t greeting)
              let! a = net.Connect(portOf server, ignore)
              let! b = net.Connect(portOf server, ignore)
              do! waitFor net.Signal (fun () -> accepted.Count = 2 && accepted |> Seq.forall (fun r -> r.IsMade))
              server.CloseClients()
              do! waitFor net.Signal (fun () -> a.IsLost && b.IsLost)

              for c in [ a; b ] do
                  expectBytes c.Received greeting "everything the server had buffered"
                  Expect.isTrue c.EofSeen "then EOF"

              do! waitFor net.Signal (fun () -> accepted |> Seq.forall (fun r -> r.IsLost))
              Expect.equal server.ActiveConnections 0 "none left"
              Expect.isTrue server.IsServing "still listening"
              server.Close()
              do! server.WaitClosedAsync()
          }

      netCase "AbortClients aborts every connection, discarding what it buffered"
      <| fun net ->
          task {
              let flood = payload 8 (16 * MiB)
              let! server, accepted = net.Serve(fun r -> r.OnMade <- fun t -> write t flood)

              let! client = net.Connect(portOf server, fun r -> r.PauseReadingOnMade <- true)
              do! waitFor net.Signal (fun () -> accepted.Count = 1 && accepted[0].IsMade)
              Expect.isGreaterThan (accepted[0].Transport.GetWriteBufferSize()) 0 "the server side holds data"
              server.AbortClients()
              do! waitFor net.Signal (fun () -> accepted[0].IsLost)
              Expect.isNull accepted[0].LostWith "abort: ConnectionLost(null)"
              Expect.equal server.ActiveConnections 0 "none left"
              client.Transport.ResumeReading()
              do! waitFor net.Signal (fun () -> client.IsLost)
              Expect.isLessThan client.ReceivedCount flood.Length "the rest was discarded"
              server.Close()
              do! server.WaitClosedAsync()
          }

      netCase "ServeForever serves until cancelled, then the server is closed and the task ends cancelled"
      <| fun net ->
          task {
              let! server, accepted = net.Serve((fun r -> r.Echo <- true), startServing = false)
              let serving = createTaskUnit net.Loop (fun () -> server.ServeForeverAsync())
              do! poll (fun () -> server.IsServing)
              let! client = net.Connect(portOf server, ignore)
              write client.Transport [| 7uy |]
              do! waitFor net.Signal (fun () -> client.ReceivedCount = 1)
              client.Transport.Close()
              do! waitFor net.Signal (fun () -> accepted.Count = 1 && accepted[0].IsLost)

              // asyncio: a second serve_forever() while one runs is refused.
              let second =
                  createTaskUnit net.Loop (fun () -> server.ServeForeverAsync())

              try
                  let! _ = second
                  failtest "a second ServeForever should fail"
              with :? EventLoopException as e ->
                  Expect.stringContains e.Message "is already being awaited on serve_forever()" "asyncio's message"

              serving.Cancel() |> ignore

              try
                  let! _ = serving
                  failtest "cancelled"
              with :? OperationCanceledException ->
                  ()

              Expect.isTrue serving.Cancelled "the task ends cancelled"
              Expect.isFalse server.IsServing "the server is closed"
              Expect.isEmpty server.Sockets "its sockets too"
          }

      netCase "Close while ServeForever runs ends ServeForever's task cancelled; DisposeAsync closes and waits"
      <| fun net ->
          task {
              let! server, _ = net.Serve ignore
              let serving = createTaskUnit net.Loop (fun () -> server.ServeForeverAsync())
              do! yieldTick ()
              server.Close()

              try
                  let! _ = serving
                  failtest "cancelled"
              with :? OperationCanceledException ->
                  ()

              Expect.isTrue serving.Cancelled "cancelled"
              let! other, _ = net.Serve ignore
              do! (other :> IAsyncDisposable).DisposeAsync()
              Expect.isFalse other.IsServing "disposed: closed"
              Expect.isEmpty other.Sockets "no sockets"
          }

      netCase "CreateServer and CreateConnection on sockets the caller made"
      <| fun net ->
          task {
              let listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)
              listener.Bind(IPEndPoint(IPAddress.Loopback, 0))
              let sides = ResizeArray<Recorder>()

              let factory () =
                  let r = net.Recorder "server side"
                  r.Echo <- true
                  sides.Add r
                  r :> BaseProtocol

              let! server = net.Loop.CreateServerAsync(Func<BaseProtocol>(factory), listener)
              net.Track server |> ignore
              let sock = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)
              sock.Connect(listener.LocalEndPoint) // blocking connect: the kernel completes it from the backlog
              let! struct (t, client) = net.Loop.CreateConnectionAsync(Func<Recorder>(fun () -> net.Recorder "client"), sock)
              net.TrackTransport t
              Expect.isFalse sock.Blocking "made non-blocking"
              write t (payload 2 5000)
              do! waitFor net.Signal (fun () -> client.ReceivedCount = 5000)
              t.Close()
              do! waitFor net.Signal (fun () -> client.IsLost && sides.Count = 1 && sides[0].IsLost)
              server.Close()
              do! server.WaitClosedAsync()
              Expect.isTrue listener.SafeHandle.IsClosed "the server closed the socket it was given"
          } ]

let private newTcp () =
    let s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)
    s.Blocking <- false
    s

let sockFunctions: NetCase list =
    [ netCase "SockAccept, SockConnect, SockSendAll and SockRecv move 4 MiB and see EOF"
      <| fun net ->
          task {
              let loop = net.Loop
              let listener = net.Own(newTcp ())
              listener.Bind(IPEndPoint(IPAddress.Loopback, 0))
              listener.Listen 10

              let accepting =
                  createTask loop (fun () -> loop.SockAcceptAsync listener)

              do! yieldTick ()
              Expect.equal net.ReactorCount 1 "the listener waits for readability"
              let client = net.Own(newTcp ())
              do! loop.SockConnectAsync(client, listener.LocalEndPoint)
              let! struct (conn, address) = accepting
              net.Own conn |> ignore
              Expect.isFalse conn.Blocking "accepted sockets are non-blocking"
              Expect.equal address client.LocalEndPoint "the peer's address"
              let data = payload 3 (4 * MiB)
              let sending = createTaskUnit loop (fun () -> loop.SockSendAllAsync(client, ReadOnlyMemory data))
              let received = new IO.MemoryStream()

              while received.Length < int64 data.Length do
                  let! chunk = loop.SockRecvAsync(conn, 100_000)
                  Expect.isNonEmpty chunk "no EOF before the end"
                  received.Write(chunk, 0, chunk.Length)

              let! _ = sending
              expectBytes (received.ToArray()) data "every byte"
              client.Shutdown SocketShutdown.Send
              let! eof = loop.SockRecvAsync(conn, 10)
              Expect.isEmpty eof "EOF: an empty result"
              let buffer = Array.zeroCreate<byte> 10
              let! n = loop.SockRecvIntoAsync(conn, Memory buffer)
              Expect.equal n 0 "SockRecvInto at EOF: 0"
              Expect.equal net.ReactorCount 0 "nothing left registered"
              client.Dispose()
              conn.Dispose()
              listener.Dispose()
          }

      netCase "SockRecvInto fills the caller's buffer"
      <| fun net ->
          task {
              let loop = net.Loop
              let listener = net.Own(newTcp ())
              listener.Bind(IPEndPoint(IPAddress.Loopback, 0))
              listener.Listen 1
              let client = net.Own(newTcp ())
              let accepting = createTask loop (fun () -> loop.SockAcceptAsync listener)
              do! loop.SockConnectAsync(client, listener.LocalEndPoint)
              let! struct (conn, _) = accepting
              net.Own conn |> ignore
              let buffer = Array.zeroCreate<byte> 100
              let reading = createTask loop (fun () -> loop.SockRecvIntoAsync(conn, Memory(buffer, 10, 50)))
              do! yieldTick ()
              do! loop.SockSendAllAsync(client, ReadOnlyMemory(payload 1 20))
              let! n = reading
              Expect.equal n 20 "20 bytes"
              expectBytes buffer[10..29] (payload 1 20) "at the offset given"
              Expect.equal buffer[9] 0uy "nothing before"
              client.Dispose()
              conn.Dispose()
              listener.Dispose()
          }

      netCase "the sock_* functions refuse a blocking socket"
      <| fun net ->
          task {
              use s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)

              try
                  let! _ = net.Loop.SockRecvAsync(s, 10)
                  failtest "a blocking socket should be refused"
              with :? ArgumentException as e ->
                  Expect.stringContains e.Message "non-blocking" "says why"
          } ]

// Found by this suite: WhenReady once registered each waiter as the socket's only handler, so a
// second waiter on the same socket replaced the first, which never woke.
/// asyncio's sock_recv and sock_sendall may wait on one socket at the same time (one as reader, one as
/// writer: add_reader and add_writer are independent).
let concurrentSockOps: NetCase =
    netCaseWithin 5.0 "SockRecv and SockSendAll wait on the same socket at the same time"
    <| fun net ->
        task {
            let loop = net.Loop
            let listener = net.Own(newTcp ())
            listener.Bind(IPEndPoint(IPAddress.Loopback, 0))
            listener.Listen 1
            let client = net.Own(newTcp ())
            let accepting = createTask loop (fun () -> loop.SockAcceptAsync listener)
            do! loop.SockConnectAsync(client, listener.LocalEndPoint)
            let! struct (conn, _) = accepting
            net.Own conn |> ignore
            // Our reader waits for data; then our writer sends more than the kernel takes at once.
            let reading = createTask loop (fun () -> loop.SockRecvAsync(client, 10))
            do! yieldTick ()
            let big = payload 1 (16 * MiB)
            let sending = createTaskUnit loop (fun () -> loop.SockSendAllAsync(client, ReadOnlyMemory big))
            do! yieldTick ()
            // The peer answers, then drains what we send.
            do! loop.SockSendAllAsync(conn, ReadOnlyMemory [| 5uy |])
            let mutable got = 0

            while got < big.Length do
                let! chunk = loop.SockRecvAsync(conn, 1 * MiB)
                got <- got + chunk.Length

            let! _ = sending
            let! answer = reading
            Expect.equal answer [| 5uy |] "the reader got the answer"
            client.Dispose()
            conn.Dispose()
            listener.Dispose()
        }

[<Tests>]
let tests = perReactor "Servers and sock_*" (servers @ sockFunctions @ [ concurrentSockOps ])

/// asyncio: create_server(host=[...]) listens on every address of every host, one socket each.
[<Tests>]
let severalHosts =
    testCase "CreateServer with several hosts listens on each (127.0.0.1 and ::1), one Server" (fun () ->
        use loop = new EventLoop()
        loop.CallLater(20.0, (fun () -> loop.Stop())) |> ignore

        let families, echoed =
            runMain loop (fun () ->
                task {
                    let! multi =
                        loop.CreateServerAsync(
                            Func<BaseProtocol>(fun () ->
                                let mutable t: ITransport = null

                                { new Protocol() with
                                    override _.ConnectionMade transport = t <- transport :?> ITransport
                                    override _.DataReceived data = t.Write data }
                                :> BaseProtocol),
                            [ "127.0.0.1"; "::1" ],
                            0
                        )

                    let families = multi.Sockets |> Seq.map (fun s -> s.AddressFamily) |> List.ofSeq
                    let echoed = Collections.Generic.List<string>()

                    for s in multi.Sockets do
                        let ep = s.LocalEndPoint :?> IPEndPoint
                        let! (r, w) = Asyncio.OpenConnection(ep.Address.ToString(), ep.Port)
                        w.Write(ReadOnlySpan [| 42uy |])
                        let! back = r.ReadExactlyAsync 1
                        echoed.Add(sprintf "%O:%d" ep.AddressFamily back[0])
                        w.Close()
                        do! w.WaitClosedAsync()

                    multi.CloseClients()
                    multi.Close()
                    do! multi.WaitClosedAsync()
                    return families, List.ofSeq echoed
                })

        Expect.equal families [ AddressFamily.InterNetwork; AddressFamily.InterNetworkV6 ] "one socket per host"
        Expect.equal echoed [ "InterNetwork:42"; "InterNetworkV6:42" ] "both serve")

/// asyncio: reuse_port=True lets two servers listen on one port (Linux SO_REUSEPORT); local_addr binds
/// the client's side of a connection.
[<Tests>]
let reusePortAndLocalAddress =
    testCase "CreateServer reusePort: two servers share a port; CreateConnection binds the local address it is given" (fun () ->
        use loop = new EventLoop()
        loop.CallLater(20.0, (fun () -> loop.Stop())) |> ignore

        let echoFactory =
            Func<BaseProtocol>(fun () ->
                let mutable t: ITransport = null

                { new Protocol() with
                    override _.ConnectionMade transport = t <- transport :?> ITransport
                    override _.DataReceived data = t.Write data }
                :> BaseProtocol)

        let samePort, localPortSeen, echoed =
            runMain loop (fun () ->
                task {
                    let! first = loop.CreateServerAsync(echoFactory, "127.0.0.1", 0, reusePort = true)
                    let port = (first.Sockets[0].LocalEndPoint :?> IPEndPoint).Port
                    let! second = loop.CreateServerAsync(echoFactory, "127.0.0.1", port, reusePort = true)
                    let samePort = (second.Sockets[0].LocalEndPoint :?> IPEndPoint).Port = port

                    // A free local port to bind the client to.
                    let local =
                        use probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)
                        probe.Bind(IPEndPoint(IPAddress.Loopback, 0))
                        probe.LocalEndPoint :?> IPEndPoint

                    let got = loop.CreateFuture<int>()

                    let client () =
                        { new Protocol() with
                            override _.DataReceived data = if not got.Done then got.SetResult(int data[0]) }

                    let! struct (transport, _) =
                        task {
                            let! (t, p) = loop.CreateConnectionAsync(Func<Protocol>(client), "127.0.0.1", port, localAddress = local)
                            return struct (t, p)
                        }

                    let seen = (transport.GetExtraInfo "sockname" :?> IPEndPoint).Port
                    transport.Write(ReadOnlySpan [| 7uy |])
                    let! echoed = got
                    transport.Close()

                    for s in [ first; second ] do
                        s.CloseClients()
                        s.Close()
                        do! s.WaitClosedAsync()

                    return samePort, seen = local.Port, echoed
                })

        Expect.isTrue samePort "both listen on one port"
        Expect.isTrue localPortSeen "the connection's local port is the one given"
        Expect.equal echoed 7 "and it works")
