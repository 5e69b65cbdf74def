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
    public static IEnumerable<NextCompleted<T>> AsCompleted<T>(IEnumerable<Future<T>> futures, double? timeout = null) =>
        AsCompleted(futures, timeout, CancellationToken.None);

    /// <summary>
    /// as_completed whose awaits <paramref name="cancellationToken"/> cancels: when it fires (any thread,
    /// marshalled onto the loop) every awaitable not satisfied yet raises a <see cref="CancelledException"/>
    /// carrying the token (results that completed before are still handed out first), and the futures
    /// are left running (asyncio: cancelling as_completed's waits does not cancel them). The registration
    /// is disposed once every future is done, the timeout passed, or the token fired.
    /// </summary>
    public static IEnumerable<NextCompleted<T>> AsCompleted<T>(IEnumerable<Future<T>> futures, double? timeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(futures); // at the call, not at the first MoveNext
        return AsCompletedIterator(futures, timeout, cancellationToken);
    }

    /// <summary>As <see cref="AsCompleted{T}(IEnumerable{Future{T}}, double?, CancellationToken)"/> with the timeout as a
    /// <see cref="TimeSpan"/> (<see cref="System.Threading.Timeout.InfiniteTimeSpan"/>: no limit).</summary>
    public static IEnumerable<NextCompleted<T>> AsCompleted<T>(IEnumerable<Future<T>> futures, TimeSpan timeout, CancellationToken cancellationToken = default) =>
        AsCompleted(futures, Seconds(timeout), cancellationToken);

    private static IEnumerable<NextCompleted<T>> AsCompletedIterator<T>(IEnumerable<Future<T>> futures, double? timeout, CancellationToken cancellationToken)
    {
        var state = new CompletionOrder<Future<T>>(futures, timeout, cancellationToken);
        for (int i = 0; i < state.Count; i++) yield return new NextCompleted<T>(state);
    }

    /// <summary>as_completed of coroutines: each becomes a task on the running loop.</summary>
    [OverloadResolutionPriority(1)] // a collection of async lambdas fits the ValueTask overload too: Task wins
    public static IEnumerable<NextCompleted<T>> AsCompleted<T>(IEnumerable<Func<Task<T>>> coroutines, double? timeout = null) =>
        AsCompleted(coroutines, timeout, CancellationToken.None);

    /// <summary>as_completed of coroutines with a token (the tasks are not cancelled by it).</summary>
    [OverloadResolutionPriority(1)]
    public static IEnumerable<NextCompleted<T>> AsCompleted<T>(IEnumerable<Func<Task<T>>> coroutines, double? timeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(coroutines);
        var loop = EventLoop.GetRunningLoop();
        return AsCompleted(coroutines.Select(c => (Future<T>)loop.CreateTask(c)).ToList(), timeout, cancellationToken);
    }

    [OverloadResolutionPriority(1)]
    public static IEnumerable<NextCompleted<T>> AsCompleted<T>(IEnumerable<Func<Task<T>>> coroutines, TimeSpan timeout, CancellationToken cancellationToken = default) =>
        AsCompleted(coroutines, Seconds(timeout), cancellationToken);

    /// <summary>as_completed of <see cref="ValueTask{TResult}"/> coroutines: each becomes a task on the running loop.</summary>
    public static IEnumerable<NextCompleted<T>> AsCompleted<T>(IEnumerable<Func<ValueTask<T>>> coroutines, double? timeout = null) =>
        AsCompleted(coroutines, timeout, CancellationToken.None);

    /// <summary>As above, with a token (the tasks are not cancelled by it).</summary>
    public static IEnumerable<NextCompleted<T>> AsCompleted<T>(IEnumerable<Func<ValueTask<T>>> coroutines, double? timeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(coroutines);
        var loop = EventLoop.GetRunningLoop();
        return AsCompleted(coroutines.Select(c => (Future<T>)loop.CreateTask(c)).ToList(), timeout, cancellationToken);
    }

    public static IEnumerable<NextCompleted<T>> AsCompleted<T>(IEnumerable<Func<ValueTask<T>>> coroutines, TimeSpan timeout, CancellationToken cancellationToken = default) =>
        AsCompleted(coroutines, Seconds(timeout), cancellationToken);

    /// <summary>
    /// as_completed as an async stream (asyncio 3.13's <c>async for</c>): the futures themselves, each
    /// yielded once it is done, in the order they finish. After <paramref name="timeout"/> seconds the
    /// enumeration raises <see cref="TimeoutException"/>. <paramref name="cancellationToken"/> (or
    /// <c>WithCancellation</c>) cancels the wait in progress too: it raises a <see cref="CancelledException"/>
    /// carrying the token, and the futures go on running.
    /// </summary>
    public static IAsyncEnumerable<TF> AsCompletedAsync<TF>(IEnumerable<TF> futures, double? timeout = null,
        CancellationToken cancellationToken = default)
        where TF : Future
    {
        ArgumentNullException.ThrowIfNull(futures); // at the call, not at the first MoveNextAsync
        return AsCompletedIteratorAsync(futures, timeout, cancellationToken);
    }

    /// <summary>As <see cref="AsCompletedAsync{TF}(IEnumerable{TF}, double?, CancellationToken)"/> with the timeout as a <see cref="TimeSpan"/>.</summary>
    public static IAsyncEnumerable<TF> AsCompletedAsync<TF>(IEnumerable<TF> futures, TimeSpan timeout, CancellationToken cancellationToken = default)
        where TF : Future => AsCompletedAsync(futures, Seconds(timeout), cancellationToken);

    private static async IAsyncEnumerable<TF> AsCompletedIteratorAsync<TF>(IEnumerable<TF> futures, double? timeout,
        [EnumeratorCancellation] CancellationToken cancellationToken)
        where TF : Future
    {
        var state = new CompletionOrder<TF>(futures, timeout, cancellationToken);
        for (int i = 0; i < state.Count; i++)
        {
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
        private readonly Queue<(Future Slot, Action<TF?> Deliver)> _slots = new();
        private readonly TimerHandle? _timeoutHandle;
        private readonly Action<Future> _onCompletion;
        private readonly CancellationToken _token;
        private CancellationTokenRegistration _registration;
        private bool _cancelled; // the token fired: a null handed out is a cancellation, not a timeout
        internal readonly EventLoop Loop;
        internal readonly int Count;

        internal CompletionOrder(IEnumerable<TF> futures, double? timeout, CancellationToken token)
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
            if (_todo.Count > 0 && token.CanBeCanceled)
            {
                _token = token;
                if (token.IsCancellationRequested) OnToken();
                else _registration = TokenLink.OnLoopWhenFired(Loop, token, static o => o.OnToken(), this);
            }
        }

        internal void Next<TSlot>(TSlot slot, Action<TSlot, TF?> deliver) where TSlot : Future
        {
            if (_done.TryDequeue(out var f))
            {
                if (f is null && _cancelled) TokenLink.CancelWith(slot, _token);
                else deliver(slot, f);
            }
            else
            {
                _slots.Enqueue((slot, x => deliver(slot, x)));
            }
        }

        private void Put(TF? f)
        {
            if (!_slots.TryDequeue(out var slot)) _done.Enqueue(f);
            else if (f is null && _cancelled) TokenLink.CancelWith(slot.Slot, _token);
            else slot.Deliver(f);
        }

        private void OnCompletion(Future f)
        {
            if (_todo.Count == 0) return; // the timeout or the token was here first
            _todo.Remove((TF)f);
            Put((TF)f);
            if (_todo.Count == 0) End();
        }

        private void OnTimeout() => Abandon();

        private void OnToken()
        {
            if (_todo.Count == 0) return; // every future finished (or the timeout passed) first
            _cancelled = true;
            Abandon();
        }

        // What is not done yet will never be handed out: each gets a null (a timeout, or the token).
        private void Abandon()
        {
            foreach (var f in _todo)
            {
                f.RemoveDoneCallback(_onCompletion);
                Put(null);
            }

            _todo.Clear();
            End();
        }

        private void End()
        {
            _timeoutHandle?.Cancel();
            TokenLink.Release(ref _registration);
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
