using System.Runtime.CompilerServices;

namespace Tulip;

/// <summary>
/// A waiter of a synchronisation primitive: a loop future (so cancelling the waiting task cancels it)
/// that is also its own node in the primitive's FIFO list (no node allocation, O(1) removal, as the
/// deque + remove(fut) of CPython's locks.py and queues.py).
/// </summary>
internal class WaiterFuture : Future<bool>
{
    internal WaiterFuture? Prev, Next;
    internal bool Linked;

    internal WaiterFuture(EventLoop loop) : base(loop) { }

    /// <summary>The wait is over, whichever way: a token's registration is dropped (nothing without a token).</summary>
    internal void EndWait() => (this as TokenWaiterFuture)?.Canceller.Dispose();

    /// <summary>Throws the token's <see cref="CancelledException"/> if <paramref name="e"/> is this wait's
    /// cancellation through its token (after the primitive's cancel-safety code has run).</summary>
    internal void ThrowIfCancelledByToken(Exception e)
    {
        if (e is CancelledException && this is TokenWaiterFuture { Canceller: { Fired: true } c }) throw TokenCancellation.Cancelled(c.Token);
    }

    /// <summary>Wakes the waiter if it is still pending (asyncio: <c>if not fut.done(): fut.set_result(v)</c>).</summary>
    internal bool TryWake(bool value = true)
    {
        if (Done) return false;
        SetResultCore(value);
        return true;
    }
}

/// <summary>
/// A waiter whose operation was given a token that can be cancelled: it carries the operation's
/// <see cref="TokenCanceller"/>, so the path without a token keeps the plain waiter (no extra field, no
/// bigger state machine: the benchmarks' waits stay as they were).
/// </summary>
internal sealed class TokenWaiterFuture : WaiterFuture
{
    internal readonly TokenCanceller Canceller;

    internal TokenWaiterFuture(EventLoop loop, CancellationToken token) : base(loop) =>
        Canceller = TokenCanceller.Start(this, token)!;

    internal TokenWaiterFuture(EventLoop loop, TokenCanceller canceller) : base(loop)
    {
        Canceller = canceller;
        canceller.Watch(this);
    }
}

/// <summary>The FIFO of waiters of one primitive. Loop-affine, like the primitive.</summary>
internal struct WaiterList
{
    private WaiterFuture? _head, _tail;
    private int _count;

    public readonly int Count => _count;

    public readonly WaiterFuture? First => _head;

    public WaiterFuture Add(EventLoop loop)
    {
        var w = new WaiterFuture(loop);
        Append(w);
        return w;
    }

    /// <summary>A waiter the token cancels (a plain one when the token can never be cancelled).</summary>
    public WaiterFuture Add(EventLoop loop, CancellationToken token)
    {
        var w = token.CanBeCanceled ? new TokenWaiterFuture(loop, token) : new WaiterFuture(loop);
        Append(w);
        return w;
    }

    /// <summary>The next waiter of the operation that waited on <paramref name="previous"/> (a queue's
    /// re-wait): the same token goes on listening, now for it.</summary>
    public WaiterFuture AddNext(EventLoop loop, WaiterFuture previous)
    {
        var w = previous is TokenWaiterFuture t ? new TokenWaiterFuture(loop, t.Canceller) : new WaiterFuture(loop);
        Append(w);
        return w;
    }

    public void Append(WaiterFuture w)
    {
        w.Prev = _tail;
        w.Next = null;
        if (_tail is null) _head = w;
        else _tail.Next = w;
        _tail = w;
        w.Linked = true;
        _count++;
    }

    /// <summary>Removes <paramref name="w"/> if it is still in the list; false if it was taken out already.</summary>
    public bool Remove(WaiterFuture w)
    {
        if (!w.Linked) return false;
        if (w.Prev is null) _head = w.Next;
        else w.Prev.Next = w.Next;
        if (w.Next is null) _tail = w.Prev;
        else w.Next.Prev = w.Prev;
        w.Prev = w.Next = null;
        w.Linked = false;
        _count--;
        return true;
    }

    /// <summary>Takes the first waiter out (asyncio's <c>popleft()</c>), or null.</summary>
    public WaiterFuture? PopFirst()
    {
        var w = _head;
        if (w is not null) Remove(w);
        return w;
    }

    /// <summary>Whether every waiter is cancelled (vacuously true when there is none).</summary>
    public readonly bool AllCancelled()
    {
        for (var w = _head; w is not null; w = w.Next)
        {
            if (!w.Cancelled) return false;
        }

        return true;
    }
}

/// <summary>
/// asyncio's <c>_LoopBoundMixin</c>: a primitive binds to the running loop the first time it has to
/// wait, and refuses any other loop afterwards. Once bound, it is loop-affine: <see cref="EventLoop.VerifyAccess"/>
/// refuses a foreign thread (before binding there is no loop to compare with, as in asyncio).
/// </summary>
internal struct LoopBinding
{
    private EventLoop? _loop;

    /// <summary>The loop the primitive is bound to, or null before its first wait.</summary>
    public readonly EventLoop? Loop => _loop;

    /// <summary>Raises <see cref="EventLoopException"/> on a thread other than the bound loop's while it runs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly void VerifyAccess() => _loop?.VerifyAccess();

    /// <summary>Binds to the loop running on this thread, if any and if not bound yet.</summary>
    public void BindIfRunning() => _loop ??= EventLoop.RunningOrNull;

    public EventLoop Get(object owner)
    {
        var loop = EventLoop.GetRunningLoop();
        if (_loop is null) _loop = loop;
        else if (!ReferenceEquals(_loop, loop)) throw new InvalidOperationException($"{owner} is bound to a different event loop");
        return loop;
    }
}
