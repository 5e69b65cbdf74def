/// Failing tests of I/O behaviour the shell does not have yet (each says what asyncio does). Not in
/// Tulip.Tests.fsproj until the fixes land: add it after DatagramTests.fs to reproduce, then fold each
/// case into its suite (ServerTests, DatagramTests) once it passes.
module Tulip.Tests.PendingIoTests

open System
open System.Net
open System.Net.Sockets
open System.Threading.Tasks
open Expecto
open Tulip
open Tulip.Tests.ShellSupport
open Tulip.Tests.NetSupport

let private newTcp () =
    let s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)
    s.Blocking <- false
    s

let private anyLoopback = IPEndPoint(IPAddress.Loopback, 0) :> EndPoint

let private echoEndpoint (net: Net) =
    task {
        let proto = net.DatagramRecorder()
        proto.Echo <- true
        let! struct (t, _) = net.Loop.CreateDatagramEndpoint(Func<DatagramRecorder>(fun () -> proto), localAddress = anyLoopback)
        net.TrackTransport t
        return t, proto, (t.GetExtraInfo "sockname" :?> IPEndPoint)
    }

// EventLoop.WhenReady registers the socket with ReactorInstance.Update(socket, waiter, read, write):
// a second waiter on the same socket replaces the first one's registration, so the first never wakes.
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
            let accepting = createTask loop (fun () -> loop.SockAccept listener)
            do! loop.SockConnect(client, listener.LocalEndPoint)
            let! struct (conn, _) = accepting
            net.Own conn |> ignore
            // Our reader waits for data; then our writer sends more than the kernel takes at once.
            let reading = createTask loop (fun () -> loop.SockRecv(client, 10))
            do! yieldTick ()
            let big = payload 1 (16 * MiB)
            let sending = createTaskUnit loop (fun () -> loop.SockSendAll(client, ReadOnlyMemory big))
            do! yieldTick ()
            // The peer answers, then drains what we send.
            do! loop.SockSendAll(conn, ReadOnlyMemory [| 5uy |])
            let mutable got = 0

            while got < big.Length do
                let! chunk = loop.SockRecv(conn, 1 * MiB)
                got <- got + chunk.Length

            let! _ = sending
            let! answer = reading
            Expect.equal answer [| 5uy |] "the reader got the answer"
            client.Dispose()
            conn.Dispose()
            listener.Dispose()
        }

// DatagramTransport.ReadReady returns early when Socket.Available is 0: a zero-length datagram, or a
// pending ICMP error (ECONNREFUSED), is then never consumed and the level-triggered reactor reports the
// socket ready forever (the loop spins at 100% CPU and nothing is delivered).
// python3: a connected UDP endpoint that sends to a closed port gets error_received(ConnectionRefusedError)
// and stays open.
let closedPort: NetCase =
    netCaseWithin 5.0 "a datagram to a closed port: ErrorReceived with ConnectionRefused; the endpoint stays open"
    <| fun net ->
        task {
            let closedPort =
                use s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp)
                s.Bind(IPEndPoint(IPAddress.Loopback, 0))
                (s.LocalEndPoint :?> IPEndPoint).Port

            let client = net.DatagramRecorder()

            let! struct (ct, _) =
                net.Loop.CreateDatagramEndpoint(
                    Func<DatagramRecorder>(fun () -> client),
                    remoteAddress = IPEndPoint(IPAddress.Loopback, closedPort)
                )

            net.TrackTransport ct
            send ct [| 1uy |]
            do! waitFor net.Signal (fun () -> not client.Errors.IsEmpty)

            match client.Errors.Head with
            | :? SocketException as e -> Expect.equal e.SocketErrorCode SocketError.ConnectionRefused "refused"
            | e -> failtestf "expected a SocketException, got %O" e

            Expect.isFalse ct.IsClosing "still open"
            ct.Close()
            do! waitFor net.Signal (fun () -> client.IsLost)
        }

/// Zero-length datagrams are datagrams (asyncio delivers b''); a reader that keeps one unread on a
/// level-triggered reactor would spin.
let emptyDatagram: NetCase =
    netCaseWithin 5.0 "an empty datagram is delivered as an empty DatagramReceived"
    <| fun net ->
        task {
            let! st, sp, address = echoEndpoint net
            let client = net.DatagramRecorder()

            let! struct (ct, _) =
                net.Loop.CreateDatagramEndpoint(Func<DatagramRecorder>(fun () -> client), remoteAddress = address)

            net.TrackTransport ct
            send ct [||]
            send ct [| 9uy |]
            do! waitFor net.Signal (fun () -> client.Datagrams.Length = 2)
            Expect.equal (client.Datagrams |> List.map fst) [ [||]; [| 9uy |] ] "both, in order"
            ct.Close()
            st.Close()
            do! waitFor net.Signal (fun () -> client.IsLost && sp.IsLost)
        }

/// asyncio (_create_connection_transport and create_datagram_endpoint): cancelled while waiting for
/// connection_made, the transport is closed. Here CreateDatagramEndpoint does not close it on
/// cancellation, and DatagramTransport's ConnectionMade callback, running after the waiter was
/// cancelled, registers the socket and then calls SetResult on the cancelled waiter.
let cancelledEndpoint: NetCase =
    netCaseWithin 5.0 "a cancelled CreateDatagramEndpoint leaves no socket registered"
    <| fun net ->
        task {
            let loop = net.Loop

            let creating =
                createTask loop (fun () ->
                    task {
                        let! struct (t, _) =
                            loop.CreateDatagramEndpoint(Func<DatagramRecorder>(fun () -> net.DatagramRecorder()), localAddress = anyLoopback)

                        return t
                    })

            do! yieldTick () // the task runs up to its wait for ConnectionMade
            creating.Cancel() |> ignore

            try
                let! _ = creating
                failtest "cancelled"
            with :? OperationCanceledException ->
                ()

            do! yieldTick ()
            do! yieldTick ()
            Expect.equal net.ReactorCount 0 "nothing registered"
        }

[<Tests>]
let tests =
    perReactor "Pending I/O fixes" [ concurrentSockOps; emptyDatagram; closedPort; cancelledEndpoint ]
