using System.IO.Pipelines;

namespace Tulip;

/// <summary>
/// A stream connection as System.IO.Pipelines (issue 14.5): <see cref="Input"/> is a
/// <see cref="PipeReader"/> over the <see cref="LoopStreamReader"/>, <see cref="Output"/> a
/// <see cref="PipeWriter"/> over the <see cref="LoopStreamWriter"/>, so Kestrel-style parsers
/// (<c>ReadAsync</c>, <c>ReadResult.Buffer</c> as a <see cref="System.Buffers.ReadOnlySequence{T}"/>,
/// <c>AdvanceTo(consumed, examined)</c>) run on a Tulip connection, in a loop task.
/// <para><b>Back-pressure.</b> <c>Output.FlushAsync</c> hands what was written to the transport and waits
/// for the writer's drain: while the transport's buffer is over its high-water mark (64 KiB) the flush
/// does not complete, so a producer that awaits its flushes keeps memory bounded against a slow peer.
/// <c>Input</c> takes bytes from the stream reader only when <c>ReadAsync</c> is called; what the parser
/// has not asked for stays in the stream reader, which pauses the transport's reading past its limit, so
/// a slow parser slows the peer down through TCP.</para>
/// <para><b>Threads.</b> The pipes are used on the connection's loop (inside its tasks), as the stream
/// reader and writer are; from another thread their reads and flushes fail with
/// <see cref="EventLoopException"/>. Every awaitable member takes a <see cref="CancellationToken"/> (the
/// BCL's pipe API); <c>CancelPendingRead</c> / <c>CancelPendingFlush</c> work as documented for pipes.</para>
/// <para>Disposing completes both pipes (a flush of what <see cref="Output"/> still buffers) and closes the
/// connection once what was written is sent.</para>
/// </summary>
public sealed class LoopPipe : IDuplexPipe, IAsyncDisposable
{
    private readonly LoopDuplexStream _stream;

    /// <summary>Pipes over a connection's reader and writer (any thread may make them; they are used on the loop's).</summary>
    [ThreadSafe]
    public LoopPipe(LoopStreamReader reader, LoopStreamWriter writer)
    {
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(writer);
        _stream = new LoopDuplexStream(reader, writer);
        // leaveOpen: completing a pipe does not close the connection (a parser may complete Input and
        // go on writing); DisposeAsync closes it. The reading side is the BCL's stream adapter: each of
        // its reads is one ReadAsync of the stream reader, and its resumption off the loop touches only
        // the pipe's own buffers. The writing side is Tulip's (LoopPipeWriter: flushes stay on the loop).
        Input = PipeReader.Create(_stream, new StreamPipeReaderOptions(leaveOpen: true));
        Output = new LoopPipeWriter(writer);
    }

    /// <summary>The reading side (fixed; any thread may take it, its reads belong to the loop).</summary>
    public PipeReader Input { [ThreadSafe] get; }

    /// <summary>The writing side (fixed; any thread may take it, its flushes belong to the loop).</summary>
    public PipeWriter Output { [ThreadSafe] get; }

    /// <summary>The stream reader under <see cref="Input"/> (fixed; any thread).</summary>
    [ThreadSafe]
    public LoopStreamReader Reader => _stream.Reader;

    /// <summary>The stream writer under <see cref="Output"/> (fixed; any thread).</summary>
    [ThreadSafe]
    public LoopStreamWriter Writer => _stream.Writer;

    /// <summary>Completes both pipes, flushing what <see cref="Output"/> buffers, then closes the connection and
    /// waits for the close (<see cref="LoopStreamWriter.DisposeAsync"/>). On the loop's thread.</summary>
    public ValueTask DisposeAsync()
    {
        // Loop-bound: refuse another thread before anything changes (the writer's own check).
        _ = Writer.IsClosing;
        return DisposeCoreAsync();
    }

    private async ValueTask DisposeCoreAsync()
    {
        await Input.CompleteAsync();
        try
        {
            await Output.CompleteAsync();
        }
        finally
        {
            await Writer.DisposeAsync();
        }
    }

    public override string ToString() => $"<LoopPipe {Writer.Transport}>";
}
