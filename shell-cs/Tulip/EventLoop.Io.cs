using System.Net.Sockets;
using Tulip.Core;
using Tulip.Io;
using Tulip.Scheduling;

namespace Tulip;

public sealed partial class EventLoop
{
    private volatile IReactor? _reactor;
    private ReactorKind _reactorKind = ReactorKind.Default;
    private readonly Dictionary<Socket, Watcher> _watchers = new(ReferenceEqualityComparer.Instance);

    /// <summary>Which I/O backend the loop uses; set before the first socket is watched.</summary>
    public ReactorKind Reactor
    {
        get
        {
            VerifyAccess();
            return _reactorKind;
        }
        set
        {
            VerifyAccess();
            if (_reactor is not null && value != _reactorKind)
                throw new InvalidOperationException("the reactor is chosen before the first socket is watched");
            _reactorKind = value;
        }
    }

    /// <summary>The reactor, made on first use (a loop that never does I/O opens no descriptor).</summary>
    private IReactor ReactorInstance
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
            }

            return _reactor;
        }
    }

    internal IReactor? ReactorInstanceIfAny => _reactor;

    private byte[]? _readBuffer;

    /// <summary>The loop's one read buffer (loop-affine, so every transport can share it).</summary>
    internal byte[] ReadBuffer => _readBuffer ??= new byte[Transports.SocketTransport.MaxReadSize];

    private void WakeLoop()
    {
        _reactor?.Wake();
        _clock.Wake();
    }

    private void CloseReactor()
    {
        _watchers.Clear();
        _reactor?.Dispose();
        _reactor = null;
    }

    // ---------------------------------------------------------------------------------------------
    // Watching: the one door through which a socket's readiness becomes callbacks. A source names the
    // handles its readiness should run; the reactor knows the socket by token, the core knows the token
    // and the handles' ids (Watch), and each poll's readiness is handed to the core, which admits each
    // handle at most once per tick and places it in the batch (DESIGN.md: the batch rule).

    /// <summary>
    /// Makes <paramref name="source"/> watch for readability when <paramref name="read"/> is given and
    /// writability when <paramref name="write"/> is (null: not that interest; both null: stop
    /// watching). A handle is registered while it is watched and keeps its id, so each readiness admits
    /// the same handle; a handle replaced or no longer watched is released, and skipped if this tick's
    /// batch still names it (CPython's <c>remove_reader</c> cancels the reader's handle). Loop thread.
    /// </summary>
    internal void SetWatch(IoSource source, Handle? read, Handle? write)
    {
        if (ReferenceEquals(read, source.Read) && ReferenceEquals(write, source.Write)) return;
        if (read is null && write is null)
        {
            Unwatch(source);
            return;
        }

        ThrowIfClosed();
        var reactor = ReactorInstance;
        bool r = read is not null, w = write is not null;
        if (source.Token < 0) source.Token = source.Socket is { } socket ? reactor.Register(socket, r, w) : reactor.RegisterFd(source.Fd, r, w);
        else if ((source.Read is not null) != r || (source.Write is not null) != w) reactor.Modify(source.Token, r, w);

        Rebind(ref source.Read, read);
        Rebind(ref source.Write, write);
        _sched.Watch(source.Token, read?.Id, write?.Id);
    }

    /// <summary>A watched interest now runs <paramref name="next"/>: the handle it replaces is released
    /// (its id goes stale), the new one registered for as long as it is watched.</summary>
    private void Rebind(ref Handle? watched, Handle? next)
    {
        if (ReferenceEquals(watched, next)) return;
        if (watched is { } old) _table.Release(old);
        if (next is not null) RegisterParked(next);
        watched = next;
    }

    /// <summary>Stops watching <paramref name="source"/> (before its socket closes); its handles are
    /// released. Harmless when it is not watched, or when the loop has closed since.</summary>
    internal void Unwatch(IoSource source)
    {
        if (source.Token < 0) return;
        if (!IsClosed)
        {
            _reactor?.Unregister(source.Token);
            _sched.Unwatch(source.Token);
        }

        Rebind(ref source.Read, null);
        Rebind(ref source.Write, null);
        source.Token = -1;
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
        VerifyAccess();
        return socket;
    }

    private Watcher WatcherFor(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        VerifyAccess();
        ThrowIfClosed(); // before a watcher is made: a closed loop keeps nothing (asyncio's _check_closed)
        if (!_watchers.TryGetValue(socket, out var w))
        {
            w = new Watcher(this, socket);
            _watchers[socket] = w;
        }

        return w;
    }

    /// <summary>One socket's add_reader / add_writer callbacks. As CPython's, each registration is a new
    /// handle, and the one it replaces is dropped (skipped if already in this tick's batch).</summary>
    private sealed class Watcher(EventLoop loop, Socket socket)
    {
        private readonly IoSource _source = new(socket);
        private Action? _reader, _writer;

        public bool SetReader(Action? callback)
        {
            bool had = _reader is not null;
            _reader = callback;
            Apply(read: callback is null ? null : new ActionHandle(loop, callback), write: _source.Write);
            return had;
        }

        public bool SetWriter(Action? callback)
        {
            bool had = _writer is not null;
            _writer = callback;
            Apply(read: _source.Read, write: callback is null ? null : new ActionHandle(loop, callback));
            return had;
        }

        public bool Has(bool write, Action callback) => ReferenceEquals(write ? _writer : _reader, callback);

        private void Apply(Handle? read, Handle? write)
        {
            if (read is null && write is null)
            {
                loop.Unwatch(_source);
                loop._watchers.Remove(socket);
                return;
            }

            loop.SetWatch(_source, read, write);
        }
    }
}

/// <summary>
/// A socket (or a raw descriptor: a pipe end, a pidfd) as the loop watches it: the reactor's token for
/// it, and the handles its readiness runs (null: that interest is off). Owned by a transport, server or
/// add_reader registration; changed only through <see cref="EventLoop.SetWatch"/> and
/// <see cref="EventLoop.Unwatch"/>. Loop thread only.
/// </summary>
internal sealed class IoSource
{
    public IoSource(Socket socket)
    {
        Socket = socket;
        Fd = -1;
    }

    /// <summary>A raw descriptor; its owner calls <see cref="EventLoop.Unwatch"/> before closing it.</summary>
    public IoSource(int fd)
    {
        Fd = fd;
    }

    public readonly Socket? Socket;
    public readonly int Fd;
    public int Token = -1;
    public Handle? Read, Write;
}
