namespace Tulip;

/// <summary>
/// asyncio.timeout (3.11's <c>Timeout</c>, timeouts.py): a scope in a task that cancels the task when
/// its deadline passes and turns that cancellation into <see cref="TimeoutException"/> at the scope's
/// end. It uses <c>Task.cancel</c>/<c>uncancel</c>, so a cancellation from elsewhere still wins: the
/// error becomes a timeout only when the scope's own request is the last one outstanding.
/// <para>Two ways to use it. <c>await Asyncio.Timeout(1.0, async t => …)</c> sees how the body ended
/// and follows 3.11 exactly. <c>await using var t = Asyncio.Timeout(1.0);</c> cannot see the body's
/// exception (C# gives <c>DisposeAsync</c> none): once the deadline has cancelled the task it raises
/// <see cref="TimeoutException"/> at the end of the scope, even if the body caught the cancellation and
/// went on (3.11 would then raise nothing), and that error replaces any the body was raising.</para>
/// </summary>
public sealed class TimeoutScope : IAsyncDisposable
{
    private enum State { Created, Entered, Expiring, Expired, Exited }

    private State _state = State.Created;
    private double? _when;
    private TimerHandle? _timer;
    private Handle? _soon;
    private ILoopTask? _task;
    private EventLoop? _loop;

    internal TimeoutScope(double? when) => _when = when;

    /// <summary>The deadline in loop time (seconds), or null for none (asyncio's <c>when()</c>).</summary>
    public double? When
    {
        get
        {
            _loop?.CheckThread();
            return _when;
        }
    }

    /// <summary>Whether the deadline passed and the scope cancelled the task (asyncio's <c>expired()</c>).</summary>
    public bool Expired
    {
        get
        {
            _loop?.CheckThread();
            return _state is State.Expiring or State.Expired;
        }
    }

    /// <summary>Moves the deadline (loop time in seconds; null: none). Only inside the scope.</summary>
    public void Reschedule(double? when)
    {
        _loop?.CheckThread();
        if (_state == State.Created) throw new InvalidOperationException("Timeout has not been entered");
        if (_state != State.Entered) throw new InvalidOperationException($"Cannot change state of {StateName} Timeout");
        _when = when;
        _timer?.Cancel();
        _soon?.Cancel();
        _timer = null;
        _soon = null;
        if (when is not { } w) return;
        var loop = _loop!;
        if (w <= loop.Time()) _soon = loop.CallSoon(OnTimeout);
        else _timer = loop.CallAt(w, OnTimeout);
    }

    /// <summary>asyncio's <c>__aenter__</c>: binds the scope to the current task and arms the deadline.</summary>
    internal TimeoutScope Enter()
    {
        if (_state != State.Created) throw new InvalidOperationException("Timeout has already been entered");
        _loop = EventLoop.GetRunningLoop();
        _task = _loop.CurrentTask ?? throw new InvalidOperationException("Timeout should be used inside a task");
        _state = State.Entered;
        Reschedule(_when);
        return this;
    }

    /// <summary>
    /// asyncio's <c>__aexit__</c>: disarms the deadline; if it had cancelled the task and
    /// <paramref name="cancelled"/> (the body is ending with that cancellation) and no other
    /// cancellation is outstanding, raises <see cref="TimeoutException"/>.
    /// </summary>
    internal void Exit(bool cancelled, Exception? inner)
    {
        _timer?.Cancel();
        _soon?.Cancel();
        _timer = null;
        _soon = null;
        if (_state == State.Expiring)
        {
            _state = State.Expired;
            if (_task!.Uncancel() == 0 && cancelled) throw new TimeoutException("The operation has timed out.", inner);
        }
        else if (_state == State.Entered)
        {
            _state = State.Exited;
        }
    }

    /// <summary>The end of an <c>await using</c> scope (see the class remarks for what it cannot see).</summary>
    public ValueTask DisposeAsync()
    {
        _loop?.CheckThread();
        Exit(cancelled: true, inner: null);
        return ValueTask.CompletedTask;
    }

    private void OnTimeout()
    {
        if (_state != State.Entered) return;
        _timer = null;
        _soon = null;
        _task!.Cancel();
        _state = State.Expiring;
    }

    private string StateName => _state.ToString().ToLowerInvariant();

    public override string ToString() =>
        $"<Timeout [{StateName}]{(_state == State.Entered ? $" when={(_when is { } w ? w.ToString("0.000", System.Globalization.CultureInfo.InvariantCulture) : "None")}" : "")}>";

    /// <summary>Runs <paramref name="body"/> inside the scope, as <c>async with timeout(…)</c> does.</summary>
    internal async Task<T> RunAsync<T>(Func<TimeoutScope, Task<T>> body)
    {
        Enter();
        T result;
        try
        {
            result = await body(this);
        }
        catch (OperationCanceledException e)
        {
            Exit(cancelled: true, inner: e);
            throw;
        }
        catch (Exception)
        {
            Exit(cancelled: false, inner: null);
            throw;
        }

        Exit(cancelled: false, inner: null);
        return result;
    }
}

public static partial class Asyncio
{
    /// <summary>
    /// asyncio.timeout: a scope, entered at once, that cancels the current task after
    /// <paramref name="delay"/> seconds (null: never, until rescheduled) and raises
    /// <see cref="TimeoutException"/> at its end: <c>await using var t = Asyncio.Timeout(1.0);</c>.
    /// </summary>
    public static TimeoutScope Timeout(double? delay)
    {
        var loop = EventLoop.GetRunningLoop();
        return new TimeoutScope(delay is { } d ? loop.Time() + d : null).Enter();
    }

    /// <summary>asyncio.timeout_at: as <see cref="Timeout(double?)"/> with a deadline in loop time.</summary>
    public static TimeoutScope TimeoutAt(double? when) => new TimeoutScope(when).Enter();

    /// <summary><c>async with asyncio.timeout(delay)</c> around <paramref name="body"/>, with 3.11's exact exit rule.</summary>
    public static Task<T> Timeout<T>(double? delay, Func<TimeoutScope, Task<T>> body)
    {
        ArgumentNullException.ThrowIfNull(body);
        var loop = EventLoop.GetRunningLoop();
        return new TimeoutScope(delay is { } d ? loop.Time() + d : null).RunAsync(body);
    }

    public static Task Timeout(double? delay, Func<TimeoutScope, Task> body)
    {
        ArgumentNullException.ThrowIfNull(body);
        return Timeout<ValueTuple>(delay, async t =>
        {
            await body(t);
            return default;
        });
    }

    /// <summary><c>async with asyncio.timeout_at(when)</c> around <paramref name="body"/>.</summary>
    public static Task<T> TimeoutAt<T>(double? when, Func<TimeoutScope, Task<T>> body)
    {
        ArgumentNullException.ThrowIfNull(body);
        return new TimeoutScope(when).RunAsync(body);
    }

    public static Task TimeoutAt(double? when, Func<TimeoutScope, Task> body)
    {
        ArgumentNullException.ThrowIfNull(body);
        return TimeoutAt<ValueTuple>(when, async t =>
        {
            await body(t);
            return default;
        });
    }
}
