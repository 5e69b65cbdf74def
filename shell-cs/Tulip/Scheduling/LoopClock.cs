using System.Diagnostics;

namespace Tulip;

/// <summary>
/// Where a loop's time comes from and how it waits. The real clock reads <see cref="Stopwatch"/> and
/// really waits; a virtual clock (Tulip.Testing) jumps to the next deadline instead of waiting whenever
/// nothing outside the loop can wake it, so an hour of timers runs in microseconds.
/// </summary>
public abstract class LoopClock
{
    /// <summary>Loop time now, in ticks of 100 ns. Monotonic.</summary>
    public abstract long Now { get; }

    /// <summary>
    /// The poll of the tick: wait at most <paramref name="timeoutTicks"/> (-1: no limit), or until
    /// <see cref="Wake"/> is called. <paramref name="externalPending"/> says whether anything outside the
    /// loop (another thread, an awaited .NET task) may still wake it.
    /// </summary>
    internal abstract void Wait(long timeoutTicks, bool externalPending);

    /// <summary>Ends a wait early (thread-safe). A wake with no one waiting makes the next wait return at once.</summary>
    internal abstract void Wake();

    /// <summary>Real time: the reactor may block for the whole poll timeout. A virtual clock jumps instead.</summary>
    internal virtual bool IsReal => false;

    /// <summary>A virtual clock with sockets watched: real time (ticks) to wait for I/O before jumping.</summary>
    internal virtual long IoQuietTicks => 0;

    /// <summary>A virtual clock with nothing scheduled: real time (ticks) to wait before declaring a deadlock.</summary>
    internal virtual long IdleLimitTicks => 0;

    /// <summary>A virtual clock with nothing scheduled waited its idle limit (for I/O) and nothing came:
    /// raise the deadlock now, unless a wake is pending.</summary>
    internal virtual void IdleLimitReached()
    {
    }
}

/// <summary>The real clock: monotonic time from <see cref="Stopwatch"/>, real waits.</summary>
public sealed class MonotonicClock : LoopClock
{
    private static readonly double TicksPerStopwatchTick = TimeSpan.TicksPerSecond / (double)Stopwatch.Frequency;
    private readonly long _origin = Stopwatch.GetTimestamp();
    private readonly SemaphoreSlim _wake = new(0, int.MaxValue);
    private int _wakePending;

    public override long Now => (long)((Stopwatch.GetTimestamp() - _origin) * TicksPerStopwatchTick);

    internal override bool IsReal => true;

    internal override void Wait(long timeoutTicks, bool externalPending)
    {
        if (timeoutTicks == 0)
        {
            return;
        }

        // Round a sub-millisecond timeout up, so a near timer is never polled for in a busy loop.
        int ms = timeoutTicks < 0 ? Timeout.Infinite
            : (int)Math.Min(int.MaxValue, (timeoutTicks + TimeSpan.TicksPerMillisecond - 1) / TimeSpan.TicksPerMillisecond);
        if (_wake.Wait(ms))
        {
            Interlocked.Exchange(ref _wakePending, 0);
            // Drain extra wakes so they don't turn into spurious zero-length waits later.
            while (_wake.CurrentCount > 0 && _wake.Wait(0))
            {
            }
        }
    }

    internal override void Wake()
    {
        if (Interlocked.Exchange(ref _wakePending, 1) == 0)
        {
            _wake.Release();
        }
    }
}
