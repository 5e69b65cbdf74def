using System.Runtime.CompilerServices;

namespace Tulip;

public static partial class Asyncio
{
    /// <summary>
    /// asyncio.as_completed: one awaitable per future, to be awaited in turn. Each gives the next result
    /// to complete <em>at the moment it is awaited</em> (results and exceptions alike), whichever item
    /// is awaited first, as asyncio's <c>_wait_for_one()</c> coroutines do: enumerating them all first
    /// binds nothing. After <paramref name="timeout"/> seconds the awaitables not yet satisfied raise
    /// <see cref="TimeoutException"/>. The awaitables are not the futures themselves.
    /// </summary>
    public static IEnumerable<NextCompleted<T>> AsCompleted<T>(IEnumerable<Future<T>> futures, double? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(futures); // at the call, not at the first MoveNext
        return AsCompletedIterator(futures, timeout);
    }

    private static IEnumerable<NextCompleted<T>> AsCompletedIterator<T>(IEnumerable<Future<T>> futures, double? timeout)
    {
        var state = new CompletionOrder<Future<T>>(futures, timeout);
        for (int i = 0; i < state.Count; i++) yield return new NextCompleted<T>(state);
    }

    /// <summary>as_completed of coroutines: each becomes a task on the running loop.</summary>
    public static IEnumerable<NextCompleted<T>> AsCompleted<T>(IEnumerable<Func<Task<T>>> coroutines, double? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(coroutines);
        var loop = EventLoop.GetRunningLoop();
        return AsCompleted(coroutines.Select(c => (Future<T>)loop.CreateTask(c)).ToList(), timeout);
    }

    /// <summary>
    /// as_completed as an async stream (asyncio 3.13's <c>async for</c>): the futures themselves, each
    /// yielded once it is done, in the order they finish. After <paramref name="timeout"/> seconds the
    /// enumeration raises <see cref="TimeoutException"/>.
    /// </summary>
    public static IAsyncEnumerable<TF> AsCompletedAsync<TF>(IEnumerable<TF> futures, double? timeout = null,
        CancellationToken cancellationToken = default)
        where TF : Future
    {
        ArgumentNullException.ThrowIfNull(futures); // at the call, not at the first MoveNextAsync
        return AsCompletedIteratorAsync(futures, timeout, cancellationToken);
    }

    private static async IAsyncEnumerable<TF> AsCompletedIteratorAsync<TF>(IEnumerable<TF> futures, double? timeout,
        [EnumeratorCancellation] CancellationToken cancellationToken)
        where TF : Future
    {
        var state = new CompletionOrder<TF>(futures, timeout);
        for (int i = 0; i < state.Count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var slot = state.Loop.CreateFuture<TF?>();
            state.Next(slot, static (slot, f) => slot.SetResult(f));
            var f = await slot;
            if (f is null) throw new TimeoutException("The operation has timed out.");
            yield return f;
        }
    }

    /// <summary>
    /// The bookkeeping of as_completed: the futures not done yet, those done and not handed out yet,
    /// and the slots waiting for the next one (in order). A timeout hands out null to every slot.
    /// </summary>
    internal sealed class CompletionOrder<TF> where TF : Future
    {
        private readonly HashSet<TF> _todo = new(ReferenceEqualityComparer.Instance);
        private readonly Queue<TF?> _done = new();
        private readonly Queue<Action<TF?>> _slots = new();
        private readonly TimerHandle? _timeoutHandle;
        private readonly Action<Future> _onCompletion;
        internal readonly EventLoop Loop;
        internal readonly int Count;

        internal CompletionOrder(IEnumerable<TF> futures, double? timeout)
        {
            foreach (var f in futures)
            {
                ArgumentNullException.ThrowIfNull(f, nameof(futures));
                _todo.Add(f);
            }

            Count = _todo.Count;
            Loop = _todo.Count > 0 ? _todo.First().Loop : EventLoop.GetEventLoop();
            _onCompletion = OnCompletion;
            foreach (var f in _todo) f.AddDoneCallback(_onCompletion);
            if (_todo.Count > 0 && timeout is { } t) _timeoutHandle = Loop.CallLater(t, OnTimeout);
        }

        internal void Next<TSlot>(TSlot slot, Action<TSlot, TF?> deliver)
        {
            if (_done.TryDequeue(out var f)) deliver(slot, f);
            else _slots.Enqueue(x => deliver(slot, x));
        }

        private void Put(TF? f)
        {
            if (_slots.TryDequeue(out var slot)) slot(f);
            else _done.Enqueue(f);
        }

        private void OnCompletion(Future f)
        {
            if (_todo.Count == 0) return; // the timeout was here first
            _todo.Remove((TF)f);
            Put((TF)f);
            if (_todo.Count == 0) _timeoutHandle?.Cancel();
        }

        private void OnTimeout()
        {
            foreach (var f in _todo)
            {
                f.RemoveDoneCallback(_onCompletion);
                Put(null);
            }

            _todo.Clear();
        }
    }
}

/// <summary>
/// One awaitable of <see cref="Asyncio.AsCompleted{T}(IEnumerable{Future{T}}, double?)"/> (asyncio's
/// <c>_wait_for_one()</c> coroutine): it takes the next completion when it is first awaited (or turned
/// into a future), not when it is enumerated. Awaiting it again gives the same result.
/// </summary>
public sealed class NextCompleted<T>
{
    private Asyncio.CompletionOrder<Future<T>>? _order;
    private Future<T>? _bound;

    internal NextCompleted(Asyncio.CompletionOrder<Future<T>> order) => _order = order;

    /// <summary>Takes the next completion now; the future gives its result or exception.</summary>
    public Future<T> AsFuture()
    {
        (_bound?.Loop ?? _order!.Loop).VerifyAccess();
        if (_bound is { } b) return b;
        var order = _order!;
        _order = null;
        var slot = _bound = order.Loop.CreateFuture<T>();
        order.Next(slot, static (slot, f) =>
        {
            if (f is null) slot.SetException(new TimeoutException("The operation has timed out."));
            else if (f.Cancelled) slot.SetException(new CancelledException(f.CancelMessageOrNull()));
            else if (f.Exception() is { } e) slot.SetException(e);
            else slot.SetResult(f.Result());
        });
        return slot;
    }

    public FutureAwaiter<T> GetAwaiter() => AsFuture().GetAwaiter();
}
