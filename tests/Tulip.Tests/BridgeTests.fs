/// Issue 14.5: BCL bridges. AsyncQueue ⇄ System.Threading.Channels (QueueChannels) and a stream
/// connection as System.IO.Pipelines (LoopPipe), with back-pressure: a slow consumer makes the producer
/// wait, nothing is lost, the order is kept.
module Tulip.Tests.BridgeTests

open System
open System.Buffers
open System.IO.Pipelines
open System.Text
open System.Threading
open System.Threading.Channels
open System.Threading.Tasks
open Expecto
open Tulip
open Tulip.Tests.ShellSupport
open Tulip.Tests.NetSupport

/// Takes everything from the queue until it is shut down and empty.
let drainQueue (queue: AsyncQueue<int>) (onItem: int -> unit) : Task<unit> =
    task {
        let mutable go = true

        while go do
            try
                let! item = queue.GetAsync()
                onItem item
            with :? QueueShutDownException ->
                go <- false
    }

/// One line (without its '\n') from a pipe, the Kestrel way: look at the buffer, consume up to the
/// line, mark the rest examined; None at the end of the stream.
let readLine (input: PipeReader) : Task<string option> =
    task {
        let mutable result = None
        let mutable go = true

        while go do
            let! read = input.ReadAsync()
            let buffer = read.Buffer

            match buffer.PositionOf(byte '\n') |> Option.ofNullable with
            | Some position ->
                result <- Some(Encoding.UTF8.GetString(buffer.Slice(0, position).ToArray()))
                input.AdvanceTo(buffer.GetPosition(1L, position))
                go <- false
            | None ->
                input.AdvanceTo(buffer.Start, buffer.End)
                if read.IsCompleted then go <- false

        return result
    }

[<Tests>]
let channels =
    testList
        "Bridges: channels"
        [ testCase "thread-pool producers feed a loop consumer: bounded, in order, nothing lost" (fun () ->
              use loop = newLoop ()
              let n = 300

              let got, writtenBeforeConsuming, aheadMax =
                  runMain loop (fun () ->
                      task {
                          let queue = AsyncQueue<int>(2)
                          let writer = queue.AsChannelWriter(loop, 1)
                          let counters = [| 0; 0 |] // written, blocked
                          let produce (from: int) =
                              task {
                                  for i in from .. 2 .. n do
                                      let pending = writer.WriteAsync(i)
                                      if not pending.IsCompleted then Volatile.Write(&counters[1], 1)
                                      do! pending
                                      Interlocked.Increment(&counters[0]) |> ignore
                              }
                          // Two producers on the thread pool: odd and even numbers.
                          let producers = [ Task.Run<unit>(fun () -> produce 1); Task.Run<unit>(fun () -> produce 2) ]
                          // Nobody consumes yet: the producers must end up waiting.
                          while Volatile.Read(&counters[1]) = 0 do
                              do! yieldTick ()

                          let before = Volatile.Read(&counters[0])
                          let got = ResizeArray<int>()
                          let ahead = ref 0

                          let finish =
                              task {
                                  let! _ = Task.WhenAll(producers)
                                  writer.Complete()
                              }

                          do!
                              drainQueue queue (fun item ->
                                  got.Add item
                                  ahead.Value <- max ahead.Value (Volatile.Read(&counters[0]) - got.Count))

                          do! finish
                          return List.ofSeq got, before, ahead.Value
                      })

              Expect.equal (List.sort got) [ 1..n ] "every item, once"
              let odds = got |> List.filter (fun i -> i % 2 = 1)
              let evens = got |> List.filter (fun i -> i % 2 = 0)
              Expect.equal odds (List.sort odds) "one producer's order is kept"
              Expect.equal evens (List.sort evens) "the other's too"
              // capacity 1 + the pump's item + MaxSize 2 (+1 per producer counted as it completes).
              Expect.isLessThanOrEqual writtenBeforeConsuming 4 "a slow consumer makes the producers wait"
              Expect.isLessThanOrEqual aheadMax 6 "the producers never run far ahead")

          testCase "a loop producer feeds thread-pool consumers: bounded, in order, the channel completes at shutdown" (fun () ->
              use loop = newLoop ()
              let n = 300

              let got, putBeforeReading, joined =
                  runMain loop (fun () ->
                      task {
                          let queue = AsyncQueue<int>(2)
                          let reader = queue.AsChannelReader(loop, 1)
                          let mayRead = TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)

                          let consumer =
                              Task.Run<int list>(fun () ->
                                  task {
                                      do! mayRead.Task
                                      let got = ResizeArray<int>()
                                      let e = reader.ReadAllAsync().GetAsyncEnumerator()
                                      let mutable go = true

                                      while go do
                                          let! more = e.MoveNextAsync()
                                          if more then got.Add e.Current else go <- false

                                      do! reader.Completion
                                      return List.ofSeq got
                                  })

                          let mutable put = 0
                          let mutable putBefore = -1

                          for i in 1..n do
                              let pending = queue.PutAsync i
                              if not pending.IsCompleted && putBefore < 0 then
                                  putBefore <- put
                                  mayRead.SetResult()
                              do! pending
                              put <- put + 1

                          queue.Shutdown()
                          do! queue.JoinAsync()
                          let! got = consumer
                          return got, putBefore, true
                      })

              Expect.equal got [ 1..n ] "every item, in order"
              Expect.isLessThanOrEqual putBeforeReading 4 "MaxSize 2 + the pump's item + capacity 1: then the producer waits"
              Expect.isTrue joined "the pump marks each item done")

          testCase "a writer completed with an error shuts the queue down; the error goes to the exception handler" (fun () ->
              use loop = newLoop ()
              let errors = collectErrors loop

              let got =
                  runMain loop (fun () ->
                      task {
                          let queue = AsyncQueue<int>(1)
                          let writer = queue.AsChannelWriter(loop)
                          let! () = Task.Run<unit>(fun () ->
                              task {
                                  do! writer.WriteAsync 1
                                  writer.Complete(InvalidOperationException "producer failed")
                              })
                          let got = ResizeArray<int>()
                          do! drainQueue queue got.Add
                          return List.ofSeq got
                      })

              Expect.equal got [ 1 ] "what was written before the error"
              Expect.equal [ for c in errors -> c.Message, c.Exception.Message ]
                  [ "A ChannelWriter feeding an AsyncQueue was completed with an error", "producer failed" ] "reported once, at once")

          testCase "a queue shut down on the loop side: later writes fail with ChannelClosedException" (fun () ->
              use loop = newLoop ()

              let failed =
                  runMain loop (fun () ->
                      task {
                          let queue = AsyncQueue<int>(1)
                          let writer = queue.AsChannelWriter(loop)
                          queue.Shutdown()
                          let! failed =
                              Task.Run<bool>(fun () ->
                                  task {
                                      try
                                          do! writer.WriteAsync 1
                                          do! writer.WriteAsync 2
                                          do! writer.WriteAsync 3
                                          return false
                                      with :? ChannelClosedException ->
                                          return true
                                  })
                          return failed
                      })

              Expect.isTrue failed "ChannelClosedException") ]

/// A server whose connections run `handler` over a LoopPipe; returns the server and its port.
let pipeServer (net: Net) (handler: LoopPipe -> Task) =
    task {
        let! server =
            Asyncio.StartServer(
                (fun reader writer ->
                    // The handler disposes the pipe (closing the connection) when it is done.
                    handler (new LoopPipe(reader, writer))),
                loopback,
                0
            )

        return net.Track server, portOf server
    }

let private pipeCases: NetCase list =
    [ netCase "a Kestrel-style line parser on a PipeReader, replies through a PipeWriter" (fun net ->
          task {
              let! server, port =
                  pipeServer net (fun pipe ->
                      task {
                          let mutable go = true

                          while go do
                              match! readLine pipe.Input with
                              | Some line ->
                                  let reply = Encoding.UTF8.GetBytes(line.ToUpperInvariant() + "\n")
                                  pipe.Output.Write(ReadOnlySpan reply)
                                  let! _ = pipe.Output.FlushAsync()
                                  ()
                              | None -> go <- false

                          do! pipe.DisposeAsync()
                      })

              let! (reader, writer) = Asyncio.OpenConnection(loopback, port)
              // Split lines across writes: the parser must keep partial lines (examined, not consumed).
              for chunk in [ "hel"; "lo\nwor"; "ld\n"; "pipes\n" ] do
                  writer.Write(span (Encoding.UTF8.GetBytes chunk))
                  do! writer.DrainAsync()
                  do! Asyncio.Sleep 0.01

              writer.WriteEof()
              let! all = reader.ReadAsync()
              Expect.equal (Encoding.UTF8.GetString all) "HELLO\nWORLD\nPIPES\n" "every line, in order"
              do! writer.DisposeAsync()
              server.Close()
              do! server.WaitClosedAsync()
          })

      netCase "back-pressure: a PipeWriter's FlushAsync waits for a slow reader; nothing lost, order kept" (fun net ->
          task {
              let total = 4 * MiB
              let chunk = 64 * 1024
              let data = payload 7 total
              let flushed = ref 0
              let stalled = ref -1
              let mayRead = net.Loop.CreateFuture<unit>()

              let! server, port =
                  pipeServer net (fun pipe ->
                      task {
                          let mutable offset = 0

                          while offset < total do
                              let memory = pipe.Output.GetMemory(chunk)
                              let n = min chunk (total - offset)
                              data.AsMemory(offset, n).CopyTo(memory)
                              pipe.Output.Advance n
                              offset <- offset + n
                              let flush = pipe.Output.FlushAsync()

                              if not flush.IsCompleted && stalled.Value < 0 then
                                  stalled.Value <- flushed.Value
                                  mayRead.SetResult(())

                              let! _ = flush
                              flushed.Value <- offset

                          do! pipe.DisposeAsync()
                      })

              let! (reader, writer) = Asyncio.OpenConnection(loopback, port, limit = chunk)
              do! mayRead // the client reads nothing until the server's flush waits
              Expect.isGreaterThanOrEqual stalled.Value 0 "a flush had to wait"
              Expect.isLessThan stalled.Value total "the writer was held up before it had flushed everything"
              let received = new IO.MemoryStream()
              let mutable go = true

              while go do
                  let! bytes = reader.ReadAsync(chunk)
                  if bytes.Length = 0 then go <- false else received.Write(bytes, 0, bytes.Length)

              Expect.equal (net.Errors |> List.map (fun c -> string c.Exception)) [] "no error"
              Expect.equal received.Length (int64 total) "every byte"
              Expect.isTrue (received.ToArray() = data) "every byte, in order"
              Expect.equal flushed.Value total "the writer finished"
              do! writer.DisposeAsync()
              server.Close()
              do! server.WaitClosedAsync()
          }) 
      netCase "a flush waiting for the drain: CancelPendingFlush gives IsCanceled, a token gives OperationCanceledException" (fun net ->
          task {
              let written = ref 0
              let outcome = net.Loop.CreateFuture<bool * bool>()

              let! server, port =
                  pipeServer net (fun pipe ->
                      task {
                          // Nobody reads yet: write until a flush has to wait for the drain (the
                          // kernel's buffers take some first), then cancel that flush at once.
                          let pendingFlush () =
                              let mutable flush = ValueTask<FlushResult>()
                              let mutable go = true

                              while go && written.Value < 256 * MiB do
                                  pipe.Output.Write(ReadOnlySpan(payload written.Value MiB))
                                  written.Value <- written.Value + MiB
                                  flush <- pipe.Output.FlushAsync()
                                  if not flush.IsCompleted then go <- false

                              flush

                          let flush = pendingFlush ()
                          pipe.Output.CancelPendingFlush()
                          let! result = flush
                          use cts = new CancellationTokenSource()
                          pipe.Output.Write(ReadOnlySpan(payload written.Value MiB))
                          written.Value <- written.Value + MiB
                          let second = pipe.Output.FlushAsync(cts.Token)
                          cts.Cancel()

                          let! byToken =
                              task {
                                  try
                                      let! _ = second
                                      return false
                                  with :? OperationCanceledException ->
                                      return true
                              }

                          outcome.SetResult((result.IsCanceled, byToken))
                          do! pipe.DisposeAsync()
                      })

              let! (reader, writer) = Asyncio.OpenConnection(loopback, port)
              let! canceled, byToken = outcome
              Expect.isTrue canceled "CancelPendingFlush: FlushResult.IsCanceled"
              Expect.isTrue byToken "the token: OperationCanceledException"
              let! all = reader.ReadAsync()
              Expect.equal all.Length written.Value "what was written stays written"
              do! writer.DisposeAsync()
              server.Close()
              do! server.WaitClosedAsync()
          }) ]

[<Tests>]
let pipes = perReactor "Bridges: pipes" pipeCases
