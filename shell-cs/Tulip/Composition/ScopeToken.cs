namespace Tulip;

/// <summary>
/// A <see cref="CancellationToken"/> for the forms that run a body in the current task (a timeout scope,
/// a task group): the body awaits on its own, so the token can only do what cancelling the task inside
/// <c>async with</c> does in asyncio — cancel the task, so its current await raises and the scope reacts
/// as to any cancellation of its task (a task group cancels its children and waits for them; a timeout
/// scope lets the cancellation through). When that cancellation comes back out of the scope, the task's
/// cancel request is withdrawn (<c>uncancel</c>: it was the token's, not the task's) and the scope raises
/// <see cref="CancelledException"/> carrying the token. The token acts only while the scope runs; its
/// registration is made only for a token that can be cancelled and is dropped when the scope ends.
/// </summary>
internal static class ScopeToken
{
    public static async Task<T> RunAsync<T>(Func<Task<T>> scope, CancellationToken cancellationToken)
    {
        if (!cancellationToken.CanBeCanceled) return await scope();
        var task = EventLoop.GetRunningLoop().CurrentTask
            ?? throw new EventLoopException("a scope with a cancellation token runs inside a task");
        if (cancellationToken.IsCancellationRequested) throw TokenCancellation.Cancelled(cancellationToken);
        // The token cancels the task as it would cancel a waiter: the one mechanism of the primitives
        // (marshalled onto the loop, acting only until the scope ends, unregistered then).
        var canceller = TokenCanceller.Start(task.AsFuture(), cancellationToken)!;
        try
        {
            return await scope();
        }
        catch (CancelledException) when (canceller.Fired)
        {
            task.Uncancel();
            throw TokenCancellation.Cancelled(cancellationToken);
        }
        finally
        {
            canceller.Dispose();
        }
    }
}
