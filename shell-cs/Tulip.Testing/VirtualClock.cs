namespace Tulip.Testing;

/// <summary>
/// A loop clock that never sleeps: when the loop would wait for a timer and nothing outside the loop
/// can wake it, time jumps straight to that timer (Trio's MockClock with autojump). A test that sleeps an
/// hour of loop time runs in microseconds, deterministically.
/// </summary>
public sealed class VirtualClock : LoopClock
{
    private long _now;
    private readonly SemaphoreSlim _wake = new(0, int.MaxValue);
    private int _wakePending;

    /// <summary>A virtual clock starting at <paramref name="start"/> (default 0).</summary>
    public VirtualClock(TimeSpan start = default) => _now = start.Ticks;

    /// <inheritdoc/>
    public override long Now => Volatile.Read(ref _now);

    /// <summary>
    /// Real time to wait for a wake from outside the loop (another thread, a .NET task) before jumping
    /// (Trio's <c>autojump_threshold</c>; default 0: jump at once).
    /// </summary>
    public TimeSpan AutojumpThreshold { get; set; } = TimeSpan.Zero;

    /// <summary>
    /// When nothing at all is scheduled, how long to wait (real time) for another thread before
    /// declaring the loop stuck with <see cref="LoopDeadlockException"/>.
    /// </summary>
    public TimeSpan IdleLimit { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// While sockets are watched, how long (real time) the loop waits for I/O before time may jump: a
    /// loopback peer's answer is real, and must not lose a race with a virtual timer. Default 100 ms.
    /// </summary>
    public TimeSpan IoQuietPeriod { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>The loop's I/O wait before a jump: <see cref="IoQuietPeriod"/>.</summary>
    protected override TimeSpan IoWaitBeforeJump => IoQuietPeriod;

    /// <summary>The loop's I/O wait with nothing scheduled: <see cref="IdleLimit"/>.</summary>
    protected override TimeSpan IoWaitWhenIdle => IdleLimit;

    /// <summary>How far time has jumped in total.</summary>
    public TimeSpan Jumped { get; private set; }

    /// <summary>Moves time forward by hand (a test may also drive time itself).</summary>
    public void Advance(TimeSpan by)
    {
        if (by < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(by), "time never goes back");
        Interlocked.Add(ref _now, by.Ticks);
    }

    /// <inheritdoc/>
    protected override void Wait(TimeSpan timeout, bool externalWorkPending)
    {
        if (Interlocked.Exchange(ref _wakePending, 0) == 1)
        {
            Drain();
            return;
        }

        if (timeout == TimeSpan.Zero) return;
        if (timeout == Timeout.InfiniteTimeSpan)
        {
            // Nothing scheduled: only another thread can make progress now.
            if (_wake.Wait(IdleLimit))
            {
                Interlocked.Exchange(ref _wakePending, 0);
                Drain();
                return;
            }

            throw Deadlock();
        }

        var threshold = externalWorkPending ? IdleLimit : AutojumpThreshold;
        if (threshold > TimeSpan.Zero && _wake.Wait(threshold))
        {
            Interlocked.Exchange(ref _wakePending, 0);
            Drain();
            return;
        }

        Interlocked.Add(ref _now, timeout.Ticks);
        Jumped += timeout;
    }

    /// <inheritdoc/>
    protected override void OnIdleLimitReached()
    {
        if (Interlocked.Exchange(ref _wakePending, 0) == 1)
        {
            Drain();
            return;
        }

        throw Deadlock();
    }

    private LoopDeadlockException Deadlock() =>
        new($"the loop has nothing scheduled and nothing woke it within {IdleLimit.TotalSeconds:0.#} s: every task waits for something that never comes");

    private void Drain()
    {
        while (_wake.CurrentCount > 0 && _wake.Wait(0))
        {
        }
    }

    /// <inheritdoc/>
    protected override void Wake()
    {
        if (Interlocked.Exchange(ref _wakePending, 1) == 0) _wake.Release();
    }
}

/// <summary>The loop under a virtual clock can never make progress again.</summary>
public sealed class LoopDeadlockException(string message) : InvalidOperationException(message);

/// <summary>Loops for tests.</summary>
public static class TestLoop
{
    /// <summary>A new loop on a fresh virtual clock.</summary>
    public static EventLoop Create(TimeSpan start = default) => new(new VirtualClock(start));

    /// <summary>asyncio.run on a virtual clock.</summary>
    public static T Run<T>(Func<Task<T>> main, bool debug = false) => Asyncio.Run(main, debug, new VirtualClock());

    public static void Run(Func<Task> main, bool debug = false) => Asyncio.Run(main, debug, new VirtualClock());

    /// <summary>The virtual clock of a test loop.</summary>
    public static VirtualClock VirtualClock(this EventLoop loop) =>
        loop.Clock as VirtualClock ?? throw new InvalidOperationException("the loop does not run on a virtual clock");
}
