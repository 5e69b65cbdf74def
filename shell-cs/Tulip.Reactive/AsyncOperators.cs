namespace Tulip.Reactive;

/// <summary>
/// Select and subscribe with an async function, under an explicit <see cref="AsyncConcurrency"/>. Each
/// call runs as a loop task (its cancellation token fires when the task is cancelled). An exception
/// from the function ends the sequence with OnError and cancels the calls still running. Disposal
/// disposes the source subscription and cancels every running call; nothing is emitted after it.
/// The result completes when the source has completed and the last call has finished.
/// </summary>
public static class AsyncOperators
{
    /// <summary>The results of <paramref name="selector"/> per item (any thread: items and subscriptions are
    /// marshalled to the loop).</summary>
    [ThreadSafe]
    public static IObservable<R> SelectAsync<T, R>(this IObservable<T> source, EventLoop loop,
        Func<T, CancellationToken, Task<R>> selector, AsyncConcurrency concurrency)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(loop);
        ArgumentNullException.ThrowIfNull(selector);
        if (concurrency.MaxParallel == 0) throw new ArgumentException("use one of AsyncConcurrency's policies", nameof(concurrency));
        return new SelectAsyncObservable<T, R>(source, loop, selector, concurrency);
    }

    /// <inheritdoc cref="SelectAsync{T, R}(IObservable{T}, EventLoop, Func{T, CancellationToken, Task{R}}, AsyncConcurrency)"/>
    [ThreadSafe]
    public static IObservable<R> SelectAsync<T, R>(this IObservable<T> source, EventLoop loop,
        Func<T, Task<R>> selector, AsyncConcurrency concurrency)
    {
        ArgumentNullException.ThrowIfNull(selector);
        return source.SelectAsync(loop, (item, _) => selector(item), concurrency);
    }

    /// <summary>Runs <paramref name="onNext"/> for the items under <paramref name="concurrency"/>; returns the
    /// subscription. Any thread, as <see cref="SelectAsync{T, R}(IObservable{T}, EventLoop, Func{T, CancellationToken, Task{R}}, AsyncConcurrency)"/>.</summary>
    [ThreadSafe]
    public static IDisposable SubscribeAsync<T>(this IObservable<T> source, EventLoop loop,
        Func<T, CancellationToken, Task> onNext, AsyncConcurrency concurrency,
        Action<Exception>? onError = null, Action? onCompleted = null)
    {
        ArgumentNullException.ThrowIfNull(onNext);
        return source
            .SelectAsync(loop, async (item, ct) =>
            {
                await onNext(item, ct);
                return default(ValueTuple);
            }, concurrency)
            .Subscribe(new ActionObserver(onError, onCompleted));
    }

    private sealed class ActionObserver(Action<Exception>? onError, Action? onCompleted) : IObserver<ValueTuple>
    {
        public void OnNext(ValueTuple value) { }

        public void OnError(Exception error)
        {
            if (onError is null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
            onError(error);
        }

        public void OnCompleted() => onCompleted?.Invoke();
    }

    private sealed class SelectAsyncObservable<T, R>(IObservable<T> source, EventLoop loop,
        Func<T, CancellationToken, Task<R>> selector, AsyncConcurrency concurrency) : IObservable<R>
    {
        public IDisposable Subscribe(IObserver<R> observer)
        {
            ArgumentNullException.ThrowIfNull(observer);
            var run = new Run<T, R>(loop, selector, concurrency, new LoopObserver<R>(loop, observer));
            run.Upstream = source.Subscribe(new LoopObserver<T>(loop, run));
            if (run.Ended) run.Upstream.Dispose();
            return run;
        }
    }

    private sealed class Run<T, R>(EventLoop loop, Func<T, CancellationToken, Task<R>> selector,
        AsyncConcurrency concurrency, LoopObserver<R> downstream) : IObserver<T>, IDisposable
    {
        private readonly HashSet<LoopTask<R>> _running = new(ReferenceEqualityComparer.Instance);
        private readonly Queue<T> _waiting = new();
        private bool _sourceDone;
        private volatile bool _ended;
        internal IDisposable? Upstream;

        internal bool Ended => _ended;

        public void OnNext(T value)
        {
            if (_ended) return;
            switch (concurrency.Mode)
            {
                case AsyncConcurrencyMode.DropWhileBusy:
                    if (_running.Count == 0) Start(value);
                    break;
                case AsyncConcurrencyMode.SwitchToLatest:
                    CancelRunning("switched to a later item");
                    Start(value);
                    break;
                default:
                    if (_running.Count < concurrency.MaxParallel) Start(value);
                    else _waiting.Enqueue(value);
                    break;
            }
        }

        public void OnError(Exception error) => End(error);

        public void OnCompleted()
        {
            _sourceDone = true;
            MaybeComplete();
        }

        private void Start(T item)
        {
            LoopTask<R>? task = null;
            task = loop.CreateTask(() => selector(item, task!.CancellationToken), "rx-select-async");
            _running.Add(task);
            task.AddDoneCallback(static (f, self) => self.Finished((LoopTask<R>)f), this);
        }

        private void Finished(LoopTask<R> task)
        {
            if (!_running.Remove(task) || _ended)
            {
                if (!task.Cancelled) task.Exception(); // retrieved: its outcome is ours to drop
                return;
            }

            if (task.Cancelled)
            {
                // Cancelled from outside (not by a switch or by disposal, which remove it first): an error.
                End(new CancelledException("a call of SelectAsync was cancelled"));
                return;
            }

            if (task.Exception() is { } e)
            {
                End(e);
                return;
            }

            downstream.OnNext(task.Result());
            while (_waiting.Count > 0 && _running.Count < concurrency.MaxParallel && !_ended) Start(_waiting.Dequeue());
            MaybeComplete();
        }

        private void MaybeComplete()
        {
            if (_ended || !_sourceDone || _running.Count > 0 || _waiting.Count > 0) return;
            _ended = true;
            downstream.OnCompleted();
        }

        private void End(Exception error)
        {
            if (_ended) return;
            _ended = true;
            Upstream?.Dispose();
            _waiting.Clear();
            CancelRunning("SelectAsync ended with an error");
            downstream.OnError(error);
        }

        private void CancelRunning(string message)
        {
            if (_running.Count == 0) return;
            var tasks = _running.ToArray();
            _running.Clear();
            foreach (var t in tasks)
            {
                t.Cancel(message);
            }
        }

        public void Dispose()
        {
            downstream.Close();
            _ended = true;
            Upstream?.Dispose();
            loop.InvokeOnLoop(static self =>
            {
                self._waiting.Clear();
                self.CancelRunning("subscription disposed");
            }, this);
        }
    }
}
