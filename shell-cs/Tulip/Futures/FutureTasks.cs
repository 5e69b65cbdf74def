using System.Runtime.CompilerServices;

namespace Tulip;

/// <summary>
/// A loop future or task as a .NET <see cref="Task"/> (issue 14.2), so <c>Task.WhenAll</c> /
/// <c>WhenAny</c>, <c>Task.Wait</c> from another thread and libraries that take a <see cref="Task"/> work
/// with Tulip. The other direction, a .NET task as a loop future, is
/// <see cref="Asyncio.WrapTask{T}(Task{T}, EventLoop)"/> (asyncio's <c>wrap_future</c>).
/// <para><b>Outcomes.</b> A result is the task's result; an exception faults the task with that same
/// exception (awaiting rethrows it, <see cref="Task.Exception"/> wraps it). A cancelled future gives a
/// <i>canceled</i> task (<see cref="Task.IsCanceled"/>, as .NET code checks) whose await throws a
/// <see cref="CancelledException"/> — an <see cref="OperationCanceledException"/> — carrying the cancel
/// message (not a message-less <see cref="TaskCanceledException"/>). Reading the outcome for the task
/// counts as retrieving the future's exception: no "Future exception was never retrieved" report.</para>
/// <para><b>Threads.</b> Any thread may call it: on the loop's thread (or while the loop is idle) the
/// future's done-callback is registered at once; from another thread while the loop runs, the
/// registration is posted to the loop. The task completes one loop step after the future (done-callbacks
/// are scheduled, never inline), and its continuations never run on the loop thread inside that
/// callback: they are run asynchronously (<see cref="TaskCreationOptions.RunContinuationsAsynchronously"/>),
/// on the thread pool, or back on the loop through a loop task's own context when a loop task awaits it.
/// One task per future: later calls return the same <see cref="Task"/>. On a closed loop, a future that
/// is not done yet can never complete: <see cref="EventLoopException"/>.</para>
/// </summary>
public static class FutureTasks
{
    private const string ClosedPending = "Event loop is closed: the future can never complete";
    private static readonly ConditionalWeakTable<Future, object> s_typed = new();
    private static readonly ConditionalWeakTable<Future, Bridge> s_untyped = new();

    /// <summary>The future as a <see cref="Task{T}"/> (see <see cref="FutureTasks"/>); any thread.</summary>
    [ThreadSafe]
    public static Task<T> AsTask<T>(this Future<T> future)
    {
        ArgumentNullException.ThrowIfNull(future);
        var bridge = (Bridge<T>)s_typed.GetValue(future, static _ => new Bridge<T>());
        bridge.Attach(future);
        return bridge.Task;
    }

    /// <summary>The future as a <see cref="Task"/> whatever its result type (see <see cref="FutureTasks"/>); any thread.</summary>
    [ThreadSafe]
    public static Task AsTask(this Future future)
    {
        ArgumentNullException.ThrowIfNull(future);
        var bridge = s_untyped.GetValue(future, static _ => new Bridge());
        bridge.Attach(future);
        return bridge.Task;
    }

    /// <summary>A task with no result as a <see cref="Task"/> (see <see cref="FutureTasks"/>); any thread.</summary>
    [ThreadSafe]
    public static Task AsTask(this LoopTask task)
    {
        ArgumentNullException.ThrowIfNull(task);
        return AsTask((Future)task);
    }

    /// <summary>
    /// Completes a <see cref="TaskCompletionSource{TResult}"/> from the future's done-callback. The
    /// source carries the outcome (a cancellation as a <see cref="CancelledException"/>); the public
    /// task is an async method awaiting it, because only an async method's builder turns a thrown
    /// <see cref="OperationCanceledException"/> into a <i>canceled</i> task that still rethrows that very
    /// exception (a source's <c>SetCanceled</c> would lose the cancel message).
    /// </summary>
    private class Bridge<T>
    {
        private readonly TaskCompletionSource<T> _source = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _attached;

        public Bridge() => Task = Unwrap(_source.Task);

        public Task<T> Task { get; }

        private static async Task<T> Unwrap(Task<T> source) => await source.ConfigureAwait(false);

        public void Attach(Future<T> future)
        {
            if (Volatile.Read(ref _attached) != 0 || Interlocked.Exchange(ref _attached, 1) != 0) return;
            try
            {
                future.Loop.InvokeOnLoop(static s => s.bridge.Register(s.future), (future, bridge: this));
            }
            catch (EventLoopException e) when (future.Loop.IsClosed)
            {
                _source.TrySetException(e); // the loop will never run the callback
            }
        }

        private void Register(Future<T> future)
        {
            // A closed loop runs no callback any more: a done future answers now, a pending one never will.
            if (!future.Loop.IsClosed) future.AddDoneCallback(static (f, b) => b.Complete((Future<T>)f), this);
            else if (future.Done) Complete(future);
            else _source.TrySetException(new EventLoopException(ClosedPending));
        }

        private void Complete(Future<T> f)
        {
            if (f.Cancelled) _source.TrySetException(new CancelledException(f.CancelMessageOrNull()));
            else if (f.Exception() is { } e) _source.TrySetException(e);
            else _source.TrySetResult(f.Result());
        }
    }

    private sealed class Bridge
    {
        private readonly TaskCompletionSource _source = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _attached;

        public Bridge() => Task = Unwrap(_source.Task);

        public Task Task { get; }

        private static async Task Unwrap(Task source) => await source.ConfigureAwait(false);

        public void Attach(Future future)
        {
            if (Volatile.Read(ref _attached) != 0 || Interlocked.Exchange(ref _attached, 1) != 0) return;
            try
            {
                future.Loop.InvokeOnLoop(static s => s.bridge.Register(s.future), (future, bridge: this));
            }
            catch (EventLoopException e) when (future.Loop.IsClosed)
            {
                _source.TrySetException(e);
            }
        }

        private void Register(Future future)
        {
            if (!future.Loop.IsClosed) future.AddDoneCallback(static (f, b) => b.Complete(f), this);
            else if (future.Done) Complete(future);
            else _source.TrySetException(new EventLoopException(ClosedPending));
        }

        private void Complete(Future f)
        {
            if (f.Cancelled) _source.TrySetException(new CancelledException(f.CancelMessageOrNull()));
            else if (f.Exception() is { } e) _source.TrySetException(e);
            else _source.TrySetResult();
        }
    }
}
