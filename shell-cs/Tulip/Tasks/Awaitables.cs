using System.Runtime.CompilerServices;

namespace Tulip;

/// <summary>
/// What <see cref="Asyncio.Sleep(double)"/> returns: a delay of loop time, or — for a delay of 0 or
/// less — exactly one tick (asyncio's bare yield in <c>sleep(0)</c>).
/// </summary>
public readonly struct SleepAwaitable<T>
{
    private readonly EventLoop _loop;
    private readonly Future<T>? _future;
    private readonly T _result;
    private readonly CancellationToken _token;

    internal SleepAwaitable(EventLoop loop, Future<T>? future, T result, CancellationToken token)
    {
        _loop = loop;
        _future = future;
        _result = result;
        _token = token;
    }

    /// <summary>The future behind a real delay (null for a one-tick yield); fixed, any thread.</summary>
    [ThreadSafe]
    public Future<T>? Future => _future;

    /// <summary>The timer behind a real delay (null for a one-tick yield), for introspection: asyncio
    /// reaches it only through <c>loop._scheduled</c>. Cancelling the sleep cancels it. Any thread may read
    /// it (a reference fixed at creation); the handle itself is loop-bound.</summary>
    [ThreadSafe]
    public TimerHandle? Timer => (_future as SleepFuture<T>)?.Timer;

    /// <summary>The awaiter (any thread may take it; threads: as <see cref="FutureAwaiter"/>).</summary>
    [ThreadSafe]
    public SleepAwaiter<T> GetAwaiter() => new(_loop, _future, _result, _token);
}

public readonly struct SleepAwaiter<T> : ICriticalNotifyCompletion
{
    private readonly EventLoop _loop;
    private readonly Future<T>? _future;
    private readonly T _result;
    private readonly CancellationToken _token;

    internal SleepAwaiter(EventLoop loop, Future<T>? future, T result, CancellationToken token)
    {
        _loop = loop;
        _future = future;
        _result = result;
        _token = token;
    }

    /// <summary>Whether the delay is over, or the sleep failed at once (its token was cancelled before it
    /// started); a snapshot, any thread.</summary>
    [ThreadSafe]
    public bool IsCompleted => _future is null ? _token.IsCancellationRequested : _future.Done;

    public T GetResult()
    {
        _loop.VerifyAccess();
        _loop.ThrowPendingCancellation();
        if (_future is null)
        {
            // A one-tick yield (or a sleep whose token was cancelled before it started): it has nothing the
            // token could cancel, so the token is read as the await ends.
            if (_token.IsCancellationRequested) throw TokenCancellation.Cancelled(_token);
            return _result;
        }

        if (_future is SleepFuture<T> { CancelledByToken: true }) throw TokenCancellation.Cancelled(_token);
        return _future.ResultChecked();
    }

    /// <summary>Resumes <paramref name="continuation"/> after the delay; from another thread, on the loop's.</summary>
    [ThreadSafe]
    public void OnCompleted(Action continuation) => UnsafeOnCompleted(continuation);

    /// <inheritdoc cref="OnCompleted"/>
    [ThreadSafe]
    public void UnsafeOnCompleted(Action continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        if (_future is not null)
        {
            _loop.AwaitFuture(_future, continuation);
            return;
        }

        _loop.YieldOneTick(continuation);
    }
}

/// <summary>
/// <see cref="Asyncio.Sleep(double)"/> without a result: its awaiter's GetResult returns void, so F#'s
/// <c>do! Asyncio.Sleep 0.1</c> reads naturally.
/// </summary>
public readonly struct SleepAwaitable
{
    private readonly SleepAwaitable<ValueTuple> _inner;
    internal SleepAwaitable(SleepAwaitable<ValueTuple> inner) => _inner = inner;

    /// <summary>The future behind a real delay (null for a one-tick yield); fixed, any thread.</summary>
    [ThreadSafe]
    public Future<ValueTuple>? Future => _inner.Future;

    /// <summary>The timer behind a real delay (null for a one-tick yield).</summary>
    [ThreadSafe]
    public TimerHandle? Timer => _inner.Timer;

    /// <summary>The awaiter (any thread may take it).</summary>
    [ThreadSafe]
    public SleepAwaiter GetAwaiter() => new(_inner.GetAwaiter());
}

/// <summary>The awaiter of <see cref="SleepAwaitable"/> (threads: as <see cref="SleepAwaiter{T}"/>).</summary>
public readonly struct SleepAwaiter : ICriticalNotifyCompletion
{
    private readonly SleepAwaiter<ValueTuple> _inner;
    internal SleepAwaiter(SleepAwaiter<ValueTuple> inner) => _inner = inner;

    /// <summary>Whether the delay is over (a snapshot; any thread).</summary>
    [ThreadSafe]
    public bool IsCompleted => _inner.IsCompleted;

    public void GetResult() => _inner.GetResult();

    /// <summary>Resumes <paramref name="continuation"/> after the delay; from another thread, on the loop's.</summary>
    [ThreadSafe]
    public void OnCompleted(Action continuation) => _inner.UnsafeOnCompleted(continuation);

    /// <inheritdoc cref="OnCompleted"/>
    [ThreadSafe]
    public void UnsafeOnCompleted(Action continuation) => _inner.UnsafeOnCompleted(continuation);
}

/// <summary>The future of a sleep: cancelling it cancels its timer too. With a token that can be
/// cancelled, the token cancels it (registered while the timer is pending, unregistered when it fires or
/// the sleep is cancelled).</summary>
internal sealed class SleepFuture<T> : Future<T>
{
    private readonly TimerHandle _timer;
    private readonly TokenCanceller? _canceller;

    internal TimerHandle Timer => _timer;

    /// <summary>Whether the sleep's token cancelled it (loop thread).</summary>
    internal bool CancelledByToken => _canceller is { Fired: true };

    public SleepFuture(EventLoop loop, long delayTicks, T result, CancellationToken token) : base(loop)
    {
        _timer = loop.CallLater(TimeSpan.FromTicks(delayTicks), static s => s.Item1.Fire(s.Item2), (this, result));
        _canceller = TokenCanceller.Start(this, token);
    }

    private void Fire(T result)
    {
        _canceller?.Dispose();
        if (!Done) SetResultCore(result);
    }

    private protected override bool CancelOnLoop(string? message)
    {
        _timer.Cancel();
        _canceller?.Dispose();
        return base.CancelOnLoop(message);
    }
}

public sealed partial class EventLoop
{
    /// <summary>Resumes the continuation after one tick: inside a task, as its next step.</summary>
    internal void YieldOneTick(Action continuation)
    {
        if (!TryEnterHere(out var access))
        {
            CallSoonThreadsafe(continuation);
            return;
        }

        using (access)
        {
            if (CurrentTaskInternal is { } task && task.TryYield(continuation)) return;
            EnqueueSoon(new ContinuationHandle(this, continuation, SynchronizationContext.Current));
        }
    }
}
