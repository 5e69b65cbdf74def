namespace Tulip;

/// <summary>
/// Linux's signal numbers (x64 and arm64), for <see cref="EventLoop.AddSignalHandler(int, Action)"/>: C#
/// has no <c>signal</c> module, and <see cref="System.Runtime.InteropServices.PosixSignal"/> names only a
/// few, with its own (negative) values.
/// </summary>
public static class UnixSignal
{
    public const int SIGHUP = 1, SIGINT = 2, SIGQUIT = 3, SIGILL = 4, SIGTRAP = 5, SIGABRT = 6, SIGBUS = 7, SIGFPE = 8, SIGKILL = 9,
        SIGUSR1 = 10, SIGSEGV = 11, SIGUSR2 = 12, SIGPIPE = 13, SIGALRM = 14, SIGTERM = 15, SIGCHLD = 17, SIGCONT = 18, SIGSTOP = 19,
        SIGTSTP = 20, SIGTTIN = 21, SIGTTOU = 22, SIGURG = 23, SIGXCPU = 24, SIGXFSZ = 25, SIGVTALRM = 26, SIGPROF = 27, SIGWINCH = 28,
        SIGIO = 29, SIGPWR = 30, SIGSYS = 31;

    /// <summary>The highest signal number (SIGRTMAX).</summary>
    public const int MaxSignal = 64;

    /// <summary>Sends <paramref name="signal"/> to this process (kill(2) of its own id), as PyMOTW's example
    /// does with <c>os.kill(os.getpid(), sig)</c>; 0 only checks that the process exists.</summary>
    [ThreadSafe]
    public static void SendToSelf(int signal)
    {
        if (!OperatingSystem.IsLinux()) throw new PlatformNotSupportedException("sending signals is wired up on Linux only");
        ArgumentOutOfRangeException.ThrowIfNegative(signal);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(signal, MaxSignal);
        if (NameResolution.LibC.kill(Environment.ProcessId, signal) != 0)
            throw new System.ComponentModel.Win32Exception(System.Runtime.InteropServices.Marshal.GetLastPInvokeError());
    }
}
