namespace Tulip;

/// <summary>
/// concurrent.futures' <c>Executor</c>: runs functions away from the loop, on threads
/// (<see cref="ThreadPoolExecutor"/>) or in worker processes (<see cref="ProcessPoolExecutor"/>).
/// A submitted function's outcome is a .NET <see cref="Task{TResult}"/> (concurrent.futures' Future);
/// from a loop, <see cref="EventLoop.RunInExecutor{T}(Executor?, Func{T}, CancellationToken)"/> gives a
/// loop future instead, completed on the loop's thread.
/// <para><b>Cancellation.</b> A token passed to <see cref="Submit{TResult}(Func{TResult}, CancellationToken)"/>
/// cancels work that has not started (it then never runs, and its task is canceled); work already
/// running is not interrupted (concurrent.futures' <c>Future.cancel()</c>).</para>
/// <para><b>Threads.</b> Every member is thread-safe. <see cref="Shutdown"/> with <c>wait</c> blocks the
/// caller until the workers have finished: on a loop's thread prefer <see cref="ShutdownAsync"/>.</para>
/// </summary>
public abstract class Executor : IDisposable, IAsyncDisposable
{
    private protected Executor()
    {
    }

    /// <summary>Queues the item or throws (shut down, broken, not runnable here): nothing is queued then.</summary>
    internal abstract void Enqueue(WorkItem item);

    /// <summary>Refuses what this executor cannot run, before anything is queued (the process pool: a
    /// method that is not static, a type that does not serialise).</summary>
    internal virtual void Validate(WorkItem item)
    {
    }

    /// <summary>Runs <paramref name="fn"/> on a worker (concurrent.futures' <c>submit</c>); the task gives its
    /// result or exception. <paramref name="cancellationToken"/> cancels it while it has not started.</summary>
    [ThreadSafe]
    public Task<TResult> Submit<TResult>(Func<TResult> fn, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(fn);
        return SubmitCall(WorkCall<TResult>.Of(fn), cancellationToken);
    }

    /// <summary>Runs <paramref name="fn"/>(<paramref name="arg"/>) on a worker (see <see cref="Submit{TResult}(Func{TResult}, CancellationToken)"/>).</summary>
    [ThreadSafe]
    public Task<TResult> Submit<TArg, TResult>(Func<TArg, TResult> fn, TArg arg, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(fn);
        return SubmitCall(WorkCall<TResult>.Of(fn, arg), cancellationToken);
    }

    /// <summary>Runs <paramref name="fn"/> on a worker (see <see cref="Submit{TResult}(Func{TResult}, CancellationToken)"/>).</summary>
    [ThreadSafe]
    public Task Submit(Action fn, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(fn);
        return SubmitCall(WorkCall<ValueTuple>.Of(fn), cancellationToken);
    }

    private Task<T> SubmitCall<T>(WorkCall<T> call, CancellationToken cancellationToken)
    {
        var item = new TaskWorkItem<T>(call, cancellationToken);
        Validate(item);
        if (cancellationToken.IsCancellationRequested) return Task.FromCanceled<T>(cancellationToken);
        // Listen before queueing: work that completes at once then still unregisters (listening after
        // the enqueue left the registration on a long-lived token when the work had finished first).
        item.Listen();
        try
        {
            Enqueue(item);
        }
        catch
        {
            item.StopListening();
            throw;
        }

        return item.Task;
    }

    /// <summary>
    /// concurrent.futures' <c>map</c>: submits <paramref name="fn"/> for every item at once, then yields the
    /// results in the items' order, waiting for each (this blocks: not for a loop's thread). An exception
    /// is thrown when its result is reached; past <paramref name="timeout"/> (from this call) a
    /// <see cref="TimeoutException"/>. Leaving the enumeration early cancels what has not started.
    /// <paramref name="cancellationToken"/> cancels the items not started yet and ends the enumeration
    /// (at its next or current wait) with <see cref="OperationCanceledException"/>.
    /// </summary>
    [ThreadSafe]
    public IEnumerable<TResult> Map<TArg, TResult>(Func<TArg, TResult> fn, IEnumerable<TArg> items, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(fn);
        ArgumentNullException.ThrowIfNull(items);
        if (timeout is { } t && t < TimeSpan.Zero && t != Timeout.InfiniteTimeSpan)
            throw new ArgumentOutOfRangeException(nameof(timeout), "timeout is negative");
        long deadline = timeout is { } d && d != Timeout.InfiniteTimeSpan ? Environment.TickCount64 + (long)d.TotalMilliseconds : long.MaxValue;
        var cancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var tasks = new List<Task<TResult>>();
        try
        {
            foreach (var x in items) tasks.Add(Submit(fn, x, cancel.Token));
        }
        catch
        {
            cancel.Cancel();
            cancel.Dispose();
            throw;
        }

        return Results(tasks, deadline, cancel, cancellationToken);
    }

    private static IEnumerable<TResult> Results<TResult>(List<Task<TResult>> tasks, long deadline, CancellationTokenSource cancel, CancellationToken cancellationToken)
    {
        try
        {
            foreach (var task in tasks)
            {
                cancellationToken.ThrowIfCancellationRequested();
                long left = deadline == long.MaxValue ? Timeout.Infinite : Math.Max(0, deadline - Environment.TickCount64);
                bool done;
                try
                {
                    // Throws OperationCanceledException when the caller's token fires during the wait.
                    done = task.Wait(TimeSpan.FromMilliseconds(left), cancellationToken);
                }
                catch (AggregateException)
                {
                    done = true; // the item failed: its exception is thrown below, at its place
                }

                if (!done) throw new TimeoutException("map: the results did not come within the timeout");

                yield return task.GetAwaiter().GetResult();
            }
        }
        finally
        {
            cancel.Cancel(); // what has not started never will (3.11's result_iterator cancels the rest)
            cancel.Dispose();
        }
    }

    /// <summary>
    /// concurrent.futures' <c>shutdown(wait, cancel_futures)</c>: no new work is accepted
    /// (<see cref="InvalidOperationException"/>: "cannot schedule new futures after shutdown");
    /// <paramref name="cancelPending"/> cancels the work not started yet; <paramref name="wait"/> blocks until
    /// the work already started has finished and the workers (threads, processes) are gone. Calling it
    /// again is harmless.
    /// </summary>
    [ThreadSafe]
    public void Shutdown(bool wait = true, bool cancelPending = false)
    {
        List<WorkItem>? dropped = null;
        Action join;
        lock (_lock)
        {
            _shutdown = true;
            if (cancelPending && _queue.Count > 0)
            {
                dropped = new List<WorkItem>(_queue);
                _queue.Clear();
            }

            _idle = 0;
            Monitor.PulseAll(_lock);
            join = WorkersToJoin();
        }

        if (dropped is not null)
            foreach (var item in dropped) item.TryCancel();
        if (wait) join();
    }

    // The state every pool keeps under its lock: the work not started yet, the workers waiting for work
    // that no pulse has claimed yet, and whether Shutdown was called.
    private protected readonly object _lock = new();
    private protected readonly Queue<WorkItem> _queue = new();
    private protected int _idle;
    private protected bool _shutdown;

    /// <summary>Under the lock, at shutdown: what waits for this pool's workers to be gone (called after the
    /// lock is released, when Shutdown is asked to wait).</summary>
    private protected abstract Action WorkersToJoin();

    /// <summary>
    /// <see cref="Shutdown"/> without blocking the caller: the task completes when the workers are gone.
    /// <paramref name="cancellationToken"/> ends only the wait (the shutdown goes on).
    /// </summary>
    [ThreadSafe]
    public Task ShutdownAsync(bool cancelPending = false, CancellationToken cancellationToken = default)
    {
        Shutdown(wait: false, cancelPending);
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var joiner = new Thread(static s =>
        {
            var (ex, tcs) = ((Executor, TaskCompletionSource))s!;
            try
            {
                ex.Shutdown(wait: true);
                tcs.TrySetResult();
            }
            catch (Exception e)
            {
                tcs.TrySetException(e);
            }
        }) { IsBackground = true, Name = "executor shutdown" };
        joiner.Start((this, done));
        return done.Task.WaitAsync(cancellationToken);
    }

    /// <summary>The most workers (threads or processes) the executor runs at once.</summary>
    [ThreadSafe]
    public abstract int MaxWorkers { get; }

    /// <summary>Shuts down and waits (<c>with executor:</c>); this blocks the caller: on a loop's thread use
    /// <see cref="DisposeAsync"/>.</summary>
    public void Dispose()
    {
        Shutdown(wait: true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Shuts down and waits without blocking the caller (<see cref="ShutdownAsync"/>): completes when
    /// the workers (threads, processes) are gone (<c>await using</c>).</summary>
    [ThreadSafe]
    public ValueTask DisposeAsync()
    {
        GC.SuppressFinalize(this);
        return new ValueTask(ShutdownAsync());
    }
}
