using System.Buffers;
using System.IO.Pipelines;

namespace Tulip;

/// <summary>
/// <see cref="LoopPipe.Output"/>: a <see cref="PipeWriter"/> that buffers what is written and, at each
/// flush, hands it to the <see cref="LoopStreamWriter"/> and awaits its drain (the back-pressure). Not
/// the BCL's <c>PipeWriter.Create(stream)</c>: that one resumes its flushes with
/// <c>ConfigureAwait(false)</c> and then calls the stream again from a thread-pool thread, which a
/// loop-bound writer refuses. Every await here stays on the loop.
/// </summary>
internal sealed class LoopPipeWriter(LoopStreamWriter writer) : PipeWriter
{
    private readonly ArrayBufferWriter<byte> _buffer = new();
    private CancellationTokenSource? _pendingFlush;
    private bool _completed;

    public override bool CanGetUnflushedBytes => true;

    public override long UnflushedBytes => _buffer.WrittenCount;

    public override void Advance(int bytes)
    {
        ThrowIfCompleted();
        _buffer.Advance(bytes);
    }

    public override Memory<byte> GetMemory(int sizeHint = 0)
    {
        ThrowIfCompleted();
        return _buffer.GetMemory(sizeHint);
    }

    public override Span<byte> GetSpan(int sizeHint = 0)
    {
        ThrowIfCompleted();
        return _buffer.GetSpan(sizeHint);
    }

    /// <summary>Ends a flush waiting for the drain with <see cref="FlushResult.IsCanceled"/> (what was written stays written).</summary>
    public override void CancelPendingFlush() => _pendingFlush?.Cancel();

    public override async ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfCompleted();
        cancellationToken.ThrowIfCancellationRequested();
        WriteBuffered();
        using var pending = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _pendingFlush = pending;
        try
        {
            await writer.DrainAsync(pending.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested && pending.IsCancellationRequested)
        {
            return new FlushResult(isCanceled: true, isCompleted: false);
        }
        finally
        {
            _pendingFlush = null;
        }

        return new FlushResult(isCanceled: false, isCompleted: writer.IsClosing);
    }

    /// <summary>Hands what is still buffered to the transport; the connection stays open (LoopPipe closes it).</summary>
    public override void Complete(Exception? exception = null)
    {
        if (_completed) return;
        WriteBuffered();
        _completed = true;
    }

    private void WriteBuffered()
    {
        if (_buffer.WrittenCount == 0) return;
        writer.Write(_buffer.WrittenSpan); // the transport copies or sends at once
        _buffer.ResetWrittenCount();
    }

    private void ThrowIfCompleted()
    {
        if (_completed) throw new InvalidOperationException("Writing is not allowed after writer was completed.");
    }
}
