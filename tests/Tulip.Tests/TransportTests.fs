/// Stream transports (TCP and Unix) on loopback, written once and run against both reactors: the
/// protocol grammar, echo, close flushes / abort discards, half-close, reading pause, flow control
/// (and the CVE-2024-12254 case), failing protocol callbacks, extra info, BufferedProtocol. Orders
/// and messages are CPython 3.11's (checked with python3; see the comments).
module Tulip.Tests.TransportTests

open System
open System.IO
open System.Net
open System.Net.Sockets
open System.Threading.Tasks
open Expecto
open Tulip
open Tulip.Core
open Tulip.Io
open Tulip.Tests.ShellSupport
open Tulip.Tests.NetSupport

let private closeServer (server: Server) =
    task {
        server.Close()
        do! server.WaitClosedAsync()
    }

/// A server whose connections do nothing until resumed (so the client's writes pile up), a client,
/// and the server side's protocol once ConnectionMade has run on it.
let private pausedPair (net: Net) =
    task {
        let! server, accepted = net.Serve(fun r -> r.PauseReadingOnMade <- true)
        let! client = net.Connect(portOf server, ignore)
        do! waitFor net.Signal (fun () -> accepted.Count = 1 && accepted[0].IsMade)
        return server, client, accepted[0]
    }

/// Writes `chunk` until the transport has to keep some of it (the peer stopped reading and the
/// kernel's buffers are full); bounded.
let private fillUntilBuffered (t: ITransport) (chunk: byte[]) =
    let mutable written = 0L
    let mutable n = 0

    while t.GetWriteBufferSize() = 0 do
        n <- n + 1

        if n > 10_000 then
            failtest "the transport never had to buffer (the peer reads after all?)"

        write t chunk
        written <- written + int64 chunk.Length

    written

let grammarAndEcho: NetCase list =
    [ // python3: srv made, cli made; the client's close reaches the server as EOF; both lost with None.
      netCase "echo of several messages; ConnectionMade first and once, ConnectionLost last and once, on both sides"
      <| fun net ->
          task {
              let! server, accepted = net.Serve(fun r -> r.Echo <- true)
              let! client = net.Connect(portOf server, ignore)
              Expect.equal client.Calls [ ProtocolCall.ConnectionMade ] "CreateConnection returns once ConnectionMade has run"

              let messages = [ for i in 1..5 -> payload i (i * 3000) ]
              let mutable total = 0

              for m in messages do
                  write client.Transport m
                  total <- total + m.Length
                  do! waitFor net.Signal (fun () -> client.ReceivedCount >= total)

              expectBytes client.Received (Array.concat messages) "every byte echoed, in order"
              client.Transport.Close()
              Expect.isTrue client.Transport.IsClosing "closing at once"
              do! waitFor net.Signal (fun () -> client.IsLost && accepted.Count = 1 && accepted[0].IsLost)
              let side = accepted[0]
              Expect.equal (List.head side.Calls) ProtocolCall.ConnectionMade "server side: made first"
              Expect.equal (List.last side.Calls) ProtocolCall.ConnectionLost "server side: lost last"
              Expect.isTrue side.EofSeen "the client's close reached the server as EOF"
              Expect.isNull side.LostWith "a clean close: ConnectionLost(null)"
              Expect.equal (List.last client.Calls) ProtocolCall.ConnectionLost "client: lost last"
              Expect.isNull client.LostWith "client: ConnectionLost(null)"
              // After ConnectionLost: closing again, aborting, writing are harmless and call nothing.
              client.Transport.Close()
              client.Transport.Abort()
              write client.Transport [| 1uy |]
              do! yieldTick ()
              do! yieldTick ()
              Expect.equal (List.filter ((=) ProtocolCall.ConnectionLost) client.Calls).Length 1 "ConnectionLost once"
              Expect.isTrue (ProtocolGrammar.accepts client.Calls) "client's calls are a sentence of the grammar"
              do! closeServer server
          }

      netCase "IPv6 loopback: a server on ::1 echoes"
      <| fun net ->
          task {
              let! server, _ = net.Serve((fun r -> r.Echo <- true), host = "::1")
              Expect.equal server.Sockets[0].AddressFamily AddressFamily.InterNetworkV6 "bound to ::1"
              let! client = net.Connect(portOf server, ignore, host = "::1")
              write client.Transport (payload 1 1000)
              do! waitFor net.Signal (fun () -> client.ReceivedCount = 1000)
              let peer = client.Transport.GetExtraInfo "peername" :?> IPEndPoint
              Expect.equal peer.Address IPAddress.IPv6Loopback "peername is ::1"
              client.Transport.Close()
              do! waitFor net.Signal (fun () -> client.IsLost)
              do! closeServer server
          }

      netCase "many connections to one server echo independently"
      <| fun net ->
          task {
              let! server, accepted = net.Serve(fun r -> r.Echo <- true)
              let clients = ResizeArray<Recorder>()

              for _ in 1..20 do
                  let! c = net.Connect(portOf server, ignore)
                  clients.Add c

              for i, c in Seq.indexed clients do
                  write c.Transport (payload i (100 + i))

              do! waitFor net.Signal (fun () -> clients |> Seq.indexed |> Seq.forall (fun (i, c) -> c.ReceivedCount = 100 + i))

              for i, c in Seq.indexed clients do
                  expectBytes c.Received (payload i (100 + i)) $"client {i}"
                  c.Transport.Close()

              do! waitFor net.Signal (fun () -> accepted.Count = 20 && Seq.forall (fun (r: Recorder) -> r.IsLost) accepted)
              do! closeServer server
          } ]

let closeAndAbort: NetCase list =
    [ netCase "Close flushes everything buffered, then sends FIN; ConnectionLost(null) only after the flush"
      <| fun net ->
          task {
              let! server, client, side = pausedPair net
              let data = payload 3 (16 * MiB)
              write client.Transport data
              Expect.isGreaterThan (client.Transport.GetWriteBufferSize()) 0 "the transport holds what the kernel would not take"
              client.Transport.Close()
              Expect.isTrue client.Transport.IsClosing "closing"
              do! Asyncio.Sleep 0.05
              Expect.isFalse client.IsLost "not lost while data is still buffered"
              side.Transport.ResumeReading()
              do! waitFor net.Signal (fun () -> side.EofSeen && client.IsLost)
              expectBytes side.Received data "the peer got every byte before EOF"
              Expect.isNull client.LostWith "a clean close"
              Expect.equal (client.Transport.GetWriteBufferSize()) 0 "nothing left"
              do! waitFor net.Signal (fun () -> side.IsLost)
              do! closeServer server
          }

      netCase "Abort discards the buffer: ConnectionLost(null) soon, the peer gets a prefix and EOF"
      <| fun net ->
          task {
              let! server, client, side = pausedPair net
              let data = payload 4 (16 * MiB)
              write client.Transport data
              Expect.isGreaterThan (client.Transport.GetWriteBufferSize()) 0 "buffered"
              client.Transport.Abort()
              Expect.isTrue client.Transport.IsClosing "closing"
              Expect.equal (client.Transport.GetWriteBufferSize()) 0 "the buffer is gone"
              do! waitFor net.Signal (fun () -> client.IsLost)
              Expect.isNull client.LostWith "asyncio: abort calls connection_lost(None)"
              side.Transport.ResumeReading()
              do! waitFor net.Signal (fun () -> side.IsLost)
              Expect.isTrue side.EofSeen "the peer saw EOF"
              Expect.isLessThan side.ReceivedCount data.Length "the peer did not get what was discarded"
              expectBytes side.Received data[.. side.ReceivedCount - 1] "what it got is a prefix"
              do! closeServer server
          }

      // python3: write() after write_eof() raises RuntimeError('Cannot call write() after write_eof()').
      netCase "half-close: WriteEof sends FIN; EofReceived returning true keeps the connection open to write back"
      <| fun net ->
          task {
              let! server, accepted =
                  net.Serve(fun r ->
                      r.KeepOpenOnEof <- true
                      // Answer later, from another tick: the connection must still be open for writing.
                      r.OnEof <-
                          fun () ->
                              net.Loop.CallLater(
                                  0.02,
                                  fun () ->
                                      write r.Transport (Array.rev r.Received)
                                      r.Transport.Close()
                              )
                              |> ignore)

              let! client = net.Connect(portOf server, ignore)
              Expect.isTrue (client.Transport.CanWriteEof()) "TCP can write EOF"
              let data = payload 5 300_000
              write client.Transport data
              client.Transport.WriteEof()
              client.Transport.WriteEof() // twice: nothing
              let e = throws<InvalidOperationException> (fun () -> write client.Transport [| 1uy |])
              Expect.equal e.Message "Cannot call write() after write_eof()" "asyncio's message"
              do! waitFor net.Signal (fun () -> client.IsLost && accepted.Count = 1 && accepted[0].IsLost)
              expectBytes client.Received (Array.rev data) "the answer came after our FIN"
              Expect.isTrue client.EofSeen "then the server's FIN"
              let side = accepted[0]
              Expect.isTrue (side.Calls |> List.contains ProtocolCall.EofReceived) "the server saw our EOF"
              Expect.isNull side.LostWith "clean"
              Expect.isNull client.LostWith "clean"
              do! closeServer server
          }

      netCase "PauseReading stops DataReceived; ResumeReading delivers what arrived meanwhile"
      <| fun net ->
          task {
              let! server, client, side = pausedPair net
              Expect.isFalse side.Transport.IsReading "paused in ConnectionMade"
              side.Transport.PauseReading() // twice: nothing
              let messages = [ for i in 1..3 -> payload i 5000 ]

              for m in messages do
                  write client.Transport m

              do! Asyncio.Sleep 0.05
              Expect.equal side.Calls [ ProtocolCall.ConnectionMade ] "nothing delivered while paused"
              side.Transport.ResumeReading()
              Expect.isTrue side.Transport.IsReading "reading again"
              side.Transport.ResumeReading() // twice: nothing
              do! waitFor net.Signal (fun () -> side.ReceivedCount = 15000)
              expectBytes side.Received (Array.concat messages) "everything, in order"
              client.Transport.Close()
              do! waitFor net.Signal (fun () -> side.IsLost && client.IsLost)
              Expect.isFalse side.Transport.IsReading "not reading once closed"
              do! closeServer server
          } ]

// python3: get_write_buffer_limits() is (16384, 65536); high=100 -> (25, 100); low=100 -> (100, 400);
// high=10, low=100 -> ValueError('high (10) must be >= low (100) must be >= 0').
let flowControl: NetCase list =
    [ netCase "write buffer limits follow asyncio's defaults and rules"
      <| fun net ->
          task {
              let! server, client, side = pausedPair net
              let t = client.Transport
              Expect.equal (t.GetWriteBufferLimits()) (struct (16384, 65536)) "defaults: high 64 KiB, low high/4"
              t.SetWriteBufferLimits(high = Nullable 100)
              Expect.equal (t.GetWriteBufferLimits()) (struct (25, 100)) "high only: low = high/4"
              t.SetWriteBufferLimits(low = Nullable 100)
              Expect.equal (t.GetWriteBufferLimits()) (struct (100, 400)) "low only: high = 4 * low"
              t.SetWriteBufferLimits(Nullable 100, Nullable 10)
              Expect.equal (t.GetWriteBufferLimits()) (struct (10, 100)) "both"
              // A huge low: asyncio's 4 * low is a Python int; here it saturates instead of wrapping negative.
              t.SetWriteBufferLimits(low = Nullable Int32.MaxValue)
              Expect.equal (t.GetWriteBufferLimits()) (struct (Int32.MaxValue, Int32.MaxValue)) "low only, huge: high saturates"
              t.SetWriteBufferLimits()
              Expect.equal (t.GetWriteBufferLimits()) (struct (16384, 65536)) "none: the defaults again"

              let e =
                  throws<ArgumentOutOfRangeException> (fun () -> t.SetWriteBufferLimits(Nullable 10, Nullable 100))

              Expect.stringContains e.Message "high (10) must be >= low (100) must be >= 0" "asyncio's message"
              Expect.equal (t.GetWriteBufferLimits()) (struct (16384, 65536)) "a refused change changes nothing"
              Expect.equal (t.GetWriteBufferSize()) 0 "nothing buffered yet"
              // Lowering the mark under what is buffered pauses at once (set_write_buffer_limits checks).
              fillUntilBuffered t (payload 1 (64 * KiB)) |> ignore
              t.SetWriteBufferLimits(Nullable 1_000_000_000)
              let pausesBefore = client.Pauses
              t.SetWriteBufferLimits(high = Nullable 0)
              Expect.equal client.Pauses (pausesBefore + 1) "PauseWriting as soon as the mark is under the buffer"
              t.Abort()
              do! waitFor net.Signal (fun () -> client.IsLost)
              side.Transport.Close()
              do! waitFor net.Signal (fun () -> side.IsLost)
              do! closeServer server
          }

      netCase "PauseWriting when the buffer crosses the high-water mark, ResumeWriting when it falls to the low one"
      <| fun net ->
          task {
              let! server, client, side = pausedPair net
              let t = client.Transport
              t.SetWriteBufferLimits(Nullable 100_000, Nullable 10_000)
              let mutable sizeAtPause = -1
              let mutable sizeAtResume = -1
              client.OnPause <- fun () -> sizeAtPause <- t.GetWriteBufferSize()
              client.OnResume <- fun () -> sizeAtResume <- t.GetWriteBufferSize()
              let chunk = payload 2 (32 * KiB)
              let mutable sizeBefore = 0
              let mutable written = 0L

              while client.Pauses = 0 do
                  if written > 512L * int64 MiB then
                      failtest "never paused"

                  sizeBefore <- t.GetWriteBufferSize()
                  write t chunk
                  written <- written + int64 chunk.Length

              Expect.isGreaterThan sizeAtPause 100_000 "paused once over the high mark"
              Expect.isLessThanOrEqual sizeBefore 100_000 "and not before"
              write t chunk // still over the mark: no second pause
              written <- written + int64 chunk.Length
              Expect.equal client.Pauses 1 "paused once"
              Expect.equal client.Resumes 0 "not resumed while the peer does not read"
              side.Transport.ResumeReading()
              do! waitFor net.Signal (fun () -> client.Resumes = 1)
              Expect.isLessThanOrEqual sizeAtResume 10_000 "resumed at or under the low mark"
              do! waitFor net.Signal (fun () -> int64 side.ReceivedCount = written)
              Expect.equal client.Pauses 1 "one pause"
              Expect.equal client.Resumes 1 "one resume"
              Expect.equal (t.GetWriteBufferSize()) 0 "drained"
              t.Close()
              do! waitFor net.Signal (fun () -> client.IsLost && side.IsLost)
              do! closeServer server
          } ]

/// CVE-2024-12254: a peer that stops reading must not make the writer's buffer grow without bound.
/// A writer that respects PauseWriting writes only while not paused; the buffer can then never exceed
/// the high mark plus one write, whatever the write path.
let private cveCase (path: string) (writeOnce: ITransport -> int) =
    netCase $"CVE-2024-12254: a peer that stops reading never lets the buffer grow past high + one write ({path})"
    <| fun net ->
        task {
            let! server, client, side = pausedPair net
            let t = client.Transport
            let mutable maxSize = 0
            let mutable maxWrite = 0
            let mutable writes = 0

            let writeWhileAllowed () =
                while client.Pauses = client.Resumes do
                    writes <- writes + 1

                    if writes > 100_000 then
                        failtest "PauseWriting never came"

                    let n = writeOnce t
                    maxWrite <- max maxWrite n
                    maxSize <- max maxSize (t.GetWriteBufferSize())

            client.OnResume <- writeWhileAllowed

            if path = "writes while closing" then
                // Get something buffered, close (which flushes), and keep writing while closing.
                fillUntilBuffered t (payload 0 (64 * KiB)) |> ignore
                t.Close()

            writeWhileAllowed ()
            Expect.equal client.Pauses 1 "the writer was paused"
            // The peer never reads: give the loop time; nothing may grow the buffer.
            do! Asyncio.Sleep 0.1
            let struct (_, high) = t.GetWriteBufferLimits()
            Expect.isLessThanOrEqual maxSize (high + maxWrite) "buffer <= high + one write"
            Expect.isLessThanOrEqual (t.GetWriteBufferSize()) (high + maxWrite) "still bounded"
            t.Abort()
            side.Transport.Abort()
            do! waitFor net.Signal (fun () -> client.IsLost && side.IsLost)
            do! closeServer server
        }

let cve: NetCase list =
    [ cveCase "Write" (fun t ->
          write t (payload 1 (10 * KiB))
          10 * KiB)
      cveCase "WriteLines" (fun t ->
          writeLines t [ for i in 1..8 -> payload i (4 * KiB) ]
          32 * KiB)
      cveCase "writes while closing" (fun t ->
          write t (payload 1 (10 * KiB))
          10 * KiB) ]

// python3: a data_received that raises: the handler gets 'Fatal error: protocol.data_received() call
// failed.' with the exception, the transport calls connection_lost(exc); the peer sees EOF, then lost.
let private throwingCallback (callback: string) (clientWrites: bool) (arm: Recorder -> exn -> unit) =
    netCase $"a {callback} that throws: the exception handler hears of it and the connection is closed"
    <| fun net ->
        task {
            let boom = InvalidOperationException "boom"
            let! server, accepted = net.Serve(fun r -> arm r boom)
            let! client = net.Connect(portOf server, ignore)

            // (Data the server never read would turn its close into a reset: write only when it reads.)
            if clientWrites then
                write client.Transport (payload 0 10)

            client.Transport.WriteEof()
            do! waitFor net.Signal (fun () -> client.IsLost && accepted.Count = 1 && accepted[0].IsLost)
            let errors = net.TakeErrors()
            Expect.equal errors.Length 1 "reported once"
            Expect.equal errors[0].Message $"Fatal error: protocol.{callback}() call failed." "asyncio's message"
            Expect.isTrue (obj.ReferenceEquals(errors[0].Exception, boom)) "with the exception"
            Expect.isNotNull errors[0].Transport "and the transport"
            Expect.isTrue (obj.ReferenceEquals(accepted[0].LostWith, boom)) "ConnectionLost gets the exception"
            Expect.isTrue client.EofSeen "the peer sees the connection end"
            do! closeServer server
        }

let failingCallbacks: NetCase list =
    [ throwingCallback "data_received" true (fun r boom -> r.OnData <- fun _ -> raise boom)
      throwingCallback "eof_received" true (fun r boom -> r.OnEof <- fun () -> raise boom)
      throwingCallback "connection_made" false (fun r boom -> r.OnMade <- fun _ -> raise boom) ]

let extraInfo: NetCase list =
    [ netCase "GetExtraInfo: peername, sockname and socket are each side's view; unknown names give the default"
      <| fun net ->
          task {
              let! server, accepted = net.Serve ignore
              let! client = net.Connect(portOf server, ignore)
              do! waitFor net.Signal (fun () -> accepted.Count = 1 && accepted[0].IsMade)
              let side = accepted[0].Transport
              let c = client.Transport
              let ep (t: ITransport) name = t.GetExtraInfo name :?> IPEndPoint
              Expect.equal (ep c "peername") (server.Sockets[0].LocalEndPoint :?> IPEndPoint) "client's peer is the server"
              Expect.equal (ep c "sockname") (ep side "peername") "client's address is the server side's peer"
              Expect.equal (ep side "sockname") (ep c "peername") "and back"
              let sock = c.GetExtraInfo "socket" :?> Socket
              Expect.equal (sock.LocalEndPoint :?> IPEndPoint) (ep c "sockname") "the socket itself"
              Expect.isNull (c.GetExtraInfo "no such thing") "unknown: null"
              Expect.equal (c.GetExtraInfo("no such thing", box 42)) (box 42) "unknown: the default given"
              c.Close()
              do! waitFor net.Signal (fun () -> client.IsLost && accepted[0].IsLost)
              Expect.equal (ep c "peername") (server.Sockets[0].LocalEndPoint :?> IPEndPoint) "still known after close"
              do! closeServer server
          } ]

let buffered: NetCase list =
    [ netCase "BufferedProtocol: the transport reads into the protocol's own buffer; EOF and lost as a Protocol"
      <| fun net ->
          task {
              let sides = ResizeArray<BufferedRecorder>()

              let! server =
                  net.Loop.CreateServerAsync(
                      Func<BaseProtocol>(fun () ->
                          let r = net.BufferedRecorder(4 * KiB)
                          sides.Add r
                          r :> BaseProtocol),
                      loopback,
                      0
                  )

              net.Track server |> ignore
              let! client = net.Connect(portOf server, ignore)
              let data = payload 6 MiB
              write client.Transport data
              client.Transport.WriteEof()
              do! waitFor net.Signal (fun () -> sides.Count = 1 && sides[0].IsLost && client.IsLost)
              let side = sides[0]
              expectBytes side.Received data "every byte"
              Expect.isLessThanOrEqual side.MaxFill (4 * KiB) "never more than the buffer"
              Expect.isGreaterThanOrEqual side.GetBufferCalls (MiB / (4 * KiB)) "a buffer asked for each read"
              Expect.equal (side.Calls |> List.rev |> List.take 2) [ ProtocolCall.ConnectionLost; ProtocolCall.EofReceived ] "EOF, then lost"
              do! closeServer server
          }

      netCase "BufferedProtocol on the client side receives an echo"
      <| fun net ->
          task {
              let! server, _ = net.Serve(fun r -> r.Echo <- true)

              let! struct (t, p) =
                  net.Loop.CreateConnectionAsync(Func<BufferedRecorder>(fun () -> net.BufferedRecorder 1000), loopback, portOf server)

              net.TrackTransport t
              let data = payload 7 200_000
              write t data
              do! waitFor net.Signal (fun () -> p.ReceivedCount = data.Length)
              expectBytes p.Received data "the echo"
              t.Close()
              do! waitFor net.Signal (fun () -> p.IsLost)
              do! closeServer server
          }

      netCase "a GetBuffer that throws: reported as asyncio's get_buffer failure, the connection is closed"
      <| fun net ->
          task {
              let boom = InvalidOperationException "no buffer"
              let lost = ResizeArray<Exception>()

              let factory () =
                  { new BufferedProtocol() with
                      member _.GetBuffer _ = raise boom
                      member _.BufferUpdated _ = ()
                      member _.ConnectionLost e = lost.Add e }
                  :> BaseProtocol

              let! server = net.Loop.CreateServerAsync(Func<BaseProtocol>(factory), loopback, 0)
              net.Track server |> ignore
              let! client = net.Connect(portOf server, ignore)
              write client.Transport [| 1uy; 2uy |]
              do! waitFor net.Signal (fun () -> client.IsLost)
              do! poll (fun () -> lost.Count = 1)
              let errors = net.TakeErrors()
              Expect.equal (errors |> List.map _.Message) [ "Fatal error: protocol.get_buffer() call failed." ] "asyncio's message"
              Expect.isTrue (obj.ReferenceEquals(lost[0], boom)) "ConnectionLost gets the exception"
              do! closeServer server
          } ]

let unix: NetCase list =
    [ netCase "Unix sockets: CreateUnixServer and CreateUnixConnection echo; a stale socket file is replaced"
      <| fun net ->
          task {
              let dir = Directory.CreateTempSubdirectory "tulip-unix-"

              try
                  let path = Path.Combine(dir.FullName, "echo.sock")
                  let sides = ResizeArray<Recorder>()

                  let factory () =
                      let r = net.Recorder "unix server side"
                      r.Echo <- true
                      sides.Add r
                      r :> BaseProtocol

                  let! server = net.Loop.CreateUnixServerAsync(Func<BaseProtocol>(factory), path)
                  net.Track server |> ignore
                  let! struct (t, client) = net.Loop.CreateUnixConnectionAsync(Func<Recorder>(fun () -> net.Recorder "unix client"), path)
                  net.TrackTransport t
                  let messages = [ for i in 1..3 -> payload i 70_000 ]

                  for m in messages do
                      write t m

                  do! waitFor net.Signal (fun () -> client.ReceivedCount = 210_000)
                  expectBytes client.Received (Array.concat messages) "echoed"
                  Expect.equal (t.GetExtraInfo("peername").ToString()) path "peername is the socket's path"
                  t.WriteEof()
                  do! waitFor net.Signal (fun () -> client.IsLost && sides.Count = 1 && sides[0].IsLost)
                  do! closeServer server
                  // asyncio: an existing socket file at the path is removed before binding.
                  let! again = net.Loop.CreateUnixServerAsync(Func<BaseProtocol>(factory), path)
                  net.Track again |> ignore
                  let! struct (t2, c2) = net.Loop.CreateUnixConnectionAsync(Func<Recorder>(fun () -> net.Recorder "unix client 2"), path)
                  net.TrackTransport t2
                  write t2 [| 42uy |]
                  do! waitFor net.Signal (fun () -> c2.ReceivedCount = 1)
                  t2.Close()
                  do! waitFor net.Signal (fun () -> c2.IsLost && sides.Count = 2 && sides[1].IsLost)
                  do! closeServer again
              finally
                  dir.Delete true
          } ]

[<Tests>]
let tests =
    perReactor
        "Transports"
        (grammarAndEcho @ closeAndAbort @ flowControl @ cve @ failingCallbacks @ extraInfo @ buffered @ unix)
