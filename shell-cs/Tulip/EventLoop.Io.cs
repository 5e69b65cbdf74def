using System.Net.Sockets;
using Tulip.Io;

namespace Tulip;

public sealed partial class EventLoop
{
    private volatile IReactor? _reactor;
    private ReactorKind _reactorKind = ReactorKind.Default;
    private Action<IIoHandler, bool, bool>? _onReady;
    private readonly Dictionary<Socket, Watcher> _watchers = new(ReferenceEqualityComparer.Instance);

    /// <summary>Which I/O backend the loop uses; set before the first socket is watched.</summary>
    public ReactorKind Reactor
    {
        get
        {
            CheckThread();
            return _reactorKind;
        }
        set
        {
            CheckThread();
            if (_reactor is not null && value != _reactorKind)
                throw new InvalidOperationException("the reactor is chosen before the first socket is watched");
            _reactorKind = value;
        }
    }

    /// <summary>The reactor, made on first use (a loop that never does I/O opens no descriptor).</summary>
    internal IReactor ReactorInstance
    {
        get
        {
            if (_reactor is null)
            {
                ThrowIfClosed();
                _reactor = _reactorKind switch
                {
                    ReactorKind.Select => new SelectReactor(),
                    ReactorKind.Epoll => new EpollReactor(),
                    _ => EpollReactor.IsSupported ? new EpollReactor() : new SelectReactor(),
                };
                _onReady = static (handler, r, w) => handler.OnReady(r, w);
            }

            return _reactor;
        }
    }

    internal IReactor? ReactorInstanceIfAny => _reactor;

    private byte[]? _readBuffer;

    /// <summary>The loop's one read buffer (loop-affine, so every transport can share it).</summary>
    internal byte[] ReadBuffer => _readBuffer ??= new byte[Transports.SocketTransport.MaxReadSize];

    /// <summary>The poll of the tick: I/O readiness (handlers queue their callbacks), or the clock's wait.</summary>
    private void PollIo(long timeout)
    {
        var reactor = _reactor;
        if (reactor is null)
        {
            if (timeout != 0) _clock.Wait(timeout, _externalPending > 0);
            return;
        }

        if (_clock.IsRealTime)
        {
            reactor.Poll(timeout, _onReady!);
            return;
        }

        // A virtual clock: take what I/O is ready now. Real I/O may still be in flight (a loopback
        // peer answering), so while sockets are watched it gets a quiet period of real time first;
        // only when nothing came in does time jump.
        int ready = reactor.Poll(0, _onReady!);
        // That poll may have taken a wake-up meant for the thread-safe inbox: look before a long poll.
        if (ready > 0 || timeout == 0 || _inboxNonEmpty) return;
        if (reactor.Count > 0)
        {
            long quiet = timeout < 0 ? _clock.IoWaitWhenIdle.Ticks : _clock.IoWaitBeforeJump.Ticks;
            if (quiet > 0)
            {
                ready = reactor.Poll(quiet, _onReady!);
                if (ready > 0 || _inboxNonEmpty) return;
                // Nothing scheduled and the idle limit spent waiting for I/O: the clock decides now
                // (a deadlock, unless it was woken meanwhile), without waiting the limit a second time.
                if (timeout < 0)
                {
                    _clock.OnIdleLimitReached();
                    return;
                }
            }
        }

        _clock.Wait(timeout, _externalPending > 0);
    }

    private void WakeLoop()
    {
        _reactor?.Wake();
        _clock.Wake();
    }

    private void CloseReactor()
    {
        foreach (var w in _watchers.Values) w.Release();
        _watchers.Clear();
        _reactor?.Dispose();
        _reactor = null;
    }

    // ---------------------------------------------------------------------------------------------
    // asyncio's add_reader / add_writer: a callback run (as a callback of the tick) while the socket
    // is readable / writable.

    /// <summary>Runs <paramref name="callback"/> whenever <paramref name="socket"/> is readable (asyncio's <c>add_reader</c>).</summary>
    public void AddReader(Socket socket, Action callback)
    {
        ArgumentNullException.ThrowIfNull(callback); // before anything: to the watcher, null means "remove"
        WatcherFor(socket).SetReader(callback);
    }

    /// <summary>Stops watching for readability; returns whether a reader was registered (false on a closed loop).</summary>
    public bool RemoveReader(Socket socket) => !IsClosed && _watchers.TryGetValue(Checked(socket), out var w) && w.SetReader(null);

    /// <summary>Runs <paramref name="callback"/> whenever <paramref name="socket"/> is writable (asyncio's <c>add_writer</c>).</summary>
    public void AddWriter(Socket socket, Action callback)
    {
        ArgumentNullException.ThrowIfNull(callback);
        WatcherFor(socket).SetWriter(callback);
    }

    public bool RemoveWriter(Socket socket) => !IsClosed && _watchers.TryGetValue(Checked(socket), out var w) && w.SetWriter(null);

    private Socket Checked(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        CheckThread();
        return socket;
    }

    private Watcher WatcherFor(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        CheckThread();
        ThrowIfClosed(); // before a watcher is made: a closed loop keeps nothing (asyncio's _check_closed)
        if (!_watchers.TryGetValue(socket, out var w))
        {
            w = new Watcher(this, socket);
            _watchers[socket] = w;
        }

        return w;
    }

    /// <summary>One socket's add_reader / add_writer callbacks, queued on readiness like CPython's handles.</summary>
    private sealed class Watcher(EventLoop loop, Socket socket) : IIoHandler
    {
        private Action? _reader, _writer;
        private Handle? _readHandle, _writeHandle;

        public bool SetReader(Action? callback)
        {
            bool had = _reader is not null;
            _reader = callback;
            _readHandle = callback is null ? null : new ActionHandle(loop, callback);
            Apply();
            return had;
        }

        public bool SetWriter(Action? callback)
        {
            bool had = _writer is not null;
            _writer = callback;
            _writeHandle = callback is null ? null : new ActionHandle(loop, callback);
            Apply();
            return had;
        }

        private void Apply()
        {
            if (_reader is null && _writer is null)
            {
                Release();
                loop._watchers.Remove(socket);
                return;
            }

            loop.ReactorInstance.Update(socket, this, _reader is not null, _writer is not null);
        }

        public void Release() => loop._reactor?.Remove(socket);

        public bool Has(bool write, Action callback) => ReferenceEquals(write ? _writer : _reader, callback);

        public void OnReady(bool readable, bool writable)
        {
            if (readable && _readHandle is { } r && r.State != Handle.Queued) loop.EnqueueSoon(r);
            if (writable && _writeHandle is { } w && w.State != Handle.Queued) loop.EnqueueSoon(w);
        }
    }
}
