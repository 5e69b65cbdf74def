namespace Tulip.Reactive;

/// <summary>
/// The general adapter: an observable whose every subscription runs a producer coroutine as a loop
/// task. The producer gets a loop-thread observer and the task's cancellation token; when it returns
/// the observer completes, when it throws the observer gets the error. Disposing the subscription
/// closes the observer first (no callback after disposal) and then cancels the task — the work behind
/// the subscription lives exactly as long as the subscription. Streams, servers, queues and async
/// sequences are adapted through it; signals and subprocess output will be too.
/// </summary>
public static class LoopObservable
{
    /// <summary>A cold observable: each subscription runs <paramref name="produce"/> as a task on <paramref name="loop"/>.
    /// Any thread (subscribing and disposing are marshalled to the loop).</summary>
    [ThreadSafe]
    public static IObservable<T> Create<T>(EventLoop loop, Func<IObserver<T>, CancellationToken, Task> produce)
    {
        ArgumentNullException.ThrowIfNull(loop);
        ArgumentNullException.ThrowIfNull(produce);
        return new ProducerObservable<T>(loop, produce);
    }

    /// <summary>Runs a coroutine per subscription and emits its result (then completes); disposal cancels it. Any thread.</summary>
    [ThreadSafe]
    public static IObservable<T> FromCoroutine<T>(EventLoop loop, Func<CancellationToken, Task<T>> coroutine)
    {
        ArgumentNullException.ThrowIfNull(coroutine);
        return Create<T>(loop, async (observer, ct) => observer.OnNext(await coroutine(ct)));
    }

    /// <summary>The async sequence as an observable: enumerated by a loop task per subscription; disposal cancels it. Any thread.</summary>
    [ThreadSafe]
    public static IObservable<T> FromAsyncEnumerable<T>(EventLoop loop, IAsyncEnumerable<T> source)
    {
        ArgumentNullException.ThrowIfNull(source);
        return Create<T>(loop, async (observer, ct) =>
        {
            await foreach (var item in source.WithCancellation(ct)) observer.OnNext(item);
        });
    }

    private sealed class ProducerObservable<T>(EventLoop loop, Func<IObserver<T>, CancellationToken, Task> produce) : IObservable<T>
    {
        public IDisposable Subscribe(IObserver<T> observer)
        {
            ArgumentNullException.ThrowIfNull(observer);
            var sub = new ProducerSubscription<T>(loop, new LoopObserver<T>(loop, observer), produce);
            loop.InvokeOnLoop(static s => s.Start(), sub);
            return sub;
        }
    }

    private sealed class ProducerSubscription<T>(EventLoop loop, LoopObserver<T> observer, Func<IObserver<T>, CancellationToken, Task> produce)
        : IDisposable
    {
        private LoopTask? _task;
        private volatile bool _disposed;

        internal void Start()
        {
            if (_disposed) return;
            _task = loop.CreateTask(Run, "rx-producer");
        }

        private async Task Run()
        {
            try
            {
                await produce(observer, _task!.CancellationToken);
            }
            catch (OperationCanceledException) when (_disposed)
            {
                return; // cancelled by disposal: nobody is listening
            }
            catch (Exception e)
            {
                observer.OnError(e);
                return;
            }

            observer.OnCompleted();
        }

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            observer.Close();
            loop.InvokeOnLoop(static s => s.Cancel(), this);
        }

        private void Cancel()
        {
            if (_task is { Done: false } t) t.Cancel("subscription disposed");
        }
    }
}
