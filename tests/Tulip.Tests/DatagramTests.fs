/// UDP endpoints (CreateDatagramEndpoint, DatagramProtocol, SendTo) on loopback, against both reactors.
module Tulip.Tests.DatagramTests

open System
open System.Net
open System.Net.Sockets
open System.Threading.Tasks
open Expecto
open Tulip
open Tulip.Tests.ShellSupport
open Tulip.Tests.NetSupport

let private anyLoopback = IPEndPoint(IPAddress.Loopback, 0) :> EndPoint

/// An echo endpoint on 127.0.0.1 port 0 and its address.
let private echoEndpoint (net: Net) =
    task {
        let proto = net.DatagramRecorder()
        proto.Echo <- true
        let! struct (t, _) = net.Loop.CreateDatagramEndpointAsync(Func<DatagramRecorder>(fun () -> proto), localAddress = anyLoopback)
        net.TrackTransport t
        return t, proto, (t.GetExtraInfo "sockname" :?> IPEndPoint)
    }

let cases: NetCase list =
    [ // python3 (docs' UDP echo): the server's datagram_received answers with sendto(data, addr).
      netCase "UDP echo: datagrams keep their boundaries; sockname and peername; close calls ConnectionLost"
      <| fun net ->
          task {
              let! st, sp, address = echoEndpoint net
              let client = net.DatagramRecorder()

              let! struct (ct, _) =
                  net.Loop.CreateDatagramEndpointAsync(Func<DatagramRecorder>(fun () -> client), remoteAddress = address)

              net.TrackTransport ct
              Expect.equal (ct.GetExtraInfo "peername") (box address) "peername: the remote address"
              let messages = [ for i in 1..3 -> payload i (100 * i) ]

              for m in messages do
                  send ct m

              do! waitFor net.Signal (fun () -> client.Datagrams.Length = 3)
              Expect.equal (client.Datagrams |> List.map fst) messages "one datagram each, in order"
              Expect.equal (client.Datagrams |> List.map snd |> List.distinct) [ address :> EndPoint ] "from the server"
              let clientAddress = ct.GetExtraInfo "sockname" :?> IPEndPoint
              Expect.equal (sp.Datagrams |> List.map snd |> List.distinct) [ clientAddress :> EndPoint ] "the server saw the client's address"
              Expect.equal (ct.GetWriteBufferSize()) 0 "nothing waiting"
              ct.Close()
              Expect.isTrue ct.IsClosing "closing"
              st.Close()
              do! waitFor net.Signal (fun () -> client.IsLost && sp.IsLost)
              Expect.equal client.Calls.Head Tulip.Core.ProtocolCall.ConnectionMade "made first"
          }

      netCase "an unconnected endpoint sends to the address given; SendTo without one is refused"
      <| fun net ->
          task {
              let! st, sp, address = echoEndpoint net
              let client = net.DatagramRecorder()

              let! struct (ct, _) =
                  net.Loop.CreateDatagramEndpointAsync(Func<DatagramRecorder>(fun () -> client), localAddress = anyLoopback)

              net.TrackTransport ct
              sendTo ct [| 1uy; 2uy |] address
              do! waitFor net.Signal (fun () -> client.Datagrams.Length = 1)
              Expect.equal (fst client.Datagrams.Head) [| 1uy; 2uy |] "echoed"
              Expect.throws (fun () -> send ct [| 3uy |]) "no address and not connected"
              ct.Abort()
              st.Close()
              do! waitFor net.Signal (fun () -> client.IsLost && sp.IsLost)
          } ]


/// Zero-length datagrams are datagrams (asyncio delivers b''); a reader that keeps one unread on a
/// level-triggered reactor would spin.
let emptyDatagram: NetCase =
    netCaseWithin 5.0 "an empty datagram is delivered as an empty DatagramReceived"
    <| fun net ->
        task {
            let! st, sp, address = echoEndpoint net
            let client = net.DatagramRecorder()

            let! struct (ct, _) =
                net.Loop.CreateDatagramEndpointAsync(Func<DatagramRecorder>(fun () -> client), remoteAddress = address)

            net.TrackTransport ct
            send ct [||]
            send ct [| 9uy |]
            do! waitFor net.Signal (fun () -> client.Datagrams.Length = 2)
            Expect.equal (client.Datagrams |> List.map fst) [ [||]; [| 9uy |] ] "both, in order"
            ct.Close()
            st.Close()
            do! waitFor net.Signal (fun () -> client.IsLost && sp.IsLost)
        }

// Found by this suite: ReadReady once returned early when Socket.Available was 0, so a zero-length
// datagram or a pending ICMP error (ECONNREFUSED) was never consumed and the level-triggered reactor
// reported the socket ready forever (the loop spun at 100% CPU and nothing was delivered).
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
                net.Loop.CreateDatagramEndpointAsync(
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

/// asyncio (_create_connection_transport and create_datagram_endpoint): cancelled while waiting for
/// connection_made, the transport is closed (found by this suite: it once stayed registered).
let cancelledEndpoint: NetCase =
    netCaseWithin 5.0 "a cancelled CreateDatagramEndpoint leaves no socket registered"
    <| fun net ->
        task {
            let loop = net.Loop

            let creating =
                createTask loop (fun () ->
                    task {
                        let! struct (t, _) =
                            loop.CreateDatagramEndpointAsync(Func<DatagramRecorder>(fun () -> net.DatagramRecorder()), localAddress = anyLoopback)

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
let tests = perReactor "Datagrams" (cases @ [ emptyDatagram; closedPort; cancelledEndpoint ])
