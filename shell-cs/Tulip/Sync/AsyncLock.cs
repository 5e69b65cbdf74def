namespace Tulip;

/// <summary>
/// asyncio.Lock: a mutual-exclusion lock for tasks of one loop. FIFO-fair: while tasks wait, a newcomer
/// queues behind them even if the lock is momentarily free; a waiter cancelled after it was woken passes
/// the wake-up on to the next one (CPython 3.11 locks.py, <c>_wake_up_first</c>). Not reentrant, not
/// owned: any task may release it. Use <c>using (await lk.AcquireAsync()) { … }</c>. Once a wait has bound
/// it to a loop, it is used on that loop's thread only (<see cref="EventLoopException"/> from another).
/// </summary>
public sealed class AsyncLock
{
    private WaiterList _waiters;
    private LoopBinding _binding;
    private bool _locked;

    /// <summary>Whether the lock is held (asyncio's <c>locked()</c>).</summary>
    public bool Locked
    {
        get
        {
            _binding.VerifyAccess();
            return _locked;
        }
    }

    /// <summary>Acquires the lock and returns what releases it at the end of a <c>using</c>.
    /// <paramref name="cancellationToken"/> cancels the wait (see <see cref="AcquireAsync"/>).</summary>
    public ValueTask<LockReleaser> LockAsync(CancellationToken cancellationToken = default)
    {
        _binding.VerifyAccess();
        if (cancellationToken.IsCancellationRequested) return TokenCancellation.CancelledValueTask<LockReleaser>(cancellationToken);
        if (!_locked && _waiters.AllCancelled())
        {
            _locked = true;
            return new ValueTask<LockReleaser>(new LockReleaser(this));
        }

        return new ValueTask<LockReleaser>(AcquireSlow(_waiters.Add(_binding.Get(this), cancellationToken)));
    }

    /// <summary>
    /// asyncio's <c>acquire()</c>: waits until the lock is free, takes it, returns true.
    /// <paramref name="cancellationToken"/> cancels the wait as a task cancel would: a
    /// <see cref="CancelledException"/> carrying the token, the lock not taken (a wake-up that came first
    /// is passed on to the next waiter); already cancelled, it fails at once and takes nothing.
    /// </summary>
    public ValueTask<bool> AcquireAsync(CancellationToken cancellationToken = default)
    {
        _binding.VerifyAccess();
        if (cancellationToken.IsCancellationRequested) return TokenCancellation.CancelledValueTask<bool>(cancellationToken);
        if (!_locked && _waiters.AllCancelled())
        {
            _locked = true;
            return new ValueTask<bool>(true);
        }

        return new ValueTask<bool>(AcquireSlowBool(_waiters.Add(_binding.Get(this), cancellationToken)));
    }

    private async Task<bool> AcquireSlowBool(WaiterFuture fut)
    {
        await AcquireSlow(fut);
        return true;
    }

    // The waiter is made (and the token registered) before the first await, by the caller: the state
    // machine then holds nothing more than it did before tokens.
    private async Task<LockReleaser> AcquireSlow(WaiterFuture fut)
    {
        try
        {
            try
            {
                await fut;
            }
            finally
            {
                _waiters.Remove(fut);
                fut.EndWait();
            }
        }
        catch (OperationCanceledException e)
        {
            // Woken and then cancelled before it could take the lock: the wake-up goes to the next.
            if (!_locked) WakeUpFirst();
            fut.ThrowIfCancelledByToken(e);
            throw;
        }

        _locked = true;
        return new LockReleaser(this);
    }

    /// <summary>Releases the lock; <see cref="InvalidOperationException"/>("Lock is not acquired.") if it is not held.</summary>
    public void Release()
    {
        _binding.VerifyAccess();
        if (!_locked) throw new InvalidOperationException("Lock is not acquired.");
        _locked = false;
        WakeUpFirst();
    }

    private void WakeUpFirst() => _waiters.First?.TryWake();

    /// <summary>How many tasks wait (cancelled ones included until they leave).</summary>
    public int Waiters
    {
        get
        {
            _binding.VerifyAccess();
            return _waiters.Count;
        }
    }

    /// <summary>Whether it is held, for reprs (any thread).</summary>
    internal bool LockedSnapshot => _locked;

    public override string ToString() =>
        $"<AsyncLock [{(_locked ? "locked" : "unlocked")}{(_waiters.Count > 0 ? $", waiters:{_waiters.Count}" : "")}]>";
}

/// <summary>Releases an <see cref="AsyncLock"/> when disposed (the end of <c>async with lock:</c>).</summary>
public readonly struct LockReleaser : IDisposable
{
    private readonly AsyncLock? _lock; // null only in default(LockReleaser), whose Dispose does nothing

    /// <summary>What releases <paramref name="lk"/> (any thread may make one; the release is the lock's).</summary>
    [ThreadSafe]
    public LockReleaser(AsyncLock lk) => _lock = lk ?? throw new ArgumentNullException(nameof(lk));

    public void Dispose() => _lock?.Release();
}
