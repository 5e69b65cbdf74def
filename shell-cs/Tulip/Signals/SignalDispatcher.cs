using System.Runtime.InteropServices;

namespace Tulip.Signals;

/// <summary>
/// The one process-wide owner of <see cref="PosixSignalRegistration"/>s made for loops: one registration
/// per signal number, however many loops (on however many threads) handle it, fanning each arrival out
/// to them. The registration is made when the first loop asks for the signal and disposed when the last
/// one lets go (the runtime then restores the signal's default action, as asyncio's
/// remove_signal_handler does with SIG_DFL). Registrations other code made (a host's, your own) live
/// beside these: the runtime calls each.
/// <para>The runtime calls the handler on its signal thread. It only records the arrival on each
/// target and posts to that target's loop through the loop's thread-safe door; the user's callback runs
/// on the loop thread, never here.</para>
/// </summary>
internal static class SignalDispatcher
{
    private sealed class Entry(PosixSignalRegistration registration)
    {
        public readonly PosixSignalRegistration Registration = registration;
        public LoopSignal[] Targets = [];
    }

    private static readonly object s_lock = new();
    private static readonly Dictionary<int, Entry> s_entries = new();

    /// <summary>Signals a loop handles now (tests: none left once the loops are closed).</summary>
    internal static int[] Registered()
    {
        lock (s_lock) return [.. s_entries.Keys.Order()];
    }

    internal static int TargetCount(int signal)
    {
        lock (s_lock) return s_entries.TryGetValue(signal, out var e) ? e.Targets.Length : 0;
    }

    public static void Add(LoopSignal target)
    {
        lock (s_lock)
        {
            if (!s_entries.TryGetValue(target.Signal, out var entry))
            {
                int signal = target.Signal;
                PosixSignalRegistration registration;
                if (OperatingSystem.IsWindows()) throw new PlatformNotSupportedException("no Unix signals on Windows");
                if (signal is UnixSignal.SIGINT or UnixSignal.SIGQUIT && NameResolution.LibC.IsIgnored(signal))
                {
                    // The runtime decides at start-up, for these two, to leave an inherited SIG_IGN alone
                    // (a background job's Ctrl+C belongs to the foreground) and never forwards them then.
                    throw new SignalIgnoredException(signal);
                }

                NameResolution.LibC.UnignoreSignal(signal);
                try
                {
                    registration = PosixSignalRegistration.Create(ToPosixSignal(signal), ctx => OnSignal(signal, ctx));
                }
                catch (Exception e) when (e is not PlatformNotSupportedException)
                {
                    throw new ArgumentException($"sig {signal} cannot be caught: {e.Message}", nameof(signal), e);
                }

                entry = new Entry(registration);
                s_entries.Add(signal, entry);
            }

            entry.Targets = [.. entry.Targets, target];
        }
    }

    public static void Remove(LoopSignal target)
    {
        lock (s_lock)
        {
            if (!s_entries.TryGetValue(target.Signal, out var entry)) return;
            entry.Targets = entry.Targets.Where(t => !ReferenceEquals(t, target)).ToArray();
            if (entry.Targets.Length > 0) return;
            s_entries.Remove(target.Signal);
            entry.Registration.Dispose();
        }
    }

    private static void OnSignal(int signal, PosixSignalContext context)
    {
        LoopSignal[] targets;
        lock (s_lock) targets = s_entries.TryGetValue(signal, out var e) ? e.Targets : [];
        // A fallback (Run's Ctrl+C handling: asyncio's stand-in for default_int_handler) steps aside
        // while any loop has a handler of its own for the signal.
        bool anyOwn = false;
        foreach (var t in targets) anyOwn |= !t.IsFallback;
        bool handled = anyOwn;
        foreach (var t in targets)
        {
            if (t.IsFallback)
            {
                // Its second arrival takes the default action here, on the signal thread, even when the
                // loop never ran the first one (stuck in blocking code): Ctrl+C twice always ends the
                // process, as asyncio's _on_sigint raises KeyboardInterrupt the second time.
                if (anyOwn || !t.FirstArrival()) continue;
                handled = true;
            }

            t.Arrive();
        }

        // A loop handles it: the default action (terminate, for most) must not run.
        if (handled) context.Cancel = true;
    }

    /// <summary>The runtime's own names for the signals it knows (its default-action handling keys on
    /// them); every other number is passed raw, which the runtime accepts on Unix.</summary>
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    private static PosixSignal ToPosixSignal(int signal) => signal switch
    {
        UnixSignal.SIGHUP => PosixSignal.SIGHUP,
        UnixSignal.SIGINT => PosixSignal.SIGINT,
        UnixSignal.SIGQUIT => PosixSignal.SIGQUIT,
        UnixSignal.SIGTERM => PosixSignal.SIGTERM,
        UnixSignal.SIGCHLD => PosixSignal.SIGCHLD,
        UnixSignal.SIGCONT => PosixSignal.SIGCONT,
        UnixSignal.SIGWINCH => PosixSignal.SIGWINCH,
        UnixSignal.SIGTTIN => PosixSignal.SIGTTIN,
        UnixSignal.SIGTTOU => PosixSignal.SIGTTOU,
        UnixSignal.SIGTSTP => PosixSignal.SIGTSTP,
        _ => (PosixSignal)signal,
    };
}

/// <summary>
/// One loop's handler for one signal. Arrivals coalesce: while a delivery is posted and has not run,
/// more arrivals add nothing, but the flag is cleared before the callback runs, so an arrival after
/// that posts again: the callback always runs after the last signal sent.
/// </summary>
internal sealed class LoopSignal(EventLoop loop, int signal, Action callback)
{
    private int _pending;
    private volatile bool _removed;

    public int Signal { get; } = signal;

    public Action Callback { get; set; } = callback;

    /// <summary>Installed by Run rather than by the program (see <see cref="SignalDispatcher"/>).</summary>
    public volatile bool IsFallback;

    public void Removed() => _removed = true;

    private int _arrivals;

    /// <summary>On the signal thread: whether this is the first arrival this handler sees (a fallback's second
    /// one is left to the default action).</summary>
    public bool FirstArrival() => Interlocked.Increment(ref _arrivals) == 1;

    /// <summary>On the runtime's signal thread: record, and post once.</summary>
    public void Arrive()
    {
        if (_removed || Interlocked.Exchange(ref _pending, 1) == 1) return;
        try
        {
            loop.CallSoonThreadsafe(static s => s.Deliver(), this);
        }
        catch (EventLoopException)
        {
            Volatile.Write(ref _pending, 0); // the loop closed: its handlers are being removed
        }
    }

    private void Deliver()
    {
        Volatile.Write(ref _pending, 0);
        if (!_removed) Callback();
    }
}
