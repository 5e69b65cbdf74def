namespace Tulip;

/// <summary>
/// Adapts a transport to a <see cref="LoopStreamReader"/> and <see cref="LoopStreamWriter"/> (asyncio's
/// StreamReaderProtocol with FlowControlMixin): feeds the reader, and holds writers' drains while the
/// transport's buffer is over its high-water mark. Its callbacks come from the transport, on the loop's
/// thread (<see cref="EventLoopException"/> from another).
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

    /// <summary>A protocol feeding <paramref name="reader"/> on <paramref name="loop"/> (any thread may make one).</summary>
    [ThreadSafe]
    public StreamReaderProtocol(LoopStreamReader? reader, Func<LoopStreamReader, LoopStreamWriter, Task>? clientConnected, EventLoop loop)
    {
        ArgumentNullException.ThrowIfNull(loop);
        _loop = loop;
        _reader = reader;
        _clientConnected = clientConnected;
        _closed = loop.CreateFuture();
    }

    /// <summary>The task running the client-connected callback of a server connection, if any.</summary>
    public LoopTask? Task
    {
        get
        {
            _loop.VerifyAccess();
            return _task;
        }
    }

    private LoopTask? _task;

    public override void ConnectionMade(ITransportBase transport)
    {
        ArgumentNullException.ThrowIfNull(transport);
        _loop.VerifyAccess();
        _transport = transport as ITransport ?? throw new ArgumentException("a stream protocol needs a stream transport", nameof(transport));
        _reader?.SetTransport(_transport);
        if (_clientConnected is not null && _reader is not null)
        {
            _writer = new LoopStreamWriter(_transport, this, _reader, _loop);
            var reader = _reader;
            var writer = _writer;
            var callback = _clientConnected;
            _task = _loop.CreateTask(() => callback(reader, writer));
            _task.AddDoneCallback(static (task, transport) => ClientConnectedDone(task, transport), _transport);
        }
    }

    /// <summary>
    /// asyncio 3.11 (streams.py, StreamReaderProtocol.connection_made): a callback that fails is reported
    /// to the loop's handler with the transport, and the connection is closed (close, not abort: what
    /// the callback wrote is still sent); otherwise nobody would hear of it and the peer would wait
    /// forever. Taking the exception here also retrieves it (no "never retrieved" report later). A
    /// callback that throws before returning its Task fails its task the same way (LoopTask), as a
    /// coroutine that raises before its first await does in asyncio.
    /// </summary>
    private static void ClientConnectedDone(Future task, ITransport transport)
    {
        // 3.11 calls task.exception() on a cancelled task too, which raises inside the done-callback;
        // later versions close the transport instead. A cancelled handler is left as it was here:
        // whoever cancelled it owns the connection's fate.
        if (task.Cancelled) return;
        if (task.Exception() is not { } e) return;
        task.Loop.CallExceptionHandler(new ExceptionContext("Unhandled exception in client_connected_cb", e) { Transport = transport });
        transport.Close();
    }

    public override void ConnectionLost(Exception? exception)
    {
        _loop.VerifyAccess();
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

    public override void DataReceived(ReadOnlySpan<byte> data)
    {
        _loop.VerifyAccess();
        _reader?.FeedData(data);
    }

    public override bool EofReceived()
    {
        _loop.VerifyAccess();
        _reader?.FeedEof();
        return true; // keep the connection half-open: the writer may still write back
    }

    public override void PauseWriting()
    {
        _loop.VerifyAccess();
        _paused = true;
    }

    public override void ResumeWriting()
    {
        _loop.VerifyAccess();
        _paused = false;
        foreach (var w in _drainWaiters)
        {
            if (!w.Done) w.SetResult(default);
        }

        _drainWaiters.Clear();
    }

    internal async ValueTask DrainHelper(CancellationToken cancellationToken = default)
    {
        if (_connectionLost) throw new ConnectionResetException("Connection lost");
        if (!_paused) return;
        var waiter = _loop.CreateFuture();
        _drainWaiters.Add(waiter);
        try
        {
            if (cancellationToken.CanBeCanceled) await TokenCancellation.WaitAsync(waiter, cancellationToken);
            else await waiter;
        }
        finally
        {
            _drainWaiters.Remove(waiter);
        }
    }

    internal Future<ValueTuple> CloseWaiter => _closed;
}
