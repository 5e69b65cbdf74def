using Tulip.Signals;

namespace Tulip;

public sealed partial class EventLoop
{
    // ---------------------------------------------------------------------------------------------
    // Unix signals (asyncio's add_signal_handler / remove_signal_handler). The process-wide
    // SignalDispatcher owns the runtime registrations; this loop keeps which signals it handles.

    private readonly Dictionary<int, LoopSignal> _signalHandlers = new();

    /// <summary>
    /// asyncio's <c>loop.add_signal_handler(sig, callback)</c>: from now on <paramref name="callback"/> runs
    /// on this loop's thread (never on the runtime's signal thread) when <paramref name="signal"/> arrives
    /// (a number, see <see cref="UnixSignal"/>), and the signal's default action does not run. A burst may
    /// coalesce into fewer calls, but a call always follows the last signal sent. A second call for the
    /// same signal replaces the callback. Several loops may handle one signal: each is called. Closing
    /// the loop removes its handlers.
    /// <para>Refused: a number that is no signal (<see cref="ArgumentOutOfRangeException"/>), SIGKILL and
    /// SIGSTOP and any other the OS will not let a process catch (<see cref="ArgumentException"/>, "sig N
    /// cannot be caught"), a system without Unix signals (<see cref="PlatformNotSupportedException"/>), a
    /// closed loop (<see cref="EventLoopException"/>), SIGINT or SIGQUIT in a process that started with it
    /// ignored (<see cref="SignalIgnoredException"/>: the runtime would never deliver it). Any other
    /// signal inherited as ignored is reset to its default first, as Python's signal.signal replaces SIG_IGN.</para>
    /// </summary>
    public void AddSignalHandler(int signal, Action callback)
    {
        ArgumentNullException.ThrowIfNull(callback);
        AddSignalHandler(signal, callback, fallback: false);
    }

    /// <summary>A fallback handler (Run's Ctrl+C) is called only while no loop has one of its own for the signal.</summary>
    internal LoopSignal AddSignalHandler(int signal, Action callback, bool fallback)
    {
        ThrowIfClosed();
        VerifyAccess();
        CheckSignal(signal);
        if (_signalHandlers.TryGetValue(signal, out var existing) && existing.IsFallback == fallback && !fallback)
        {
            // The program replaces its own callback (asyncio: a second add_signal_handler): same registration.
            existing.Callback = callback;
            return existing;
        }

        // A new handler object otherwise: one that replaces Run's fallback (or the reverse) is not the one
        // its owner removes at the end (RemoveSignalHandlerIf compares identity). Added before the old one
        // leaves, so the signal never falls back to its default action in between.
        var target = new LoopSignal(this, signal, callback) { IsFallback = fallback };
        SignalDispatcher.Add(target); // may refuse the signal: nothing is recorded then
        if (existing is not null)
        {
            existing.Removed();
            SignalDispatcher.Remove(existing);
        }

        _signalHandlers[signal] = target;
        return target;
    }

    /// <summary>add_signal_handler with an argument (asyncio's <c>*args</c>), allocating no closure per call.</summary>
    public void AddSignalHandler<TState>(int signal, Action<TState> callback, TState state)
    {
        ArgumentNullException.ThrowIfNull(callback);
        AddSignalHandler(signal, () => callback(state));
    }

    /// <summary>asyncio's <c>loop.remove_signal_handler(sig)</c>: whether a handler was registered. When no
    /// loop handles the signal any more its default action is back.</summary>
    public bool RemoveSignalHandler(int signal)
    {
        ThrowIfClosed();
        VerifyAccess();
        CheckSignal(signal);
        if (!_signalHandlers.Remove(signal, out var target)) return false;
        target.Removed();
        SignalDispatcher.Remove(target);
        return true;
    }

    /// <summary>
    /// The signals in <paramref name="signals"/> as they arrive, as an <c>await foreach</c> stream: while it
    /// is enumerated, this loop handles them (replacing any handler it had for them), one item per
    /// handler call (a burst may coalesce, the last signal is always seen); ending the enumeration (break,
    /// dispose, the token) removes the handlers. The handlers are installed when enumeration starts.
    /// </summary>
    public async IAsyncEnumerable<int> ReceiveSignalsAsync(int[] signals,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(signals);
        ThrowIfClosed();
        VerifyAccess();
        foreach (var s in signals) CheckSignal(s, nameof(signals));
        cancellationToken.ThrowIfCancellationRequested();
        var arrived = new Queue<int>();
        Future<ValueTuple>? waiter = null;
        var installed = new List<LoopSignal>();
        try
        {
            foreach (var s in signals.Distinct())
            {
                installed.Add(AddSignalHandler(s, () =>
                {
                    arrived.Enqueue(s);
                    if (waiter is { Done: false }) waiter.SetResult(default);
                }, fallback: false));
            }

            while (true)
            {
                while (arrived.Count > 0) yield return arrived.Dequeue();
                waiter = new Future<ValueTuple>(this);
                await TokenCancellation.WaitAsync(waiter, cancellationToken);
            }
        }
        finally
        {
            foreach (var t in installed) RemoveSignalHandlerIf(t);
        }
    }

    /// <summary>Removes <paramref name="target"/> if it is still this loop's handler for its signal.</summary>
    internal void RemoveSignalHandlerIf(LoopSignal target)
    {
        if (!IsClosed && _signalHandlers.TryGetValue(target.Signal, out var t) && ReferenceEquals(t, target)) RemoveSignalHandler(target.Signal);
    }

    /// <summary>The signals this loop handles now.</summary>
    internal IReadOnlyCollection<int> HandledSignals => _signalHandlers.Keys;

    private void CloseSignals()
    {
        foreach (var target in _signalHandlers.Values)
        {
            target.Removed();
            SignalDispatcher.Remove(target);
        }

        _signalHandlers.Clear();
    }

    private static void CheckSignal(int signal, [System.Runtime.CompilerServices.CallerArgumentExpression(nameof(signal))] string? paramName = null)
    {
        if (!OperatingSystem.IsLinux())
            throw new PlatformNotSupportedException("Unix signal handlers are wired up on Linux only (asyncio: NotImplementedError on Windows)");
        if (signal is < 1 or > UnixSignal.MaxSignal) throw new ArgumentOutOfRangeException(paramName, signal, $"invalid signal number {signal}");
        if (signal is UnixSignal.SIGKILL or UnixSignal.SIGSTOP) throw new ArgumentException($"sig {signal} cannot be caught", paramName);
    }
}
