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
/// the runtime's. A child reaped by someone else (ECHILD) reports 255, as asyncio's watchers.
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

    public bool Done => _done;

    private void Readable()
    {
        if (_done) return;
        int status;
        int r = PosixNative.waitpid(_pid, &status, PosixNative.WNOHANG);
        if (r == 0) return; // not yet (spurious readiness)
        int code = r == _pid ? PosixNative.DecodeStatus(status) : 255;
        Finish(code);
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
        int code = r == _pid ? PosixNative.DecodeStatus(status) : 255;
        try
        {
            _loop.CallSoonThreadsafe(static s => s.Item1.Finish(s.Item2), (this, code));
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
            int status;
            while (PosixNative.waitpid(_pid, &status, 0) < 0 && PosixNative.Errno == PosixNative.EINTR) { }
        }
        else
        {
            PosixNative.kill(_pid, PosixNative.SIGKILL); // the waiting thread reaps it
        }

        Release();
    }
}
