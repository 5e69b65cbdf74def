using Tulip.Transports;

namespace Tulip.Subprocess;

/// <summary>
/// A child process and its pipes (CPython 3.11's <c>BaseSubprocessTransport</c>). The pipes are pipe
/// transports whose protocols forward to the subprocess protocol with the fd; the exit comes from a
/// <see cref="ChildWatch"/>. Calls to the protocol made before it is connected wait, in order, and are
/// run just after its <c>ConnectionMade</c> (asyncio's <c>_pending_calls</c>). <see cref="Close"/>
/// closes the pipes and kills a child still running; <c>ConnectionLost</c> comes once the child has
/// exited and every pipe is closed. Exit waiters are woken at the exit itself, not when the pipes close
/// (3.11's order: a grandchild holding stdout does not hold up <c>wait()</c>, cpython#119710).
/// </summary>
internal sealed class SubprocessTransport : ISubprocessTransport
{
    private readonly EventLoop _loop;
    private BaseProtocol _protocol;
    private readonly int _pid;
    private readonly PipeProto?[] _pipes = new PipeProto?[3];
    private readonly ChildWatch _watch;
    private List<Action>? _pending = new();
    private List<Future<int>>? _exitWaiters = new();
    private int? _returnCode;
    private bool _closed, _finished, _lost;

    /// <summary>For tests, per thread: runs before each pipe transport is made (the pid, the fd number); a throw
    /// stands for the transport's creation failing after the spawn.</summary>
    [ThreadStatic] internal static Action<int, int>? PipeFaultForTests;

    /// <summary>For tests: the signals this transport actually sent with kill(2).</summary>
    internal int SignalsSent { get; private set; }

    internal ChildWatch Watch => _watch;

    public SubprocessTransport(EventLoop loop, BaseProtocol protocol, Spawner.Child child, Future<ValueTuple> waiter)
    {
        _loop = loop;
        _protocol = protocol;
        _pid = child.Pid;
        int[] fds = [child.Stdin, child.Stdout, child.Stderr];
        for (int fd = 0; fd < 3; fd++)
        {
            if (fds[fd] < 0) continue;
            var proto = new PipeProto(this, fd);
            _pipes[fd] = proto;
            try
            {
                PipeFaultForTests?.Invoke(_pid, fd);
                proto.Pipe = fd == 0
                    ? new WritePipeTransport(loop, fds[fd], null, proto, null)
                    : new ReadPipeTransport(loop, fds[fd], null, proto, null);
            }
            catch
            {
                // The child is running already and nobody will watch it: release the pipes made so far
                // (their ConnectionMade, scheduled, sees the fd closed and does nothing) and the raw fds
                // left, then kill and reap it (SIGKILL cannot be caught: the wait is short), so a failed
                // spawn leaves no zombie.
                for (int k = 0; k < fd; k++) _pipes[k]?.Pipe?.CloseFd();
                for (int k = fd; k < 3; k++)
                {
                    if (fds[k] >= 0) PosixNative.close(fds[k]);
                }

                PosixNative.kill(_pid, PosixNative.SIGKILL);
                int status;
                unsafe
                {
                    while (PosixNative.waitpid(_pid, &status, 0) < 0 && PosixNative.Errno == PosixNative.EINTR) { }
                }

                throw;
            }
        }

        _watch = new ChildWatch(loop, _pid, ProcessExited);
        loop.Subprocesses.Add(this);
        // After the pipes' ConnectionMade (scheduled by their constructors): the protocol's, then the
        // calls that came before it, then the waiter (asyncio's _connect_pipes).
        loop.CallSoon(static s => s.Item1.Connect(s.Item2), (this, waiter));
    }

    private void Connect(Future<ValueTuple> waiter)
    {
        try
        {
            _protocol.ConnectionMade(this);
        }
        catch (Exception e)
        {
            _loop.CallExceptionHandler(new ExceptionContext("Exception in callback SubprocessProtocol.connection_made()", e) { Transport = this, Protocol = _protocol });
        }

        var pending = _pending!;
        _pending = null;
        foreach (var call in pending) _loop.CallSoon(call);
        if (!waiter.Done) waiter.SetResult(default);
    }

    /// <summary>asyncio's <c>_call</c>: deferred until the protocol is connected, then soon.</summary>
    private void Call(Action call)
    {
        if (_pending is not null) _pending.Add(call);
        else _loop.CallSoon(call);
    }

    public BaseProtocol Protocol
    {
        get { _loop.VerifyAccess(); return _protocol; }
        set { _loop.VerifyAccess(); _protocol = value ?? throw new ArgumentNullException(nameof(value)); }
    }

    public bool IsClosing { get { _loop.VerifyAccess(); return _closed; } }

    public object? GetExtraInfo(string name, object? defaultValue = null) =>
        (name ?? throw new ArgumentNullException(nameof(name))) == "subprocess" ? _pid : defaultValue;

    public int GetPid() => _pid;

    public int? GetReturnCode() { _loop.VerifyAccess(); return _returnCode; }

    public ITransport? GetPipeTransport(int fd)
    {
        _loop.VerifyAccess();
        return (uint)fd < 3 ? _pipes[fd]?.Pipe : null;
    }

    public void SendSignal(int signal)
    {
        _loop.VerifyAccess();
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(signal);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(signal, 64);
        if (_lost) throw new ProcessLookupException("the subprocess transport is closed");
        // Reaped already: its pid may belong to someone else now (Popen.send_signal does nothing then).
        // Not reaped yet, the pid is still this child's, even as a zombie.
        // _watch.Done covers the fallback's window between its thread's waitpid and the exit's post.
        if (_returnCode is not null || _watch.Done) return;
        SignalsSent++;
        if (PosixNative.kill(_pid, signal) < 0 && PosixNative.Errno != PosixNative.ESRCH)
            throw PosixNative.IoError(PosixNative.Errno, "kill");
    }

    public void Terminate() => SendSignal(PosixNative.SIGTERM);

    public void Kill() => SendSignal(PosixNative.SIGKILL);

    /// <summary>Closes the pipes and kills the child if it still runs (asyncio's <c>close()</c>).</summary>
    public void Close()
    {
        _loop.VerifyAccess();
        if (_closed) return;
        _closed = true;
        foreach (var p in _pipes) p?.Pipe?.Close();
        if (_returnCode is null && !_watch.Done && !_lost)
        {
            SignalsSent++;
            PosixNative.kill(_pid, PosixNative.SIGKILL);
        }
    }

    // ---------------------------------------------------------------------------------------------
    // From the pipes and the watch

    private void PipeData(int fd, ReadOnlySpan<byte> data)
    {
        if (_protocol is not SubprocessProtocol sp) return;
        if (_pending is not null)
        {
            var copy = data.ToArray();
            _pending.Add(() => sp.PipeDataReceived(fd, copy));
            return;
        }

        // Connected: delivered now (asyncio defers by one call_soon; the order against the other calls,
        // which are deferred, is the same, and the bytes are not copied).
        try
        {
            sp.PipeDataReceived(fd, data);
        }
        catch (Exception e)
        {
            _loop.CallExceptionHandler(new ExceptionContext("Exception in callback SubprocessProtocol.pipe_data_received()", e) { Transport = this, Protocol = sp });
        }
    }

    private void PipeLost(int fd, Exception? e)
    {
        Call(() => Guard("pipe_connection_lost", p => p.PipeConnectionLost(fd, e)));
        TryFinish();
    }

    private void ProcessExited(int returnCode)
    {
        _returnCode = returnCode;
        Call(() => Guard("process_exited", p => p.ProcessExited()));
        TryFinish();
        var waiters = _exitWaiters!;
        _exitWaiters = null;
        foreach (var w in waiters)
        {
            if (!w.Done) w.SetResult(returnCode);
        }
    }

    private void Guard(string what, Action<SubprocessProtocol> call)
    {
        if (_protocol is not SubprocessProtocol sp) return;
        try
        {
            call(sp);
        }
        catch (Exception e)
        {
            _loop.CallExceptionHandler(new ExceptionContext($"Exception in callback SubprocessProtocol.{what}()", e) { Transport = this, Protocol = sp });
        }
    }

    private void TryFinish()
    {
        if (_returnCode is null || _finished) return;
        foreach (var p in _pipes)
        {
            if (p is { Disconnected: false }) return;
        }

        _finished = true;
        Call(() =>
        {
            _lost = true;
            _loop.Subprocesses.Remove(this);
            try
            {
                _protocol.ConnectionLost(null);
            }
            catch (Exception e)
            {
                _loop.CallExceptionHandler(new ExceptionContext("Exception in callback SubprocessProtocol.connection_lost()", e) { Transport = this, Protocol = _protocol });
            }
        });
    }

    /// <summary>The return code once the child has exited (asyncio's <c>_wait</c>).</summary>
    internal Future<int> ExitFuture()
    {
        var f = new Future<int>(_loop);
        if (_returnCode is { } rc) f.SetResult(rc);
        else _exitWaiters!.Add(f);
        return f;
    }

    /// <summary>The loop is closing with this transport not finished (the child running, or a pipe
    /// still open, say held by a grandchild): no zombie, no descriptor left behind.</summary>
    internal void CloseForLoopClose()
    {
        _watch.KillAndReap();
        foreach (var p in _pipes)
        {
            if (p?.Pipe is PipeTransport t) t.CloseFd();
        }
    }

    public override string ToString() => $"<SubprocessTransport pid={_pid} {(_returnCode is { } rc ? $"returncode={rc}" : "running")}>";

    /// <summary>A pipe's protocol: forwards to the subprocess transport with its fd (asyncio's
    /// <c>WriteSubprocessPipeProto</c> / <c>ReadSubprocessPipeProto</c>).</summary>
    private sealed class PipeProto(SubprocessTransport owner, int fd) : Protocol
    {
        public PipeTransport? Pipe;
        public bool Disconnected;

        public override void ConnectionLost(Exception? exception)
        {
            Disconnected = true;
            owner.PipeLost(fd, exception);
        }

        public override void DataReceived(ReadOnlySpan<byte> data) => owner.PipeData(fd, data);

        public override void PauseWriting() => owner._protocol.PauseWriting();

        public override void ResumeWriting() => owner._protocol.ResumeWriting();
    }
}
