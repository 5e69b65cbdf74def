using Tulip.Io;

namespace Tulip.Subprocess;

/// <summary>
/// Learns that one child exited and reaps it, then runs <c>onExit(returncode)</c> on the loop.
///
/// The exit arrives through the loop's one door for descriptors: a pidfd (Linux 5.3+) becomes readable
/// when its process exits, so it is watched by the reactor like a socket (<see cref="EventLoop.SetWatch"/>)
/// and its readiness is a callback of the tick, where <c>waitpid(pid, WNOHANG)</c> reaps exactly this
/// child (CPython's <c>PidfdChildWatcher</c>). Where pidfd_open is missing, a thread per child blocks
/// in <c>waitpid(pid)</c> and posts the status with <see cref="EventLoop.CallSoonThreadsafe(Action)"/>
/// (CPython's <c>ThreadedChildWatcher</c>): either way nothing touches loop state off the loop thread.
/// Neither ever calls <c>waitpid(-1)</c>, so children of <see cref="System.Diagnostics.Process"/> stay
/// the runtime's. A child reaped by someone else (ECHILD) reports 255 with a warning (<see cref="Diagnostics.LoopLog"/>),
/// as asyncio's watchers.
/// </summary>
internal sealed unsafe class ChildWatch
{
    private static bool s_noPidfd;

    /// <summary>For tests: false makes new watches use the waiting thread, as on a kernel without pidfd.</summary>
    internal static bool UsePidfd
    {
        get => !s_noPidfd;
        set => s_noPidfd = !value;
    }
    private readonly EventLoop _loop;
    private readonly int _pid;
    private readonly Action<int> _onExit;
    private int _pidfd = -1;
    private IoSource? _source;
    private bool _done;

    // Set by the waiting thread once its waitpid returned, before it posts the exit: from then on the
    // pid may be recycled, so the loop must not signal it even though Finish has not run yet.
    private volatile bool _reaped;

    /// <summary>For tests: how long <see cref="KillAndReap"/> polls on the loop thread before a
    /// background thread takes over the reaping (zero: hand over at once).</summary>
    internal static TimeSpan ReapPollBudget = TimeSpan.FromSeconds(1);

    public ChildWatch(EventLoop loop, int pid, Action<int> onExit)
    {
        _loop = loop;
        _pid = pid;
        _onExit = onExit;
        if (!s_noPidfd)
        {
            try
            {
                _pidfd = PosixNative.pidfd_open(pid, 0);
            }
            catch (EntryPointNotFoundException)
            {
                s_noPidfd = true;
            }

            if (_pidfd < 0 && PosixNative.Errno == 38 /* ENOSYS */) s_noPidfd = true;
        }

        if (_pidfd >= 0)
        {
            _source = new IoSource(_pidfd);
            loop.SetWatch(_source, new StateHandle<ChildWatch>(loop, static w => w.Readable(), this), null);
            return;
        }

        var thread = new Thread(static s => ((ChildWatch)s!).BlockingWait()) { IsBackground = true, Name = $"waitpid {pid}" };
        thread.Start(this);
    }

    /// <summary>Finished, or reaped by the waiting thread with its exit not yet run on the loop: either
    /// way the pid is no longer this child's to signal.</summary>
    public bool Done => _done || _reaped;

    /// <summary>The waiting thread reaped the child (the pidfd-less fallback); its post may not have run.</summary>
    internal bool Reaped => _reaped;

    private void Readable()
    {
        if (_done) return;
        int status = 0;
        int r;
        do
        {
            r = PosixNative.waitpid(_pid, &status, PosixNative.WNOHANG);
        }
        while (r < 0 && PosixNative.Errno == PosixNative.EINTR);
        if (r == 0) return; // not yet (spurious readiness)
        Finish(r == _pid ? PosixNative.DecodeStatus(status) : Unknown());
    }

    /// <summary>waitpid failed (ECHILD: someone else reaped the child): asyncio's watchers log this and
    /// report 255.</summary>
    private int Unknown()
    {
        Diagnostics.LoopLog.Warning($"Unknown child process pid {_pid}, will report returncode 255");
        return 255;
    }

    private void BlockingWait()
    {
        int status = 0;
        int r;
        do
        {
            r = PosixNative.waitpid(_pid, &status, 0);
        }
        while (r < 0 && PosixNative.Errno == PosixNative.EINTR);
        bool known = r == _pid;
        int code = known ? PosixNative.DecodeStatus(status) : 255;
        _reaped = true;
        try
        {
            // The warning for an unknown child is written on the loop thread, like the pidfd path's.
            _loop.CallSoonThreadsafe(static s => s.Item1.Finish(s.Item3 ? s.Item2 : s.Item1.Unknown()), (this, code, known));
        }
        catch (EventLoopException)
        {
            // The loop closed first: the child is reaped all the same.
        }
    }

    private void Finish(int code)
    {
        if (_done) return;
        _done = true;
        Release();
        _onExit(code);
    }

    private void Release()
    {
        if (_source is not null)
        {
            _loop.Unwatch(_source);
            _source = null;
        }

        if (_pidfd >= 0)
        {
            PosixNative.close(_pidfd);
            _pidfd = -1;
        }
    }

    /// <summary>
    /// The loop is closing with this child still running: kill it and reap it now (SIGKILL cannot be
    /// caught, so the wait is short), so a closed loop leaves no zombie and no pidfd.
    /// </summary>
    public void KillAndReap()
    {
        if (_done) return;
        _done = true;
        if (_pidfd >= 0)
        {
            PosixNative.kill(_pid, PosixNative.SIGKILL);
            // SIGKILL is usually quick, but a child in uninterruptible sleep (D state, say on a dead NFS
            // mount) dies only when that sleep ends: poll for a bounded time, then let a thread wait.
            if (!TryReapWithin(ReapPollBudget))
            {
                int pid = _pid;
                var thread = new Thread(static s => BlockingReap((int)s!)) { IsBackground = true, Name = $"reap {pid}" };
                thread.Start(pid);
            }
        }
        else if (!_reaped)
        {
            PosixNative.kill(_pid, PosixNative.SIGKILL); // the waiting thread reaps it
        }

        Release();
    }

    /// <summary>waitpid(WNOHANG) until the child is reaped (or gone: ECHILD) or the budget is spent.</summary>
    private bool TryReapWithin(TimeSpan budget)
    {
        long deadline = Environment.TickCount64 + (long)budget.TotalMilliseconds;
        while (true)
        {
            int status;
            int r = PosixNative.waitpid(_pid, &status, PosixNative.WNOHANG);
            if (r == _pid || (r < 0 && PosixNative.Errno != PosixNative.EINTR)) return true;
            if (r == 0 && Environment.TickCount64 >= deadline) return false;
            if (r == 0) Thread.Sleep(1);
        }
    }

    private static void BlockingReap(int pid)
    {
        int status;
        while (PosixNative.waitpid(pid, &status, 0) < 0 && PosixNative.Errno == PosixNative.EINTR) { }
    }
}
