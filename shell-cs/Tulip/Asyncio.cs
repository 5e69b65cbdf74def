using System.Runtime.CompilerServices;

namespace Tulip;

/// <summary>
/// asyncio's module-level functions. <c>using static Tulip.Asyncio;</c> lets C# read like Python:
/// <c>await Sleep(0.1)</c>, <c>Run(Main)</c>, <c>CreateTask(Worker)</c>.
/// </summary>
public static partial class Asyncio
{
    /// <summary>
    /// Runs <paramref name="main"/> on a new loop and returns its result (asyncio.run): afterwards the
    /// tasks still pending are cancelled and awaited, errors they end with are reported, the default
    /// executor is shut down (its threads joined, up to <see cref="EventLoop.ExecutorJoinTimeout"/>), and the
    /// loop is closed. Refused inside a running loop.
    /// <para>Ctrl+C as asyncio.run (3.11): on the main thread, the first SIGINT cancels the main task;
    /// once it has unwound, Run raises <see cref="KeyboardInterruptException"/>; a second SIGINT gets the
    /// default action. <paramref name="handleSigterm"/> (opt-in) treats SIGTERM the same way, so a service
    /// stopped by its supervisor unwinds too. A loop with its own SIGINT handler takes precedence.</para>
    /// </summary>
    [OverloadResolutionPriority(1)] // an async lambda fits the ValueTask overload too: the Task one wins
    public static T Run<T>(Func<Task<T>> main, bool debug = false, LoopClock? clock = null, bool handleSigterm = false)
    {
        ArgumentNullException.ThrowIfNull(main);
        if (EventLoop.RunningOrNull is not null)
            throw new EventLoopException("asyncio.run() cannot be called from a running event loop");
        var loop = clock is null ? new EventLoop() : new EventLoop(clock);
        loop.Debug = debug;
        var previous = EventLoop.CurrentOrNull;
        EventLoop.SetEventLoop(loop);
        bool failed = true;
        try
        {
            var result = Interrupts.Run(loop, main, handleSigterm);
            failed = false;
            return result;
        }
        finally
        {
            try
            {
                CancelAllTasks(loop);
                loop.ShutdownDefaultExecutorOnExit(); // asyncio.run: shutdown_default_executor, 300 s
            }
            catch (Exception e) when (failed)
            {
                // The run already failed (a virtual clock's deadlock, say): that error is the caller's,
                // and this one, from the clean-up run, goes to the handler rather than masking it.
                loop.CallExceptionHandler(new ExceptionContext("error while cancelling the remaining tasks after asyncio.run() failed", e));
            }
            finally
            {
                EventLoop.SetEventLoop(previous);
                loop.Close();
            }
        }
    }

    [OverloadResolutionPriority(1)]
    public static void Run(Func<Task> main, bool debug = false, LoopClock? clock = null, bool handleSigterm = false)
    {
        ArgumentNullException.ThrowIfNull(main);
        Run(async () =>
        {
            await main();
            return default(ValueTuple);
        }, debug, clock, handleSigterm);
    }

    /// <summary>asyncio.run of a <see cref="ValueTask{TResult}"/> method (no <c>.AsTask()</c> at the call).</summary>
    public static T Run<T>(Func<ValueTask<T>> main, bool debug = false, LoopClock? clock = null, bool handleSigterm = false)
    {
        ArgumentNullException.ThrowIfNull(main);
        return Run(() => main().AsTask(), debug, clock, handleSigterm);
    }

    public static void Run(Func<ValueTask> main, bool debug = false, LoopClock? clock = null, bool handleSigterm = false)
    {
        ArgumentNullException.ThrowIfNull(main);
        Run(() => main().AsTask(), debug, clock, handleSigterm);
    }

    /// <summary>asyncio.runners._cancel_all_tasks: cancel, wait for all, report the ones that failed.</summary>
    internal static void CancelAllTasks(EventLoop loop)
    {
        var toCancel = loop.AllTasks();
        if (toCancel.Count == 0) return;
        foreach (var t in toCancel) t.Cancel();
        var all = new Future<ValueTuple>(loop);
        int remaining = toCancel.Count;
        foreach (var t in toCancel)
        {
            t.AsFuture().AddDoneCallback(_ =>
            {
                if (--remaining == 0 && !all.Done) all.SetResult(default);
            });
        }

        loop.RunUntilComplete(all);
        foreach (var t in toCancel)
        {
            if (t.Cancelled) continue;
            if (t.AsFuture().Exception() is { } e)
            {
                loop.CallExceptionHandler(new ExceptionContext("unhandled exception during asyncio.run() shutdown", e)
                {
                    Future = t.AsFuture(),
                });
            }
        }
    }

    /// <summary>
    /// Suspends the current task for <paramref name="seconds"/> of loop time; 0 or less yields exactly
    /// one tick (asyncio.sleep). <paramref name="cancellationToken"/> cancels the sleep as a task cancel
    /// would (its timer cancelled, a <see cref="CancelledException"/> carrying the token at the await);
    /// already cancelled, the await fails at once and no timer is scheduled.
    /// </summary>
    public static SleepAwaitable Sleep(double seconds, CancellationToken cancellationToken = default) =>
        new(Sleep(seconds, default(ValueTuple), cancellationToken));

    /// <summary>asyncio.sleep(delay, result): as <see cref="Sleep(double, CancellationToken)"/>, the await giving <paramref name="result"/>.</summary>
    public static SleepAwaitable<T> Sleep<T>(double seconds, T result, CancellationToken cancellationToken = default)
    {
        if (double.IsNaN(seconds)) throw new ArgumentOutOfRangeException(nameof(seconds), "delay is NaN");
        return SleepTicks(Core.Time.ofSeconds(seconds), result, cancellationToken);
    }

    /// <summary>As <see cref="Sleep(double, CancellationToken)"/>, for a <see cref="TimeSpan"/>.</summary>
    public static SleepAwaitable Sleep(TimeSpan delay, CancellationToken cancellationToken = default) =>
        new(SleepTicks(delay.Ticks, default(ValueTuple), cancellationToken));

    private static SleepAwaitable<T> SleepTicks<T>(long ticks, T result, CancellationToken cancellationToken)
    {
        var loop = EventLoop.GetRunningLoop();
        // A one-tick yield, or a token already cancelled: no timer (the awaiter reads the token).
        return ticks <= 0 || cancellationToken.IsCancellationRequested
            ? new SleepAwaitable<T>(loop, null, result, cancellationToken)
            : new SleepAwaitable<T>(loop, new SleepFuture<T>(loop, ticks, result, cancellationToken), result, cancellationToken);
    }

    /// <summary>Creates a task on the running loop (asyncio.create_task).</summary>
    [OverloadResolutionPriority(1)]
    public static LoopTask<T> CreateTask<T>(Func<Task<T>> coroutine, string? name = null) =>
        EventLoop.GetRunningLoop().CreateTask(coroutine, name);

    [OverloadResolutionPriority(1)]
    public static LoopTask CreateTask(Func<Task> coroutine, string? name = null) =>
        EventLoop.GetRunningLoop().CreateTask(coroutine, name);

    /// <summary>asyncio.create_task(coro, name=, context=): the coroutine starts in <paramref name="context"/>.</summary>
    [OverloadResolutionPriority(1)]
    public static LoopTask<T> CreateTask<T>(Func<Task<T>> coroutine, string? name, ExecutionContext? context) =>
        EventLoop.GetRunningLoop().CreateTask(coroutine, name, context);

    [OverloadResolutionPriority(1)]
    public static LoopTask CreateTask(Func<Task> coroutine, string? name, ExecutionContext? context) =>
        EventLoop.GetRunningLoop().CreateTask(coroutine, name, context);

    /// <summary>A task that <paramref name="cancellationToken"/> cancels (see
    /// <see cref="EventLoop.CreateTask{T}(Func{Task{T}}, string?, CancellationToken)"/>).</summary>
    [OverloadResolutionPriority(1)]
    public static LoopTask<T> CreateTask<T>(Func<Task<T>> coroutine, string? name, CancellationToken cancellationToken) =>
        EventLoop.GetRunningLoop().CreateTask(coroutine, name, cancellationToken);

    [OverloadResolutionPriority(1)]
    public static LoopTask<T> CreateTask<T>(Func<Task<T>> coroutine, CancellationToken cancellationToken) =>
        EventLoop.GetRunningLoop().CreateTask(coroutine, null, cancellationToken);

    [OverloadResolutionPriority(1)]
    public static LoopTask CreateTask(Func<Task> coroutine, string? name, CancellationToken cancellationToken) =>
        EventLoop.GetRunningLoop().CreateTask(coroutine, name, cancellationToken);

    [OverloadResolutionPriority(1)]
    public static LoopTask CreateTask(Func<Task> coroutine, CancellationToken cancellationToken) =>
        EventLoop.GetRunningLoop().CreateTask(coroutine, null, cancellationToken);

    /// <summary>create_task of a <see cref="ValueTask{TResult}"/> method.</summary>
    public static LoopTask<T> CreateTask<T>(Func<ValueTask<T>> coroutine, string? name = null) =>
        EventLoop.GetRunningLoop().CreateTask(coroutine, name);

    public static LoopTask CreateTask(Func<ValueTask> coroutine, string? name = null) =>
        EventLoop.GetRunningLoop().CreateTask(coroutine, name);

    public static LoopTask<T> CreateTask<T>(Func<ValueTask<T>> coroutine, string? name, CancellationToken cancellationToken) =>
        EventLoop.GetRunningLoop().CreateTask(coroutine, name, cancellationToken);

    public static LoopTask<T> CreateTask<T>(Func<ValueTask<T>> coroutine, CancellationToken cancellationToken) =>
        EventLoop.GetRunningLoop().CreateTask(coroutine, null, cancellationToken);

    public static LoopTask CreateTask(Func<ValueTask> coroutine, string? name, CancellationToken cancellationToken) =>
        EventLoop.GetRunningLoop().CreateTask(coroutine, name, cancellationToken);

    public static LoopTask CreateTask(Func<ValueTask> coroutine, CancellationToken cancellationToken) =>
        EventLoop.GetRunningLoop().CreateTask(coroutine, null, cancellationToken);

    /// <summary>asyncio.ensure_future: a future stays itself (any thread); a coroutine becomes a task.</summary>
    [ThreadSafe]
    public static Future<T> EnsureFuture<T>(Future<T> future) => future ?? throw new ArgumentNullException(nameof(future));

    [OverloadResolutionPriority(1)]
    public static LoopTask<T> EnsureFuture<T>(Func<Task<T>> coroutine, EventLoop? loop = null) =>
        (loop ?? EventLoop.GetEventLoop()).CreateTask(coroutine);

    public static LoopTask<T> EnsureFuture<T>(Func<ValueTask<T>> coroutine, EventLoop? loop = null) =>
        (loop ?? EventLoop.GetEventLoop()).CreateTask(coroutine);

    /// <summary>ensure_future of a <see cref="ValueTask{TResult}"/>: wrapped as <see cref="EnsureFuture{T}(Task{T}, EventLoop?)"/> (any thread).</summary>
    [ThreadSafe]
    public static Future<T> EnsureFuture<T>(ValueTask<T> awaitable, EventLoop? loop = null) =>
        WrapTask(awaitable.AsTask(), loop ?? EventLoop.GetEventLoop());

    /// <summary>Wraps a .NET task as a loop future completed on the loop thread (asyncio.wrap_future). Any
    /// thread: the completion is posted with <see cref="EventLoop.CallSoonThreadsafe(Action)"/>.</summary>
    [ThreadSafe]
    public static Future<T> EnsureFuture<T>(Task<T> task, EventLoop? loop = null)
    {
        ArgumentNullException.ThrowIfNull(task);
        return WrapTask(task, loop ?? EventLoop.GetEventLoop());
    }

    /// <inheritdoc cref="EnsureFuture{T}(Task{T}, EventLoop?)"/>
    [ThreadSafe]
    public static Future<T> WrapTask<T>(Task<T> task, EventLoop loop)
    {
        ArgumentNullException.ThrowIfNull(task);
        ArgumentNullException.ThrowIfNull(loop);
        var future = new Future<T>(loop);
        task.ContinueWith(static (t, state) =>
        {
            var f = (Future<T>)state!;
            f.Loop.CallSoonThreadsafe(static s =>
            {
                var (t, f) = s;
                if (f.Done) return;
                if (t.IsCanceled) f.Cancel();
                else if (t.IsFaulted) f.SetException(t.Exception!.InnerExceptions.Count == 1 ? t.Exception.InnerException! : t.Exception);
                else f.SetResult(t.Result);
            }, (t, f));
        }, future, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return future;
    }

    /// <summary>asyncio's ValueError for a future of another loop (ensure_future's check), an <see cref="ArgumentException"/> here.</summary>
    internal const string DifferentLoop = "The future belongs to a different loop than the one specified as the loop argument";

    /// <summary>The task running now on the running loop, or null (asyncio.current_task); with no running
    /// loop, <see cref="EventLoopException"/>("no running event loop") as asyncio raises.</summary>
    [ThreadSafe]
    public static ILoopTask? CurrentTask() => EventLoop.GetRunningLoop().CurrentTask;

    /// <summary>The task running on <paramref name="loop"/>, or null (asyncio's <c>current_task(loop)</c>).</summary>
    public static ILoopTask? CurrentTask(EventLoop loop)
    {
        ArgumentNullException.ThrowIfNull(loop);
        return loop.CurrentTask;
    }

    /// <summary>The pending tasks of the running loop (asyncio.all_tasks).</summary>
    public static IReadOnlyCollection<ILoopTask> AllTasks() => EventLoop.GetRunningLoop().AllTasks();

    /// <inheritdoc cref="EventLoop.GetRunningLoop"/>
    [ThreadSafe]
    public static EventLoop GetRunningLoop() => EventLoop.GetRunningLoop();

    /// <inheritdoc cref="EventLoop.GetEventLoop"/>
    [ThreadSafe]
    public static EventLoop GetEventLoop() => EventLoop.GetEventLoop();

    /// <summary>A new loop (asyncio.new_event_loop); any thread.</summary>
    [ThreadSafe]
    public static EventLoop NewEventLoop() => new();

    /// <inheritdoc cref="EventLoop.SetEventLoop"/>
    [ThreadSafe]
    public static void SetEventLoop(EventLoop? loop) => EventLoop.SetEventLoop(loop);
}
