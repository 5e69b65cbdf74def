using System.Diagnostics;
using Tulip.Core;
using Tulip.Io;

namespace Tulip;

/// <summary>
/// Where a loop's time comes from and how it waits: the seam for your own clock. The real clock
/// (<see cref="MonotonicClock"/>) reads <see cref="Stopwatch"/> and really waits; a virtual clock
/// (Tulip.Testing's <c>VirtualClock</c>) jumps to the next deadline instead of waiting whenever nothing
/// outside the loop can wake it, so an hour of timers runs in microseconds.
/// </summary>
/// <remarks>
/// <para>To write a clock (or adapt a <see cref="TimeProvider"/>, e.g. a <c>FakeTimeProvider</c>),
/// derive from this class and override <see cref="Now"/>, <see cref="Wait"/> and <see cref="Wake"/>;
/// a clock that really waits also overrides <see cref="IsRealTime"/> to return true. Pass the clock to
/// <c>new EventLoop(clock)</c>, <c>Asyncio.Run(main, debug, clock)</c> or <c>new Runner(debug, clock)</c>.
/// One clock serves one loop.</para>
/// <para>The loop calls <see cref="Wait"/> and <see cref="OnIdleLimitReached"/> on its own thread, once
/// per tick at most; <see cref="Wake"/> may be called from any thread at any time, also before or
/// during a <see cref="Wait"/>, and must not be lost: a wake that finds no one waiting makes the next
/// wait return at once. <see cref="Now"/> may be read from any thread.</para>
/// <para>How the loop waits, each tick (after CPython's <c>_run_once</c>; the policy is this class's,
/// in <c>PollArrivals</c>): with no I/O reactor, it calls <see cref="Wait"/> with the poll timeout.
/// With a reactor and a real-time clock, the reactor itself blocks for the timeout and the clock is
/// not asked. With a reactor and a virtual clock, the reactor is polled without blocking; if nothing
/// is ready and sockets are watched it is polled again for <see cref="IoWaitBeforeJump"/> of real
/// time (or <see cref="IoWaitWhenIdle"/> when nothing at all is scheduled, after which
/// <see cref="OnIdleLimitReached"/> is called instead of <see cref="Wait"/>), and only then does
/// <see cref="Wait"/> let time move.</para>
/// </remarks>
public abstract class LoopClock
{
    /// <summary>Loop time now, in ticks of 100 ns (<see cref="TimeSpan.TicksPerSecond"/> per second).
    /// Monotonic; readable from any thread.</summary>
    public abstract long Now { get; }

    /// <summary>
    /// The wait of the tick (loop thread only): return after at most <paramref name="timeout"/>
    /// (<see cref="System.Threading.Timeout.InfiniteTimeSpan"/>: no limit), or as soon as <see cref="Wake"/> is called, or at once if a wake
    /// came since the last wait. A real clock sleeps; a virtual clock may instead advance
    /// <see cref="Now"/> by the timeout and return. May throw to end the run (a virtual clock reports a
    /// deadlock this way): the exception leaves <c>RunForever</c> / <c>RunUntilComplete</c>.
    /// </summary>
    /// <param name="timeout">The poll timeout: time to the nearest timer, zero when callbacks are ready
    /// (never passed: the loop does not wait then), <see cref="System.Threading.Timeout.InfiniteTimeSpan"/>
    /// when nothing is scheduled.</param>
    /// <param name="externalWorkPending">Whether work outside the loop (another thread, an awaited .NET
    /// task) may still wake it: a virtual clock should give such work real time before jumping.</param>
    protected internal abstract void Wait(TimeSpan timeout, bool externalWorkPending);

    /// <summary>Ends a <see cref="Wait"/> early (any thread). A wake with no one waiting makes the next
    /// wait return at once; several wakes before a wait count as one.</summary>
    protected internal abstract void Wake();

    /// <summary>
    /// Whether <see cref="Now"/> follows real time, so the I/O reactor may block for a whole poll
    /// timeout. False (the default) makes the loop treat the clock as virtual: it never blocks in the
    /// reactor beyond <see cref="IoWaitBeforeJump"/> / <see cref="IoWaitWhenIdle"/>, then calls
    /// <see cref="Wait"/>, which may jump.
    /// </summary>
    protected internal virtual bool IsRealTime => false;

    /// <summary>
    /// A virtual clock with sockets watched and a timer pending: how long (real time) the loop polls
    /// for I/O before <see cref="Wait"/> may jump to the timer, so a real peer's answer does not lose a
    /// race with a virtual timer. Default zero: jump at once. Ignored when <see cref="IsRealTime"/>.
    /// </summary>
    protected internal virtual TimeSpan IoWaitBeforeJump => TimeSpan.Zero;

    /// <summary>
    /// A virtual clock with sockets watched and nothing scheduled: how long (real time) the loop polls
    /// for I/O before calling <see cref="OnIdleLimitReached"/>. Default zero: do not poll, call
    /// <see cref="Wait"/> with no limit. Ignored when <see cref="IsRealTime"/>.
    /// </summary>
    protected internal virtual TimeSpan IoWaitWhenIdle => TimeSpan.Zero;

    /// <summary>
    /// A virtual clock with sockets watched and nothing scheduled polled <see cref="IoWaitWhenIdle"/>
    /// for I/O and nothing came (loop thread). Return to run the next tick (e.g. a wake is pending), or
    /// throw to end the run (a deadlock). The default returns.
    /// </summary>
    protected internal virtual void OnIdleLimitReached()
    {
    }

    /// <summary>
    /// The poll of a tick, by this clock's policy (see the remarks): waits as <paramref name="timeout"/>
    /// (the core's answer) allows for readiness, a post or time, and writes the readiness into
    /// <paramref name="events"/>; returns how many. Loop thread only.
    /// </summary>
    internal int PollArrivals(IReactor? reactor, PollTimeout timeout, IArrivalProbe probe, Span<IoEvent> events)
    {
        bool now = timeout.Kind == PollKind.Timed && timeout.Ticks == 0;
        long ticks = timeout.Kind == PollKind.Timed ? timeout.Ticks : -1;
        if (reactor is null)
        {
            if (!now) Wait(ticks < 0 ? Timeout.InfiniteTimeSpan : TimeSpan.FromTicks(ticks), probe.ExternalWorkPending);
            return 0;
        }

        if (IsRealTime) return reactor.Poll(ticks, events);

        // A virtual clock: take what I/O is ready now. Real I/O may still be in flight (a loopback
        // peer answering), so while sockets are watched it gets a quiet period of real time first;
        // only when nothing came in does time jump.
        int ready = reactor.Poll(0, events);
        // That poll may have taken a wake-up meant for a post: look before a long poll.
        if (ready > 0 || now || probe.PostsPending) return ready;
        switch (timeout.Kind)
        {
            case PollKind.UntilIo:
                // Nothing scheduled, sources watched (the core's answer): only I/O or a post can
                // bring work. Wait for it up to the idle limit, then the clock decides (a deadlock,
                // unless it was woken meanwhile) without waiting the limit a second time.
                long idle = IoWaitWhenIdle.Ticks;
                if (idle <= 0) break;
                ready = reactor.Poll(idle, events);
                if (ready == 0 && !probe.PostsPending) OnIdleLimitReached();
                return ready;
            case PollKind.Timed when reactor.Count > 0:
                long quiet = IoWaitBeforeJump.Ticks;
                if (quiet <= 0) break;
                ready = reactor.Poll(quiet, events);
                if (ready > 0 || probe.PostsPending) return ready;
                break;
        }

        // UntilPost (nothing scheduled, nothing watched): only another thread can bring work, and
        // the clock's wait decides how long to give it (a virtual clock: then a deadlock).
        Wait(ticks < 0 ? Timeout.InfiniteTimeSpan : TimeSpan.FromTicks(ticks), probe.ExternalWorkPending);
        return 0;
    }
}

/// <summary>What a clock's poll policy may ask the loop while it waits (loop thread).</summary>
internal interface IArrivalProbe
{
    /// <summary>Posts (call_soon_threadsafe) are waiting to be taken in.</summary>
    bool PostsPending { get; }

    /// <summary>Work outside the loop that may still wake it is pending.</summary>
    bool ExternalWorkPending { get; }
}

/// <summary>The real clock: monotonic time from <see cref="Stopwatch"/>, real waits.</summary>
public sealed class MonotonicClock : LoopClock
{
    private static readonly double TicksPerStopwatchTick = TimeSpan.TicksPerSecond / (double)Stopwatch.Frequency;
    private readonly long _origin = Stopwatch.GetTimestamp();
    private readonly SemaphoreSlim _wake = new(0, int.MaxValue);
    private int _wakePending;

    /// <inheritdoc/>
    public override long Now => (long)((Stopwatch.GetTimestamp() - _origin) * TicksPerStopwatchTick);

    /// <inheritdoc/>
    protected internal override bool IsRealTime => true;

    /// <inheritdoc/>
    protected internal override void Wait(TimeSpan timeout, bool externalWorkPending)
    {
        if (timeout == TimeSpan.Zero)
        {
            return;
        }

        // Round a sub-millisecond timeout up, so a near timer is never polled for in a busy loop.
        long ticks = timeout.Ticks;
        int ms = timeout == Timeout.InfiniteTimeSpan ? Timeout.Infinite
            : (int)Math.Min(int.MaxValue, (ticks + TimeSpan.TicksPerMillisecond - 1) / TimeSpan.TicksPerMillisecond);
        // A release happens only when the flag goes from 0 to 1, so the semaphore holds at most one, and
        // the flag is cleared only after the loop took it: a Wake meanwhile sees the flag set and adds
        // nothing, and its post (queued before the Wake) is taken in by this tick. (The flag used to be
        // cleared before draining extra releases: a Wake between the two had its release drained and left
        // the flag set for good, and every later Wake was lost: the loop slept through its posts.)
        if (_wake.Wait(ms)) Interlocked.Exchange(ref _wakePending, 0);
    }

    /// <inheritdoc/>
    protected internal override void Wake()
    {
        if (Interlocked.Exchange(ref _wakePending, 1) == 0)
        {
            _wake.Release();
        }
    }
}
