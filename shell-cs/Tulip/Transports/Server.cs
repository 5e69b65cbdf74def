using System.Net;
using System.Net.Sockets;
using Tulip.Io;
using Tulip.Transports;

namespace Tulip;

/// <summary>
/// asyncio.Server: listening sockets that accept connections and give each a protocol from the
/// factory. <see cref="Close"/> stops listening (connections go on); <see cref="WaitClosedAsync()"/> completes
/// when it is closed and its connections are gone (asyncio 3.12's meaning: 3.11 returned at once).
/// Loop-affine: used on its loop's thread only (<see cref="EventLoopException"/> from another).
/// </summary>
public sealed class Server : IAsyncDisposable
{
    private readonly EventLoop _loop;
    private readonly Func<BaseProtocol> _factory;
    private readonly int _backlog;
    private readonly List<Socket> _sockets;
    private readonly List<Acceptor> _acceptors = new();
    private readonly HashSet<SocketTransport> _clients = new(ReferenceEqualityComparer.Instance);
    private readonly List<Future<ValueTuple>> _closeWaiters = new();
    private Future<ValueTuple>? _serveForever;
    private bool _serving, _closed;

    internal Server(EventLoop loop, List<Socket> sockets, Func<BaseProtocol> factory, int backlog)
    {
        _loop = loop;
        _sockets = sockets;
        _factory = factory;
        _backlog = backlog;
    }

    /// <summary>The listening sockets (empty once closed).</summary>
    public IReadOnlyList<Socket> Sockets
    {
        get
        {
            _loop.VerifyAccess();
            return _closed ? [] : _sockets;
        }
    }

    public bool IsServing
    {
        get
        {
            _loop.VerifyAccess();
            return _serving && !_closed;
        }
    }

    /// <summary>Connections currently open.</summary>
    public int ActiveConnections
    {
        get
        {
            _loop.VerifyAccess();
            return _clients.Count;
        }
    }

    /// <summary>The loop it serves on (fixed; any thread).</summary>
    [ThreadSafe]
    public EventLoop Loop => _loop;

    /// <summary>Starts accepting (asyncio's <c>start_serving</c>); does nothing if already serving.</summary>
    public void StartServing()
    {
        _loop.VerifyAccess();
        if (_closed) throw new EventLoopException("server is closed");
        if (_serving) return;
        _serving = true;
        foreach (var sock in _sockets)
        {
            sock.Listen(_backlog);
            var acceptor = new Acceptor(this, sock);
            _acceptors.Add(acceptor);
            acceptor.Start();
        }
    }

    /// <summary>
    /// Serves until cancelled (the awaiting task, or <paramref name="cancellationToken"/>); then closes
    /// the server and waits for it (asyncio's <c>serve_forever</c>: CPython 3.11 leaves a cancelled
    /// serve_forever's server closed, <c>is_serving()</c> false and <c>sockets</c> empty). A token
    /// already cancelled ends the call at once and leaves the server as it was (not started, not closed).
    /// </summary>
    public Task ServeForeverAsync() => ServeForeverAsync(CancellationToken.None);

    /// <summary><see cref="ServeForeverAsync()"/>, ended also by <paramref name="cancellationToken"/>.</summary>
    public async Task ServeForeverAsync(CancellationToken cancellationToken)
    {
        _loop.VerifyAccess();
        cancellationToken.ThrowIfCancellationRequested();
        if (_serveForever is not null) throw new EventLoopException($"server {this} is already being awaited on serve_forever()");
        if (_closed) throw new EventLoopException($"server {this} is closed");
        StartServing();
        var serving = _loop.CreateFuture();
        _serveForever = serving;
        try
        {
            if (cancellationToken.CanBeCanceled) await TokenCancellation.WaitAsync(serving, cancellationToken);
            else await serving;
        }
        catch (OperationCanceledException) // the task's CancelledException, or the token's
        {
            try
            {
                Close();
                await WaitClosedAsync();
            }
            finally
            {
                _serveForever = null;
            }

            throw;
        }
    }

    /// <summary>Stops listening and closes the listening sockets; open connections are left alone.</summary>
    public void Close()
    {
        _loop.VerifyAccess();
        if (_closed) return;
        _closed = true;
        _serving = false;
        foreach (var a in _acceptors) a.Stop();
        _acceptors.Clear();
        foreach (var s in _sockets) s.Dispose();
        if (_serveForever is { Done: false } f) f.Cancel();
        MaybeWakeClosed();
    }

    /// <summary>Closes every open connection (flushing what they buffered).</summary>
    public void CloseClients()
    {
        _loop.VerifyAccess();
        foreach (var c in _clients.ToArray()) c.Close();
    }

    /// <summary>Aborts every open connection (discarding what they buffered).</summary>
    public void AbortClients()
    {
        _loop.VerifyAccess();
        foreach (var c in _clients.ToArray()) c.Abort();
    }

    /// <summary>
    /// Completes when the server is closed and all its connections are gone. A token cancels this wait
    /// only: the server goes on serving (CPython 3.11: a cancelled <c>wait_closed()</c> leaves
    /// <c>is_serving()</c> true), and its waiter is taken out of the list.
    /// </summary>
    public Task WaitClosedAsync() => WaitClosedAsync(CancellationToken.None);

    /// <summary><see cref="WaitClosedAsync()"/>, whose wait <paramref name="cancellationToken"/> can cancel.</summary>
    public async Task WaitClosedAsync(CancellationToken cancellationToken)
    {
        _loop.VerifyAccess();
        cancellationToken.ThrowIfCancellationRequested();
        if (_closed && _clients.Count == 0) return;
        var waiter = _loop.CreateFuture();
        _closeWaiters.Add(waiter);
        if (!cancellationToken.CanBeCanceled)
        {
            await waiter;
            return;
        }

        try
        {
            await TokenCancellation.WaitAsync(waiter, cancellationToken);
        }
        finally
        {
            _closeWaiters.Remove(waiter);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _loop.VerifyAccess();
        Close();
        await WaitClosedAsync();
    }

    internal void Attach(SocketTransport t) => _clients.Add(t);

    internal void Detach(SocketTransport t)
    {
        _clients.Remove(t);
        MaybeWakeClosed();
    }

    private void MaybeWakeClosed()
    {
        if (!_closed || _clients.Count > 0) return;
        foreach (var w in _closeWaiters)
        {
            if (!w.Done) w.SetResult(default);
        }

        _closeWaiters.Clear();
    }

    public override string ToString() =>
        $"<Server sockets=({string.Join(", ", _sockets.Select(s => { try { return s.LocalEndPoint?.ToString(); } catch (ObjectDisposedException) { return "closed"; } }))})>";

    /// <summary>Accepts on one listening socket (asyncio's <c>_accept_connection</c>).</summary>
    private sealed class Acceptor
    {
        private static readonly TimeSpan AcceptRetryDelay = TimeSpan.FromSeconds(1);
        private readonly Server _server;
        private readonly Socket _listener;
        private readonly Handle _acceptHandle;
        private readonly IoSource _source;
        private bool _watching, _stopped;
        private TimerHandle? _retry;

        public Acceptor(Server server, Socket listener)
        {
            _server = server;
            _listener = listener;
            listener.Blocking = false;
            _acceptHandle = new StateHandle<Acceptor>(server._loop, static a => a.AcceptReady(), this);
            _source = new IoSource(listener);
        }

        public void Start()
        {
            if (_stopped || _watching) return;
            _watching = true;
            _server._loop.SetWatch(_source, _acceptHandle, null);
        }

        public void Stop()
        {
            _stopped = true;
            _retry?.Cancel();
            Pause();
        }

        private void Pause()
        {
            if (!_watching) return;
            _watching = false;
            _server._loop.Unwatch(_source);
        }

        private void AcceptReady()
        {
            var loop = _server._loop;
            // At least one per readiness: a backlog of 0 is a valid listen() but must not mean "accept none"
            // (CPython's range(backlog) loop has that defect).
            for (int i = 0; i < Math.Max(1, _server._backlog) && _watching; i++)
            {
                Socket conn;
                try
                {
                    conn = _listener.Accept();
                }
                catch (SocketException e) when (e.SocketErrorCode is SocketError.WouldBlock or SocketError.Interrupted)
                {
                    return; // nothing more to accept now
                }
                catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionAborted or SocketError.ConnectionReset)
                {
                    continue; // the peer gave up before we accepted: not our error
                }
                catch (SocketException e) when (e.SocketErrorCode is SocketError.TooManyOpenSockets or SocketError.NoBufferSpaceAvailable)
                {
                    // Out of descriptors: stop accepting for a second instead of spinning, and say so once.
                    loop.CallExceptionHandler(new ExceptionContext("socket.accept() out of system resource", e)
                    {
                        Extra = new Dictionary<string, object?> { ["socket"] = _listener },
                    });
                    Pause();
                    _retry = loop.CallLater(AcceptRetryDelay, static a => a.Start(), this);
                    return;
                }
                catch (ObjectDisposedException)
                {
                    return;
                }
                catch (Exception e)
                {
                    // Anything else (the runtime failing to load code with no descriptors left, say):
                    // report and back off as for EMFILE, rather than spin on a listener that stays ready.
                    loop.CallExceptionHandler(new ExceptionContext("socket.accept() failed", e)
                    {
                        Extra = new Dictionary<string, object?> { ["socket"] = _listener },
                    });
                    Pause();
                    _retry = loop.CallLater(AcceptRetryDelay, static a => a.Start(), this);
                    return;
                }

                try
                {
                    conn.Blocking = false;
                    if (conn.AddressFamily is AddressFamily.InterNetwork or AddressFamily.InterNetworkV6) conn.NoDelay = true;
                    var protocol = _server._factory();
                    _ = new SocketTransport(loop, conn, protocol, null, _server);
                }
                catch (Exception e)
                {
                    conn.Dispose();
                    loop.CallExceptionHandler(new ExceptionContext("Error on transport creation for incoming connection", e));
                }
            }
        }
    }
}
