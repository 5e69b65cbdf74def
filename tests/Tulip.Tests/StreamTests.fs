/// Streams against CPython 3.11's asyncio.streams (each expected outcome printed by python3 running the
/// same case: /tmp-free, the script is quoted in the comments).
module Tulip.Tests.StreamTests

open System
open System.Net.Sockets
open System.Text
open System.Threading.Tasks
open Expecto
open Tulip
open Tulip.Testing
open Tulip.Tests.ShellSupport

let private b (s: string) = Encoding.ASCII.GetBytes s
let private str (bytes: byte[]) = Encoding.ASCII.GetString bytes

type private Outcome =
    | Value of string
    | Incomplete of partial: string * expected: int option
    | Overrun of consumed: int * message: string
    | Invalid of message: string

/// Feeds the reader, runs one read on a virtual loop, returns (outcome, what is left, at_eof).
let private case (limit: int) (feed: string list) (eof: bool) (op: LoopStreamReader -> ValueTask<byte[]>) =
    use loop = newLoop ()
    let r = LoopStreamReader(loop, limit)

    for d in feed do
        r.FeedData(ReadOnlySpan(b d))

    if eof then r.FeedEof()

    let outcome =
        runMain loop (fun () ->
            task {
                try
                    let! v = op r
                    return Value(str v)
                with
                | :? IncompleteReadException as e -> return Incomplete(str e.Partial, Option.ofNullable e.Expected)
                | :? LimitOverrunException as e -> return Overrun(e.Consumed, e.Message)
                | :? ArgumentException as e -> return Invalid(e.Message.Split(" (Parameter").[0])
            })

    let left = str (r.ReadAsync(r.BufferedCount).AsTask().Result)
    outcome, left, r.AtEof

let private limitDefault = LoopStreamReader.DefaultLimit

[<Tests>]
let readerCases =
    testList
        "LoopStreamReader (python3 streams_ref.py)"
        [ testCase "read() reads to EOF" (fun () ->
              Expect.equal (case limitDefault [ "ab"; "cd" ] true (fun r -> r.ReadAsync())) (Value "abcd", "", true) "read-all")
          testCase "read(n) takes at most n" (fun () ->
              Expect.equal (case limitDefault [ "abcdef" ] true (fun r -> r.ReadAsync 4)) (Value "abcd", "ef", true) "read-n")
          testCase "read(0) is empty and consumes nothing" (fun () ->
              let o, _, _ = case limitDefault [ "abc" ] false (fun r -> r.ReadAsync 0)
              Expect.equal o (Value "") "read-0")
          testCase "read(n) at EOF with nothing buffered is empty" (fun () ->
              Expect.equal (case limitDefault [] true (fun r -> r.ReadAsync 5)) (Value "", "", true) "read-eof-empty")
          testCase "readline returns one line with its newline" (fun () ->
              let o, _, _ = case limitDefault [ "ab\ncd\n" ] false (fun r -> r.ReadLineBytesAsync())
              Expect.equal o (Value "ab\n") "readline")
          testCase "ReadLineAsync reads text as TextReader does: no \\n or \\r\\n, the encoding's, null at EOF" (fun () ->
              use loop = TestLoop.Create()
              let r = LoopStreamReader(loop)
              r.FeedData(ReadOnlySpan(Encoding.UTF8.GetBytes "één\r\ntwo\n\nlast"))
              r.FeedEof()

              let lines =
                  runMain loop (fun () ->
                      task {
                          let got = ResizeArray<string>()
                          let mutable go = true

                          while go do
                              let! line = r.ReadLineAsync()

                              if isNull line then go <- false else got.Add line

                          return List.ofSeq got
                      })

              Expect.equal lines [ "één"; "two"; ""; "last" ] "lines without terminators; null ends them"
              let latin = LoopStreamReader(loop)
              latin.FeedData(ReadOnlySpan([| 0xE9uy; byte '\n' |]))
              latin.FeedEof()
              let l = runMain loop (fun () -> task { let! l = latin.ReadLineAsync(Encoding.Latin1) in return l })
              Expect.equal l "é" "decoded with the given encoding")
          testCase "ReadLinesAsync enumerates text lines until EOF" (fun () ->
              use loop = TestLoop.Create()
              let r = LoopStreamReader(loop)
              r.FeedData(ReadOnlySpan(b "a\nbb\r\nccc"))
              r.FeedEof()

              let lines =
                  runMain loop (fun () ->
                      task {
                          let got = ResizeArray<string>()
                          let e = r.ReadLinesAsync().GetAsyncEnumerator()
                          let mutable go = true

                          while go do
                              let! more = e.MoveNextAsync()
                              if more then got.Add e.Current else go <- false

                          return List.ofSeq got
                      })

              Expect.equal lines [ "a"; "bb"; "ccc" ] "every line as text")
          testCase "readline at EOF returns the partial line, then empty" (fun () ->
              Expect.equal (case limitDefault [ "abc" ] true (fun r -> r.ReadLineBytesAsync())) (Value "abc", "", true) "partial"
              Expect.equal (case limitDefault [] true (fun r -> r.ReadLineBytesAsync())) (Value "", "", true) "empty")
          // 3.11: ValueError('Separator is found, but chunk is longer than limit'); the line is dropped.
          testCase "readline over the limit with its newline found drops that line" (fun () ->
              let o, left, _ = case 4 [ "aaaaaaaaaa\nbb\n" ] false (fun r -> r.ReadLineBytesAsync())
              Expect.equal o (Overrun(10, "Separator is found, but chunk is longer than limit")) "overrun"
              Expect.equal left "bb\n" "the next line stays")
          // 3.11: ValueError('Separator is not found, and chunk exceed the limit'); the buffer is cleared.
          testCase "readline over the limit without a newline clears the buffer" (fun () ->
              let o, left, _ = case 4 [ "aaaaaaaaaa" ] false (fun r -> r.ReadLineBytesAsync())
              Expect.equal o (Overrun(10, "Separator is not found, and chunk exceed the limit")) "overrun"
              Expect.equal left "" "cleared")
          testCase "readuntil returns through the separator" (fun () ->
              let o, left, _ = case limitDefault [ "ab||cd" ] false (fun r -> r.ReadUntilAsync(ReadOnlyMemory(b "||")))
              Expect.equal (o, left) (Value "ab||", "cd") "readuntil")
          testCase "readuntil at EOF raises IncompleteRead with everything, expected undefined" (fun () ->
              Expect.equal
                  (case limitDefault [ "abcd" ] true (fun r -> r.ReadUntilAsync(ReadOnlyMemory(b "||"))))
                  (Incomplete("abcd", None), "", true)
                  "readuntil-eof")
          testCase "readuntil past the limit leaves the data in place (found / not found)" (fun () ->
              Expect.equal
                  (case 3 [ "aaaaaa||" ] false (fun r -> r.ReadUntilAsync(ReadOnlyMemory(b "||"))))
                  (Overrun(6, "Separator is found, but chunk is longer than limit"), "aaaaaa||", false)
                  "found"
              Expect.equal
                  (case 3 [ "aaaaaaaa" ] false (fun r -> r.ReadUntilAsync(ReadOnlyMemory(b "||"))))
                  (Overrun(7, "Separator is not found, and chunk exceed the limit"), "aaaaaaaa", false)
                  "not found")
          testCase "readuntil with an empty separator is refused" (fun () ->
              let o, left, _ = case limitDefault [ "ab" ] false (fun r -> r.ReadUntilAsync(ReadOnlyMemory<byte>([||])))
              Expect.equal (o, left) (Invalid "Separator should be at least one-byte string", "ab") "refused")
          // 3.13: several separators, the match that ends first wins.
          testCase "readuntil with several separators: the first to end wins" (fun () ->
              let o, left, _ =
                  case limitDefault [ "ab\r\ncd\n" ] false (fun r -> r.ReadUntilAsync(ReadOnlyMemory(b "\n"), ReadOnlyMemory(b "\r\n")))

              Expect.equal (o, left) (Value "ab\r\n", "cd\n") "crlf first")
          testCase "readexactly: n, 0, negative, huge, across chunks" (fun () ->
              Expect.equal (case limitDefault [ "abcdef" ] false (fun r -> r.ReadExactlyAsync 4)) (Value "abcd", "ef", false) "n"
              Expect.equal (case limitDefault [ "ab" ] false (fun r -> r.ReadExactlyAsync 0)) (Value "", "ab", false) "0"
              Expect.equal
                  (case limitDefault [ "ab" ] false (fun r -> r.ReadExactlyAsync -1))
                  (Invalid "readexactly size can not be less than zero", "ab", false)
                  "negative"
              Expect.equal
                  (case limitDefault [ "ab" ] true (fun r -> r.ReadExactlyAsync 1_000_000_000))
                  (Incomplete("ab", Some 1_000_000_000), "", true)
                  "huge"
              Expect.equal (case limitDefault [ "ab"; "cd"; "ef" ] false (fun r -> r.ReadExactlyAsync 5)) (Value "abcde", "f", false) "across")
          // python3: RuntimeError('read() called while another coroutine is already waiting for incoming data').
          testCase "a second read while one waits is refused" (fun () ->
              use loop = newLoop ()
              let r = LoopStreamReader(loop)

              let msg, first =
                  runMain loop (fun () ->
                      task {
                          let t1 = loop.CreateTask(fun () -> r.ReadAsync(1).AsTask())
                          do! yieldTick ()

                          let! msg =
                              task {
                                  try
                                      let! _ = r.ReadAsync 1
                                      return "no"
                                  with :? EventLoopException as e ->
                                      return e.Message
                              }

                          r.FeedData(ReadOnlySpan(b "x"))
                          let! v = t1
                          return msg, str v
                      })

              Expect.equal msg "read() called while another coroutine is already waiting for incoming data" "asyncio's message"
              Expect.equal first "x" "the first read still gets the data")
          testCase "a waiting read wakes on data and on EOF; lines enumerate with await foreach" (fun () ->
              use loop = newLoop ()
              let r = LoopStreamReader(loop)

              let lines =
                  runMain loop (fun () ->
                      task {
                          loop.CallLater(1.0, (fun () -> r.FeedData(ReadOnlySpan(b "one\ntw")))) |> ignore
                          loop.CallLater(2.0, (fun () -> r.FeedData(ReadOnlySpan(b "o\nthree")))) |> ignore
                          loop.CallLater(3.0, (fun () -> r.FeedEof())) |> ignore
                          let got = Collections.Generic.List<string>()
                          let e = r.ReadLinesAsBytesAsync().GetAsyncEnumerator()
                          let mutable go = true

                          while go do
                              let! more = e.MoveNextAsync()
                              if more then got.Add(str e.Current) else go <- false

                          return List.ofSeq got
                      })

              Expect.equal lines [ "one\n"; "two\n"; "three" ] "lines, the last one partial")
          // asyncio: data that arrived for a read whose task is then cancelled stays in the reader.
          testCase "a ReadIntoAsync cancelled after its data arrived loses nothing: the bytes stay in the reader" (fun () ->
              use loop = newLoop ()
              let r = LoopStreamReader(loop)

              let after =
                  runMain loop (fun () ->
                      task {
                          let target = Array.zeroCreate<byte> 16

                          let reading =
                              loop.CreateTask(fun () ->
                                  task {
                                      let! n = r.ReadIntoAsync(Memory target)
                                      return n
                                  })

                          do! yieldTick () // the read waits, its buffer empty
                          r.FeedData(ReadOnlySpan(b "hello"))
                          reading.Cancel() |> ignore // before it resumes

                          try
                              let! _ = reading
                              ()
                          with :? OperationCanceledException ->
                              ()

                          let! again = r.ReadAsync 100
                          return str again
                      })

              Expect.equal after "hello" "the data is still there for the next read")

          testCase "an exception set on the reader is raised by reads" (fun () ->
              use loop = newLoop ()
              let r = LoopStreamReader(loop)
              r.SetException(IO.IOException "reset")
              let e = throws<IO.IOException> (fun () -> r.ReadAsync(1).AsTask().GetAwaiter().GetResult() |> ignore)
              Expect.equal e.Message "reset" "raised") ]

/// A transport that records flow-control calls (the reader and writer see only ITransport).
type private FakeTransport() =
    let mutable reading = true
    member val Log = Collections.Generic.List<string>()
    member val Closing = false with get, set

    interface ITransport with
        member t.Write(data) = t.Log.Add(sprintf "write %d" data.Length)
        member t.WriteLines(lines) = t.Log.Add "writelines"
        member t.WriteEof() = t.Log.Add "write_eof"
        member _.CanWriteEof() = true
        member t.Abort() = t.Log.Add "abort"
        member _.IsReading = reading

        member t.PauseReading() =
            reading <- false
            t.Log.Add "pause_reading"

        member t.ResumeReading() =
            reading <- true
            t.Log.Add "resume_reading"

        member _.SetWriteBufferLimits(high, low) = ()
        member _.GetWriteBufferSize() = 0
        member _.GetWriteBufferLimits() = struct (0, 0) |> fun (struct (a, b)) -> (a, b)
        member t.Close() = t.Closing <- true
        member t.IsClosing = t.Closing
        member _.GetExtraInfo(name, defaultValue) = defaultValue

        member _.Protocol
            with get () = null
            and set _ = ()

[<Tests>]
let flowControl =
    testList
        "Streams flow control"
        [ // CPython: feed_data pauses the transport past 2 x limit; reads resume it at or below the limit.
          testCase "the reader pauses its transport past twice the limit and resumes it at the limit" (fun () ->
              use loop = newLoop ()
              let t = FakeTransport()
              let r = LoopStreamReader(loop, 10)
              r.SetTransport t
              r.FeedData(ReadOnlySpan(Array.zeroCreate 20))
              Expect.isEmpty t.Log "20 bytes: not past 2 x 10"
              r.FeedData(ReadOnlySpan(Array.zeroCreate 1))
              Expect.equal (List.ofSeq t.Log) [ "pause_reading" ] "21 bytes: paused"

              runMainUnit loop (fun () ->
                  task {
                      let! _ = r.ReadAsync 5 // 16 left: still over the limit
                      Expect.equal (List.ofSeq t.Log) [ "pause_reading" ] "16 > 10: still paused"
                      let! _ = r.ReadAsync 6 // 10 left: at the limit
                      Expect.equal (List.ofSeq t.Log) [ "pause_reading"; "resume_reading" ] "resumed at the limit"
                  }))

          testCase "several drains may wait at once; all wake when writing resumes; a lost connection raises" (fun () ->
              use loop = newLoop ()
              let t = FakeTransport()
              let r = LoopStreamReader(loop)
              let p = StreamReaderProtocol(r, null, loop)
              p.ConnectionMade t
              let w = LoopStreamWriter(t, p, r, loop)

              let woken, lost =
                  runMain loop (fun () ->
                      task {
                          p.PauseWriting()
                          let woken = Collections.Generic.List<int>()

                          let drains =
                              [ for i in 1..3 ->
                                    loop.CreateTask(fun () ->
                                        task {
                                            do! w.DrainAsync()
                                            woken.Add i
                                        }
                                        :> Task) ]

                          do! yieldTick ()
                          Expect.isEmpty woken "all waiting"
                          p.ResumeWriting()

                          for d in drains do
                              let! _ = d
                              ()

                          p.PauseWriting()
                          let pending = loop.CreateTask(fun () -> w.DrainAsync().AsTask())
                          do! yieldTick ()
                          p.ConnectionLost(IO.IOException "peer reset")

                          let! lost =
                              task {
                                  try
                                      let! _ = pending
                                      return "no error"
                                  with :? IO.IOException as e ->
                                      return e.Message
                              }

                          return List.ofSeq woken, lost
                      })

              Expect.equal (List.sort woken) [ 1; 2; 3 ] "every drain woke"
              Expect.equal lost "peer reset" "the connection's error reaches the drain")

          testCase "LoopDuplexStream lets BCL readers and writers use a connection" (fun () ->
              use loop = newLoop ()
              let t = FakeTransport()
              let r = LoopStreamReader(loop)
              let p = StreamReaderProtocol(r, null, loop)
              p.ConnectionMade t
              let w = LoopStreamWriter(t, p, r, loop)
              r.FeedData(ReadOnlySpan(b "first line\nsecond line\n"))
              r.FeedEof()

              let lines =
                  runMain loop (fun () ->
                      task {
                          use stream = new LoopDuplexStream(r, w)
                          use text = new IO.StreamReader(stream)
                          let! l1 = text.ReadLineAsync()
                          let! l2 = text.ReadLineAsync()
                          let! l3 = text.ReadLineAsync()
                          do! stream.WriteAsync(ReadOnlyMemory(b "reply"))
                          return [ l1; l2; (if isNull l3 then "<eof>" else l3) ]
                      })

              Expect.equal lines [ "first line"; "second line"; "<eof>" ] "read through System.IO"
              Expect.contains t.Log "write 5" "and wrote through it") ]

/// A server and a client over loopback on a real clock, bounded in time.
let private withTimeout (loop: EventLoop) (seconds: float) =
    loop.CallLater(seconds, (fun () -> loop.Stop())) |> ignore

[<Tests>]
let streamsOverSockets =
    testList
        "Streams over TCP"
        [ testCase "echo of several lines through StartServer / OpenConnection, then a clean close" (fun () ->
              use loop = new EventLoop()
              withTimeout loop 20.0

              let got =
                  runMain loop (fun () ->
                      task {
                          let! server =
                              Asyncio.StartServer(
                                  (fun reader writer ->
                                      task {
                                          let e = reader.ReadLinesAsBytesAsync().GetAsyncEnumerator()
                                          let mutable go = true

                                          while go do
                                              let! more = e.MoveNextAsync()

                                              if more then
                                                  writer.Write(ReadOnlySpan(Array.append (b "echo: ") e.Current))
                                                  do! writer.DrainAsync()
                                              else
                                                  go <- false

                                          writer.Close()
                                          do! writer.WaitClosedAsync()
                                      }
                                      :> Task),
                                  "127.0.0.1",
                                  0
                              )

                          let port = (server.Sockets[0].LocalEndPoint :?> Net.IPEndPoint).Port
                          let! struct (reader, writer) = task { let! (r, w) = Asyncio.OpenConnection("127.0.0.1", port) in return struct (r, w) }

                          for line in [ "a\n"; "bb\n"; "ccc\n" ] do
                              writer.Write(ReadOnlySpan(b line))

                          do! writer.DrainAsync()
                          writer.WriteEof()
                          let! all = reader.ReadAsync()
                          writer.Close()
                          do! writer.WaitClosedAsync()
                          server.Close()
                          do! server.WaitClosedAsync()
                          return str all
                      })

              Expect.equal got "echo: a\necho: bb\necho: ccc\n" "every line, then EOF")

          testCase "virtual time with real loopback I/O: an hour between messages passes at once, no reply is lost" (fun () ->
              use loop = newLoop ()

              let replies =
                  runMain loop (fun () ->
                      task {
                          let! server =
                              Asyncio.StartServer(
                                  (fun reader writer ->
                                      task {
                                          let e = reader.ReadLinesAsBytesAsync().GetAsyncEnumerator()
                                          let mutable go = true

                                          while go do
                                              let! more = e.MoveNextAsync()

                                              if more then
                                                  do! sleep 1.0 // think for a (virtual) second
                                                  writer.Write(ReadOnlySpan e.Current)
                                                  do! writer.DrainAsync()
                                              else
                                                  go <- false

                                          writer.Close()
                                      }
                                      :> Task),
                                  "127.0.0.1",
                                  0
                              )

                          let port = (server.Sockets[0].LocalEndPoint :?> Net.IPEndPoint).Port
                          let! (reader, writer) = Asyncio.OpenConnection("127.0.0.1", port)
                          let got = Collections.Generic.List<string>()

                          for i in 1..3 do
                              writer.Write(ReadOnlySpan(b (sprintf "m%d\n" i)))
                              let! line = reader.ReadLineBytesAsync()
                              got.Add(str line)
                              do! sleep 3600.0

                          writer.Close()
                          do! writer.WaitClosedAsync()
                          server.Close()
                          do! server.WaitClosedAsync()
                          return List.ofSeq got
                      })

              Expect.equal replies [ "m1\n"; "m2\n"; "m3\n" ] "every reply, in order"
              Expect.isGreaterThanOrEqual (loop.VirtualClock().Jumped) (TimeSpan.FromHours 3.0) "three virtual hours")

          testCase "Unix-domain streams: StartUnixServer / OpenUnixConnection" (fun () ->
              use loop = new EventLoop()
              withTimeout loop 20.0
              let path = IO.Path.Combine(IO.Path.GetTempPath(), sprintf "tulip-%s.sock" (Guid.NewGuid().ToString("N").Substring(0, 8)))

              let got =
                  try
                      runMain loop (fun () ->
                          task {
                              let! server =
                                  Asyncio.StartUnixServer(
                                      (fun reader writer ->
                                          task {
                                              let! line = reader.ReadLineBytesAsync()
                                              writer.Write(ReadOnlySpan(Array.append (b "hello ") line))
                                              do! writer.DrainAsync()
                                              writer.Close()
                                          }
                                          :> Task),
                                      path
                                  )

                              let! (reader, writer) = Asyncio.OpenUnixConnection path
                              writer.Write(ReadOnlySpan(b "unix\n"))
                              let! all = reader.ReadAsync()
                              writer.Close()
                              do! writer.WaitClosedAsync()
                              server.Close()
                              do! server.WaitClosedAsync()
                              return str all
                          })
                  finally
                      if IO.File.Exists path then IO.File.Delete path

              Expect.equal got "hello unix\n" "round trip over a Unix socket")

          testCase "a writer that awaits drain keeps its buffer bounded against a peer that does not read; close delivers all before FIN" (fun () ->
              use loop = new EventLoop()
              withTimeout loop 30.0
              let total = 8 * 1024 * 1024

              let maxBuffer, received =
                  runMain loop (fun () ->
                      task {
                          let serverSide = loop.CreateFuture<LoopStreamReader * LoopStreamWriter>()

                          let! server =
                              Asyncio.StartServer(
                                  (fun reader writer ->
                                      serverSide.SetResult((reader, writer))
                                      Task.CompletedTask),
                                  "127.0.0.1",
                                  0
                              )

                          let port = (server.Sockets[0].LocalEndPoint :?> Net.IPEndPoint).Port
                          let! (_, writer) = Asyncio.OpenConnection("127.0.0.1", port)
                          let! (peer, peerWriter) = serverSide
                          let chunk = Array.create (16 * 1024) 7uy
                          let mutable maxBuffer = 0
                          let mutable sent = 0

                          // The peer reads nothing for a while: drain must hold the writer.
                          let writing =
                              loop.CreateTask(fun () ->
                                  task {
                                      while sent < total do
                                          writer.Write(ReadOnlySpan chunk)
                                          sent <- sent + chunk.Length
                                          maxBuffer <- max maxBuffer (writer.Transport.GetWriteBufferSize())
                                          do! writer.DrainAsync()

                                      writer.Close()
                                  }
                                  :> Task)

                          do! sleep 0.3
                          let! all = peer.ReadAsync() // now read everything, to EOF
                          let! _ = writing
                          peerWriter.Close() // the server's side of the connection, half-open after EOF
                          server.Close()
                          do! server.WaitClosedAsync()
                          return maxBuffer, all.Length
                      })

              let (_, high) = (64 * 1024 / 4, 64 * 1024)
              Expect.isLessThanOrEqual maxBuffer (high + 16 * 1024) "never past the high-water mark plus one write"
              Expect.equal received total "every byte reached the peer before EOF") ]
