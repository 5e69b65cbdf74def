using System.Runtime.CompilerServices;

namespace Tulip;

public static partial class Asyncio
{
    /// <summary>
    /// asyncio.shield: a future that follows <paramref name="inner"/> but whose cancellation does not
    /// reach it. A done inner is returned as is. If the inner is cancelled, the shield is cancelled too;
    /// if the shield was cancelled first, the inner's later exception is marked as retrieved.
    /// </summary>
    public static Future<T> Shield<T>(Future<T> inner)
    {
        ArgumentNullException.ThrowIfNull(inner);
        if (inner.Done) return inner;
        var outer = new Future<T>(inner.Loop);
        var link = new ShieldLink<T>(inner, outer);
        inner.AddDoneCallback(link.InnerDone);
        outer.AddDoneCallback(link.OuterDone);
        return outer;
    }

    /// <summary>
    /// Shield whose await <paramref name="cancellationToken"/> cancels: when it fires (any thread,
    /// marshalled onto the loop) the outer future is cancelled (awaiting it raises a
    /// <see cref="CancelledException"/> carrying the token) and the inner goes on running, as asyncio's
    /// shield does when the outer is cancelled. The registration is disposed when the outer is done. A
    /// done inner is returned as is (nothing to cancel).
    /// </summary>
    public static Future<T> Shield<T>(Future<T> inner, CancellationToken cancellationToken)
    {
        var outer = Shield(inner);
        if (!ReferenceEquals(outer, inner)) TokenLink.CancelOnToken(outer, cancellationToken);
        return outer;
    }

    /// <summary>Shield of a coroutine: it becomes a task on the running loop.</summary>
    [OverloadResolutionPriority(1)] // an async lambda fits the ValueTask overload too: the Task one wins
    public static Future<T> Shield<T>(Func<Task<T>> coroutine) => Shield((Future<T>)EventLoop.GetRunningLoop().CreateTask(coroutine));

    [OverloadResolutionPriority(1)]
    public static Future<ValueTuple> Shield(Func<Task> coroutine) => Shield((Future<ValueTuple>)EventLoop.GetRunningLoop().CreateTask(coroutine));

    /// <summary>Shield of a <see cref="ValueTask{TResult}"/> method: it becomes a task on the running loop.</summary>
    public static Future<T> Shield<T>(Func<ValueTask<T>> coroutine) => Shield((Future<T>)EventLoop.GetRunningLoop().CreateTask(coroutine));

    public static Future<ValueTuple> Shield(Func<ValueTask> coroutine) => Shield((Future<ValueTuple>)EventLoop.GetRunningLoop().CreateTask(coroutine));

    /// <summary>Shield of a coroutine whose outer await <paramref name="cancellationToken"/> cancels (the task goes on).</summary>
    [OverloadResolutionPriority(1)]
    public static Future<T> Shield<T>(Func<Task<T>> coroutine, CancellationToken cancellationToken) =>
        Shield((Future<T>)EventLoop.GetRunningLoop().CreateTask(coroutine), cancellationToken);

    [OverloadResolutionPriority(1)]
    public static Future<ValueTuple> Shield(Func<Task> coroutine, CancellationToken cancellationToken) =>
        Shield((Future<ValueTuple>)EventLoop.GetRunningLoop().CreateTask(coroutine), cancellationToken);

    private sealed class ShieldLink<T>(Future<T> inner, Future<T> outer)
    {
        internal readonly Action<Future> InnerDone = _ =>
        {
            if (outer.Cancelled)
            {
                if (!inner.Cancelled) inner.Exception();
                return;
            }

            if (inner.Cancelled) outer.Cancel();
            else if (inner.Exception() is { } e) outer.SetException(e);
            else outer.SetResult(inner.Result());
        };

        internal Action<Future> OuterDone => _ =>
        {
            if (!inner.Done) inner.RemoveDoneCallback(InnerDone);
        };
    }
}
