using System.Runtime.CompilerServices;

namespace Tulip;

/// <summary>The loop's executor face (asyncio's <c>run_in_executor</c>, <c>set_default_executor</c>,
/// <c>shutdown_default_executor</c>) and debug mode's check that a coroutine is not passed where a plain
/// function is expected.</summary>
public sealed partial class EventLoop
{
    private Executor? _defaultExecutor;
    private bool _executorShutdownCalled;

    /// <summary>
    /// Runs <paramref name="func"/> in <paramref name="executor"/> (null: the loop's default thread pool)
    /// and returns a loop future of its result (asyncio's <c>run_in_executor</c>). The outcome is set on the
    /// loop's thread (posted through <see cref="CallSoonThreadsafe{TState}(Action{TState}, TState)"/>);
    /// cancelling the future (or <paramref name="cancellationToken"/>) before the work has started means it
    /// never runs. In debug mode an async lambda or a function returning a task is refused
    /// (<see cref="ArgumentException"/>: "coroutines cannot be used with RunInExecutor()").
    /// </summary>
    public Future<T> RunInExecutor<T>(Executor? executor, Func<T> func, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(func);
        return RunCall(executor, WorkCall<T>.Of(func), cancellationToken);
    }

    /// <summary>run_in_executor(executor, func, arg): see <see cref="RunInExecutor{T}(Executor?, Func{T}, CancellationToken)"/>.</summary>
    public Future<T> RunInExecutor<TArg, T>(Executor? executor, Func<TArg, T> func, TArg arg, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(func);
        return RunCall(executor, WorkCall<T>.Of(func, arg), cancellationToken);
    }

    /// <summary>run_in_executor of a function with no result: see <see cref="RunInExecutor{T}(Executor?, Func{T}, CancellationToken)"/>.</summary>
    public Future<ValueTuple> RunInExecutor(Executor? executor, Action func, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(func);
        return RunCall(executor, WorkCall<ValueTuple>.Of(func), cancellationToken);
    }

    /// <summary>run_in_executor(executor, func, arg) of a function with no result.</summary>
    public Future<ValueTuple> RunInExecutor<TArg>(Executor? executor, Action<TArg> func, TArg arg, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(func);
        return RunCall(executor, WorkCall<ValueTuple>.Of(func, arg), cancellationToken);
    }

    internal Future<T> RunCall<T>(Executor? executor, WorkCall<T> call, CancellationToken cancellationToken, string method = "RunInExecutor")
    {
        ThrowIfClosed();
        VerifyAccess();
        if (Debug) CheckNotCoroutine(call.Function, method);
        executor ??= DefaultExecutor();
        var future = new ExecutorFuture<T>(this);
        var item = new LoopWorkItem<T>(future, call);
        try
        {
            executor.Validate(item);
            if (cancellationToken.IsCancellationRequested)
            {
                item.Abandon(); // never queued: the token cancels the future (carrying the token)
                TokenLink.CancelOnToken(future, cancellationToken);
                return future;
            }

            executor.Enqueue(item);
        }
        catch
        {
            item.Abandon();
            throw;
        }

        future.Item = item;
        TokenLink.CancelOnToken(future, cancellationToken);
        return future;
    }

    private Executor DefaultExecutor()
    {
        if (_executorShutdownCalled) throw new EventLoopException("Executor shutdown has been called");
        return _defaultExecutor ??= new ThreadPoolExecutor(threadNamePrefix: "asyncio");
    }

    /// <summary>Makes <paramref name="executor"/> the one <see cref="RunInExecutor{T}(Executor?, Func{T}, CancellationToken)"/>
    /// uses when given null (asyncio's <c>set_default_executor</c>). The previous one is not shut down.
    /// Only a <see cref="ThreadPoolExecutor"/> is accepted (asyncio 3.11 raises TypeError "executor must be
    /// ThreadPoolExecutor instance": <see cref="ArgumentException"/> here); a closed loop refuses it
    /// (<see cref="EventLoopException"/>, stricter than asyncio, which accepts it silently).</summary>
    public void SetDefaultExecutor(Executor executor)
    {
        ArgumentNullException.ThrowIfNull(executor);
        ThrowIfClosed();
        VerifyAccess();
        if (executor is not ThreadPoolExecutor)
            throw new ArgumentException("executor must be ThreadPoolExecutor instance", nameof(executor));
        _defaultExecutor = executor;
    }

    /// <summary>RunCoroutineThreadsafe starts posted but not yet run (any thread adds; guarded by itself):
    /// <see cref="Close"/> drops posted callbacks, so it fails these, or their callers would wait forever.</summary>
    private readonly HashSet<IThreadsafeStart> _threadsafeStarts = new();

    internal interface IThreadsafeStart
    {
        /// <summary>The loop closed before the start ran.</summary>
        void FailClosed();
    }

    /// <summary>Tracks a start about to be posted; a closed loop refuses it (as the post would).</summary>
    internal void TrackThreadsafeStart(IThreadsafeStart start)
    {
        lock (_threadsafeStarts)
        {
            ThrowIfClosed();
            _threadsafeStarts.Add(start);
        }
    }

    /// <summary>The start ran (or its post was refused): no longer pending. False if Close failed it already.</summary>
    internal bool UntrackThreadsafeStart(IThreadsafeStart start)
    {
        lock (_threadsafeStarts) return _threadsafeStarts.Remove(start);
    }

    /// <summary>On <see cref="Close"/>, once the loop is closed (no start can be added after this).</summary>
    private void FailThreadsafeStarts()
    {
        IThreadsafeStart[] pending;
        lock (_threadsafeStarts)
        {
            if (_threadsafeStarts.Count == 0) return;
            pending = _threadsafeStarts.ToArray();
            _threadsafeStarts.Clear();
        }

        foreach (var s in pending) s.FailClosed();
    }

    /// <summary>
    /// asyncio's <c>shutdown_default_executor(timeout)</c>: refuses further use of the default executor
    /// (<see cref="EventLoopException"/>: "Executor shutdown has been called"), shuts it down and waits, on
    /// another thread, for its threads to finish. Past <paramref name="timeout"/> (null: no limit) the wait
    /// ends with a warning in the log and the executor is left to finish on its own, as asyncio does.
    /// <see cref="Asyncio.Run(Func{Task}, bool, LoopClock?, bool)"/> and <see cref="Runner"/> call it on exit
    /// (timeout: <see cref="ExecutorJoinTimeout"/>). <paramref name="cancellationToken"/> ends only the wait.
    /// </summary>
    public Task ShutdownDefaultExecutorAsync(TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        VerifyAccess(); // at the call, not in the returned task
        if (timeout is { } t && t < TimeSpan.Zero && t != Timeout.InfiniteTimeSpan)
            throw new ArgumentOutOfRangeException(nameof(timeout), "timeout is negative");
        return ShutdownDefaultExecutorCore(timeout, cancellationToken);
    }

    private async Task ShutdownDefaultExecutorCore(TimeSpan? timeout, CancellationToken cancellationToken)
    {
        _executorShutdownCalled = true;
        if (_defaultExecutor is not { } executor) return;
        var joined = new Future<ValueTuple>(this);
        BeginExternal();
        var thread = new Thread(static s =>
        {
            var (ex, f) = ((Executor, Future<ValueTuple>))s!;
            try
            {
                ex.Shutdown(wait: true);
            }
            finally
            {
                try
                {
                    f.Loop.CallSoonThreadsafe(static f => { if (!f.Done) f.SetResult(default); }, f);
                }
                catch (EventLoopException)
                {
                }

                f.Loop.EndExternal();
            }
        }) { IsBackground = true, Name = "asyncio default executor shutdown" };
        thread.Start((executor, joined));
        if (timeout is null || timeout == Timeout.InfiniteTimeSpan)
        {
            await Asyncio.Shield(joined, cancellationToken);
            thread.Join();
            return;
        }

        try
        {
            await Asyncio.WaitFor(Asyncio.Shield(joined), timeout.Value, cancellationToken);
            thread.Join();
        }
        catch (TimeoutException)
        {
            Diagnostics.LoopLog.Error(
                $"The executor did not finish joining its threads within {timeout.Value.TotalSeconds} seconds.");
            executor.Shutdown(wait: false);
        }
    }

    /// <summary>How long <see cref="Asyncio.Run(Func{Task}, bool, LoopClock?, bool)"/> waits for the default
    /// executor's threads on exit (asyncio's THREAD_JOIN_TIMEOUT: 300 s).</summary>
    [ThreadSafe]
    public static TimeSpan ExecutorJoinTimeout { get; } = TimeSpan.FromSeconds(300);

    /// <summary>Shuts the default executor down at the end of <c>Run</c> / <c>Runner.Close</c> (loop idle).</summary>
    internal void ShutdownDefaultExecutorOnExit()
    {
        if (_defaultExecutor is null) return;
        RunUntilComplete(() => ShutdownDefaultExecutorAsync(ExecutorJoinTimeout));
    }

    /// <summary>asyncio's debug-mode <c>_check_callback</c>: a coroutine function where a plain function is
    /// expected is refused. In C# an async lambda given as an <see cref="Action"/> silently becomes
    /// <c>async void</c> (its exceptions crash the process, nothing awaits it); as a
    /// <see cref="Func{TResult}"/> its Task would be the "result".</summary>
    internal static void CheckNotCoroutine(Delegate callback, string method)
    {
        var m = callback.Method;
        var r = m.ReturnType;
        if (m.IsDefined(typeof(AsyncStateMachineAttribute), false)
            || typeof(Task).IsAssignableFrom(r)
            || r == typeof(ValueTask)
            || (r.IsGenericType && r.GetGenericTypeDefinition() == typeof(ValueTask<>)))
        {
            throw new ArgumentException(
                $"coroutines cannot be used with {method}() (an async lambda here would run as async void, or its Task would be the result): pass a synchronous function, or use CreateTask",
                "callback");
        }
    }
}
