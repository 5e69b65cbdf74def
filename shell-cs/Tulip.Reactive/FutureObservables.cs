namespace Tulip.Reactive;

/// <summary>Loop futures and tasks as observables, and observables as loop futures.</summary>
public static class FutureObservables
{
    /// <summary>
    /// The future's outcome as an observable: one value then completion, the exception as OnError,
    /// cancellation as OnError(<see cref="CancelledException"/>). Delivered by a loop callback (asyncio
    /// never calls a done-callback inline). Disposing the subscription removes the done-callback and,
    /// with <see cref="OnDispose.Cancel"/> (the default), cancels the future (a task: the task). Any thread
    /// (subscribing and disposing are marshalled to the loop).
    /// </summary>
    [ThreadSafe]
    public static IObservable<T> ToObservable<T>(this Future<T> future, OnDispose onDispose = OnDispose.Cancel)
    {
        ArgumentNullException.ThrowIfNull(future);
        return new FutureObservable<T>(future, onDispose);
    }

    /// <summary>
    /// A future with the first value of <paramref name="source"/> (<see cref="InvalidOperationException"/>
    /// if it completes empty). The subscription is disposed as soon as the value is in; cancelling the
    /// future disposes it too.
    /// </summary>
    public static Future<T> FirstToFuture<T>(this IObservable<T> source, EventLoop? loop = null) =>
        Collect<T, T>(source, loop, stopAtFirst: true, static (f, items) => f.SetResult(items[0]), emptyIsError: true);

    /// <summary>A future with the last value of <paramref name="source"/>, when it completes (empty: <see cref="InvalidOperationException"/>).</summary>
    public static Future<T> LastToFuture<T>(this IObservable<T> source, EventLoop? loop = null) =>
        Collect<T, T>(source, loop, stopAtFirst: false, static (f, items) => f.SetResult(items[^1]), emptyIsError: true, keepLastOnly: true);

    /// <summary>A future with every value of <paramref name="source"/>, in order, when it completes.</summary>
    public static Future<IReadOnlyList<T>> ToListFuture<T>(this IObservable<T> source, EventLoop? loop = null) =>
        Collect<T, IReadOnlyList<T>>(source, loop, stopAtFirst: false, static (f, items) => f.SetResult(items), emptyIsError: false);

    private static Future<R> Collect<T, R>(IObservable<T> source, EventLoop? loop, bool stopAtFirst,
        Action<Future<R>, List<T>> complete, bool emptyIsError, bool keepLastOnly = false)
    {
        ArgumentNullException.ThrowIfNull(source);
        loop ??= EventLoop.GetRunningLoop();
        var future = loop.CreateFuture<R>();
        var collector = new Collector<T, R>(future, stopAtFirst, complete, emptyIsError, keepLastOnly);
        var gate = new LoopObserver<T>(loop, collector);
        collector.Gate = gate;
        // Cancelling the future (or its completing) ends the subscription.
        future.AddDoneCallback(static (_, c) => c.Unsubscribe(), collector);
        collector.Subscription = source.Subscribe(gate);
        if (future.Done) collector.Unsubscribe();
        return future;
    }

    private sealed class Collector<T, R>(Future<R> future, bool stopAtFirst, Action<Future<R>, List<T>> complete, bool emptyIsError, bool keepLastOnly)
        : IObserver<T>
    {
        private readonly List<T> _items = new();
        internal LoopObserver<T>? Gate;
        internal IDisposable? Subscription;

        internal void Unsubscribe()
        {
            Gate?.Close();
            Subscription?.Dispose();
        }

        public void OnNext(T value)
        {
            if (future.Done) return;
            if (keepLastOnly) _items.Clear();
            _items.Add(value);
            if (stopAtFirst)
            {
                Unsubscribe();
                complete(future, _items);
            }
        }

        public void OnError(Exception error)
        {
            if (!future.Done) future.SetException(error);
        }

        public void OnCompleted()
        {
            if (future.Done) return;
            if (_items.Count == 0 && emptyIsError) future.SetException(new InvalidOperationException("Sequence contains no elements."));
            else complete(future, _items);
        }
    }

    private sealed class FutureObservable<T>(Future<T> future, OnDispose onDispose) : IObservable<T>
    {
        public IDisposable Subscribe(IObserver<T> observer)
        {
            ArgumentNullException.ThrowIfNull(observer);
            var sub = new FutureSubscription<T>(future, new LoopObserver<T>(future.Loop, observer), onDispose);
            future.Loop.InvokeOnLoop(static s => s.Start(), sub);
            return sub;
        }
    }

    private sealed class FutureSubscription<T>(Future<T> future, LoopObserver<T> observer, OnDispose onDispose) : IDisposable
    {
        private Action<Future>? _callback;
        private volatile bool _disposed;

        internal void Start()
        {
            if (_disposed) return;
            // A delegate of its own, so RemoveDoneCallback removes this subscription's registration only.
            _callback = _ => Deliver();
            future.AddDoneCallback(_callback);
        }

        private void Deliver()
        {
            _callback = null;
            if (_disposed) return;
            if (future.Cancelled)
            {
                observer.OnError(new CancelledException(CancelMessage()));
                return;
            }

            if (future.Exception() is { } e)
            {
                observer.OnError(e);
                return;
            }

            observer.OnNext(future.Result());
            observer.OnCompleted();
        }

        private string? CancelMessage()
        {
            try
            {
                future.Result();
                return null;
            }
            catch (CancelledException e)
            {
                return e.CancelMessage;
            }
        }

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            observer.Close();
            future.Loop.InvokeOnLoop(static s => s.Stop(), this);
        }

        private void Stop()
        {
            if (_callback is { } cb) future.RemoveDoneCallback(cb);
            _callback = null;
            if (onDispose == OnDispose.Cancel && !future.Done) future.Cancel("subscription disposed");
        }
    }
}
