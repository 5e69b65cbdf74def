/// Engine-correctness cases of the I/O layer, on loopback with the hygiene gate: a transport's write
/// buffer gives its memory back once it drains; a failing StartServer callback is reported and its
/// connection closed (asyncio 3.11's StreamReaderProtocol); LoopDuplexStream honours its tokens.
module Tulip.Tests.IoCorrectnessTests

open System
open System.Diagnostics
open System.IO
open System.Threading
open System.Threading.Tasks
open Expecto
open Tulip
open Tulip.Core
open Tulip.Io
open Tulip.Tests.NetSupport

let private closeServer (server: Server) =
    task {
        server.Close()
        do! server.WaitClosed()
    }

// -------------------------------------------------------------------------------------------------
// 6. A write buffer gives its memory back once it has drained.

/// A server-side protocol that only counts what it receives (a recorder would itself hold the 50 MB
/// the memory test measures). It starts with reading paused: the slow peer.
type private Sink(signal: Signal) =
    inherit Protocol()
    let calls = ResizeArray<ProtocolCall>()
    let mutable transport: ITransport = null

    member val Count = 0L with get, set
    member _.Transport = transport
    member _.IsLost = calls.Contains ProtocolCall.ConnectionLost

    override _.ConnectionMade(t) =
        calls.Add ProtocolCall.ConnectionMade
        transport <- t :?> ITransport
        transport.PauseReading()
        signal.Pulse()

    override this.DataReceived(data) =
        // One entry for a run of reads: the grammar is the same, the list stays small.
        if calls[calls.Count - 1] <> ProtocolCall.DataReceived then
            calls.Add ProtocolCall.DataReceived

        this.Count <- this.Count + int64 data.Length
        signal.Pulse()

    override _.EofReceived() =
        calls.Add ProtocolCall.EofReceived
        signal.Pulse()
        false

    override _.ConnectionLost(_e) =
        calls.Add ProtocolCall.ConnectionLost
        signal.Pulse()

    interface IRecorded with
        member _.Calls = List.ofSeq calls
        member _.Describe = $"sink: %A{List.ofSeq calls}"

/// The managed heap's live bytes after full, blocking collections (finalizers included).
let private liveBytes () =
    GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, true, true)
    GC.WaitForPendingFinalizers()
    GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, true, true)
    GC.GetTotalMemory true

let private burstDrains: NetCase =
    netCaseWithin 60.0 "a 50 MB burst to a slow peer drains: the write buffer's memory is given back while the connection lives; flow control as before"
    <| fun net ->
        task {
            let sinks = ResizeArray<Sink>()

            let factory () =
                let s = Sink(net.Signal)
                net.Track(s :> IRecorded)
                sinks.Add s
                s :> BaseProtocol

            let! server = net.Loop.CreateServer(Func<BaseProtocol>(factory), loopback, 0)
            net.Track server |> ignore
            let! client = net.Connect(portOf server, ignore)
            do! waitFor net.Signal (fun () -> sinks.Count = 1 && not (isNull sinks[0].Transport))
            let sink = sinks[0]
            let t = client.Transport
            let chunk = payload 1 MiB
            let total = 50L * int64 MiB
            let before = liveBytes ()

            // The burst ignores flow control (asyncio's write() never blocks): the transport keeps what
            // the kernel would not take.
            for _ in 1..50 do
                write t chunk

            Expect.isGreaterThan (t.GetWriteBufferSize()) (30 * MiB) "most of the burst is buffered"
            Expect.equal (client.Pauses, client.Resumes) (1, 0) "pause_writing once, past the high-water mark"
            do! Asyncio.Sleep 0.05 // the peer is slow: nothing moves
            Expect.equal client.Resumes 0 "still paused"
            sink.Transport.ResumeReading()
            do! waitFor net.Signal (fun () -> sink.Count = total && t.GetWriteBufferSize() = 0)
            Expect.equal (client.Pauses, client.Resumes) (1, 1) "resume_writing once, at the low-water mark"
            Expect.isFalse t.IsClosing "the connection is still open"
            Expect.equal (t.GetWriteBufferLimits()) (struct (16 * KiB, 64 * KiB)) "the marks are unchanged"

            let capacity = (t :?> Tulip.Transports.SocketTransport).WriteBufferCapacity
            let held = liveBytes () - before
            // The old buffer kept its ~81 MiB array (doubled while the burst came in). A few MiB of
            // slack: the loop's read buffer, pooled arrays, the test's own allocations.
            Expect.isLessThan held (8L * int64 MiB) $"live heap back near its size before the burst (+{held / int64 KiB} KiB)"
            Expect.equal capacity 0 "the emptied write buffer holds no array"

            // The same connection still flows, through a small buffer again.
            sink.Transport.PauseReading()

            for _ in 1..24 do
                write t chunk

            Expect.isGreaterThan (t.GetWriteBufferSize()) 0 "buffers again"
            Expect.equal client.Pauses 2 "and pauses again"
            sink.Transport.ResumeReading()
            do! waitFor net.Signal (fun () -> sink.Count = total + 24L * int64 MiB && t.GetWriteBufferSize() = 0)
            Expect.equal client.Resumes 2 "and resumes again"
            t.Close()
            do! waitFor net.Signal (fun () -> client.IsLost && sink.IsLost)
            do! closeServer server
        }

// -------------------------------------------------------------------------------------------------
// 7. A failing client-connected callback of StartServer.

// python3 (3.11.7, /tmp script: start_server with an async callback raising before and after an
// await): the handler gets exactly {message: 'Unhandled exception in client_connected_cb', exception,
// transport} and the transport is closed (transport.close(), so what was written is flushed); the
// client reads b'' and is at EOF.
let private failingClientCallback (unix: bool) (later: bool) : NetCase =
    let where = if unix then "StartUnixServer" else "StartServer"
    let how = if later then "whose Task faults later" else "that throws synchronously"

    netCase $"{where}: a client callback {how} is reported as asyncio's 'Unhandled exception in client_connected_cb' with the transport, and the client sees EOF"
    <| fun net ->
        task {
            let boom = InvalidOperationException "client callback failed"
            let seen = ResizeArray<ITransport>()

            let callback =
                Func<LoopStreamReader, LoopStreamWriter, Task>(fun _ writer ->
                    seen.Add writer.Transport
                    writer.Write(ReadOnlySpan<byte>("hello"B)) // flushed by the close, as asyncio's

                    if later then
                        task {
                            do! Asyncio.Sleep 0.01
                            raise boom
                        }
                        :> Task
                    else
                        raise boom)

            let dir = if unix then Directory.CreateTempSubdirectory "tulip-cb-" else null

            try
                let path = if unix then Path.Combine(dir.FullName, "s.sock") else null
                let! server = if unix then Asyncio.StartUnixServer(callback, path) else Asyncio.StartServer(callback, loopback, 0)
                net.Track server |> ignore

                let! struct (reader, writer) =
                    task {
                        let! (r, w) = if unix then Asyncio.OpenUnixConnection path else Asyncio.OpenConnection(loopback, portOf server)
                        return struct (r, w)
                    }

                // Bounded: before the fix the connection stayed open and this read never ended.
                let! got = Asyncio.WaitFor(Func<Task<byte[]>>(fun () -> reader.ReadAsync().AsTask()), 5.0)
                Expect.equal got "hello"B "what the callback wrote, then EOF"
                Expect.isTrue reader.AtEof "the client sees EOF"
                do! poll (fun () -> not net.Errors.IsEmpty)
                let errors = net.TakeErrors()
                Expect.equal (errors |> List.map _.Message) [ "Unhandled exception in client_connected_cb" ] "asyncio's message, once"
                let ctx = errors.Head
                Expect.isTrue (obj.ReferenceEquals(ctx.Exception, boom)) "with the exception"
                Expect.equal seen.Count 1 "one connection"
                Expect.isTrue (obj.ReferenceEquals(ctx.Transport, seen[0])) "with the server side's transport"
                Expect.isNull ctx.Protocol "asyncio's context has no protocol"
                Expect.isNull ctx.Future "nor a future (the exception was retrieved: no 'never retrieved' report later)"
                Expect.isTrue seen[0].IsClosing "the server side is closed"
                writer.Close()
                do! writer.WaitClosedAsync()
                do! closeServer server
            finally
                if unix then dir.Delete true
        }

// -------------------------------------------------------------------------------------------------

[<Tests>]
let tests =
    testList
        "I/O correctness"
        [ perReactor
              "failing client callbacks"
              [ for unix in [ false; true ] do
                    for later in [ false; true ] -> failingClientCallback unix later ]
          // Sequenced: run alone after the parallel tests, so the process-wide heap measure is this test's.
          testList "write buffer memory" [ for kind in reactors -> testList (string kind) [ testSequenced (burstDrains kind) ] ] ]
