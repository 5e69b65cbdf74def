using System.Runtime.CompilerServices;
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
/// <para>A scope may be created before it is entered (<c>var t = Asyncio.CreateTimeout(5);</c> …
/// <c>await using (t.Enter()) { … }</c> or <c>await t.RunAsync(…)</c>), as <c>t = asyncio.timeout(5)</c>
/// … <c>async with t:</c>. Entered while the task already has cancel requests pending, it still turns
/// its own expiry into <see cref="TimeoutException"/>: it counts the requests at entry and converts when
/// <c>Uncancel</c> brings them back to that count (CPython 3.11.7 and 3.12; 3.11.2 compares with 0).</para>
/// </summary>
public sealed class TimeoutScope : IAsyncDisposable
{
    private TimeoutState _state = TimeoutState.Created;
    private int _cancelling;
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
            _loop?.VerifyAccess();
            return _when;
        }
    }

    /// <summary>Whether the deadline passed and the scope cancelled the task (asyncio's <c>expired()</c>).</summary>
    public bool Expired
    {
        get
        {
            _loop?.VerifyAccess();
            return _state is TimeoutState.Expiring or TimeoutState.Expired;
        }
    }

    /// <summary>Where the scope is in its life (asyncio's <c>_State</c>).</summary>
    public TimeoutState State
    {
        get
        {
            _loop?.VerifyAccess();
            return _state;
        }
    }

    /// <summary>Moves the deadline (loop time in seconds; null: none). Only inside the scope.</summary>
    public void Reschedule(double? when)
    {
        _loop?.VerifyAccess();
        if (_state == TimeoutState.Created) throw new InvalidOperationException("Timeout has not been entered");
        if (_state != TimeoutState.Active) throw new InvalidOperationException($"Cannot change state of {StateName} Timeout");
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

    /// <summary>Moves the deadline to <paramref name="when"/> in loop time (null: none). Only inside the scope.</summary>
    public void Reschedule(TimeSpan when) => Reschedule((double?)when.TotalSeconds);

    /// <summary>
    /// asyncio's <c>__aenter__</c>: binds the scope to the current task and arms the deadline; returns
    /// the scope, to be disposed at the end (<c>await using (t.Enter())</c>). Entering twice raises.
    /// </summary>
    public TimeoutScope Enter()
    {
        if (_state != TimeoutState.Created) throw new InvalidOperationException("Timeout has already been entered");
        var loop = EventLoop.GetRunningLoop();
        _task = loop.CurrentTask ?? throw new InvalidOperationException("Timeout should be used inside a task");
        _loop = loop;
        _state = TimeoutState.Active;
        _cancelling = _task.Cancelling();
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
        if (_state is not (TimeoutState.Active or TimeoutState.Expiring))
            throw new InvalidOperationException(_state == TimeoutState.Created ? "Timeout has not been entered" : $"Cannot exit {StateName} Timeout");
        _timer?.Cancel();
        _soon?.Cancel();
        _timer = null;
        _soon = null;
        if (_state == TimeoutState.Expiring)
        {
            _state = TimeoutState.Expired;
            if (_task!.Uncancel() <= _cancelling && cancelled) throw new TimeoutException("The operation has timed out.", inner);
        }
        else
        {
            _state = TimeoutState.Finished;
        }
    }

    /// <summary>The end of an <c>await using</c> scope (see the class remarks for what it cannot see).</summary>
    public ValueTask DisposeAsync()
    {
        _loop?.VerifyAccess();
        Exit(cancelled: true, inner: null);
        return ValueTask.CompletedTask;
    }

    private void OnTimeout()
    {
        if (_state != TimeoutState.Active) return;
        _timer = null;
        _soon = null;
        _task!.Cancel();
        _state = TimeoutState.Expiring;
    }

    private string StateName => _state.ToString().ToLowerInvariant();

    /// <summary>asyncio's repr: <c>&lt;Timeout [active] when=12.5&gt;</c>, <c>when</c> as <c>round(when, 3)</c>.</summary>
    public override string ToString() =>
        $"<Timeout [{StateName}]{(_state == TimeoutState.Active ? $" when={(_when is { } w ? PythonFloat(Math.Round(w, 3)) : "None")}" : "")}>";

    /// <summary>Python's repr of a float: the shortest round-trip digits, with ".0" on whole numbers.</summary>
    private static string PythonFloat(double x)
    {
        var s = x.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
        return s.Contains('.') || s.Contains('E') || s.Contains("Infinity") || s == "NaN" ? s : s + ".0";
    }

    /// <summary>Runs <paramref name="body"/> inside the scope, as <c>async with t:</c> does (entering it
    /// now). <paramref name="cancellationToken"/> cancels the task while the scope runs, as cancelling the
    /// task inside <c>async with</c> would; the scope then raises <see cref="CancelledException"/> carrying
    /// the token (not a timeout, even if the deadline passed meanwhile: 3.11's exit rule).</summary>
    [OverloadResolutionPriority(1)] // an async lambda fits the ValueTask overload too: the Task one wins
    public Task<T> RunAsync<T>(Func<TimeoutScope, Task<T>> body, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(body);
        _loop?.VerifyAccess();
        return cancellationToken.CanBeCanceled
            ? ScopeToken.RunAsync(() => RunInScopeAsync(body), cancellationToken)
            : RunInScopeAsync(body);
    }

    /// <summary>As <see cref="RunAsync{T}(Func{TimeoutScope, Task{T}}, CancellationToken)"/> with a <see cref="ValueTask{TResult}"/> body.</summary>
    public Task<T> RunAsync<T>(Func<TimeoutScope, ValueTask<T>> body, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(body);
        return RunAsync(t => body(t).AsTask(), cancellationToken);
    }

    private async Task<T> RunInScopeAsync<T>(Func<TimeoutScope, Task<T>> body)
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

/// <summary>The life of a <see cref="TimeoutScope"/>; the lower-case names are asyncio's words.</summary>
public enum TimeoutState
{
    /// <summary>Made, not entered yet.</summary>
    Created,
    /// <summary>Entered; the deadline is armed.</summary>
    Active,
    /// <summary>The deadline passed and the task was cancelled; the scope has not ended yet.</summary>
    Expiring,
    /// <summary>Ended after its deadline passed.</summary>
    Expired,
    /// <summary>Ended before its deadline.</summary>
    Finished,
}

public static partial class Asyncio
{
    /// <summary>
    /// A timeout scope made now (its deadline <paramref name="delay"/> seconds from now; null: none) and
    /// entered later: <c>await using (t.Enter())</c> or <c>t.RunAsync(…)</c> (<c>t = asyncio.timeout(d)</c>).
    /// </summary>
    public static TimeoutScope CreateTimeout(double? delay)
    {
        var loop = EventLoop.GetRunningLoop();
        return new TimeoutScope(delay is { } d ? loop.Time() + d : null);
    }

    /// <summary>As <see cref="CreateTimeout(double?)"/> with the delay as a <see cref="TimeSpan"/>
    /// (<see cref="System.Threading.Timeout.InfiniteTimeSpan"/>: no deadline, as null).</summary>
    public static TimeoutScope CreateTimeout(TimeSpan delay) => CreateTimeout(Seconds(delay));

    /// <summary>As <see cref="CreateTimeout(double?)"/> with a deadline in loop time (<c>asyncio.timeout_at</c>).</summary>
    public static TimeoutScope CreateTimeoutAt(double? when) => new(when);

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
    /// <remarks><paramref name="cancellationToken"/> cancels the task while the scope runs (see
    /// <see cref="TimeoutScope.RunAsync{T}(Func{TimeoutScope, Task{T}}, CancellationToken)"/>).</remarks>
    [OverloadResolutionPriority(1)]
    public static Task<T> Timeout<T>(double? delay, Func<TimeoutScope, Task<T>> body, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(body);
        var loop = EventLoop.GetRunningLoop();
        return new TimeoutScope(delay is { } d ? loop.Time() + d : null).RunAsync(body, cancellationToken);
    }

    [OverloadResolutionPriority(1)]
    public static Task Timeout(double? delay, Func<TimeoutScope, Task> body, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(body);
        return Timeout<ValueTuple>(delay, async t =>
        {
            await body(t);
            return default;
        }, cancellationToken);
    }

    /// <summary>asyncio.timeout with the delay as a <see cref="TimeSpan"/> (<see cref="System.Threading.Timeout.InfiniteTimeSpan"/>: never).</summary>
    public static TimeoutScope Timeout(TimeSpan delay) => Timeout(Seconds(delay));

    /// <summary>asyncio.timeout_at with the deadline in loop time as a <see cref="TimeSpan"/>.</summary>
    public static TimeoutScope TimeoutAt(TimeSpan when) => TimeoutAt((double?)when.TotalSeconds);

    /// <summary>As <see cref="CreateTimeoutAt(double?)"/> with the deadline in loop time as a <see cref="TimeSpan"/>.</summary>
    public static TimeoutScope CreateTimeoutAt(TimeSpan when) => CreateTimeoutAt((double?)when.TotalSeconds);

    /// <summary><c>async with asyncio.timeout(delay)</c> around <paramref name="body"/>, the delay as a <see cref="TimeSpan"/>.</summary>
    [OverloadResolutionPriority(1)]
    public static Task<T> Timeout<T>(TimeSpan delay, Func<TimeoutScope, Task<T>> body, CancellationToken cancellationToken = default) =>
        Timeout(Seconds(delay), body, cancellationToken);

    [OverloadResolutionPriority(1)]
    public static Task Timeout(TimeSpan delay, Func<TimeoutScope, Task> body, CancellationToken cancellationToken = default) =>
        Timeout(Seconds(delay), body, cancellationToken);

    /// <summary><c>async with asyncio.timeout_at(when)</c> around <paramref name="body"/>, the deadline in loop time as a <see cref="TimeSpan"/>.</summary>
    [OverloadResolutionPriority(1)]
    public static Task<T> TimeoutAt<T>(TimeSpan when, Func<TimeoutScope, Task<T>> body, CancellationToken cancellationToken = default) =>
        TimeoutAt((double?)when.TotalSeconds, body, cancellationToken);

    [OverloadResolutionPriority(1)]
    public static Task TimeoutAt(TimeSpan when, Func<TimeoutScope, Task> body, CancellationToken cancellationToken = default) =>
        TimeoutAt((double?)when.TotalSeconds, body, cancellationToken);

    /// <summary><c>async with asyncio.timeout_at(when)</c> around <paramref name="body"/>.</summary>
    [OverloadResolutionPriority(1)]
    public static Task<T> TimeoutAt<T>(double? when, Func<TimeoutScope, Task<T>> body, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(body);
        return new TimeoutScope(when).RunAsync(body, cancellationToken);
    }

    [OverloadResolutionPriority(1)]
    public static Task TimeoutAt(double? when, Func<TimeoutScope, Task> body, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(body);
        return TimeoutAt<ValueTuple>(when, async t =>
        {
            await body(t);
            return default;
        }, cancellationToken);
    }

    /// <summary>As the <see cref="Task"/> form, with a <see cref="ValueTask"/> body.</summary>
    public static Task<T> Timeout<T>(double? delay, Func<TimeoutScope, ValueTask<T>> body, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(body);
        return Timeout(delay, t => body(t).AsTask(), cancellationToken);
    }

    /// <summary>As the <see cref="Task"/> form, with a <see cref="ValueTask"/> body.</summary>
    public static Task Timeout(double? delay, Func<TimeoutScope, ValueTask> body, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(body);
        return Timeout(delay, t => body(t).AsTask(), cancellationToken);
    }

    /// <summary>As the <see cref="Task"/> form, with a <see cref="ValueTask"/> body.</summary>
    public static Task<T> TimeoutAt<T>(double? when, Func<TimeoutScope, ValueTask<T>> body, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(body);
        return TimeoutAt(when, t => body(t).AsTask(), cancellationToken);
    }

    /// <summary>As the <see cref="Task"/> form, with a <see cref="ValueTask"/> body.</summary>
    public static Task TimeoutAt(double? when, Func<TimeoutScope, ValueTask> body, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(body);
        return TimeoutAt(when, t => body(t).AsTask(), cancellationToken);
    }

    /// <summary>As the <see cref="Task"/> form, with a <see cref="ValueTask"/> body.</summary>
    public static Task<T> Timeout<T>(TimeSpan delay, Func<TimeoutScope, ValueTask<T>> body, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(body);
        return Timeout(delay, t => body(t).AsTask(), cancellationToken);
    }

    /// <summary>As the <see cref="Task"/> form, with a <see cref="ValueTask"/> body.</summary>
    public static Task Timeout(TimeSpan delay, Func<TimeoutScope, ValueTask> body, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(body);
        return Timeout(delay, t => body(t).AsTask(), cancellationToken);
    }

    /// <summary>As the <see cref="Task"/> form, with a <see cref="ValueTask"/> body.</summary>
    public static Task<T> TimeoutAt<T>(TimeSpan when, Func<TimeoutScope, ValueTask<T>> body, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(body);
        return TimeoutAt(when, t => body(t).AsTask(), cancellationToken);
    }

    /// <summary>As the <see cref="Task"/> form, with a <see cref="ValueTask"/> body.</summary>
    public static Task TimeoutAt(TimeSpan when, Func<TimeoutScope, ValueTask> body, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(body);
        return TimeoutAt(when, t => body(t).AsTask(), cancellationToken);
    }
}
