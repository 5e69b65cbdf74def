using System.Reactive.Concurrency;
using System.Reactive.Disposables;

namespace Tulip.Reactive;

/// <summary>
/// An Rx scheduler on a Tulip loop: <see cref="Now"/> is loop time and every piece of work runs as a
/// loop callback (immediate work: <c>CallSoon</c>; timed work: <c>CallAt</c> at an absolute loop
/// deadline), so <c>Observable.Timer</c>, <c>Interval</c>, <c>Throttle</c>, <c>Buffer</c>,
/// <c>Timeout</c>, <c>Delay</c>… run on the loop thread and, under Tulip.Testing's virtual clock, in
/// virtual time — the same clock as <c>Asyncio.Sleep</c> and <see cref="EventLoop.TimeProvider"/>.
/// <para>Disposing what <c>Schedule</c> returns cancels the loop handle at once (on the loop thread;
/// from another thread the work is first marked dead, so it cannot run, and the handle is cancelled
/// through <c>CallSoonThreadsafe</c>). Scheduling from another thread goes through
/// <c>CallSoonThreadsafe</c>; a relative due time is measured from the moment of the call.</para>
/// <para>After dotnet/reactive's <c>VirtualTimeScheduler</c>: one queue, ties broken by insertion —
/// here the loop's own timer queue, FIFO among equal deadlines.</para>
/// <para>Thread-safe throughout, as Rx requires of a scheduler: any thread may schedule, dispose, read
/// <see cref="Now"/>. Due times saturate (TimeSpan.MaxValue is "never", not an overflow).</para>
/// </summary>
[ThreadSafe]
public sealed class LoopScheduler : IScheduler, ISchedulerPeriodic, IStopwatchProvider, IServiceProvider
{
    private readonly DateTimeOffset _origin;

    public LoopScheduler(EventLoop loop)
    {
        ArgumentNullException.ThrowIfNull(loop);
        Loop = loop;
        // The loop's TimeProvider reads wall time as origin + loop time: take the same origin, so Rx's
        // Now, TimeProvider.GetUtcNow() and loop.Time() are one clock.
        _origin = loop.TimeProvider.GetUtcNow() - loop.Now;
    }

    /// <summary>The scheduler of the running loop.</summary>
    public static LoopScheduler Current => new(EventLoop.GetRunningLoop());

    public EventLoop Loop { get; }

    /// <summary>Loop time as a wall-clock value (the loop's <see cref="TimeProvider"/> origin plus loop time).</summary>
    public DateTimeOffset Now => _origin + Loop.Now;

    /// <summary>Converts an Rx absolute time to loop time.</summary>
    public TimeSpan ToLoopTime(DateTimeOffset time) => time - _origin;

    public IDisposable Schedule<TState>(TState state, Func<IScheduler, TState, IDisposable> action)
    {
        ArgumentNullException.ThrowIfNull(action);
        var item = new WorkItem<TState>(this, state, action);
        item.Start(null);
        return item;
    }

    public IDisposable Schedule<TState>(TState state, TimeSpan dueTime, Func<IScheduler, TState, IDisposable> action)
    {
        ArgumentNullException.ThrowIfNull(action);
        if (dueTime <= TimeSpan.Zero) return Schedule(state, action);
        var item = new WorkItem<TState>(this, state, action);
        item.Start(Later(Loop.Now, dueTime));
        return item;
    }

    public IDisposable Schedule<TState>(TState state, DateTimeOffset dueTime, Func<IScheduler, TState, IDisposable> action)
    {
        ArgumentNullException.ThrowIfNull(action);
        var item = new WorkItem<TState>(this, state, action);
        var when = ToLoopTime(dueTime);
        item.Start(when <= Loop.Now ? null : when);
        return item;
    }

    /// <summary>
    /// Periodic work at start + k·period (deadlines are absolute, so a slow callback does not make the
    /// series drift). A zero period runs once per loop tick.
    /// </summary>
    public IDisposable SchedulePeriodic<TState>(TState state, TimeSpan period, Func<TState, TState> action)
    {
        ArgumentNullException.ThrowIfNull(action);
        ArgumentOutOfRangeException.ThrowIfLessThan(period, TimeSpan.Zero);
        var p = new PeriodicItem<TState>(this, state, period, action);
        Loop.InvokeOnLoop(static p => p.Arm(), p);
        return p;
    }

    public IStopwatch StartStopwatch() => new LoopStopwatch(Loop);

    /// <summary>Rx looks services up here (<c>scheduler.AsPeriodic()</c>, <c>AsStopwatchProvider()</c>).</summary>
    public object? GetService(Type serviceType)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        return serviceType == typeof(ISchedulerPeriodic) || serviceType == typeof(IStopwatchProvider) ? this : null;
    }

    /// <summary><paramref name="now"/> + <paramref name="delay"/> (delay ≥ 0), saturating at TimeSpan.MaxValue.</summary>
    private static TimeSpan Later(TimeSpan now, TimeSpan delay) =>
        delay >= TimeSpan.MaxValue - now ? TimeSpan.MaxValue : now + delay;

    public override string ToString() => $"<LoopScheduler now={Loop.Time():0.000}>";

    private sealed class LoopStopwatch(EventLoop loop) : IStopwatch
    {
        private readonly TimeSpan _start = loop.Now;
        public TimeSpan Elapsed => loop.Now - _start;
    }

    /// <summary>
    /// What every scheduled item shares: its loop handle, and a disposal that cancels it on the loop
    /// thread (posted there when disposed from another thread).
    /// </summary>
    private abstract class LoopItem(LoopScheduler scheduler) : IDisposable
    {
        protected Handle? LoopHandle;
        private volatile bool _disposed;

        protected LoopScheduler Scheduler => scheduler;

        protected bool Disposed => _disposed;

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            OnDispose();
            var loop = scheduler.Loop;
            if (loop.CheckAccess()) CancelHandle();
            else if (!loop.IsClosed) loop.CallSoonThreadsafe(static self => self.CancelHandle(), this);
        }

        /// <summary>Disposes what the item owns besides its handle (any thread).</summary>
        protected virtual void OnDispose()
        {
        }

        private void CancelHandle()
        {
            LoopHandle?.Cancel();
            LoopHandle = null;
        }
    }

    /// <summary>One scheduled action: its loop handle, then whatever the action returned (recursive work).</summary>
    private sealed class WorkItem<TState>(LoopScheduler scheduler, TState state, Func<IScheduler, TState, IDisposable> action)
        : LoopItem(scheduler)
    {
        private readonly SingleAssignmentDisposable _inner = new();

        internal void Start(TimeSpan? when)
        {
            var loop = Scheduler.Loop;
            if (loop.CheckAccess()) Enqueue(when);
            else loop.CallSoonThreadsafe(static s => s.Item1.Enqueue(s.Item2), (this, when));
        }

        private void Enqueue(TimeSpan? when)
        {
            if (Disposed) return;
            var loop = Scheduler.Loop;
            LoopHandle = when is { } w
                ? loop.CallAt(w, static self => self.Invoke(), this)
                : loop.CallSoon(static self => self.Invoke(), this);
        }

        private void Invoke()
        {
            LoopHandle = null;
            if (Disposed) return;
            _inner.Disposable = action(Scheduler, state);
        }

        protected override void OnDispose() => _inner.Dispose();
    }

    private sealed class PeriodicItem<TState>(LoopScheduler scheduler, TState state, TimeSpan period, Func<TState, TState> action)
        : LoopItem(scheduler)
    {
        private TState _state = state;
        private TimeSpan _next;

        internal void Arm()
        {
            if (Disposed) return;
            _next = Later(Scheduler.Loop.Now, period);
            Enqueue();
        }

        private void Enqueue()
        {
            var loop = Scheduler.Loop;
            LoopHandle = period == TimeSpan.Zero
                ? loop.CallSoon(static self => self.Tick(), this)
                : loop.CallAt(_next, static self => self.Tick(), this);
        }

        private void Tick()
        {
            LoopHandle = null;
            if (Disposed) return;
            // Re-arm before running, so the series keeps its deadlines; disposal inside the action cancels it.
            _next = Later(_next, period);
            Enqueue();
            _state = action(_state);
        }
    }
}
