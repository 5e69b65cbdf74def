namespace Tulip;

/// <summary>
/// asyncio.Semaphore: a counter that <see cref="AcquireAsync"/> decrements, waiting while it is 0, and
/// <see cref="Release"/> increments. FIFO-fair: a release hands its unit to the first waiter (the
/// count goes to it at once), newcomers queue behind non-cancelled waiters, and a waiter cancelled
/// after it was handed a unit gives it back and wakes the next (CPython 3.11.7 locks.py). Once a wait
/// has bound it to a loop, it is used on that loop's thread only (<see cref="EventLoopException"/> from another).
/// </summary>
public class AsyncSemaphore
{
    private WaiterList _waiters;
    private LoopBinding _binding;
    private int _value;

    /// <summary>A semaphore with <paramref name="value"/> units (>= 0).</summary>
    public AsyncSemaphore(int value = 1)
    {
        if (value < 0) throw new ArgumentOutOfRangeException(nameof(value), "Semaphore initial value must be >= 0");
        _value = value;
    }

    /// <summary>The units available now.</summary>
    public int Value
    {
        get
        {
            _binding.VerifyAccess();
            return _value;
        }
    }

    /// <summary>Whether an acquire would have to wait (asyncio's <c>locked()</c>).</summary>
    public bool Locked
    {
        get
        {
            _binding.VerifyAccess();
            return IsLocked;
        }
    }

    private bool IsLocked => _value == 0 || !_waiters.AllCancelled();

    /// <summary>
    /// Takes a unit, waiting if there is none; returns true. <paramref name="cancellationToken"/> cancels
    /// the wait as a task cancel would: a <see cref="CancelledException"/> carrying the token, no unit taken
    /// (one handed over first goes on to the next waiter); already cancelled, it fails at once.
    /// </summary>
    public ValueTask<bool> AcquireAsync(CancellationToken cancellationToken = default)
    {
        _binding.VerifyAccess();
        if (cancellationToken.IsCancellationRequested) return TokenCancellation.CancelledValueTask<bool>(cancellationToken);
        if (!IsLocked)
        {
            _value--;
            return new ValueTask<bool>(true);
        }

        return new ValueTask<bool>(AcquireSlow(_waiters.Add(_binding.Get(this), cancellationToken)));
    }

    /// <summary>Takes a unit and returns what gives it back at the end of a <c>using</c>;
    /// <paramref name="cancellationToken"/> as for <see cref="AcquireAsync"/>.</summary>
    public ValueTask<SemaphoreReleaser> LockAsync(CancellationToken cancellationToken = default)
    {
        _binding.VerifyAccess();
        if (cancellationToken.IsCancellationRequested) return TokenCancellation.CancelledValueTask<SemaphoreReleaser>(cancellationToken);
        if (!IsLocked)
        {
            _value--;
            return new ValueTask<SemaphoreReleaser>(new SemaphoreReleaser(this));
        }

        return new ValueTask<SemaphoreReleaser>(AcquireSlowReleaser(_waiters.Add(_binding.Get(this), cancellationToken)));
    }

    private async Task<SemaphoreReleaser> AcquireSlowReleaser(WaiterFuture fut)
    {
        await AcquireSlow(fut);
        return new SemaphoreReleaser(this);
    }

    // The waiter is made (and the token registered) by the caller, before the first await.
    private async Task<bool> AcquireSlow(WaiterFuture fut)
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
            // Handed a unit, then cancelled: give it back to the next waiter.
            if (!fut.Cancelled)
            {
                _value++;
                WakeUpNext();
            }

            fut.ThrowIfCancelledByToken(e);
            throw;
        }

        if (_value > 0) WakeUpNext();
        return true;
    }

    /// <summary>Gives a unit back, handing it to the first waiter if any.</summary>
    public void Release()
    {
        _binding.VerifyAccess();
        CheckRelease();
        _value++;
        WakeUpNext();
    }

    private protected virtual void CheckRelease() { }

    private protected int UnitsLeft => _value;

    private void WakeUpNext()
    {
        for (var w = _waiters.First; w is not null; w = w.Next)
        {
            if (!w.Done)
            {
                _value--;
                w.TryWake();
                return;
            }
        }
    }

    /// <summary>How many tasks wait to acquire (the "waiters:N" of asyncio's repr).</summary>
    public int Waiters
    {
        get
        {
            _binding.VerifyAccess();
            return _waiters.Count;
        }
    }

    public override string ToString() =>
        $"<{GetType().Name} [{(IsLocked ? "locked" : $"unlocked, value:{_value}")}{(_waiters.Count > 0 ? $", waiters:{_waiters.Count}" : "")}]>";
}

/// <summary>asyncio.BoundedSemaphore: releasing above the initial value is an error.</summary>
public sealed class BoundedSemaphore : AsyncSemaphore
{
    private readonly int _bound;

    public BoundedSemaphore(int value = 1) : base(value) => _bound = value;

    /// <summary><see cref="SemaphoreFullException"/>("BoundedSemaphore released too many times") when
    /// the release would go above the initial value.</summary>
    private protected override void CheckRelease()
    {
        if (UnitsLeft >= _bound) throw new SemaphoreFullException("BoundedSemaphore released too many times");
    }
}

/// <summary>Releases an <see cref="AsyncSemaphore"/> when disposed.</summary>
public readonly struct SemaphoreReleaser : IDisposable
{
    private readonly AsyncSemaphore? _semaphore; // null only in default(SemaphoreReleaser), whose Dispose does nothing

    /// <summary>What releases <paramref name="semaphore"/> (any thread may make one; the release is the semaphore's).</summary>
    [ThreadSafe]
    public SemaphoreReleaser(AsyncSemaphore semaphore) => _semaphore = semaphore ?? throw new ArgumentNullException(nameof(semaphore));

    public void Dispose() => _semaphore?.Release();
}
