namespace Tulip;

public static partial class Asyncio
{
    /// <summary>
    /// asyncio.run_coroutine_threadsafe: from any thread, schedules <paramref name="coroutine"/> as a task on
    /// <paramref name="loop"/> (posted through its thread-safe door; it starts once the loop runs) and returns
    /// a .NET task of its outcome. <paramref name="cancellationToken"/> cancels the loop task (the token
    /// already cancelled: before its first step), and a loop task cancelled on the loop gives a canceled
    /// .NET task (whose await throws the <see cref="CancelledException"/>), as concurrent.futures' cancel
    /// goes both ways. A factory that throws instead of returning its task is reported to the loop's
    /// exception handler and faults the returned task. A closed loop: <see cref="EventLoopException"/>; a loop
    /// closed after the post but before the task started faults the returned task with it.
    /// </summary>
    [ThreadSafe]
    public static Task<T> RunCoroutineThreadsafe<T>(Func<Task<T>> coroutine, EventLoop loop, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(coroutine);
        ArgumentNullException.ThrowIfNull(loop);
        var start = new ThreadsafeStart<T>(loop, coroutine, cancellationToken);
        loop.TrackThreadsafeStart(start);
        try
        {
            loop.CallSoonThreadsafe(static s => s.Start(), start);
        }
        catch
        {
            if (!loop.UntrackThreadsafeStart(start)) _ = start.Started.Task.Exception; // failed by Close: observed here
            throw;
        }

        return Unwrap(start.Started.Task);
    }

    /// <summary>run_coroutine_threadsafe of a coroutine with no result: see
    /// <see cref="RunCoroutineThreadsafe{T}(Func{Task{T}}, EventLoop, CancellationToken)"/>.</summary>
    [ThreadSafe]
    public static Task RunCoroutineThreadsafe(Func<Task> coroutine, EventLoop loop, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(coroutine);
        return RunCoroutineThreadsafe(async () =>
        {
            await coroutine();
            return default(ValueTuple);
        }, loop, cancellationToken);
    }

    // An async method, not a continuation: only an async method's builder turns the inner task's
    // CancelledException into a canceled task that still rethrows that exception (FutureTasks' reason).
    private static async Task<T> Unwrap<T>(Task<Task<T>> started) =>
        await (await started.ConfigureAwait(false)).ConfigureAwait(false);

    private sealed class ThreadsafeStart<T>(EventLoop loop, Func<Task<T>> coroutine, CancellationToken token) : EventLoop.IThreadsafeStart
    {
        public readonly TaskCompletionSource<Task<T>> Started = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>The loop closed with the start still posted (Close drops posted callbacks).</summary>
        public void FailClosed() =>
            Started.TrySetException(new EventLoopException("Event loop is closed: the coroutine passed to RunCoroutineThreadsafe() never started"));

        /// <summary>On the loop's thread: the task is made there, its outcome bridged by AsTask.</summary>
        public void Start()
        {
            loop.UntrackThreadsafeStart(this);
            try
            {
                var task = loop.CreateTask(Guarded, null, token);
                Started.SetResult(task.AsTask());
            }
            catch (Exception e)
            {
                Started.SetException(e);
                throw; // the loop's handler hears of it, as asyncio's callback re-raises
            }
        }

        private Task<T> Guarded()
        {
            try
            {
                return coroutine() ?? throw new InvalidOperationException("the coroutine function returned null");
            }
            catch (Exception e)
            {
                loop.CallExceptionHandler(new ExceptionContext("Exception in the coroutine function passed to RunCoroutineThreadsafe()", e));
                throw;
            }
        }
    }
}
