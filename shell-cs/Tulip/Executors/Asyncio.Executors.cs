namespace Tulip;

/// <summary>asyncio's module functions that cross threads: <c>to_thread</c>, <c>wrap_future</c>,
/// <c>run_coroutine_threadsafe</c>.</summary>
public static partial class Asyncio
{
    /// <summary>
    /// asyncio.to_thread: runs <paramref name="func"/> in the running loop's default executor, in a copy of
    /// the caller's <see cref="ExecutionContext"/> (asyncio copies the contextvars: <c>AsyncLocal</c> values
    /// flow), and returns a loop future of its result. <paramref name="cancellationToken"/> (or cancelling the
    /// future) before the work has started means it never runs.
    /// </summary>
    public static Future<T> ToThread<T>(Func<T> func, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(func);
        var call = WorkCall<T>.Of(func) with { Context = ExecutionContext.Capture() };
        return EventLoop.GetRunningLoop().RunCall(null, call, cancellationToken, "ToThread");
    }

    /// <summary>asyncio.to_thread of a function with no result: see <see cref="ToThread{T}(Func{T}, CancellationToken)"/>.</summary>
    public static Future<ValueTuple> ToThread(Action func, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(func);
        var call = WorkCall<ValueTuple>.Of(func) with { Context = ExecutionContext.Capture() };
        return EventLoop.GetRunningLoop().RunCall(null, call, cancellationToken, "ToThread");
    }

    /// <summary>
    /// asyncio.wrap_future: a .NET task (completed on any thread) as a loop future completed on the loop's
    /// thread; the same conversion as <see cref="WrapTask{T}(Task{T}, EventLoop)"/> (one implementation), the
    /// loop defaulting to <see cref="GetEventLoop"/>. Any thread.
    /// </summary>
    [ThreadSafe]
    public static Future<T> WrapFuture<T>(Task<T> task, EventLoop? loop = null)
    {
        ArgumentNullException.ThrowIfNull(task);
        return WrapTask(task, loop ?? EventLoop.GetEventLoop());
    }

    /// <summary>asyncio.wrap_future of a task with no result. Any thread.</summary>
    [ThreadSafe]
    public static Future<ValueTuple> WrapFuture(Task task, EventLoop? loop = null)
    {
        ArgumentNullException.ThrowIfNull(task);
        return WrapTask(task is Task<ValueTuple> typed ? typed : AsValueTuple(task), loop ?? EventLoop.GetEventLoop());
    }

    private static async Task<ValueTuple> AsValueTuple(Task task)
    {
        await task.ConfigureAwait(false);
        return default;
    }
}
