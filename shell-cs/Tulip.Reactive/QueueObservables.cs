namespace Tulip.Reactive;

/// <summary>
/// What to do when an Rx source (which has no back-pressure) pushes into a bounded queue that is full.
/// </summary>
public enum OverflowStrategy
{
    /// <summary>Items wait, in order, in a buffer outside the queue until there is room (the buffer is unbounded).</summary>
    Wait,

    /// <summary>The incoming item is dropped.</summary>
    DropNewest,

    /// <summary>The oldest item in the queue is dropped to make room for the incoming one.</summary>
    DropOldest,

    /// <summary>The feed fails: the source subscription is disposed and <see cref="QueueObserver{T}.Completion"/>
    /// faults with <see cref="QueueFullException"/>.</summary>
    Fail,
}

/// <summary>
/// An <see cref="IObserver{T}"/> that puts into an <see cref="AsyncQueue{T}"/> on the loop thread, with
/// an explicit <see cref="OverflowStrategy"/>. On completion (once every waiting item is in) and on error
/// the queue is shut down, if so asked, so its consumers end. <see cref="Completion"/> tells how the feed
/// ended: done, faulted (the source's error, or the overflow under <see cref="OverflowStrategy.Fail"/>),
/// or cancelled (disposed). As an observer it is thread-safe (notifications from other threads are posted
/// to the loop in order); its counters are read on the loop's thread.
/// </summary>
public sealed class QueueObserver<T> : IObserver<T>, IDisposable
{
    private readonly EventLoop _loop;
    private readonly AsyncQueue<T> _queue;
    private readonly OverflowStrategy _strategy;
    private readonly bool _shutdownQueue;
    private readonly LoopObserver<T> _gate;
    private readonly Queue<T> _waiting = new();
    private LoopTask? _pump;
    private bool _sourceDone;
    internal IDisposable? Upstream;

    internal QueueObserver(EventLoop loop, AsyncQueue<T> queue, OverflowStrategy strategy, bool shutdownQueue)
    {
        _loop = loop;
        _queue = queue;
        _strategy = strategy;
        _shutdownQueue = shutdownQueue;
        Completion = loop.CreateFuture();
        _gate = new LoopObserver<T>(loop, new Sink(this));
    }

    /// <summary>Done when the source completed and everything is in the queue; faulted or cancelled otherwise.
    /// The future is fixed (any thread may take it; await it on the loop).</summary>
    [ThreadSafe]
    public Future<ValueTuple> Completion { get; }

    /// <summary>Items dropped by <see cref="OverflowStrategy.DropNewest"/> or <see cref="OverflowStrategy.DropOldest"/>.</summary>
    public int Dropped
    {
        get
        {
            _loop.VerifyAccess();
            return _dropped;
        }
    }

    private int _dropped;

    /// <summary>Items waiting for room under <see cref="OverflowStrategy.Wait"/>.</summary>
    public int Waiting
    {
        get
        {
            _loop.VerifyAccess();
            return _waiting.Count;
        }
    }

    /// <summary>Any thread: posted to the loop in order.</summary>
    [ThreadSafe]
    public void OnNext(T value) => _gate.OnNext(value);

    /// <summary>Any thread: posted to the loop in order.</summary>
    [ThreadSafe]
    public void OnError(Exception error) => _gate.OnError(error ?? throw new ArgumentNullException(nameof(error)));

    /// <summary>Any thread: posted to the loop in order.</summary>
    [ThreadSafe]
    public void OnCompleted() => _gate.OnCompleted();

    /// <summary>Stops the feed: the source subscription (if any) is disposed, waiting items are dropped,
    /// <see cref="Completion"/> is cancelled. The queue itself is left as it is. Any thread.</summary>
    [ThreadSafe]
    public void Dispose()
    {
        _gate.Close();
        Upstream?.Dispose();
        _loop.InvokeOnLoop(static self => self.Stop(), this);
    }

    private void Stop()
    {
        _waiting.Clear();
        if (_pump is { Done: false } p) p.Cancel("feed disposed");
        if (!Completion.Done) Completion.Cancel("feed disposed");
    }

    private void Put(T item)
    {
        if (Completion.Done) return;
        if (_queue.IsShutdown)
        {
            Fail(new QueueShutDownException());
            return;
        }

        if (_waiting.Count == 0 && !_queue.Full)
        {
            _queue.PutNowait(item);
            return;
        }

        switch (_strategy)
        {
            case OverflowStrategy.Wait:
                _waiting.Enqueue(item);
                _pump ??= _loop.CreateTask(Pump, "rx-queue-feed");
                break;
            case OverflowStrategy.DropNewest:
                _dropped++;
                break;
            case OverflowStrategy.DropOldest:
                _queue.GetNowait();
                _dropped++;
                _queue.PutNowait(item);
                break;
            default:
                Fail(new QueueFullException());
                break;
        }
    }

    private async Task Pump()
    {
        try
        {
            while (_waiting.Count > 0)
            {
                await _queue.PutAsync(_waiting.Peek());
                _waiting.Dequeue();
            }
        }
        catch (QueueShutDownException e)
        {
            Fail(e);
            return;
        }
        finally
        {
            _pump = null;
        }

        if (_sourceDone) Finish();
    }

    private void Fail(Exception e)
    {
        _gate.Close();
        Upstream?.Dispose();
        _waiting.Clear();
        if (_shutdownQueue) _queue.Shutdown();
        if (!Completion.Done) Completion.SetException(e);
    }

    private void Finish()
    {
        if (_shutdownQueue) _queue.Shutdown();
        if (!Completion.Done) Completion.SetResult(default);
    }

    private sealed class Sink(QueueObserver<T> owner) : IObserver<T>
    {
        public void OnNext(T value) => owner.Put(value);

        public void OnError(Exception error) => owner.Fail(error);

        public void OnCompleted()
        {
            owner._sourceDone = true;
            if (owner._waiting.Count == 0) owner.Finish();
        }
    }
}

/// <summary>Loop queues as observables and as observers.</summary>
public static class QueueObservables
{
    /// <summary>
    /// The queue's items as they are got (each subscription is one more consumer), completing when the
    /// queue is shut down and empty. Disposal cancels the pending <c>Get</c>; no item is lost by it.
    /// Does not call <see cref="AsyncQueue{T}.TaskDone"/> unless <paramref name="taskDone"/>. Any thread
    /// (each subscription's consumer runs on the loop).
    /// </summary>
    [ThreadSafe]
    public static IObservable<T> ToObservable<T>(this AsyncQueue<T> queue, EventLoop loop, bool taskDone = false)
    {
        ArgumentNullException.ThrowIfNull(queue);
        return LoopObservable.Create<T>(loop, async (observer, _) =>
        {
            while (true)
            {
                T item;
                try
                {
                    item = await queue.GetAsync();
                }
                catch (QueueShutDownException)
                {
                    return;
                }

                observer.OnNext(item);
                if (taskDone) queue.TaskDone();
            }
        });
    }

    /// <summary>An observer that feeds <paramref name="queue"/> with <paramref name="strategy"/> when it is full (any thread).</summary>
    [ThreadSafe]
    public static QueueObserver<T> AsObserver<T>(this AsyncQueue<T> queue, EventLoop loop, OverflowStrategy strategy,
        bool shutdownOnEnd = true)
    {
        ArgumentNullException.ThrowIfNull(queue);
        ArgumentNullException.ThrowIfNull(loop);
        return new QueueObserver<T>(loop, queue, strategy, shutdownOnEnd);
    }

    /// <summary>
    /// Subscribes <paramref name="queue"/> to <paramref name="source"/>: every item is put, a full queue is
    /// handled by <paramref name="strategy"/>. Dispose the result to stop the feed. Any thread when
    /// <paramref name="loop"/> is given (else: the running loop's).
    /// </summary>
    [ThreadSafe]
    public static QueueObserver<T> PipeTo<T>(this IObservable<T> source, AsyncQueue<T> queue, OverflowStrategy strategy,
        EventLoop? loop = null, bool shutdownOnEnd = true)
    {
        ArgumentNullException.ThrowIfNull(source);
        var observer = queue.AsObserver(loop ?? EventLoop.GetRunningLoop(), strategy, shutdownOnEnd);
        var sub = source.Subscribe(observer);
        if (observer.Completion.Done) sub.Dispose(); // it ended (or failed) while subscribing
        observer.Upstream = sub;
        return observer;
    }
}
