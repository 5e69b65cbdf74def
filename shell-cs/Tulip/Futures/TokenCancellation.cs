namespace Tulip;

/// <summary>
/// Lets a <see cref="CancellationToken"/> cancel the loop future an operation waits on (asyncio's
/// waiter futures, .NET's way of asking). A token fires on whatever thread cancels it (a timer's for
/// <c>CancelAfter</c>) while the loop is single-threaded, so the cancel is marshalled onto the loop (run
/// inline when already there). The wait then throws an <see cref="OperationCanceledException"/> carrying
/// the token; a cancellation that came from elsewhere (the task itself was cancelled) stays the task's
/// <see cref="CancelledException"/>.
/// </summary>
internal static class TokenCancellation
{
    public static async ValueTask WaitAsync(Future<ValueTuple> waiter, CancellationToken cancellationToken)
    {
        var canceller = new Canceller(waiter);
        // Unsafe: no ExecutionContext to flow, the callback only posts to the loop.
        var registration = cancellationToken.UnsafeRegister(static s => ((Canceller)s!).OnToken(), canceller);
        try
        {
            await waiter;
        }
        catch (CancelledException) when (canceller.Fired)
        {
            throw new OperationCanceledException(cancellationToken);
        }
        finally
        {
            // Whichever way the wait ended: a long-lived token must neither keep the waiter alive nor
            // act on it later. (A cancel already posted finds the waiter done and does nothing.)
            registration.Dispose();
        }
    }

    private sealed class Canceller(Future waiter)
    {
        // Set and read on the loop thread only.
        public bool Fired;

        public void OnToken()
        {
            try
            {
                waiter.Loop.InvokeOnLoop(static c => c.CancelOnLoop(), this);
            }
            catch (EventLoopException)
            {
                // The loop is closed: nothing waits on it any more, and the canceller must not see an error.
            }
        }

        private void CancelOnLoop()
        {
            // False when the waiter is already done (data came first): the operation then completes.
            if (waiter.Cancel()) Fired = true;
        }
    }
}
