/// CancellationToken on every I/O wait (issue 14.1): stream reads, drain, wait-closed, connect, accept,
/// the sock_* functions, serve-forever and a server's wait-closed. Each is cancelled before (fails at
/// once, no effect), during (the wait is cancelled on the loop: an OperationCanceledException carrying
/// the token, and what CPython 3.11 leaves behind when that await is cancelled), and racing with
/// completion (what came first wins; nothing is lost or given twice). CPython's behaviour was printed by
/// python3 3.11.7 running the small scripts quoted beside each case. Reader, drain and wait-closed cases
/// run on a virtual clock (no sleep); socket cases on loopback, port 0, behind the hygiene gate.
module Tulip.Tests.IoTokenTests

open System
open System.Net
open System.Net.Sockets
open System.Reflection
open System.Text
open System.Threading
open System.Threading.Tasks
open Expecto
open Tulip
open Tulip.Tests.ShellSupport
open Tulip.Tests.NetSupport

let private b (s: string) = Encoding.ASCII.GetBytes s
let private str (bytes: byte[]) = Encoding.ASCII.GetString bytes

/// The outcome of an operation: its value, or the cancellation it ended with.
let private outcome (op: unit -> Task<'T>) =
    task {
        try
            let! v = op ()
            return Choice1Of2 v
        with :? OperationCanceledException as e ->
            return Choice2Of2 e
    }

let private outcomeUnit (op: unit -> Task) = outcome (fun () -> task { do! op () })

let private expectCancelledBy (token: CancellationToken) (what: string) (result: Choice<'T, OperationCanceledException>) =
    match result with
    | Choice1Of2 v -> failtestf "%s: expected a cancellation, it completed with %A" what v
    | Choice2Of2 e -> Expect.equal e.CancellationToken token $"{what}: the OperationCanceledException carries the token"

let private expectValue (expected: 'T) (what: string) (result: Choice<'T, OperationCanceledException>) =
    match result with
    | Choice1Of2 v -> Expect.equal v expected what
    | Choice2Of2 e -> failtestf "%s: expected %A, it was cancelled (%s)" what expected e.Message

let private cancelled () =
    let cts = new CancellationTokenSource()
    cts.Cancel()
    cts

/// Cancels from a thread-pool thread (as CancelAfter's timer does); the cancel reaches the loop as a post.
let private cancelElsewhere (cts: CancellationTokenSource) = Task.Run(fun () -> cts.Cancel())

// -------------------------------------------------------------------------------------------------
// LoopStreamReader: every read

/// A read, with what makes it wait (Partial fed first) and what completes it (Rest, then EOF if Eof).
type private ReadOp =
    { Name: string
      Partial: string
      Rest: string
      Eof: bool
      Expected: string
      Run: LoopStreamReader -> CancellationToken -> Task<string> }

let private firstOf (e: Collections.Generic.IAsyncEnumerator<'T>) (show: 'T -> string) =
    task {
        let! more = e.MoveNextAsync()
        return if more then show e.Current else "<end>"
    }

let private readOps: ReadOp list =
    let op name partial rest eof expected run =
        { Name = name; Partial = partial; Rest = rest; Eof = eof; Expected = expected; Run = run }

    [ op "ReadAsync(16)" "" "xy" false "xy" (fun r t -> task { let! v = r.ReadAsync(16, t) in return str v })
      op "ReadAsync(-1)" "ab" "cd" true "abcd" (fun r t -> task { let! v = r.ReadAsync(-1, t) in return str v })
      op "ReadIntoAsync" "" "xy" false "xy" (fun r t ->
          task {
              let buf = Array.zeroCreate<byte> 16
              let! n = r.ReadIntoAsync(buf.AsMemory(), t)
              return Encoding.ASCII.GetString(buf, 0, n)
          })
      op "ReadExactlyAsync(4)" "ab" "cd" false "abcd" (fun r t -> task { let! v = r.ReadExactlyAsync(4, t) in return str v })
      op "ReadLineBytesAsync" "ab" "c\n" false "abc\n" (fun r t -> task { let! v = r.ReadLineBytesAsync(t) in return str v })
      op "ReadLineAsync" "ab" "c\n" false "abc" (fun r t -> task { let! v = r.ReadLineAsync(cancellationToken = t) in return v })
      op "ReadUntilAsync(separator)" "ab" "c!" false "abc!" (fun r t ->
          task { let! v = r.ReadUntilAsync(ReadOnlyMemory(b "!"), t) in return str v })
      op "ReadUntilAsync(separators[])" "ab" "c?" false "abc?" (fun r t ->
          task { let! v = r.ReadUntilAsync([| ReadOnlyMemory(b "!"); ReadOnlyMemory(b "?") |], t) in return str v })
      op "ReadChunksAsync" "" "xy" false "xy" (fun r t -> firstOf (r.ReadChunksAsync(16, t).GetAsyncEnumerator()) str)
      op "ReadLinesAsync" "ab" "c\n" false "abc" (fun r t -> firstOf (r.ReadLinesAsync(cancellationToken = t).GetAsyncEnumerator()) id)
      op "ReadLinesAsync().WithCancellation" "ab" "c\n" false "abc" (fun r t -> firstOf (r.ReadLinesAsync().GetAsyncEnumerator(t)) id)
      op "ReadLinesAsBytesAsync" "ab" "c\n" false "abc\n" (fun r t -> firstOf (r.ReadLinesAsBytesAsync(t).GetAsyncEnumerator()) str) ]

let private feed (r: LoopStreamReader) (s: string) =
    if s <> "" then r.FeedData(ReadOnlySpan(b s))

let private readerCase (op: ReadOp) (body: EventLoop -> LoopStreamReader -> Task<unit>) =
    use loop = newLoop ()
    let errors = collectErrors loop
    let r = LoopStreamReader(loop)
    runMain loop (fun () -> body loop r)
    Expect.isEmpty errors $"{op.Name}: no exception-handler call"

let private readerTests (op: ReadOp) =
    testList
        op.Name
        [ yield testCase "before: a cancelled token fails at once and consumes nothing" (fun () ->
              readerCase op (fun _ r ->
                  task {
                      feed r (op.Partial + op.Rest)
                      if op.Eof then r.FeedEof()
                      use cts = cancelled ()
                      let! res = outcome (fun () -> op.Run r cts.Token)
                      expectCancelledBy cts.Token op.Name res
                      Expect.equal (str (r.Peek())) (op.Partial + op.Rest) "nothing consumed"
                      let! v = op.Run r CancellationToken.None
                      Expect.equal v op.Expected "the data is all there for the next read"
                  }))

          for fromThread in [ false; true ] do
              yield testCase
                  (if fromThread then "during, the token fired on another thread: the wait is cancelled on the loop, the buffered bytes stay"
                   else "during, the token fired on the loop: the wait is cancelled, the buffered bytes stay (3.11: readexactly/readline/readuntil keep _buffer)")
                  (fun () ->
                      readerCase op (fun _ r ->
                          task {
                              // python3: r.feed_data(b"abc"); t = ensure_future(r.readexactly(5)); ...; t.cancel()
                              //   -> bytes(r._buffer) == b"abc" (likewise readline, readuntil; read(-1): b"", see below)
                              feed r op.Partial
                              use cts = new CancellationTokenSource()
                              let pending = op.Run r cts.Token
                              do! yieldTick ()
                              Expect.isFalse pending.IsCompleted "the read waits for data"
                              if fromThread then do! cancelElsewhere cts else cts.Cancel()
                              let! res = outcome (fun () -> pending)
                              expectCancelledBy cts.Token op.Name res
                              // read(-1) puts back what it had read (3.11 loses it: a cancelled read() leaves b"").
                              Expect.equal (str (r.Peek())) op.Partial "the bytes buffered before the wait are still in the reader"
                              feed r op.Rest
                              if op.Eof then r.FeedEof()
                              let! v = op.Run r CancellationToken.None
                              Expect.equal v op.Expected "the next read gets everything"
                          }))

          yield testCase "racing, data first: the read completes with it" (fun () ->
              readerCase op (fun _ r ->
                  task {
                      feed r op.Partial
                      use cts = new CancellationTokenSource()
                      let pending = op.Run r cts.Token
                      do! yieldTick ()
                      feed r op.Rest
                      if op.Eof then r.FeedEof()
                      cts.Cancel() // reaches a waiter already woken: nothing to cancel
                      let! res = outcome (fun () -> pending)
                      expectValue op.Expected "data that came first is returned" res
                      Expect.equal r.BufferedCount 0 "and consumed once"
                  }))

          yield testCase "racing, cancel first: the read is cancelled and the data that came after stays" (fun () ->
              readerCase op (fun _ r ->
                  task {
                      feed r op.Partial
                      use cts = new CancellationTokenSource()
                      let pending = op.Run r cts.Token
                      do! yieldTick ()
                      cts.Cancel()
                      feed r op.Rest
                      if op.Eof then r.FeedEof()
                      let! res = outcome (fun () -> pending)
                      expectCancelledBy cts.Token op.Name res
                      Expect.equal (str (r.Peek())) (op.Partial + op.Rest) "nothing lost"
                      let! v = op.Run r CancellationToken.None
                      Expect.equal v op.Expected "the next read gets it"
                  })) ]

// -------------------------------------------------------------------------------------------------
// LoopStreamWriter: drain and wait-closed (virtual time, a transport that only records)

type private FakeTransport() =
    member val Closing = false with get, set

    interface ITransport with
        member _.Write(_data) = ()
        member _.WriteLines(_lines) = ()
        member _.WriteEof() = ()
        member _.CanWriteEof() = true
        member _.Abort() = ()
        member _.IsReading = true
        member _.PauseReading() = ()
        member _.ResumeReading() = ()
        member _.SetWriteBufferLimits(_high, _low) = ()
        member _.GetWriteBufferSize() = 0
        member _.GetWriteBufferLimits() = (0, 0)
        member t.Close() = t.Closing <- true
        member t.IsClosing = t.Closing
        member _.GetExtraInfo(_name, defaultValue) = defaultValue

        member _.Protocol
            with get () = null
            and set _ = ()

let private writerCase (body: EventLoop -> StreamReaderProtocol -> LoopStreamWriter -> Task<unit>) =
    use loop = newLoop ()
    let errors = collectErrors loop
    let t = FakeTransport()
    let r = LoopStreamReader(loop)
    let p = StreamReaderProtocol(r, null, loop)
    p.ConnectionMade t
    let w = LoopStreamWriter(t, p, r, loop)
    runMain loop (fun () -> body loop p w)
    Expect.isEmpty errors "no exception-handler call"

let private writerTests =
    testList
        "LoopStreamWriter"
        [ testCase "DrainAsync before: fails at once, paused or not" (fun () ->
              writerCase (fun _ p w ->
                  task {
                      use cts = cancelled ()
                      let! r1 = outcomeUnit (fun () -> w.DrainAsync(cts.Token).AsTask())
                      expectCancelledBy cts.Token "drain, not paused" r1
                      p.PauseWriting()
                      let! r2 = outcomeUnit (fun () -> w.DrainAsync(cts.Token).AsTask())
                      expectCancelledBy cts.Token "drain, paused" r2
                      p.ResumeWriting()
                  }))

          testCase "DrainAsync during: the wait is cancelled (on the loop, or from another thread); no waiter is left (3.11: drain waiters 0 after a cancelled drain)" (fun () ->
              writerCase (fun _ p w ->
                  task {
                      // python3: cw.write(b"y" * 32 MiB); cancel drain() -> bytes still buffered, no drain waiter left
                      p.PauseWriting()
                      use cts = new CancellationTokenSource()
                      let pending = w.DrainAsync(cts.Token).AsTask()
                      do! yieldTick ()
                      Expect.isFalse pending.IsCompleted "waits while paused"
                      cts.Cancel()
                      let! res = outcomeUnit (fun () -> pending)
                      expectCancelledBy cts.Token "drain" res
                      use cts2 = new CancellationTokenSource()
                      let pending2 = w.DrainAsync(cts2.Token).AsTask()
                      do! yieldTick ()
                      do! cancelElsewhere cts2
                      let! res2 = outcomeUnit (fun () -> pending2)
                      expectCancelledBy cts2.Token "drain, token fired on another thread" res2
                      let next = w.DrainAsync().AsTask()
                      do! yieldTick ()
                      p.ResumeWriting()
                      do! next
                  }))

          testCase "DrainAsync racing: resumed first, the drain completes" (fun () ->
              writerCase (fun _ p w ->
                  task {
                      p.PauseWriting()
                      use cts = new CancellationTokenSource()
                      let pending = w.DrainAsync(cts.Token).AsTask()
                      do! yieldTick ()
                      p.ResumeWriting()
                      cts.Cancel()
                      let! res = outcome (fun () -> task { do! pending })
                      expectValue () "resumed first: completed" res
                  }))

          testCase "WaitClosedAsync: before fails at once; during, only this wait ends and the close is still there for the next waiter (3.11 spoils it: a second wait_closed raises CancelledError)" (fun () ->
              writerCase (fun _ p w ->
                  task {
                      // python3: cancel cw.wait_closed() -> cw._protocol._closed is <Future cancelled>;
                      //   after the close, await cw.wait_closed() -> CancelledError
                      use before = cancelled ()
                      let! r0 = outcomeUnit (fun () -> w.WaitClosedAsync(before.Token))
                      expectCancelledBy before.Token "wait-closed, before" r0
                      use cts = new CancellationTokenSource()
                      let pending = w.WaitClosedAsync(cts.Token)
                      do! yieldTick ()
                      Expect.isFalse pending.IsCompleted "waits for the close"
                      cts.Cancel()
                      let! res = outcomeUnit (fun () -> pending)
                      expectCancelledBy cts.Token "wait-closed" res
                      use cts2 = new CancellationTokenSource()
                      let racing = w.WaitClosedAsync(cts2.Token)
                      let plain = w.WaitClosedAsync()
                      do! yieldTick ()
                      p.ConnectionLost null
                      cts2.Cancel() // racing: the close came first
                      let! r2 = outcome (fun () -> task { do! racing })
                      expectValue () "closed first: the wait completes" r2
                      do! plain
                      do! w.WaitClosedAsync()
                  })) ]

// -------------------------------------------------------------------------------------------------
// Registrations: one per wait, disposed when the wait ends; none on the fast path

/// The callbacks registered on a CancellationTokenSource and not yet disposed. .NET keeps them in a
/// linked list, `_registrations.Callbacks` (CancellationTokenSource.Registrations, made on the first
/// Register); a disposed registration's node leaves that list for the free list. So: null
/// `_registrations` = never registered; null `Callbacks` = every registration disposed. The probe is
/// checked against a registration of its own first, so a runtime that renames the fields fails loudly
/// here instead of passing vacuously.
let private liveRegistrations (cts: CancellationTokenSource) =
    let flags = BindingFlags.NonPublic ||| BindingFlags.Public ||| BindingFlags.Instance
    let field = typeof<CancellationTokenSource>.GetField("_registrations", flags)
    if isNull field then failtest "CancellationTokenSource._registrations not found (runtime changed?)"

    match field.GetValue cts with
    | null -> None
    | regs ->
        let callbacks = regs.GetType().GetField("Callbacks", flags)
        if isNull callbacks then failtest "Registrations.Callbacks not found (runtime changed?)"
        Some(not (isNull (callbacks.GetValue regs)))

let private registrationTests =
    testList
        "registrations"
        [ testCase "a long-lived token over 1000 reads, drains and wait-closed that waited: no registration left" (fun () ->
              use cts = new CancellationTokenSource()
              // The probe sees a live registration, and its disposal.
              let own = cts.Token.Register(fun () -> ())
              Expect.equal (liveRegistrations cts) (Some true) "probe: a live registration is seen"
              own.Dispose()
              Expect.equal (liveRegistrations cts) (Some false) "probe: a disposed one is not"

              writerCase (fun loop p w ->
                  task {
                      let r = LoopStreamReader(loop)

                      for _ in 1..1000 do
                          let pending = r.ReadAsync(16, cts.Token)
                          do! yieldTick ()
                          r.FeedData(ReadOnlySpan(b "x"))
                          let! v = pending
                          Expect.equal v.Length 1 "read"

                      for _ in 1..100 do
                          p.PauseWriting()
                          let pending = w.DrainAsync(cts.Token)
                          do! yieldTick ()
                          p.ResumeWriting()
                          do! pending

                      let waiting = [ for _ in 1..100 -> w.WaitClosedAsync(cts.Token) ]
                      do! yieldTick ()
                      Expect.equal (liveRegistrations cts) (Some true) "the 100 waiting wait-closed calls are registered"
                      p.ConnectionLost null

                      for pending in waiting do
                          do! pending
                  })

              Expect.equal (liveRegistrations cts) (Some false) "every registration was disposed when its wait ended")

          testCase "the fast path registers nothing: reads of buffered data, a drain that need not wait" (fun () ->
              use cts = new CancellationTokenSource()

              writerCase (fun loop _ w ->
                  task {
                      let r = LoopStreamReader(loop)
                      r.FeedData(ReadOnlySpan(b (String.replicate 300 "line\n")))

                      for _ in 1..100 do
                          let! _ = r.ReadLineBytesAsync(cts.Token)
                          let! _ = r.ReadExactlyAsync(2, cts.Token)
                          let! _ = r.ReadAsync(1, cts.Token)
                          ()

                      do! w.DrainAsync(cts.Token)
                  })

              Expect.equal (liveRegistrations cts) None "the token was never registered with") ]

[<Tests>]
let virtualTests =
    testList "I/O tokens (virtual time)" [ testList "LoopStreamReader" [ for op in readOps -> readerTests op ]; writerTests; registrationTests ]

// -------------------------------------------------------------------------------------------------
// Sockets on loopback: the sock_* functions, connect, servers

/// A connected TCP pair of non-blocking raw sockets the test owns (the gate checks they are closed).
let private tcpPair (net: Net) =
    use listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)
    listener.Bind(IPEndPoint(IPAddress.Loopback, 0))
    listener.Listen 1
    let a = net.Own(new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
    a.Connect(listener.LocalEndPoint)
    let peer = net.Own(listener.Accept())
    a.Blocking <- false
    peer.Blocking <- false
    a, peer

/// A listener whose backlog is full (listen(0) and one connection never accepted): a further connect to
/// it stays in progress (the SYN is dropped), so a test can cancel a connect while it waits.
let private fullListener (net: Net) =
    let listener = net.Own(new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
    listener.Bind(IPEndPoint(IPAddress.Loopback, 0))
    listener.Listen 0
    let filler = net.Own(new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
    filler.Connect(listener.LocalEndPoint)

    { new IDisposable with
        member _.Dispose() =
            filler.Dispose()
            listener.Dispose() },
    (listener.LocalEndPoint :?> IPEndPoint)

let private newTcp (net: Net) =
    net.Own(new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp, Blocking = false))

/// The readiness future of a cancelled sock_* call frees its slot in its done callback, a tick later.
let private settleTicks () =
    task {
        do! yieldTick ()
        do! yieldTick ()
    }

let private sockCases: NetCase list =
    [ netCase "SockRecvAsync / SockRecvIntoAsync: before takes nothing; during removes the reader (3.11: remove_reader(sock) -> False after a cancelled sock_recv)"
      <| fun net ->
          task {
              // python3: t = ensure_future(loop.sock_recv(a, 10)); ...; t.cancel(); loop.remove_reader(a) -> False
              let loop = net.Loop
              let a, peer = tcpPair net
              peer.Send(b "hi") |> ignore
              do! poll (fun () -> a.Available = 2)
              use before = cancelled ()
              let! r0 = outcome (fun () -> loop.SockRecvAsync(a, 16, before.Token))
              expectCancelledBy before.Token "sock_recv, before" r0
              let! r1 = outcome (fun () -> loop.SockRecvIntoAsync(a, Memory(Array.zeroCreate 16), before.Token))
              expectCancelledBy before.Token "sock_recv_into, before" r1
              Expect.equal a.Available 2 "nothing received"
              let! hi = loop.SockRecvAsync(a, 16)
              Expect.equal (str hi) "hi" "the data is there for the next call"

              use cts = new CancellationTokenSource()
              let pending = loop.SockRecvAsync(a, 16, cts.Token)
              do! yieldTick ()
              Expect.isFalse pending.IsCompleted "waits for data"
              cts.Cancel()
              let! r2 = outcome (fun () -> pending)
              expectCancelledBy cts.Token "sock_recv, during" r2
              do! settleTicks ()
              Expect.isFalse (loop.RemoveReader a) "no reader is left on the socket"

              use cts2 = new CancellationTokenSource()
              let buf = Array.zeroCreate<byte> 16
              let pending2 = loop.SockRecvIntoAsync(a, Memory buf, cts2.Token)
              do! yieldTick ()
              do! cancelElsewhere cts2
              let! r3 = outcome (fun () -> pending2)
              expectCancelledBy cts2.Token "sock_recv_into, during (token fired on another thread)" r3
              do! settleTicks ()
              Expect.isFalse (loop.RemoveReader a) "no reader is left on the socket"
              peer.Send(b "z") |> ignore
              let! z = loop.SockRecvAsync(a, 16)
              Expect.equal (str z) "z" "a later call gets the bytes"
              a.Dispose()
              peer.Dispose()
          }

      netCase "SockRecvAsync racing with data (30 rounds, data sent then the token fired on another thread): the bytes come once, from the call or the next"
      <| fun net ->
          task {
              let loop = net.Loop
              let a, peer = tcpPair net
              let mutable completed = 0

              for i in 1..30 do
                  use cts = new CancellationTokenSource()
                  let pending = loop.SockRecvAsync(a, 16, cts.Token)
                  do! yieldTick ()

                  let racer =
                      Task.Run(fun () ->
                          peer.Send([| byte i |]) |> ignore
                          cts.Cancel())

                  let! res = outcome (fun () -> pending)
                  do! racer

                  match res with
                  | Choice1Of2 got ->
                      completed <- completed + 1
                      Expect.equal got [| byte i |] "completed with this round's byte"
                  | Choice2Of2 e ->
                      Expect.equal e.CancellationToken cts.Token "cancelled by the token"
                      let! got = loop.SockRecvAsync(a, 16)
                      Expect.equal got [| byte i |] "cancelled: the byte is there for the next call"

              do! settleTicks ()
              Expect.isFalse (loop.RemoveReader a) "no reader left"
              a.Dispose()
              peer.Dispose()
          }

      netCase "SockSendAllAsync: before sends nothing; during (peer not reading) removes the writer (3.11: remove_writer -> False after a cancelled sock_sendall)"
      <| fun net ->
          task {
              let loop = net.Loop
              let a, peer = tcpPair net
              use before = cancelled ()
              let! r0 = outcomeUnit (fun () -> loop.SockSendAllAsync(a, ReadOnlyMemory(b "lost"), before.Token))
              expectCancelledBy before.Token "sock_sendall, before" r0
              use cts = new CancellationTokenSource()
              let pending = loop.SockSendAllAsync(a, ReadOnlyMemory(Array.zeroCreate<byte> (32 * MiB)), cts.Token)
              do! yieldTick ()
              Expect.isFalse pending.IsCompleted "waits: the peer reads nothing"
              cts.Cancel()
              let! r1 = outcome (fun () -> task { do! pending })
              expectCancelledBy cts.Token "sock_sendall, during" r1
              do! settleTicks ()
              Expect.isFalse (loop.RemoveWriter a) "no writer is left on the socket"
              // Nothing of the cancelled-before call was sent: the first bytes the peer gets are zeros.
              let first = Array.zeroCreate<byte> 4
              peer.Blocking <- true
              let n = peer.Receive first
              Expect.isGreaterThan n 0 "the peer gets bytes"
              Expect.equal first[0] 0uy "the first byte is the second call's, not 'l' of the cancelled one"
              a.Dispose()
              peer.Dispose()
          }

      netCase "SockAcceptAsync: before accepts nothing; during removes the reader (3.11: remove_reader(listener) -> False); racing connections are accepted once"
      <| fun net ->
          task {
              let loop = net.Loop
              let listener = net.Own(new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
              listener.Bind(IPEndPoint(IPAddress.Loopback, 0))
              listener.Listen 16
              listener.Blocking <- false
              let client = net.Own(new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
              client.Connect(listener.LocalEndPoint)
              use before = cancelled ()
              let! r0 = outcome (fun () -> loop.SockAcceptAsync(listener, before.Token))
              expectCancelledBy before.Token "sock_accept, before" r0
              let! struct (c0, _) = task { let! (c, a) = loop.SockAcceptAsync(listener) in return struct (c, a) }
              net.Own c0 |> ignore
              c0.Dispose()
              client.Dispose()

              use cts = new CancellationTokenSource()
              let pending = loop.SockAcceptAsync(listener, cts.Token)
              do! yieldTick ()
              Expect.isFalse pending.IsCompleted "waits for a connection"
              cts.Cancel()
              let! r1 = outcome (fun () -> pending)
              expectCancelledBy cts.Token "sock_accept, during" r1
              do! settleTicks ()
              Expect.isFalse (loop.RemoveReader listener) "no reader is left on the listener"

              for _ in 1..10 do
                  use racing = new CancellationTokenSource()
                  let pending = loop.SockAcceptAsync(listener, racing.Token)
                  do! yieldTick ()
                  let peer = net.Own(new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
                  let racer = Task.Run(fun () -> peer.Connect(listener.LocalEndPoint); racing.Cancel())
                  let! res = outcome (fun () -> task { let! (c, _) = pending in return c })
                  do! racer

                  let! conn =
                      match res with
                      | Choice1Of2 c -> Task.FromResult c
                      | Choice2Of2 e ->
                          Expect.equal e.CancellationToken racing.Token "cancelled by the token"
                          task { let! (c, _) = loop.SockAcceptAsync(listener) in return c }

                  net.Own conn |> ignore
                  conn.Dispose()
                  peer.Dispose()

              do! settleTicks ()
              Expect.isFalse (loop.RemoveReader listener) "no reader left"
              listener.Dispose()
          }

      netCase "SockConnectAsync: before connects nothing; during removes the writer and leaves the socket open, the caller's (3.11: remove_writer -> False, fileno() != -1)"
      <| fun net ->
          task {
              // python3: s = socket(); s.setblocking(False); cancel loop.sock_connect(s, addr)
              //   -> loop.remove_writer(s) False, s.fileno() == -1 False
              let loop = net.Loop
              let listener, endpoint = fullListener net
              let s0 = newTcp net
              use before = cancelled ()
              let! r0 = outcomeUnit (fun () -> loop.SockConnectAsync(s0, endpoint, before.Token))
              expectCancelledBy before.Token "sock_connect, before" r0
              Expect.isFalse s0.Connected "no connection attempted"
              let s = newTcp net
              use cts = new CancellationTokenSource()
              let pending = loop.SockConnectAsync(s, endpoint, cts.Token)
              do! yieldTick ()
              Expect.isFalse pending.IsCompleted "waits: the listener's backlog is full"
              do! cancelElsewhere cts
              let! r1 = outcome (fun () -> task { do! pending })
              expectCancelledBy cts.Token "sock_connect, during" r1
              do! settleTicks ()
              Expect.isFalse (loop.RemoveWriter s) "no writer is left on the socket"
              Expect.isFalse s.SafeHandle.IsClosed "the socket is the caller's: left open"
              s.Dispose()
              s0.Dispose()
              listener.Dispose()
          } ]

let private connectCases: NetCase list =
    [ netCase "CreateConnectionAsync / OpenConnection: before attempts no connection; during closes and unregisters the half-open socket (3.11: no selector entry left after a cancelled create_connection)"
      <| fun net ->
          task {
              // python3: cancel loop.create_connection(Protocol, host, port) while connecting
              //   -> len(loop._selector.get_map()) unchanged
              let loop = net.Loop
              let! server, accepted = net.Serve ignore
              let port = portOf server
              let baseline = net.ReactorCount
              use before = cancelled ()
              let! r0 = outcome (fun () -> task { let! _ = loop.CreateConnectionAsync(Func<Recorder>(fun () -> net.Recorder()), loopback, port, cancellationToken = before.Token) in return () })
              expectCancelledBy before.Token "create_connection, before" r0
              let! r1 = outcome (fun () -> task { let! _ = Asyncio.OpenConnection(loopback, port, cancellationToken = before.Token) in return () })
              expectCancelledBy before.Token "open_connection, before" r1
              do! Asyncio.Sleep 0.05
              Expect.equal accepted.Count 0 "the server saw no connection"
              Expect.equal net.ReactorCount baseline "nothing registered"

              let listener, endpoint = fullListener net
              use cts = new CancellationTokenSource()
              let pending = loop.CreateConnectionAsync(Func<Recorder>(fun () -> net.Recorder()), loopback, endpoint.Port, cancellationToken = cts.Token)
              do! yieldTick ()
              Expect.isFalse pending.IsCompleted "waits: the backlog is full"
              Expect.equal net.ReactorCount (baseline + 1) "the half-open socket is watched"
              cts.Cancel()
              let! r2 = outcome (fun () -> task { let! _ = pending in return () })
              expectCancelledBy cts.Token "create_connection, during" r2
              Expect.equal net.ReactorCount baseline "the half-open socket is unregistered"

              use cts2 = new CancellationTokenSource()
              let pending2 = Asyncio.OpenConnection(loopback, endpoint.Port, cancellationToken = cts2.Token)
              do! yieldTick ()
              do! cancelElsewhere cts2
              let! r3 = outcome (fun () -> task { let! _ = pending2 in return () })
              expectCancelledBy cts2.Token "open_connection, during (token fired on another thread)" r3
              Expect.equal net.ReactorCount baseline "unregistered"
              listener.Dispose()
              server.Close()
              do! server.WaitClosedAsync()
          }

      netCase "CreateConnectionAsync racing with the connect (20 rounds, token fired on another thread): connected and working, or cancelled with nothing left"
      <| fun net ->
          task {
              let loop = net.Loop
              let! server, accepted = net.Serve(fun r -> r.Echo <- true)
              let port = portOf server
              let baseline = net.ReactorCount
              let mutable connected = 0

              for _ in 1..20 do
                  use cts = new CancellationTokenSource()
                  let pending = loop.CreateConnectionAsync(Func<Recorder>(fun () -> net.Recorder()), loopback, port, cancellationToken = cts.Token)
                  let racer = cancelElsewhere cts
                  let! res = outcome (fun () -> task { let! struct (t, p) = pending in return (t, p) })
                  do! racer

                  match res with
                  | Choice1Of2(t, p) ->
                      connected <- connected + 1
                      net.TrackTransport t
                      Expect.isTrue p.IsMade "connected: ConnectionMade ran"
                      t.Abort()
                  | Choice2Of2 e -> Expect.equal e.CancellationToken cts.Token "cancelled by the token"

                  do! Asyncio.Sleep 0.01
                  do! poll (fun () -> net.ReactorCount <= baseline + accepted.Count - (accepted |> Seq.filter (fun r -> r.IsLost) |> Seq.length))

              do! poll (fun () -> server.ActiveConnections = 0)
              Expect.equal net.ReactorCount baseline "every cancelled or aborted client socket is gone"
              server.Close()
              do! server.WaitClosedAsync()
          }

      netCase "pre-cancelled StartServer, CreateServerAsync(socket), CreateDatagramEndpointAsync, CreateConnectionAsync(socket): fail at once, nothing made"
      <| fun net ->
          task {
              let loop = net.Loop
              use before = cancelled ()
              let cb = Func<LoopStreamReader, LoopStreamWriter, Task>(fun _ _ -> Task.CompletedTask)
              let! r0 = outcome (fun () -> Asyncio.StartServer(cb, loopback, 0, cancellationToken = before.Token))
              expectCancelledBy before.Token "start_server" r0
              let! r1 = outcome (fun () -> loop.CreateServerAsync(Func<BaseProtocol>(fun () -> net.Recorder()), loopback, 0, cancellationToken = before.Token))
              expectCancelledBy before.Token "create_server" r1
              let sock = net.Own(new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
              sock.Bind(IPEndPoint(IPAddress.Loopback, 0))
              let! r2 = outcome (fun () -> loop.CreateServerAsync(Func<BaseProtocol>(fun () -> net.Recorder()), sock, cancellationToken = before.Token))
              expectCancelledBy before.Token "create_server(sock)" r2
              let! r3 =
                  outcome (fun () ->
                      task {
                          let! _ = loop.CreateDatagramEndpointAsync(Func<DatagramProtocol>(fun () -> net.DatagramRecorder()), IPEndPoint(IPAddress.Loopback, 0), cancellationToken = before.Token)
                          return ()
                      })
              expectCancelledBy before.Token "create_datagram_endpoint" r3
              let a, peer = tcpPair net
              let! r4 = outcome (fun () -> task { let! _ = loop.CreateConnectionAsync(Func<Recorder>(fun () -> net.Recorder()), a, before.Token) in return () })
              expectCancelledBy before.Token "create_connection(sock)" r4
              Expect.isFalse a.SafeHandle.IsClosed "the caller's socket is left alone"
              Expect.equal net.ReactorCount 0 "nothing registered"
              sock.Dispose()
              a.Dispose()
              peer.Dispose()
          }

      netCase "Unix: pre-cancelled StartUnixServer makes no socket file; OpenUnixConnection / CreateUnixConnectionAsync fail at once"
      <| fun net ->
          task {
              let loop = net.Loop
              let dir = IO.Directory.CreateTempSubdirectory "tulip-tok-"

              try
                  let path = IO.Path.Combine(dir.FullName, "s.sock")
                  use before = cancelled ()
                  let cb = Func<LoopStreamReader, LoopStreamWriter, Task>(fun _ _ -> Task.CompletedTask)
                  let! r0 = outcome (fun () -> Asyncio.StartUnixServer(cb, path, cancellationToken = before.Token))
                  expectCancelledBy before.Token "start_unix_server" r0
                  let! r1 = outcome (fun () -> loop.CreateUnixServerAsync(Func<BaseProtocol>(fun () -> net.Recorder()), path, cancellationToken = before.Token))
                  expectCancelledBy before.Token "create_unix_server" r1
                  Expect.isFalse (IO.File.Exists path) "no socket file made"
                  let! server = Asyncio.StartUnixServer(cb, path)
                  net.Track server |> ignore
                  let! r2 = outcome (fun () -> task { let! _ = Asyncio.OpenUnixConnection(path, cancellationToken = before.Token) in return () })
                  expectCancelledBy before.Token "open_unix_connection" r2
                  let! r3 = outcome (fun () -> task { let! _ = loop.CreateUnixConnectionAsync(Func<Recorder>(fun () -> net.Recorder()), path, before.Token) in return () })
                  expectCancelledBy before.Token "create_unix_connection" r3
                  do! Asyncio.Sleep 0.05
                  Expect.equal server.ActiveConnections 0 "no connection was attempted"
                  server.Close()
                  do! server.WaitClosedAsync()
              finally
                  dir.Delete true
          } ]

let private streamCases: NetCase list =
    [ netCase "LoopStreamReader over TCP: ReadLineAsync with CancelAfter(100 ms) ends cancelled with the partial line kept; the rest completes it"
      <| fun net ->
          task {
              let sides = net.Loop.CreateFuture<LoopStreamReader * LoopStreamWriter>()
              let release = net.Loop.CreateFuture<unit>()

              let! server =
                  Asyncio.StartServer(
                      (fun r w ->
                          task {
                              sides.SetResult((r, w))
                              let! () = release
                              w.Close()
                          }
                          :> Task),
                      loopback,
                      0
                  )

              net.Track server |> ignore
              let! (reader, writer) = Asyncio.OpenConnection(loopback, portOf server)
              let! (_, peerWriter) = sides
              peerWriter.Write(ReadOnlySpan(b "ab"))
              do! poll (fun () -> reader.BufferedCount = 2)
              use cts = new CancellationTokenSource(TimeSpan.FromMilliseconds 100.0)
              let! res = outcome (fun () -> task { let! l = reader.ReadLineAsync(cancellationToken = cts.Token) in return l })
              expectCancelledBy cts.Token "readline over TCP" res
              Expect.equal (str (reader.Peek())) "ab" "the partial line is kept"
              peerWriter.Write(ReadOnlySpan(b "c\n"))
              let! line = reader.ReadLineAsync()
              Expect.equal line "abc" "the next read completes the line"
              writer.Close()
              release.SetResult(())
              do! writer.WaitClosedAsync()
              server.Close()
              do! server.WaitClosedAsync()
          } ]

let private serverCases: NetCase list =
    [ netCase "ServeForeverAsync: before leaves the server as it was; during closes the server (3.11: a cancelled serve_forever leaves is_serving() False, sockets ())"
      <| fun net ->
          task {
              // python3: cancel srv.serve_forever() -> srv.is_serving() False, srv.sockets ()
              let! server, _ = net.Serve(ignore, startServing = false)
              use before = cancelled ()
              let! r0 = outcomeUnit (fun () -> server.ServeForeverAsync(before.Token))
              expectCancelledBy before.Token "serve_forever, before" r0
              Expect.isFalse server.IsServing "not started"
              Expect.isNonEmpty server.Sockets "not closed"
              use cts = new CancellationTokenSource()
              let serving = server.ServeForeverAsync(cts.Token)
              do! yieldTick ()
              Expect.isTrue server.IsServing "serving"
              do! cancelElsewhere cts
              let! r1 = outcomeUnit (fun () -> serving)
              expectCancelledBy cts.Token "serve_forever, during" r1
              Expect.isFalse server.IsServing "closed"
              Expect.isEmpty server.Sockets "no listening socket left"
          }

      netCase "Server.WaitClosedAsync: before fails at once; during ends only the wait, the server serves on (3.11: is_serving() True after a cancelled wait_closed); closed first, the wait completes"
      <| fun net ->
          task {
              // python3: cancel srv.wait_closed() -> srv.is_serving() True
              let! server, accepted = net.Serve ignore
              use before = cancelled ()
              let! r0 = outcomeUnit (fun () -> server.WaitClosedAsync(before.Token))
              expectCancelledBy before.Token "wait_closed, before" r0
              use cts = new CancellationTokenSource()
              let pending = server.WaitClosedAsync(cts.Token)
              do! yieldTick ()
              Expect.isFalse pending.IsCompleted "waits"
              cts.Cancel()
              let! r1 = outcomeUnit (fun () -> pending)
              expectCancelledBy cts.Token "wait_closed, during" r1
              Expect.isTrue server.IsServing "still serving"
              let! client = net.Connect(portOf server, ignore)
              do! waitFor net.Signal (fun () -> accepted.Count = 1 && accepted[0].IsMade)
              use racing = new CancellationTokenSource()
              let last = server.WaitClosedAsync(racing.Token)
              server.Close()
              client.Transport.Close()
              do! waitFor net.Signal (fun () -> accepted[0].IsLost)
              do! poll (fun () -> last.IsCompleted || server.ActiveConnections = 0)
              do! yieldTick ()
              racing.Cancel() // the close came first
              let! r2 = outcome (fun () -> task { do! last })
              expectValue () "closed first: the wait completes" r2
          } ]

[<Tests>]
let netTests = perReactor "I/O tokens (loopback)" (sockCases @ connectCases @ streamCases @ serverCases)
