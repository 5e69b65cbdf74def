/// CancellationToken on every I/O wait (issue 14.1): stream reads, drain, wait-closed. Each is cancelled before (fails at
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
