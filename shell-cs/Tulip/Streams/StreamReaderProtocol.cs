namespace Tulip;

/// <summary>
/// Adapts a transport to a <see cref="LoopStreamReader"/> and <see cref="LoopStreamWriter"/> (asyncio's
/// StreamReaderProtocol with FlowControlMixin): feeds the reader, and holds writers' drains while the
/// transport's buffer is over its high-water mark.
/// </summary>
public sealed class StreamReaderProtocol : Protocol
{
    private readonly EventLoop _loop;
    private readonly LoopStreamReader? _reader;
    private readonly Func<LoopStreamReader, LoopStreamWriter, Task>? _clientConnected;
    private readonly Future<ValueTuple> _closed;
    private readonly List<Future<ValueTuple>> _drainWaiters = new();
    private ITransport? _transport;
    private LoopStreamWriter? _writer;
    private bool _paused, _connectionLost;

    public StreamReaderProtocol(LoopStreamReader? reader, Func<LoopStreamReader, LoopStreamWriter, Task>? clientConnected, EventLoop loop)
    {
        _loop = loop;
        _reader = reader;
        _clientConnected = clientConnected;
        _closed = loop.CreateFuture();
    }

    /// <summary>The task running the client-connected callback of a server connection, if any.</summary>
    public LoopTask? Task { get; private set; }

    public override void ConnectionMade(ITransportBase transport)
    {
        _transport = (ITransport)transport;
        _reader?.SetTransport(_transport);
        if (_clientConnected is not null && _reader is not null)
        {
            _writer = new LoopStreamWriter(_transport, this, _reader, _loop);
            var reader = _reader;
            var writer = _writer;
            var callback = _clientConnected;
            Task = _loop.CreateTask(() => callback(reader, writer));
        }
    }

    public override void ConnectionLost(Exception? exception)
    {
        // A reset reaches stream users as ConnectionResetException (asyncio: ConnectionResetError).
        if (exception is System.Net.Sockets.SocketException { SocketErrorCode: System.Net.Sockets.SocketError.ConnectionReset } reset)
            exception = new ConnectionResetException(reset.Message, reset);
        if (_reader is not null)
        {
            if (exception is null) _reader.FeedEof();
            else _reader.SetException(exception);
        }

        if (!_closed.Done)
        {
            if (exception is null) _closed.SetResult(default);
            else
            {
                _closed.SetException(exception);
                _closed.Exception(); // retrieved here: wait_closed callers see it, nobody else must
            }
        }

        // FlowControlMixin.connection_lost: wake the drains, with the error if there was one.
        _connectionLost = true;
        if (_paused)
        {
            foreach (var w in _drainWaiters)
            {
                if (w.Done) continue;
                if (exception is null) w.SetResult(default);
                else w.SetException(exception);
            }
        }

        _drainWaiters.Clear();
        _transport = null;
    }

    public override void DataReceived(ReadOnlySpan<byte> data) => _reader?.FeedData(data);

    public override bool EofReceived()
    {
        _reader?.FeedEof();
        return true; // keep the connection half-open: the writer may still write back
    }

    public override void PauseWriting() => _paused = true;

    public override void ResumeWriting()
    {
        _paused = false;
        foreach (var w in _drainWaiters)
        {
            if (!w.Done) w.SetResult(default);
        }

        _drainWaiters.Clear();
    }

    internal async ValueTask DrainHelper()
    {
        if (_connectionLost) throw new ConnectionResetException("Connection lost");
        if (!_paused) return;
        var waiter = _loop.CreateFuture();
        _drainWaiters.Add(waiter);
        try
        {
            await waiter;
        }
        finally
        {
            _drainWaiters.Remove(waiter);
        }
    }

    internal Future<ValueTuple> CloseWaiter => _closed;
}
