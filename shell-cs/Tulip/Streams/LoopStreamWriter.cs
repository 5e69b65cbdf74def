namespace Tulip;

/// <summary>
/// asyncio.StreamWriter: writes to a transport; <see cref="DrainAsync"/> waits while the transport's
/// buffer is over its high-water mark, so a writer that awaits it keeps memory bounded against a slow
/// reader.
/// </summary>
public sealed class LoopStreamWriter : IAsyncDisposable
{
    private readonly StreamReaderProtocol _protocol;
    private readonly LoopStreamReader? _reader;
    private readonly EventLoop _loop;

    public LoopStreamWriter(ITransport transport, StreamReaderProtocol protocol, LoopStreamReader? reader, EventLoop loop)
    {
        Transport = transport;
        _protocol = protocol;
        _reader = reader;
        _loop = loop;
    }

    public ITransport Transport { get; }

    public void Write(ReadOnlySpan<byte> data) => Transport.Write(data);

    public void WriteLines(IEnumerable<ReadOnlyMemory<byte>> lines) => Transport.WriteLines(lines);

    public void WriteEof() => Transport.WriteEof();

    public bool CanWriteEof() => Transport.CanWriteEof();

    /// <summary>Closes the transport once what is buffered has been sent.</summary>
    public void Close() => Transport.Close();

    public bool IsClosing => Transport.IsClosing;

    public object? GetExtraInfo(string name, object? defaultValue = null) => Transport.GetExtraInfo(name, defaultValue);

    /// <summary>Waits until the connection is closed (raising the error it ended with, if any).</summary>
    public async Task WaitClosedAsync() => await _protocol.CloseWaiter;

    /// <summary>
    /// Waits while the write buffer is over its high-water mark. Raises the connection's error (a
    /// <see cref="ConnectionResetException"/> after the peer reset it), or
    /// <see cref="ConnectionResetException"/>("Connection lost") if the connection is gone. Several
    /// drains may wait at once.
    /// </summary>
    public async ValueTask DrainAsync()
    {
        if (_reader?.Exception() is { } e) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e);
        if (Transport.IsClosing)
        {
            // Let ConnectionLost run, so a write-then-drain loop sees the connection's end.
            await Asyncio.Sleep(0);
        }

        await _protocol.DrainHelper();
    }

    /// <summary>Closes and waits for the close (errors of the connection are swallowed here).</summary>
    public async ValueTask DisposeAsync()
    {
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
