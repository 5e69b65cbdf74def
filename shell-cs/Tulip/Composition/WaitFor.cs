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
    public static async Task<T> WaitFor<T>(Future<T> future, double? timeout)
    {
        ArgumentNullException.ThrowIfNull(future);
        var loop = EventLoop.GetRunningLoop();
        if (timeout is not { } delay) return await future;
        if (double.IsNaN(delay)) throw new ArgumentOutOfRangeException(nameof(timeout), "timeout is NaN");
        if (delay <= 0)
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
        var timeoutHandle = loop.CallLater(delay, static w => ReleaseWaiter(w), waiter);
        Action<Future> cb = _ => ReleaseWaiter(waiter);
        future.AddDoneCallback(cb);
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
            timeoutHandle.Cancel();
        }
    }

    /// <summary>wait_for of a coroutine: it becomes a task on the running loop.</summary>
    public static Task<T> WaitFor<T>(Func<Task<T>> coroutine, double? timeout)
    {
        ArgumentNullException.ThrowIfNull(coroutine);
        return WaitFor((Future<T>)EventLoop.GetRunningLoop().CreateTask(coroutine), timeout);
    }

    public static async Task WaitFor(Func<Task> coroutine, double? timeout)
    {
        ArgumentNullException.ThrowIfNull(coroutine);
        await WaitFor((Future<ValueTuple>)EventLoop.GetRunningLoop().CreateTask(coroutine), timeout);
    }

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
