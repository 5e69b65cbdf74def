/// Interop with an independent peer: CPython 3.11 asyncio echo servers and clients (python3, started
/// by the test on 127.0.0.1) against Tulip's protocols and transports, in both directions, with
/// payloads from 1 byte to 8 MiB and half-close (send, WriteEof, read the echo to EOF).
module Tulip.Tests.InteropTests

open System
open Expecto
open Tulip
open Tulip.Tests.NetSupport

let sizes = [ 1; 100; 65_537; 1 * MiB; 8 * MiB ]

/// The same bytes as NetSupport.payload: byte i is (i + seed) mod 251.
let private pythonPayload =
    """
def payload(seed, n):
    block = bytes(range(251))
    s = seed % 251
    return (block * (n // 251 + 2))[s:s + n]
"""

/// asyncio.Protocol echo server: echoes as data comes; on EOF, returning False closes the transport
/// once what was written is flushed. Prints its port; serves until stdin closes.
let private pythonServer =
    """
import asyncio, sys

class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    def eof_received(self):
        return False

async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, '127.0.0.1', 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()
    await server.wait_closed()

asyncio.run(main())
"""

/// asyncio streams client: for each size, connects, sends the payload, write_eof(), reads to EOF and
/// says whether the echo was the same bytes.
let private pythonClient =
    pythonPayload
    + """
import asyncio, sys

async def one(port, n):
    reader, writer = await asyncio.open_connection('127.0.0.1', port)
    data = payload(n, n)
    echo = asyncio.ensure_future(reader.read())
    writer.write(data)
    await writer.drain()
    writer.write_eof()
    got = await echo
    writer.close()
    await writer.wait_closed()
    print(n, 'ok' if got == data else 'BAD', len(got), flush=True)

async def main():
    port = int(sys.argv[1])
    for n in map(int, sys.argv[2:]):
        await one(port, n)

asyncio.run(main())
"""

let cases: NetCase list =
    [ netCaseWithin 60.0 "a Tulip client against CPython's asyncio echo server: 1 B to 8 MiB, half-close"
      <| fun net ->
          task {
              use peer = python pythonServer []
              let port = int (peer.ReadLine())

              for n in sizes do
                  let! client = net.Connect(port, ignore)
                  let data = payload n n
                  write client.Transport data
                  client.Transport.WriteEof()
                  do! waitFor net.Signal (fun () -> client.IsLost)
                  expectBytes client.Received data $"{n} bytes echoed"
                  Expect.isTrue client.EofSeen $"{n}: the server's EOF after the echo"
                  Expect.isNull client.LostWith $"{n}: a clean end"

              peer.CloseInput()
              let! code = peer.Exited()
              Expect.equal code 0 $"the peer ended well: {peer.Stderr}"
          }

      netCaseWithin 60.0 "CPython's asyncio client against a Tulip echo server (echo as data comes): 1 B to 8 MiB, half-close"
      <| fun net ->
          task {
              let! server, accepted = net.Serve(fun r -> r.Echo <- true)
              use peer = python pythonClient (string (portOf server) :: [ for n in sizes -> string n ])
              let! code = peer.Exited()
              Expect.equal code 0 $"the peer ended well: {peer.Stderr}"
              let lines = peer.TakeLines()
              Expect.equal lines [ for n in sizes -> $"{n} ok {n}" ] "every echo was right"
              do! waitFor net.Signal (fun () -> accepted.Count = sizes.Length && accepted |> Seq.forall (fun r -> r.IsLost))
              Expect.isTrue (accepted |> Seq.forall (fun r -> r.EofSeen && isNull r.LostWith)) "each saw EOF and ended cleanly"
              server.Close()
              do! server.WaitClosedAsync()
          }

      netCaseWithin 60.0 "CPython's asyncio client against a Tulip server that answers after EOF (EofReceived keeps it open)"
      <| fun net ->
          task {
              let! server, accepted =
                  net.Serve(fun r ->
                      r.KeepOpenOnEof <- true

                      r.OnEof <-
                          fun () ->
                              write r.Transport r.Received
                              r.Transport.Close())

              use peer = python pythonClient (string (portOf server) :: [ for n in sizes -> string n ])
              let! code = peer.Exited()
              Expect.equal code 0 $"the peer ended well: {peer.Stderr}"
              Expect.equal (peer.TakeLines()) [ for n in sizes -> $"{n} ok {n}" ] "every answer was right"
              do! waitFor net.Signal (fun () -> accepted.Count = sizes.Length && accepted |> Seq.forall (fun r -> r.IsLost))
              server.Close()
              do! server.WaitClosedAsync()
          } ]

[<Tests>]
let tests = perReactor "Interop with CPython asyncio" cases
