using System.Runtime.CompilerServices;

namespace Tulip;

/// <summary>
/// asyncio.Queue: a FIFO queue for tasks of one loop, bounded by <see cref="MaxSize"/> (0: unbounded).
/// <see cref="PutAsync"/> waits while it is full, <see cref="GetAsync"/> while it is empty; the waiters are loop
/// futures queued first come first served, and one that is cancelled after it was woken passes its
/// wake-up on (CPython 3.11 queues.py, <c>_wakeup_next</c>). <see cref="TaskDone"/>/<see cref="Join"/>
/// count unfinished items; <see cref="Shutdown"/> is 3.13's. The consumer side is also an
/// <see cref="IAsyncEnumerable{T}"/>: it ends when the queue is shut down and empty.
/// <para>As asyncio's, an item put while getters wait stays in the queue until the woken getter runs; a
/// task that calls <see cref="Get"/> in between finds it first, and the woken getter waits again.</para>
/// <para>Once a wait has bound it to a loop, it is used on that loop's thread only: from another thread,
/// <see cref="EventLoopException"/> (an item put there would not wake the getter). Feed it from another
/// thread through <see cref="EventLoop.CallSoonThreadsafe(Action)"/>.</para>
/// </summary>
public class AsyncQueue<T> : IAsyncEnumerable<T>
{
    private readonly int _maxSize;
    private WaiterList _getters, _putters;
    private LoopBinding _binding;
    private int _unfinished;
    private readonly AsyncEvent _finished = new();
    private bool _isShutdown;
    private readonly Queue<T>? _fifo;

    /// <summary>A FIFO queue holding at most <paramref name="maxSize"/> items (0 or less: unbounded).</summary>
    public AsyncQueue(int maxSize = 0) : this(maxSize, fifo: true) { }

    private protected AsyncQueue(int maxSize, bool fifo)
    {
        _maxSize = maxSize;
        if (fifo) _fifo = new Queue<T>();
        _finished.Set();
    }

    // The storage (asyncio's _init/_put/_get/qsize); the priority and LIFO queues replace it.
    private protected virtual int Count => _fifo!.Count;

    private protected virtual void PutItem(T item) => _fifo!.Enqueue(item);

    private protected virtual T GetItem() => _fifo!.Dequeue();

    /// <summary>The bound (0: unbounded); fixed, any thread.</summary>
    [ThreadSafe]
    public int MaxSize => _maxSize;

    /// <summary>How many items are in the queue.</summary>
    public int QSize
    {
        get
        {
            _binding.VerifyAccess();
            return Count;
        }
    }

    public bool Empty
    {
        get
        {
            _binding.VerifyAccess();
            return Count == 0;
        }
    }

    /// <summary>Whether <see cref="MaxSize"/> items are in the queue (never, when unbounded).</summary>
    public bool Full
    {
        get
        {
            _binding.VerifyAccess();
            return IsFull;
        }
    }

    private bool IsFull => _maxSize > 0 && Count >= _maxSize;

    /// <summary>Whether <see cref="Shutdown"/> was called.</summary>
    public bool IsShutdown
    {
        get
        {
            _binding.VerifyAccess();
            return _isShutdown;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void WakeupNext(ref WaiterList waiters)
    {
        while (waiters.PopFirst() is { } w)
        {
            if (w.TryWake()) break;
        }
    }

    /// <summary>
    /// Puts an item, waiting while the queue is full. <see cref="QueueShutDownException"/> once shut down.
    /// <paramref name="cancellationToken"/> cancels the wait as a task cancel would: a
    /// <see cref="CancelledException"/> carrying the token, the item not put (a slot freed for it first goes
    /// to the next putter); already cancelled, it fails at once and puts nothing.
    /// </summary>
    public ValueTask PutAsync(T item, CancellationToken cancellationToken = default)
    {
        _binding.VerifyAccess();
        if (cancellationToken.IsCancellationRequested) return TokenCancellation.CancelledValueTask(cancellationToken);
        if (!IsFull)
        {
            PutNowaitCore(item);
            return ValueTask.CompletedTask;
        }

        if (_isShutdown) return ValueTask.FromException(new QueueShutDownException());
        return new ValueTask(PutSlow(item, _putters.Add(_binding.Get(this), cancellationToken)));
    }

    // The first waiter is made (and the token registered) by the caller, before the first await: the
    // state machine holds nothing more than before tokens; a re-wait carries the token on (AddNext).
    private async Task PutSlow(T item, WaiterFuture putter)
    {
        try
        {
            while (true)
            {
                try
                {
                    await putter;
                }
                catch (Exception e)
                {
                    putter.Cancel(); // in case it is not done yet
                    _putters.Remove(putter);
                    // Woken by a get, but cannot take the slot: wake the next putter in line.
                    if (!IsFull && !putter.Cancelled) WakeupNext(ref _putters);
                    putter.ThrowIfCancelledByToken(e);
                    throw;
                }

                if (!IsFull) break;
                if (_isShutdown) throw new QueueShutDownException();
                putter = _putters.AddNext(_binding.Get(this), putter);
            }
        }
        finally
        {
            putter.EndWait();
        }

        PutNowaitCore(item);
    }

    /// <summary>Puts an item without waiting: <see cref="QueueFullException"/> if full.</summary>
    public void PutNowait(T item)
    {
        _binding.VerifyAccess();
        PutNowaitCore(item);
    }

    private void PutNowaitCore(T item)
    {
        if (_isShutdown) throw new QueueShutDownException();
        if (IsFull) throw new QueueFullException();
        PutItem(item);
        _unfinished++;
        _finished.Clear();
        WakeupNext(ref _getters);
    }

    /// <summary>
    /// Takes an item, waiting while the queue is empty. <see cref="QueueShutDownException"/> once shut down
    /// and empty. <paramref name="cancellationToken"/> cancels the wait as a task cancel would: a
    /// <see cref="CancelledException"/> carrying the token, no item taken (one put for it first stays in
    /// the queue for the next getter); already cancelled, it fails at once and takes nothing.
    /// </summary>
    public ValueTask<T> GetAsync(CancellationToken cancellationToken = default)
    {
        _binding.VerifyAccess();
        if (cancellationToken.IsCancellationRequested) return TokenCancellation.CancelledValueTask<T>(cancellationToken);
        if (Count > 0) return new ValueTask<T>(GetNowaitCore());
        if (_isShutdown) return ValueTask.FromException<T>(new QueueShutDownException());
        return new ValueTask<T>(GetSlow(_getters.Add(_binding.Get(this), cancellationToken)));
    }

    // As PutSlow: the first waiter comes from the caller, a re-wait carries the token on.
    private async Task<T> GetSlow(WaiterFuture getter)
    {
        try
        {
            while (true)
            {
                try
                {
                    await getter;
                }
                catch (Exception e)
                {
                    getter.Cancel();
                    _getters.Remove(getter);
                    // Woken by a put, but cancelled before taking the item: wake the next getter.
                    if (Count > 0 && !getter.Cancelled) WakeupNext(ref _getters);
                    getter.ThrowIfCancelledByToken(e);
                    throw;
                }

                if (Count > 0) break;
                if (_isShutdown) throw new QueueShutDownException();
                getter = _getters.AddNext(_binding.Get(this), getter);
            }
        }
        finally
        {
            getter.EndWait();
        }

        return GetNowaitCore();
    }

    /// <summary>Takes an item without waiting: <see cref="QueueEmptyException"/> if empty.</summary>
    public T GetNowait()
    {
        _binding.VerifyAccess();
        return GetNowaitCore();
    }

    private T GetNowaitCore()
    {
        if (Count == 0)
        {
            if (_isShutdown) throw new QueueShutDownException();
            throw new QueueEmptyException();
        }

        var item = GetItem();
        WakeupNext(ref _putters);
        return item;
    }

    /// <summary>A consumer says an item it got is processed; <see cref="Join"/> returns when all are.</summary>
    public void TaskDone()
    {
        _binding.VerifyAccess();
        if (_unfinished <= 0) throw new InvalidOperationException("task_done() called too many times");
        _unfinished--;
        if (_unfinished == 0) _finished.Set();
    }

    /// <summary>Waits until every item put has been got and marked with <see cref="TaskDone"/>.
    /// <paramref name="cancellationToken"/> cancels the wait (a <see cref="CancelledException"/> carrying
    /// it); already cancelled, it fails at once.</summary>
    public ValueTask JoinAsync(CancellationToken cancellationToken = default)
    {
        _binding.VerifyAccess();
        if (cancellationToken.IsCancellationRequested) return TokenCancellation.CancelledValueTask(cancellationToken);
        if (_unfinished == 0) return ValueTask.CompletedTask;
        // The inner event binds to this loop as it waits: so does the queue (its puts clear that event).
        _binding.BindIfRunning();
        return new ValueTask(_finished.WaitAsync(cancellationToken).AsTask());
    }

    /// <summary>
    /// asyncio 3.13's <c>shutdown</c>: later puts raise <see cref="QueueShutDownException"/>, and gets
    /// do too once the queue is empty; every waiting getter and putter is woken to see it. With
    /// <paramref name="immediate"/> the items left are dropped (and counted as done for <see cref="Join"/>).
    /// </summary>
    public void Shutdown(bool immediate = false)
    {
        _binding.VerifyAccess();
        _isShutdown = true;
        if (immediate)
        {
            while (Count > 0)
            {
                GetItem();
                if (_unfinished > 0) _unfinished--;
            }

            if (_unfinished == 0) _finished.Set();
        }

        while (_getters.PopFirst() is { } g) g.TryWake();
        while (_putters.PopFirst() is { } p) p.TryWake();
    }

    /// <summary>The items as they come, until the queue is shut down and empty. Does not call <see cref="TaskDone"/>.
    /// <paramref name="cancellationToken"/> (<c>WithCancellation</c>) cancels each <see cref="GetAsync"/>.</summary>
    public async IAsyncEnumerator<T> GetAsyncEnumerator(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            T item;
            try
            {
                item = await GetAsync(cancellationToken);
            }
            catch (QueueShutDownException)
            {
                yield break;
            }

            yield return item;
        }
    }

    /// <summary>How many tasks wait in <c>Get</c> (the "_getters[N]" of asyncio's repr).</summary>
    public int Getters
    {
        get
        {
            _binding.VerifyAccess();
            return _getters.Count;
        }
    }

    /// <summary>How many tasks wait in <c>Put</c> on a full queue (the "_putters[N]" of asyncio's repr).</summary>
    public int Putters
    {
        get
        {
            _binding.VerifyAccess();
            return _putters.Count;
        }
    }

    public override string ToString()
    {
        var name = GetType().Name.Split('`')[0];
        var parts = new List<string> { $"maxsize={_maxSize}" };
        if (_getters.Count > 0) parts.Add($"_getters[{_getters.Count}]");
        if (_putters.Count > 0) parts.Add($"_putters[{_putters.Count}]");
        if (_unfinished > 0) parts.Add($"tasks={_unfinished}");
        if (_isShutdown) parts.Add("shutdown");
        return $"<{name} {string.Join(' ', parts)}>";
    }
}

/// <summary>asyncio.PriorityQueue: <see cref="AsyncQueue{T}.Get"/> takes the smallest item first
/// (ties: the one put first, as Python's heap of (priority, count, item) tuples keeps stable order
/// only when the tuples say so; here equal items come out in insertion order).</summary>
public sealed class AsyncPriorityQueue<T> : AsyncQueue<T>
{
    private readonly PriorityQueue<T, (T, long)> _heap;
    private long _seq;

    public AsyncPriorityQueue(int maxSize = 0, IComparer<T>? comparer = null) : base(maxSize, fifo: false)
    {
        var c = comparer ?? Comparer<T>.Default;
        _heap = new PriorityQueue<T, (T, long)>(Comparer<(T, long)>.Create((a, b) =>
        {
            int r = c.Compare(a.Item1, b.Item1);
            return r != 0 ? r : a.Item2.CompareTo(b.Item2);
        }));
    }

    private protected override int Count => _heap.Count;

    private protected override void PutItem(T item) => _heap.Enqueue(item, (item, _seq++));

    private protected override T GetItem() => _heap.Dequeue();
}

/// <summary>asyncio.LifoQueue: <see cref="AsyncQueue{T}.Get"/> takes the item put last.</summary>
public sealed class AsyncLifoQueue<T> : AsyncQueue<T>
{
    private readonly Stack<T> _stack = new();

    public AsyncLifoQueue(int maxSize = 0) : base(maxSize, fifo: false) { }

    private protected override int Count => _stack.Count;

    private protected override void PutItem(T item) => _stack.Push(item);

    private protected override T GetItem() => _stack.Pop();
}
