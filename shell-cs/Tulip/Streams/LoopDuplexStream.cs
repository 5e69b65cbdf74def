namespace Tulip;

/// <summary>
/// A connection's reader and writer as a <see cref="Stream"/>, so BCL APIs (StreamReader, JSON
/// serializers, compression…) can use it from loop tasks. Only the asynchronous members are supported:
/// a synchronous read would block the loop. Loop-affine as its reader and writer, but for the members
/// marked <see cref="ThreadSafeAttribute"/> (fixed answers).
/// </summary>
[method: ThreadSafe]
public sealed class LoopDuplexStream(LoopStreamReader reader, LoopStreamWriter writer) : Stream
{
    /// <summary>The reader (fixed; any thread).</summary>
    [ThreadSafe]
    public LoopStreamReader Reader { get; } = reader ?? throw new ArgumentNullException(nameof(reader));
    /// <summary>The writer (fixed; any thread).</summary>
    [ThreadSafe]
    public LoopStreamWriter Writer { get; } = writer ?? throw new ArgumentNullException(nameof(writer));

    /// <summary>True (a fixed answer; any thread).</summary>
    [ThreadSafe]
    public override bool CanRead => true;
    /// <summary>True (a fixed answer; any thread).</summary>
    [ThreadSafe]
    public override bool CanWrite => true;
    /// <summary>False (a fixed answer; any thread).</summary>
    [ThreadSafe]
    public override bool CanSeek => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    // Every member that takes a token honours it (the Stream contract): a token already cancelled ends
    // the call at once with a cancelled task, consuming and writing nothing; a token that fires while
    // the call waits (for data, or for the drain) ends the wait with OperationCanceledException(token).
    // Cancel-safe: a read cancelled before data came consumed nothing. CopyToAsync is Stream's, which
    // reads through ReadAsync with its token.

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        cancellationToken.IsCancellationRequested
            ? ValueTask.FromCanceled<int>(cancellationToken)
            : Reader.ReadIntoAsync(buffer, cancellationToken);

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
    {
        ValidateBufferArguments(buffer, offset, count);
        return ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
        cancellationToken.IsCancellationRequested
            ? ValueTask.FromCanceled(cancellationToken)
            : WriteAndDrainAsync(buffer, cancellationToken);

    private async ValueTask WriteAndDrainAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken)
    {
        // Written at once; only the wait for the drain is cancellable (a cancelled drain does not unwrite).
        Writer.Write(buffer.Span);
        await Writer.DrainAsync(cancellationToken);
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
    {
        ValidateBufferArguments(buffer, offset, count);
        return WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
    }

    public override Task FlushAsync(CancellationToken cancellationToken) =>
        cancellationToken.IsCancellationRequested
            ? Task.FromCanceled(cancellationToken)
            : Writer.DrainAsync(cancellationToken).AsTask();

    /// <summary>Does nothing (any thread): writes go to the transport at once; <see cref="FlushAsync"/> drains.</summary>
    [ThreadSafe]
    public override void Flush()
    {
        // Writes go to the transport at once; only DrainAsync can wait for the buffer, so nothing to do.
    }

    public override int Read(byte[] buffer, int offset, int count) =>
        throw new NotSupportedException("a synchronous read would block the event loop: use ReadAsync");

    public override void Write(byte[] buffer, int offset, int count)
    {
        ValidateBufferArguments(buffer, offset, count);
        Writer.Write(buffer.AsSpan(offset, count));
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) Writer.Close();
        base.Dispose(disposing);
    }
}
