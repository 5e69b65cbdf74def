using System.Runtime.CompilerServices;
using Tulip.Diagnostics;

namespace Tulip;

public sealed partial class EventLoop
{
    internal ILoopTaskInternal? CurrentTaskInternal;
    private readonly HashSet<Future> _pendingTasks = new(ReferenceEqualityComparer.Instance);

    /// <summary>A new pending future on this loop (asyncio's <c>create_future()</c>). Any thread: making
    /// one touches no loop state (completing it does, on the loop's thread).</summary>
    [ThreadSafe]
    public Future<T> CreateFuture<T>() => new(this);

    /// <summary>A new pending future with no result value (any thread, as <see cref="CreateFuture{T}"/>).</summary>
    [ThreadSafe]
    public Future<ValueTuple> CreateFuture() => new(this);

    /// <summary>
    /// Wraps a coroutine in a task and schedules its first step; none of it runs inline (asyncio's
    /// <c>create_task</c>). The coroutine is a function, so that it has not started yet.
    /// </summary>
    [OverloadResolutionPriority(1)] // an async lambda fits the ValueTask overload too: the Task one wins
    public LoopTask<T> CreateTask<T>(Func<Task<T>> coroutine, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(coroutine);
        ThrowIfClosed();
        VerifyAccess(); // before the task registers itself with the loop
        // No lambda here: a closure over the parameters would be allocated on every call, factory or not.
        if (_taskFactory is { } factory && !_inTaskFactory) return CreateByFactory(factory, coroutine, name);
        return new LoopTask<T>(this, coroutine, name);
    }

    /// <summary>A task of a coroutine with no result.</summary>
    [OverloadResolutionPriority(1)] // an async lambda fits the ValueTask overload too: the Task one wins
    public LoopTask CreateTask(Func<Task> coroutine, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(coroutine);
        ThrowIfClosed();
        VerifyAccess();
        if (_taskFactory is { } factory && !_inTaskFactory) return CreateByFactory(factory, coroutine, name);
        return new LoopTask(this, coroutine, name);
    }

    /// <summary>A task of a coroutine written as a <see cref="ValueTask{TResult}"/> method (no <c>.AsTask()</c> at the call).</summary>
    public LoopTask<T> CreateTask<T>(Func<ValueTask<T>> coroutine, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(coroutine);
        return CreateTask(() => coroutine().AsTask(), name);
    }

    public LoopTask CreateTask(Func<ValueTask> coroutine, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(coroutine);
        return CreateTask(() => coroutine().AsTask(), name);
    }

    /// <summary>
    /// A task that <paramref name="cancellationToken"/> cancels: when it fires (any thread) the task's
    /// <c>Cancel()</c> is marshalled onto the loop, and the task, if it ends cancelled, raises a
    /// <see cref="CancelledException"/> carrying the token. A token already cancelled cancels the task
    /// before its first step (asyncio's cancel before start). The registration is disposed when the task
    /// is done. <see cref="CancellationToken.None"/> registers nothing.
    /// </summary>
    [OverloadResolutionPriority(1)]
    public LoopTask<T> CreateTask<T>(Func<Task<T>> coroutine, string? name, CancellationToken cancellationToken)
    {
        var task = CreateTask(coroutine, name);
        TokenLink.CancelOnToken(task, cancellationToken);
        return task;
    }

    [OverloadResolutionPriority(1)]
    public LoopTask<T> CreateTask<T>(Func<Task<T>> coroutine, CancellationToken cancellationToken) => CreateTask(coroutine, null, cancellationToken);

    [OverloadResolutionPriority(1)]
    public LoopTask CreateTask(Func<Task> coroutine, string? name, CancellationToken cancellationToken)
    {
        var task = CreateTask(coroutine, name);
        TokenLink.CancelOnToken(task, cancellationToken);
        return task;
    }

    [OverloadResolutionPriority(1)]
    public LoopTask CreateTask(Func<Task> coroutine, CancellationToken cancellationToken) => CreateTask(coroutine, null, cancellationToken);

    public LoopTask<T> CreateTask<T>(Func<ValueTask<T>> coroutine, string? name, CancellationToken cancellationToken)
    {
        var task = CreateTask(coroutine, name);
        TokenLink.CancelOnToken(task, cancellationToken);
        return task;
    }

    public LoopTask<T> CreateTask<T>(Func<ValueTask<T>> coroutine, CancellationToken cancellationToken) => CreateTask(coroutine, null, cancellationToken);

    public LoopTask CreateTask(Func<ValueTask> coroutine, string? name, CancellationToken cancellationToken)
    {
        var task = CreateTask(coroutine, name);
        TokenLink.CancelOnToken(task, cancellationToken);
        return task;
    }

    public LoopTask CreateTask(Func<ValueTask> coroutine, CancellationToken cancellationToken) => CreateTask(coroutine, null, cancellationToken);

    private ITaskFactory? _taskFactory;

    /// <summary>Makes <see cref="CreateTask{T}(Func{Task{T}}, string?)"/> (and everything that creates
    /// tasks: <c>Asyncio.CreateTask</c>, <c>TaskGroup</c>, <c>RunUntilComplete</c>) use
    /// <paramref name="factory"/>; null restores the default (asyncio's <c>set_task_factory</c>). Inside the
    /// factory, <c>CreateTask</c> makes the default task, so a factory may wrap or decorate it.</summary>
    public void SetTaskFactory(ITaskFactory? factory)
    {
        VerifyAccess();
        _taskFactory = factory;
    }

    /// <summary>The task factory, or null for the default (asyncio's <c>get_task_factory</c>).</summary>
    public ITaskFactory? GetTaskFactory()
    {
        VerifyAccess();
        return _taskFactory;
    }

    // Set while the factory runs: a factory that calls CreateTask itself gets the default task (in
    // asyncio that recursion ends in RecursionError; in .NET it would be a process-killing stack overflow).
    private bool _inTaskFactory;

    private LoopTask<T> CreateByFactory<T>(ITaskFactory factory, Func<Task<T>> coroutine, string? name)
    {
        _inTaskFactory = true;
        try
        {
            return OwnTask(factory.CreateTask(this, coroutine, name));
        }
        finally
        {
            _inTaskFactory = false;
        }
    }

    private LoopTask CreateByFactory(ITaskFactory factory, Func<Task> coroutine, string? name)
    {
        _inTaskFactory = true;
        try
        {
            return OwnTask(factory.CreateTask(this, coroutine, name));
        }
        finally
        {
            _inTaskFactory = false;
        }
    }

    private TTask OwnTask<TTask>(TTask? task) where TTask : Future
    {
        if (task is null) throw new InvalidOperationException("the task factory returned null");
        if (!ReferenceEquals(task.Loop, this)) throw new InvalidOperationException("the task factory made a task of another loop");
        return task;
    }

    /// <summary>
    /// A task whose coroutine starts in <paramref name="context"/> (asyncio's <c>create_task(…, context=)</c>)
    /// instead of a copy of the caller's. A .NET ExecutionContext is immutable: the task sees its values,
    /// its own changes stay in the task.
    /// </summary>
    [OverloadResolutionPriority(1)] // an async lambda fits the ValueTask overload too: the Task one wins
    public LoopTask<T> CreateTask<T>(Func<Task<T>> coroutine, string? name, ExecutionContext? context)
    {
        var task = CreateTask(coroutine, name);
        task.StartContext = context;
        return task;
    }

    [OverloadResolutionPriority(1)] // an async lambda fits the ValueTask overload too: the Task one wins
    public LoopTask CreateTask(Func<Task> coroutine, string? name, ExecutionContext? context)
    {
        var task = CreateTask(coroutine, name);
        task.StartContext = context;
        return task;
    }

    /// <summary>The task whose step is running now, or null (asyncio's <c>current_task()</c>).</summary>
    public ILoopTask? CurrentTask
    {
        get
        {
            VerifyAccess();
            return CurrentTaskInternal as ILoopTask;
        }
    }

    /// <summary>The tasks of this loop that are not done yet (asyncio's <c>all_tasks()</c>).</summary>
    public IReadOnlyCollection<ILoopTask> AllTasks()
    {
        VerifyAccess();
        return _pendingTasks.Cast<ILoopTask>().ToArray();
    }

    // The loop holds every pending task strongly, so none is collected mid-flight.
    internal void TaskStarted(Future task) => _pendingTasks.Add(task);

    internal void TaskFinished(Future task) => _pendingTasks.Remove(task);

    /// <summary>Runs the loop until <paramref name="future"/> is done; returns its result or raises its exception.</summary>
    public T RunUntilComplete<T>(Future<T> future)
    {
        ArgumentNullException.ThrowIfNull(future);
        RunUntilDone(future);
        return future.Result();
    }

    public void RunUntilComplete(Future future)
    {
        ArgumentNullException.ThrowIfNull(future);
        RunUntilDone(future);
        future.ThrowIfNotSucceeded();
    }

    /// <summary>Wraps the coroutine in a task, runs until it is done, and returns its result.</summary>
    [OverloadResolutionPriority(1)]
    public T RunUntilComplete<T>(Func<Task<T>> coroutine) => RunUntilComplete(CreateTask(coroutine));

    [OverloadResolutionPriority(1)]
    public void RunUntilComplete(Func<Task> coroutine) => RunUntilComplete((Future)CreateTask(coroutine));

    public T RunUntilComplete<T>(Func<ValueTask<T>> coroutine) => RunUntilComplete(CreateTask(coroutine));

    public void RunUntilComplete(Func<ValueTask> coroutine) => RunUntilComplete((Future)CreateTask(coroutine));

    private void RunUntilDone(Future future)
    {
        ThrowIfClosed();
        if (!ReferenceEquals(future.Loop, this)) throw new ArgumentException(Asyncio.DifferentLoop, nameof(future));
        if (IsRunning) throw new EventLoopException("This event loop is already running");
        var stopper = new StateHandle<EventLoop>(this, static l => l.Stop(), this);
        future.AddParked(stopper);
        try
        {
            RunForever();
        }
        finally
        {
            if (!future.Done) future.RemoveParked(stopper);
        }

        if (!future.Done) throw new EventLoopException("Event loop stopped before Future completed.");
    }

    // ---------------------------------------------------------------------------------------------
    // The glue between awaiters and tasks.

    /// <summary>
    /// An awaiter suspends on a loop future. Inside a task's step the task now waits on it (its wake-up
    /// is the future's done-callback); anywhere else the continuation is simply scheduled when the
    /// future is done. From another thread, the registration itself is marshalled to the loop.
    /// </summary>
    internal void AwaitFuture(Future future, Action continuation)
    {
        if (!TryEnterHere(out var access))
        {
            CallSoonThreadsafe(static s => s.future.AddParked(new StateHandle<Action>(s.future.Loop, static c => c(), s.continuation)),
                (future, continuation));
            return;
        }

        using (access)
        {
            if (CurrentTaskInternal is { } task && task.TryAwait(future, continuation)) return;
            future.AddParked(new ContinuationHandle(this, continuation, SynchronizationContext.Current));
        }
    }

    /// <summary>
    /// Whether an await of <paramref name="future"/> here must fail at once instead of waiting forever:
    /// a task awaiting itself, or a future of another loop awaited where a loop runs (asyncio's
    /// RuntimeErrors in <c>Task.__step</c>). An await on a thread with no running loop is allowed: it is
    /// marshalled to the future's loop.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool RefusesAwait(Future future)
    {
        var running = t_running;
        if (running is null) return false;
        return !ReferenceEquals(running, this) || ReferenceEquals(CurrentTaskInternal, future);
    }

    /// <summary>Raises the error of a refused await (see <see cref="RefusesAwait"/>); nothing otherwise.</summary>
    internal void ThrowRefusedAwait(Future future)
    {
        var running = t_running;
        if (running is null) return;
        if (!ReferenceEquals(running, this))
        {
            var task = running.CurrentTaskInternal as object;
            throw new EventLoopException($"Task {task?.ToString() ?? "None"} got Future {future} attached to a different loop");
        }

        if (ReferenceEquals(CurrentTaskInternal, future))
            throw new EventLoopException($"Task cannot await on itself: {future}");
    }

    /// <summary>A step resumed with must-cancel set raises the cancellation at the await it resumes.</summary>
    internal void ThrowPendingCancellation()
    {
        if (CurrentTaskInternal is { } task) task.ThrowPendingCancellation();
    }

    // ---------------------------------------------------------------------------------------------
    // The exception handler.

    /// <summary>Sets the handler for errors with no caller (null restores the default).</summary>
    public void SetExceptionHandler(ExceptionHandler? handler)
    {
        VerifyAccess();
        _exceptionHandler = handler;
    }

    public ExceptionHandler? GetExceptionHandler()
    {
        VerifyAccess();
        return _exceptionHandler;
    }

    /// <summary>The default handler: writes the context to <see cref="LoopLog"/>. Any thread.</summary>
    [ThreadSafe]
    public void DefaultExceptionHandler(ExceptionContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        LoopLog.Error(context.ToString());
    }

    /// <summary>
    /// Reports an error to the handler. A handler that throws is reported through the default handler,
    /// and the loop goes on either way. Any thread: the handler runs on the calling one (asyncio's
    /// futures call it from the garbage collector too).
    /// </summary>
    [ThreadSafe]
    public void CallExceptionHandler(ExceptionContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (_exceptionHandler is not { } handler)
        {
            try
            {
                DefaultExceptionHandler(context);
            }
            catch (Exception)
            {
                // The default handler must never take the loop down (asyncio logs and goes on).
            }

            return;
        }

        try
        {
            handler(this, context);
        }
        catch (Exception e)
        {
            try
            {
                DefaultExceptionHandler(new ExceptionContext("Unhandled error in exception handler", e)
                {
                    Extra = new Dictionary<string, object?> { ["context"] = context },
                });
            }
            catch (Exception)
            {
            }
        }
    }

    /// <summary>Reports from any thread (a finalizer, for instance): through the loop if it can still run callbacks.</summary>
    internal void ReportFromAnyThread(ExceptionContext context)
    {
        if (!IsClosed && !CheckAccess())
        {
            try
            {
                CallSoonThreadsafe(static s => s.Item1.CallExceptionHandler(s.Item2), (this, context));
                return;
            }
            catch (EventLoopException)
            {
            }
        }

        CallExceptionHandler(context);
    }
}
