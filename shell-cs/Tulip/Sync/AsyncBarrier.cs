namespace Tulip;

/// <summary>asyncio's <c>BrokenBarrierError</c>: the barrier was aborted or reset while waiting.</summary>
public sealed class BrokenBarrierException : InvalidOperationException
{
    public BrokenBarrierException(string message) : base(message) { }
}

/// <summary>
/// asyncio.Barrier (3.11): <see cref="Parties"/> tasks wait until all have arrived, then all go on;
/// <see cref="WaitAsync"/> returns each one's arrival index (0 … parties-1). <see cref="AbortAsync"/> breaks it
/// (waiters and later arrivals get <see cref="BrokenBarrierException"/>); <see cref="ResetAsync"/> breaks
/// the current round and starts afresh. Built on a <see cref="Condition"/>, as CPython's; once a wait has
/// bound that to a loop, the barrier is used on the loop's thread only (<see cref="EventLoopException"/>
/// from another).
/// </summary>
public sealed class AsyncBarrier
{
    private enum State { Filling, Draining, Resetting, Broken }

    private readonly Condition _cond = new();
    private readonly int _parties;
    private State _state = State.Filling;
    private int _count;

    public AsyncBarrier(int parties)
    {
        if (parties < 1) throw new ArgumentOutOfRangeException(nameof(parties), "parties must be > 0");
        _parties = parties;
    }

    /// <summary>How many tasks trip the barrier (fixed; any thread).</summary>
    [ThreadSafe]
    public int Parties => _parties;

    /// <summary>How many tasks are waiting at the barrier now (asyncio's <c>n_waiting</c>).</summary>
    public int NWaiting
    {
        get
        {
            _cond.VerifyAccess();
            return Waiting;
        }
    }

    private int Waiting => _state == State.Filling ? _count : 0;

    /// <summary>Whether the barrier is broken (asyncio's <c>broken</c>).</summary>
    public bool Broken
    {
        get
        {
            _cond.VerifyAccess();
            return _state == State.Broken;
        }
    }

    /// <summary>Waits until <see cref="Parties"/> tasks are waiting; returns this task's arrival index.</summary>
    /// <remarks><paramref name="cancellationToken"/> cancels the waits (for the lock, for a draining round to
    /// end, for the others to arrive) as a task cancel would: a <see cref="CancelledException"/> carrying the
    /// token, this task no longer counted; already cancelled, it fails at once.</remarks>
    public async Task<int> WaitAsync(CancellationToken cancellationToken = default)
    {
        _cond.VerifyAccess();
        if (cancellationToken.IsCancellationRequested) throw TokenCancellation.Cancelled(cancellationToken);
        using (await _cond.LockAsync(cancellationToken))
        {
            await Block(cancellationToken);
            try
            {
                int index = _count;
                _count++;
                if (index + 1 == _parties) Release();
                else await WaitFilled(cancellationToken);
                return index;
            }
            finally
            {
                _count--;
                ExitOne();
            }
        }
    }

    private async Task Block(CancellationToken cancellationToken)
    {
        await _cond.WaitForAsync(() => _state is not (State.Draining or State.Resetting), cancellationToken);
        if (_state == State.Broken) throw new BrokenBarrierException("Barrier aborted");
    }

    private void Release()
    {
        _state = State.Draining;
        _cond.NotifyAll();
    }

    private async Task WaitFilled(CancellationToken cancellationToken)
    {
        await _cond.WaitForAsync(() => _state != State.Filling, cancellationToken);
        if (_state is State.Broken or State.Resetting) throw new BrokenBarrierException("Abort or reset of barrier");
    }

    private void ExitOne()
    {
        if (_count == 0)
        {
            if (_state is State.Resetting or State.Draining) _state = State.Filling;
            _cond.NotifyAll();
        }
    }

    /// <summary>Back to the initial state; tasks waiting now get <see cref="BrokenBarrierException"/>.</summary>
    /// <remarks>It waits only for the barrier's lock: <paramref name="cancellationToken"/> cancels that wait
    /// (nothing done); already cancelled, it fails at once.</remarks>
    public async Task ResetAsync(CancellationToken cancellationToken = default)
    {
        _cond.VerifyAccess();
        if (cancellationToken.IsCancellationRequested) throw TokenCancellation.Cancelled(cancellationToken);
        using (await _cond.LockAsync(cancellationToken))
        {
            if (_count > 0)
            {
                if (_state != State.Resetting) _state = State.Resetting;
            }
            else
            {
                _state = State.Filling;
            }

            _cond.NotifyAll();
        }
    }

    /// <summary>Breaks the barrier: waiting and later tasks get <see cref="BrokenBarrierException"/>.</summary>
    /// <remarks>It waits only for the barrier's lock: <paramref name="cancellationToken"/> cancels that wait
    /// (nothing done); already cancelled, it fails at once.</remarks>
    public async Task AbortAsync(CancellationToken cancellationToken = default)
    {
        _cond.VerifyAccess();
        if (cancellationToken.IsCancellationRequested) throw TokenCancellation.Cancelled(cancellationToken);
        using (await _cond.LockAsync(cancellationToken))
        {
            _state = State.Broken;
            _cond.NotifyAll();
        }
    }

    public override string ToString() =>
        $"<AsyncBarrier [{_state.ToString().ToLowerInvariant()}{(_state != State.Broken ? $", waiters:{Waiting}/{_parties}" : "")}]>";
}
