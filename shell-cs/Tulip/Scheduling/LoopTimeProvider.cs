namespace Tulip;

/// <summary>
/// A <see cref="TimeProvider"/> on loop time: timestamps are the loop clock's ticks and timers are loop
/// timers whose callbacks run on the loop thread. Under a virtual clock, <c>Task.Delay(d, provider)</c>,
/// <c>PeriodicTimer</c> and <c>CancellationTokenSource(d, provider)</c> follow virtual time.
/// </summary>
internal sealed class LoopTimeProvider(EventLoop loop) : TimeProvider
{
    private readonly DateTimeOffset _origin = DateTimeOffset.UtcNow;

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override long GetTimestamp() => loop.Clock.Now;

    /// <summary>Wall time advancing with loop time (so virtual time moves it too).</summary>
    public override DateTimeOffset GetUtcNow() => _origin + loop.Now;

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        ArgumentNullException.ThrowIfNull(callback);
        var timer = new LoopTimer(loop, callback, state);
        timer.Change(dueTime, period);
        return timer;
    }

    private sealed class LoopTimer(EventLoop loop, TimerCallback callback, object? state) : ITimer
    {
        private TimerHandle? _handle;
        private TimeSpan _period = Timeout.InfiniteTimeSpan;
        private bool _disposed;
        private int _generation;

        // Any thread (ITimer's contract): done on the loop, at once where the caller may touch it, else
        // posted (one test-and-enter: a run cannot start between the check and the change).
        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            if (_disposed) return false;
            loop.InvokeOnLoop(static s => s.Item1.ChangeOnLoop(s.Item2, s.Item3), (this, dueTime, period));
            return true;
        }

        private void ChangeOnLoop(TimeSpan dueTime, TimeSpan period)
        {
            if (_disposed) return;
            _generation++;
            _handle?.Cancel();
            _handle = null;
            _period = period;
            if (dueTime != Timeout.InfiniteTimeSpan && !loop.IsClosed)
            {
                _handle = loop.CallLater(dueTime < TimeSpan.Zero ? TimeSpan.Zero : dueTime, static s => s.Item1.Fire(s.Item2), (this, _generation));
            }
        }

        private void Fire(int generation)
        {
            if (_disposed || generation != _generation) return;
            _handle = null;
            if (_period != Timeout.InfiniteTimeSpan && _period > TimeSpan.Zero)
            {
                _handle = loop.CallLater(_period, static s => s.Item1.Fire(s.Item2), (this, generation));
            }

            callback(state);
        }

        public void Dispose()
        {
            if (_disposed) return;
            loop.InvokeOnLoop(static t => t.DisposeOnLoop(), this);
        }

        private void DisposeOnLoop()
        {
            if (_disposed) return;
            _disposed = true;
            _handle?.Cancel();
            _handle = null;
        }

        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
