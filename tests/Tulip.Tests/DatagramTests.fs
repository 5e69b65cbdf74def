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
        let! struct (t, _) = net.Loop.CreateDatagramEndpoint(Func<DatagramRecorder>(fun () -> proto), localAddress = anyLoopback)
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
                  net.Loop.CreateDatagramEndpoint(Func<DatagramRecorder>(fun () -> client), remoteAddress = address)

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
                  net.Loop.CreateDatagramEndpoint(Func<DatagramRecorder>(fun () -> client), localAddress = anyLoopback)

              net.TrackTransport ct
              sendTo ct [| 1uy; 2uy |] address
              do! waitFor net.Signal (fun () -> client.Datagrams.Length = 1)
              Expect.equal (fst client.Datagrams.Head) [| 1uy; 2uy |] "echoed"
              Expect.throws (fun () -> send ct [| 3uy |]) "no address and not connected"
              ct.Abort()
              st.Close()
              do! waitFor net.Signal (fun () -> client.IsLost && sp.IsLost)
          } ]


[<Tests>]
let tests = perReactor "Datagrams" cases
