namespace Tulip;

/// <summary>
/// asyncio.Event: a flag tasks wait for. <see cref="Set"/> wakes every waiter; a waiter that arrives
/// while the flag is set does not wait at all (CPython 3.11 locks.py). Once a wait has bound it to a
/// loop, it is used on that loop's thread only (<see cref="EventLoopException"/> from another).
/// </summary>
public sealed class AsyncEvent
{
    private WaiterList _waiters;
    private LoopBinding _binding;
    private bool _value;

    /// <summary>Whether the flag is set (asyncio's <c>is_set()</c>).</summary>
    public bool IsSet
    {
        get
        {
            _binding.VerifyAccess();
            return _value;
        }
    }

    /// <summary>Sets the flag and wakes every task waiting for it.</summary>
    public void Set()
    {
        _binding.VerifyAccess();
        if (_value) return;
        _value = true;
        for (var w = _waiters.First; w is not null; w = w.Next) w.TryWake();
    }

    /// <summary>Clears the flag: later waiters wait until it is set again.</summary>
    public void Clear()
    {
        _binding.VerifyAccess();
        _value = false;
    }

    /// <summary>Waits until the flag is set; returns true. <paramref name="cancellationToken"/> cancels the
    /// wait (a <see cref="CancelledException"/> carrying it); already cancelled, it fails at once.</summary>
    public ValueTask<bool> WaitAsync(CancellationToken cancellationToken = default)
    {
        _binding.VerifyAccess();
        if (cancellationToken.IsCancellationRequested) return TokenCancellation.CancelledValueTask<bool>(cancellationToken);
        return _value ? new ValueTask<bool>(true) : new ValueTask<bool>(WaitSlow(_waiters.Add(_binding.Get(this), cancellationToken)));
    }

    private async Task<bool> WaitSlow(WaiterFuture fut)
    {
        try
        {
            await fut;
            return true;
        }
        catch (CancelledException e)
        {
            fut.ThrowIfCancelledByToken(e);
            throw;
        }
        finally
        {
            _waiters.Remove(fut);
            fut.EndWait();
        }
    }

    /// <summary>How many tasks wait for the event (the "waiters:N" of asyncio's repr).</summary>
    public int Waiters
    {
        get
        {
            _binding.VerifyAccess();
            return _waiters.Count;
        }
    }

    public override string ToString() =>
        $"<AsyncEvent [{(_value ? "set" : "unset")}{(_waiters.Count > 0 ? $", waiters:{_waiters.Count}" : "")}]>";
}
