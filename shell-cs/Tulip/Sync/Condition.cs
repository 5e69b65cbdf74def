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

    public ValueTask<LockReleaser> LockAsync()
    {
        _binding.VerifyAccess();
        return _lock.LockAsync();
    }

    public ValueTask<bool> AcquireAsync()
    {
        _binding.VerifyAccess();
        return _lock.AcquireAsync();
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
    /// </summary>
    public async Task<bool> WaitAsync()
    {
        _binding.VerifyAccess();
        if (!_lock.Locked) throw new InvalidOperationException("cannot wait on un-acquired lock");
        var loop = _binding.Get(this);
        _lock.Release();
        try
        {
            try
            {
                var fut = _waiters.Add(loop);
                try
                {
                    await fut;
                    return true;
                }
                finally
                {
                    _waiters.Remove(fut);
                }
            }
            finally
            {
                // The lock must be held again on the way out, even when cancelled meanwhile.
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
        catch (Exception)
        {
            // We may have been notified before failing: notify another in our place (a spurious
            // wake-up at worst, which the condition-variable protocol allows).
            NotifyCore(1);
            throw;
        }
    }

    /// <summary>
    /// Waits until <paramref name="predicate"/> (checked with the lock held) gives a true value and
    /// returns that value, as asyncio's <c>wait_for</c> does. A value is true when it is not
    /// <c>default(T)</c>: not false, 0, or null (Python's truthiness without its empty-collection rule).
    /// </summary>
    public async Task<T> WaitForAsync<T>(Func<T> predicate)
    {
        ArgumentNullException.ThrowIfNull(predicate);
        _binding.VerifyAccess();
        var result = predicate();
        while (EqualityComparer<T>.Default.Equals(result, default!))
        {
            await WaitAsync();
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
