namespace Tulip;

/// <summary>
/// asyncio.StreamWriter: writes to a transport; <see cref="DrainAsync()"/> waits while the transport's
/// buffer is over its high-water mark, so a writer that awaits it keeps memory bounded against a slow
/// reader. Loop-affine: used on its loop's thread only (<see cref="EventLoopException"/> from another).
/// </summary>
public sealed class LoopStreamWriter : IAsyncDisposable
{
    private readonly StreamReaderProtocol _protocol;
    private readonly LoopStreamReader? _reader;
    private readonly EventLoop _loop;

    /// <summary>A writer on <paramref name="transport"/> (any thread may make one; it is used on the loop's).</summary>
    [ThreadSafe]
    public LoopStreamWriter(ITransport transport, StreamReaderProtocol protocol, LoopStreamReader? reader, EventLoop loop)
    {
        ArgumentNullException.ThrowIfNull(transport);
        ArgumentNullException.ThrowIfNull(protocol);
        ArgumentNullException.ThrowIfNull(loop);
        Transport = transport;
        _protocol = protocol;
        _reader = reader;
        _loop = loop;
    }

    /// <summary>The transport (fixed; any thread).</summary>
    [ThreadSafe]
    public ITransport Transport { get; }

    public void Write(ReadOnlySpan<byte> data)
    {
        _loop.VerifyAccess();
        Transport.Write(data);
    }

    public void WriteLines(IEnumerable<ReadOnlyMemory<byte>> lines)
    {
        _loop.VerifyAccess();
        Transport.WriteLines(lines);
    }

    public void WriteEof()
    {
        _loop.VerifyAccess();
        Transport.WriteEof();
    }

    public bool CanWriteEof()
    {
        _loop.VerifyAccess();
        return Transport.CanWriteEof();
    }

    /// <summary>Closes the transport once what is buffered has been sent.</summary>
    public void Close()
    {
        _loop.VerifyAccess();
        Transport.Close();
    }

    public bool IsClosing
    {
        get
        {
            _loop.VerifyAccess();
            return Transport.IsClosing;
        }
    }

    /// <summary>The transport's extra info (fixed when the connection was made; any thread).</summary>
    [ThreadSafe]
    public object? GetExtraInfo(string name, object? defaultValue = null) => Transport.GetExtraInfo(name, defaultValue);

    /// <summary>
    /// Waits until the connection is closed (raising the error it ended with, if any). A token cancels
    /// this wait only: unlike CPython 3.11, where a cancelled <c>wait_closed()</c> cancels the protocol's
    /// shared close future (every later <c>wait_closed()</c> then raises CancelledError), the connection's
    /// close is still there for the next waiter.
    /// </summary>
    public Task WaitClosedAsync() => WaitClosedAsync(CancellationToken.None);

    /// <summary><see cref="WaitClosedAsync()"/>, whose wait <paramref name="cancellationToken"/> can cancel.</summary>
    public async Task WaitClosedAsync(CancellationToken cancellationToken)
    {
        _loop.VerifyAccess();
        cancellationToken.ThrowIfCancellationRequested();
        var closed = _protocol.CloseWaiter;
        if (!closed.Done && cancellationToken.CanBeCanceled)
        {
            // A waiter of its own, woken by the close: cancelling it leaves the shared future alone.
            var waiter = _loop.CreateFuture();
            var wake = new StateHandle<Future<ValueTuple>>(_loop, static w =>
            {
                if (!w.Done) w.SetResult(default);
            }, waiter);
            closed.AddParked(wake);
            try
            {
                await TokenCancellation.WaitAsync(waiter, cancellationToken);
            }
            catch (OperationCanceledException e) when (closed.Done && e.CancellationToken == cancellationToken)
            {
                // The close came first (its wake-up was still one tick away): the wait has its outcome.
            }
            finally
            {
                // Cancelled: a long-lived connection must not collect one callback per cancelled wait.
                if (!closed.Done) closed.RemoveParked(wake);
            }
        }

        await closed;
    }

    /// <summary>
    /// Waits while the write buffer is over its high-water mark. Raises the connection's error (a
    /// <see cref="ConnectionResetException"/> after the peer reset it), or
    /// <see cref="ConnectionResetException"/>("Connection lost") if the connection is gone. Several
    /// drains may wait at once. A token cancels the wait only: what was written stays written (CPython
    /// 3.11: a cancelled drain() leaves the bytes in the transport's buffer and no drain waiter behind).
    /// </summary>
    public ValueTask DrainAsync() => DrainAsync(CancellationToken.None);

    /// <summary><see cref="DrainAsync()"/>, whose wait <paramref name="cancellationToken"/> can cancel.</summary>
    public async ValueTask DrainAsync(CancellationToken cancellationToken)
    {
        _loop.VerifyAccess();
        cancellationToken.ThrowIfCancellationRequested();
        if (_reader?.Exception() is { } e) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e);
        if (Transport.IsClosing)
        {
            // Let ConnectionLost run, so a write-then-drain loop sees the connection's end.
            await Asyncio.Sleep(0);
        }

        await _protocol.DrainHelper(cancellationToken);
    }

    /// <summary>Closes and waits for the close (errors of the connection are swallowed here).</summary>
    public async ValueTask DisposeAsync()
    {
        _loop.VerifyAccess();
        Close();
        try
        {
            await WaitClosedAsync();
        }
        catch (Exception)
        {
        }
    }

    public override string ToString() => $"<LoopStreamWriter transport={Transport}>";
}
