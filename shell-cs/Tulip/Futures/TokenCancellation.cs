namespace Tulip;

/// <summary>
/// Lets a <see cref="CancellationToken"/> cancel the loop future an operation waits on (asyncio's
/// waiter futures, .NET's way of asking): a token's cancel is exactly a cancellation of that await in
/// asyncio's sense, so the primitive's own cancel-safety code (the path a task cancellation takes)
/// runs. A token fires on whatever thread cancels it (a timer's for <c>CancelAfter</c>) while the loop
/// is single-threaded, so the cancel is marshalled onto the loop (run inline when already there). The
/// wait then throws a <see cref="CancelledException"/> carrying the token; a cancellation that came from
/// elsewhere (the task itself was cancelled) stays the task's.
/// </summary>
internal static class TokenCancellation
{
    /// <summary>Waits for <paramref name="waiter"/>; the token cancels it (used by the streams).</summary>
    public static async ValueTask WaitAsync(Future<ValueTuple> waiter, CancellationToken cancellationToken)
    {
        using var canceller = TokenCanceller.Start(waiter, cancellationToken);
        try
        {
            await waiter;
        }
        catch (CancelledException) when (canceller is { Fired: true })
        {
            throw Cancelled(cancellationToken);
        }
    }

    /// <summary>What a wait cancelled through <paramref name="token"/> throws.</summary>
    public static CancelledException Cancelled(CancellationToken token) => new(token);

    /// <summary>The failed result of an operation whose token was cancelled before it started (no effect).</summary>
    public static ValueTask<T> CancelledValueTask<T>(CancellationToken token) => ValueTask.FromException<T>(Cancelled(token));

    /// <inheritdoc cref="CancelledValueTask{T}"/>
    public static ValueTask CancelledValueTask(CancellationToken token) => ValueTask.FromException(Cancelled(token));
}

/// <summary>
/// The token side of one waiting operation: registered once when the operation first waits (only if the
/// token can be cancelled at all, so the path without a token allocates nothing), it cancels whichever
/// waiter future the operation waits on at that moment (<see cref="Watch"/>: a queue's Get may wait
/// several times), and is unregistered when the operation ends, whichever way (<see cref="Dispose"/>), so a
/// long-lived token keeps no registration, waiter or operation alive.
/// <para>Thread use: the token's callback runs on any thread and only posts to the loop
/// (<see cref="EventLoop.InvokeOnLoop{TState}"/>); everything else happens on the loop's thread.
/// <see cref="CancellationTokenRegistration.Unregister"/> rather than Dispose: it never blocks the loop
/// thread waiting for a callback running elsewhere (which only posts; the post then finds the
/// operation ended and does nothing).</para>
/// </summary>
internal sealed class TokenCanceller : IDisposable
{
    private readonly EventLoop _loop;
    private readonly CancellationToken _token;
    private CancellationTokenRegistration _registration;
    private Future? _waiter; // the waiter the token cancels now; null once the operation ended

    private TokenCanceller(Future waiter, CancellationToken token)
    {
        _loop = waiter.Loop;
        _token = token;
        _waiter = waiter;
    }

    /// <summary>Whether the token cancelled a waiter of this operation (loop thread only).</summary>
    public bool Fired { get; private set; }

    public CancellationToken Token => _token;

    /// <summary>
    /// Starts listening to <paramref name="token"/> for an operation that now waits on
    /// <paramref name="waiter"/>; null (no registration) when the token can never be cancelled. If the token
    /// is already cancelled, the waiter is cancelled at once (inline, on the loop's thread).
    /// </summary>
    public static TokenCanceller? Start(Future waiter, CancellationToken token)
    {
        if (!token.CanBeCanceled) return null;
        var c = new TokenCanceller(waiter, token);
        // Unsafe: no ExecutionContext to flow, the callback only posts to the loop.
        c._registration = token.UnsafeRegister(static s => ((TokenCanceller)s!).OnToken(), c);
        return c;
    }

    /// <summary>The operation waits again, on <paramref name="waiter"/> (loop thread). A cancel that came
    /// while it was between two waiters lands on the new one.</summary>
    public void Watch(Future waiter)
    {
        _waiter = waiter;
        if (_token.IsCancellationRequested) CancelOnLoop();
    }

    private void OnToken()
    {
        try
        {
            _loop.InvokeOnLoop(static c => c.CancelOnLoop(), this);
        }
        catch (EventLoopException)
        {
            // The loop is closed: nothing waits on it any more, and the canceller must not see an error.
        }
    }

    private void CancelOnLoop()
    {
        // False when the waiter is already done (it was served first): the operation then completes,
        // the token ignored. Null: the operation has ended.
        if (_waiter is { } w && w.Cancel()) Fired = true;
    }

    /// <summary>The operation ended (loop thread): forget the waiter and drop the registration.</summary>
    public void Dispose()
    {
        _waiter = null;
        _registration.Unregister();
    }
}
