using System.Runtime.CompilerServices;

namespace Tulip;

public static partial class Asyncio
{
    /// <summary>
    /// asyncio.wait_for (3.11): the result of <paramref name="future"/>, or — when
    /// <paramref name="timeout"/> seconds pass first — the future is cancelled, waited for, and a
    /// <see cref="TimeoutException"/> is raised (unless it completed in the meantime: then its result
    /// wins, so a finished resource is never dropped). A timeout of 0 or less cancels at once unless the
    /// future is already done; null waits without limit. Cancelling the caller cancels the future and
    /// waits for it too; if the future completed in the same tick, its result is returned (3.11).
    /// </summary>
    public static Task<T> WaitFor<T>(Future<T> future, double? timeout) => WaitFor(future, timeout, CancellationToken.None);

    /// <summary>As <see cref="WaitFor{T}(Future{T}, double?)"/> with the timeout as a <see cref="TimeSpan"/>
    /// (<see cref="System.Threading.Timeout.InfiniteTimeSpan"/>: no limit).</summary>
    public static Task<T> WaitFor<T>(Future<T> future, TimeSpan timeout, CancellationToken cancellationToken = default) =>
        WaitFor(future, Seconds(timeout), cancellationToken);

    /// <summary>
    /// wait_for whose await <paramref name="cancellationToken"/> cancels, as a cancellation of the
    /// caller does in 3.11: the future is cancelled and waited for, then a
    /// <see cref="CancelledException"/> carrying the token is raised — unless the future completed
    /// first (in the same tick too): then its result is returned. The registration is disposed when the
    /// wait ends.
    /// </summary>
    public static async Task<T> WaitFor<T>(Future<T> future, double? timeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(future);
        var loop = EventLoop.GetRunningLoop();
        if (timeout is { } nan && double.IsNaN(nan)) throw new ArgumentOutOfRangeException(nameof(timeout), "timeout is NaN");
        if (timeout is null && !cancellationToken.CanBeCanceled) return await future;
        if (timeout is { } delay && delay <= 0)
        {
            if (future.Done) return future.Result();
            await CancelAndWait(future, loop);
            try
            {
                return future.Result();
            }
            catch (CancelledException e)
            {
                throw new TimeoutException("The operation has timed out.", e);
            }
        }

        var waiter = loop.CreateFuture();
        var timeoutHandle = timeout is { } d ? loop.CallLater(d, static w => ReleaseWaiter(w), waiter) : null;
        Action<Future> cb = _ => ReleaseWaiter(waiter);
        future.AddDoneCallback(cb);
        var link = TokenLink.Register(waiter, cancellationToken);
        try
        {
            try
            {
                await waiter;
            }
            catch (CancelledException)
            {
                if (future.Done) return future.Result();
                future.RemoveDoneCallback(cb);
                await CancelAndWait(future, loop);
                throw;
            }

            if (future.Done) return future.Result();
            future.RemoveDoneCallback(cb);
            await CancelAndWait(future, loop);
            try
            {
                return future.Result();
            }
            catch (CancelledException e)
            {
                throw new TimeoutException("The operation has timed out.", e);
            }
        }
        finally
        {
            link?.Dispose();
            timeoutHandle?.Cancel();
        }
    }

    /// <summary>wait_for of a coroutine: it becomes a task on the running loop.</summary>
    [OverloadResolutionPriority(1)] // an async lambda fits the ValueTask overload too: the Task one wins
    public static Task<T> WaitFor<T>(Func<Task<T>> coroutine, double? timeout) => WaitFor(coroutine, timeout, CancellationToken.None);

    [OverloadResolutionPriority(1)]
    public static Task WaitFor(Func<Task> coroutine, double? timeout) => WaitFor(coroutine, timeout, CancellationToken.None);

    /// <summary>wait_for of a coroutine whose await <paramref name="cancellationToken"/> cancels (the task is cancelled too).</summary>
    [OverloadResolutionPriority(1)]
    public static Task<T> WaitFor<T>(Func<Task<T>> coroutine, double? timeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(coroutine);
        return WaitFor((Future<T>)EventLoop.GetRunningLoop().CreateTask(coroutine), timeout, cancellationToken);
    }

    [OverloadResolutionPriority(1)]
    public static async Task WaitFor(Func<Task> coroutine, double? timeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(coroutine);
        await WaitFor((Future<ValueTuple>)EventLoop.GetRunningLoop().CreateTask(coroutine), timeout, cancellationToken);
    }

    [OverloadResolutionPriority(1)]
    public static Task<T> WaitFor<T>(Func<Task<T>> coroutine, TimeSpan timeout, CancellationToken cancellationToken = default) =>
        WaitFor(coroutine, Seconds(timeout), cancellationToken);

    [OverloadResolutionPriority(1)]
    public static Task WaitFor(Func<Task> coroutine, TimeSpan timeout, CancellationToken cancellationToken = default) =>
        WaitFor(coroutine, Seconds(timeout), cancellationToken);

    /// <summary>wait_for of a <see cref="ValueTask{TResult}"/> method: it becomes a task on the running loop.</summary>
    public static Task<T> WaitFor<T>(Func<ValueTask<T>> coroutine, double? timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(coroutine);
        return WaitFor((Future<T>)EventLoop.GetRunningLoop().CreateTask(coroutine), timeout, cancellationToken);
    }

    public static async Task WaitFor(Func<ValueTask> coroutine, double? timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(coroutine);
        await WaitFor((Future<ValueTuple>)EventLoop.GetRunningLoop().CreateTask(coroutine), timeout, cancellationToken);
    }

    public static Task<T> WaitFor<T>(Func<ValueTask<T>> coroutine, TimeSpan timeout, CancellationToken cancellationToken = default) =>
        WaitFor(coroutine, Seconds(timeout), cancellationToken);

    public static Task WaitFor(Func<ValueTask> coroutine, TimeSpan timeout, CancellationToken cancellationToken = default) =>
        WaitFor(coroutine, Seconds(timeout), cancellationToken);

    /// <summary>asyncio's _cancel_and_wait: cancel and wait until the future is done, whatever it ends with.</summary>
    private static async Task CancelAndWait(Future future, EventLoop loop)
    {
        var waiter = loop.CreateFuture();
        Action<Future> cb = _ => ReleaseWaiter(waiter);
        future.AddDoneCallback(cb);
        try
        {
            future.Cancel();
            await waiter;
        }
        finally
        {
            future.RemoveDoneCallback(cb);
        }
    }
}
