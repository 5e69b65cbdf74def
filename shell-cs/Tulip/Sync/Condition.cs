using System.Runtime.ExceptionServices;

namespace Tulip;

/// <summary>
/// asyncio.Condition: tasks wait, holding its lock, until another task notifies them. <see cref="Wait"/>
/// releases the lock while waiting and takes it back before returning, even when cancelled. A waiter
/// that is notified and then fails (is cancelled) passes the notification on to another waiter, so no
/// wake-up is lost: 3.13's fix (gh-112202) over 3.11, whose Condition drops it. A notify with nobody
/// waiting is not remembered (it is not an Event). Once a wait has bound it (or its lock) to a loop, it is
/// used on that loop's thread only (<see cref="EventLoopException"/> from another).
/// </summary>
public sealed class Condition
{
    private readonly AsyncLock _lock;
    private WaiterList _waiters;
    private LoopBinding _binding;

    /// <summary>A condition over <paramref name="lk"/>, or over a new lock (any thread may make one).</summary>
    [ThreadSafe]
    public Condition(AsyncLock? lk = null) => _lock = lk ?? new AsyncLock();

    /// <summary>The underlying lock (fixed; any thread).</summary>
    [ThreadSafe]
    public AsyncLock Lock => _lock;

    public bool Locked
    {
        get
        {
            _binding.VerifyAccess();
            return _lock.Locked;
        }
    }

    /// <summary>The lock's <see cref="AsyncLock.LockAsync"/> (the token cancels the wait).</summary>
    public ValueTask<LockReleaser> LockAsync(CancellationToken cancellationToken = default)
    {
        _binding.VerifyAccess();
        return _lock.LockAsync(cancellationToken);
    }

    /// <summary>The lock's <see cref="AsyncLock.AcquireAsync"/> (the token cancels the wait).</summary>
    public ValueTask<bool> AcquireAsync(CancellationToken cancellationToken = default)
    {
        _binding.VerifyAccess();
        return _lock.AcquireAsync(cancellationToken);
    }

    public void Release()
    {
        _binding.VerifyAccess();
        _lock.Release();
    }

    /// <summary>Raises on a foreign thread once bound (for the primitives built on a condition).</summary>
    internal void VerifyAccess() => _binding.VerifyAccess();

    /// <summary>
    /// Releases the lock, waits to be notified, re-acquires the lock, returns true. Must be called with
    /// the lock held (<see cref="InvalidOperationException"/>("cannot wait on un-acquired lock")).
    /// <paramref name="cancellationToken"/> cancels the wait for the notification as a task cancel would:
    /// the lock is still taken back before the <see cref="CancelledException"/> carrying the token comes
    /// out, and a notification that came first is passed on. Already cancelled: it fails at once, the lock
    /// still held.
    /// </summary>
    public async Task<bool> WaitAsync(CancellationToken cancellationToken = default)
    {
        _binding.VerifyAccess();
        if (cancellationToken.IsCancellationRequested) throw TokenCancellation.Cancelled(cancellationToken);
        if (!_lock.Locked) throw new InvalidOperationException("cannot wait on un-acquired lock");
        var loop = _binding.Get(this);
        _lock.Release();
        TokenCanceller? canceller = null;
        try
        {
            try
            {
                var fut = _waiters.Add(loop);
                canceller = TokenCanceller.Start(fut, cancellationToken);
                try
                {
                    await fut;
                    return true;
                }
                finally
                {
                    _waiters.Remove(fut);
                    canceller?.Dispose();
                }
            }
            finally
            {
                // The lock must be held again on the way out, even when cancelled meanwhile (the token
                // does not cancel this part: the caller holds the lock whatever happens).
                OperationCanceledException? err = null;
                while (true)
                {
                    try
                    {
                        await _lock.AcquireAsync();
                        break;
                    }
                    catch (OperationCanceledException e)
                    {
                        err = e;
                    }
                }

                if (err is not null) ExceptionDispatchInfo.Throw(err);
            }
        }
        catch (Exception e)
        {
            // We may have been notified before failing: notify another in our place (a spurious
            // wake-up at worst, which the condition-variable protocol allows).
            NotifyCore(1);
            if (canceller is { Fired: true } && e is CancelledException) throw TokenCancellation.Cancelled(cancellationToken);
            throw;
        }
    }

    /// <summary>
    /// Waits until <paramref name="predicate"/> (checked with the lock held) gives a true value and
    /// returns that value, as asyncio's <c>wait_for</c> does. A value is true when it is not
    /// <c>default(T)</c>: not false, 0, or null (Python's truthiness without its empty-collection rule).
    /// <paramref name="cancellationToken"/> cancels each wait as in <see cref="WaitAsync"/>.
    /// </summary>
    public async Task<T> WaitForAsync<T>(Func<T> predicate, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(predicate);
        _binding.VerifyAccess();
        if (cancellationToken.IsCancellationRequested) throw TokenCancellation.Cancelled(cancellationToken);
        var result = predicate();
        while (EqualityComparer<T>.Default.Equals(result, default!))
        {
            await WaitAsync(cancellationToken);
            result = predicate();
        }

        return result;
    }

    /// <summary>Wakes up to <paramref name="n"/> waiters, first come first served. Must hold the lock.</summary>
    public void Notify(int n = 1)
    {
        _binding.VerifyAccess();
        if (!_lock.Locked) throw new InvalidOperationException("cannot notify on un-acquired lock");
        NotifyCore(n);
    }

    /// <summary>Wakes every waiter. Must hold the lock.</summary>
    public void NotifyAll() => Notify(_waiters.Count);

    private void NotifyCore(int n)
    {
        int idx = 0;
        for (var w = _waiters.First; w is not null && idx < n; w = w.Next)
        {
            if (w.TryWake(false)) idx++;
        }
    }

    /// <summary>How many tasks wait to be notified (the "waiters:N" of asyncio's repr).</summary>
    public int Waiters
    {
        get
        {
            _binding.VerifyAccess();
            return _waiters.Count;
        }
    }

    public override string ToString() =>
        $"<Condition [{(_lock.LockedSnapshot ? "locked" : "unlocked")}{(_waiters.Count > 0 ? $", waiters:{_waiters.Count}" : "")}]>";
}
