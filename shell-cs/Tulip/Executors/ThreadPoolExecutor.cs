namespace Tulip;

/// <summary>
/// concurrent.futures' <c>ThreadPoolExecutor</c>: up to <see cref="Executor.MaxWorkers"/> dedicated threads
/// run the work in submission order. A thread is started only when work comes and no thread is idle (as
/// CPython's idle semaphore); threads live until <see cref="Shutdown"/>. Threads are named
/// <c>{prefix}_{n}</c> (CPython: <c>ThreadPoolExecutor-0_0</c>), so a log can say which one ran what.
/// Exceptions come back as themselves, with the stack where they were thrown.
/// </summary>
public sealed class ThreadPoolExecutor : Executor
{
    private static int s_counter;
    private static int s_liveThreads;

    /// <summary>Worker threads of every thread pool in the process that have not exited (tests' hygiene gate).</summary>
    internal static int LiveThreadsInProcess => Volatile.Read(ref s_liveThreads);

    private readonly List<Thread> _threads = new();
    private readonly int _maxWorkers;
    private readonly string _prefix;

    /// <summary>An executor of at most <paramref name="maxWorkers"/> threads (default: as CPython,
    /// min(32, processors + 4)); thread names start with <paramref name="threadNamePrefix"/>.</summary>
    [ThreadSafe]
    public ThreadPoolExecutor(int? maxWorkers = null, string? threadNamePrefix = null)
    {
        if (maxWorkers is <= 0) throw new ArgumentOutOfRangeException(nameof(maxWorkers), "max_workers must be greater than 0");
        _maxWorkers = maxWorkers ?? Math.Min(32, Environment.ProcessorCount + 4);
        _prefix = string.IsNullOrEmpty(threadNamePrefix)
            ? $"ThreadPoolExecutor-{Interlocked.Increment(ref s_counter) - 1}"
            : threadNamePrefix;
    }

    /// <inheritdoc/>
    [ThreadSafe]
    public override int MaxWorkers => _maxWorkers;

    /// <summary>The threads started so far that are still alive (tests: none after a waited shutdown).</summary>
    [ThreadSafe]
    public int LiveThreads
    {
        get
        {
            lock (_lock) return _threads.Count(t => t.IsAlive);
        }
    }

    internal override void Enqueue(WorkItem item)
    {
        Thread? start = null;
        lock (_lock)
        {
            if (_shutdown) throw new InvalidOperationException("cannot schedule new futures after shutdown");
            _queue.Enqueue(item);
            if (_idle > 0)
            {
                _idle--;
                Monitor.Pulse(_lock);
            }
            else if (_threads.Count < _maxWorkers)
            {
                start = new Thread(static s => ((ThreadPoolExecutor)s!).Work())
                {
                    IsBackground = true,
                    Name = $"{_prefix}_{_threads.Count}",
                };
                _threads.Add(start);
            }
            start?.Start(this); // inside the lock: a shutdown that sees the thread can join it
        }
    }

    private void Work()
    {
        Interlocked.Increment(ref s_liveThreads);
        try
        {
            WorkLoop();
        }
        finally
        {
            Interlocked.Decrement(ref s_liveThreads);
        }
    }

    private void WorkLoop()
    {
        while (true)
        {
            WorkItem item;
            lock (_lock)
            {
                while (_queue.Count == 0)
                {
                    if (_shutdown) return;
                    _idle++;
                    Monitor.Wait(_lock);
                }

                item = _queue.Dequeue();
            }

            if (item.TryStart()) item.Execute();
        }
    }

    private protected override Action WorkersToJoin()
    {
        var threads = _threads.ToArray();
        return () =>
        {
            foreach (var t in threads)
            {
                if (t != Thread.CurrentThread) t.Join();
            }
        };
    }
}
