using System.Runtime.CompilerServices;

namespace Tulip;

/// <summary>
/// asyncio.TaskGroup (3.11, taskgroups.py): structured concurrency. Tasks created in the group are
/// awaited when the group's scope ends. The first task that fails cancels the others and the parent
/// task; the errors are then raised together as an <see cref="AggregateException"/> ("unhandled errors
/// in a TaskGroup"). A cancellation of the parent from outside cancels the children and propagates.
/// <para>Use <c>await TaskGroup.RunAsync(async tg => { tg.CreateTask(…); … })</c>: the group sees how
/// the body ended, as <c>async with</c> does. <c>await using var tg = new TaskGroup();</c> also works,
/// but C# gives <c>DisposeAsync</c> no exception: an error thrown by the body itself does not cancel
/// the children (they are awaited as if the body had ended normally).</para>
/// </summary>
public sealed class TaskGroup : IAsyncDisposable
{
    private bool _entered, _exiting, _aborting, _parentCancelRequested;
    private EventLoop? _loop;
    private ILoopTask? _parent;
    private readonly HashSet<Future> _tasks = new(ReferenceEqualityComparer.Instance);
    private List<Exception>? _errors = new();
    private Future<ValueTuple>? _onCompleted;
    private readonly Action<Future> _onTaskDone;

    /// <summary>A group entered at once in the current task (for <c>await using</c>).</summary>
    public TaskGroup() : this(enter: true) { }

    /// <summary>A group made now and entered later with <see cref="Enter"/> (<c>tg = asyncio.TaskGroup()</c>
    /// … <c>async with tg:</c>); creating tasks in it before then raises.</summary>
    public static TaskGroup Create() => new(enter: false);

    private TaskGroup(bool enter)
    {
        _onTaskDone = OnTaskDone;
        if (enter) Enter();
    }

    /// <summary>Runs <paramref name="body"/> with a new group and awaits every task it created (<c>async with TaskGroup() as tg</c>).</summary>
    [OverloadResolutionPriority(1)] // an async lambda fits the ValueTask overload too: the Task one wins
    public static async Task RunAsync(Func<TaskGroup, Task> body, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(body);
        await RunAsync<ValueTuple>(async tg =>
        {
            await body(tg);
            return default;
        }, cancellationToken);
    }

    /// <summary>As <see cref="RunAsync(Func{TaskGroup, Task}, CancellationToken)"/>, giving back the body's
    /// result. <paramref name="cancellationToken"/> cancels the task while the group runs, as cancelling
    /// the task inside <c>async with tg:</c> does: the children are cancelled and awaited, and the group
    /// raises <see cref="CancelledException"/> carrying the token.</summary>
    [OverloadResolutionPriority(1)]
    public static Task<T> RunAsync<T>(Func<TaskGroup, Task<T>> body, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(body);
        return cancellationToken.CanBeCanceled
            ? ScopeToken.RunAsync(() => RunGroupAsync(body), cancellationToken)
            : RunGroupAsync(body);
    }

    /// <summary>As <see cref="RunAsync(Func{TaskGroup, Task}, CancellationToken)"/> with a <see cref="ValueTask"/> body.</summary>
    public static Task RunAsync(Func<TaskGroup, ValueTask> body, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(body);
        return RunAsync(tg => body(tg).AsTask(), cancellationToken);
    }

    /// <summary>As <see cref="RunAsync{T}(Func{TaskGroup, Task{T}}, CancellationToken)"/> with a <see cref="ValueTask{TResult}"/> body.</summary>
    public static Task<T> RunAsync<T>(Func<TaskGroup, ValueTask<T>> body, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(body);
        return RunAsync(tg => body(tg).AsTask(), cancellationToken);
    }

    private static async Task<T> RunGroupAsync<T>(Func<TaskGroup, Task<T>> body)
    {
        var tg = new TaskGroup(enter: false);
        tg.Enter();
        T result;
        try
        {
            result = await body(tg);
        }
        catch (Exception e)
        {
            await tg.ExitAsync(e);
            throw;
        }

        await tg.ExitAsync(null);
        return result;
    }

    /// <summary>asyncio's <c>__aenter__</c> for a group from <see cref="Create"/>: binds it to the current
    /// task; returns it, to be disposed at the end (<c>await using (tg.Enter())</c>). Entering twice raises.</summary>
    public TaskGroup Enter()
    {
        if (_entered) throw new InvalidOperationException($"TaskGroup {this} has already been entered");
        _loop ??= EventLoop.GetRunningLoop();
        _parent = _loop.CurrentTask ?? throw new InvalidOperationException($"TaskGroup {this} cannot determine the parent task");
        _entered = true;
        return this;
    }

    /// <summary>Creates a task in the group (asyncio's <c>create_task</c>); refused once the group is finished or shutting down.</summary>
    [OverloadResolutionPriority(1)] // an async lambda fits the ValueTask overload too: the Task one wins
    public LoopTask<T> CreateTask<T>(Func<Task<T>> coroutine, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(coroutine);
        _loop?.VerifyAccess();
        CheckCanCreate();
        var task = _loop!.CreateTask(coroutine, name);
        Track(task);
        return task;
    }

    [OverloadResolutionPriority(1)] // an async lambda fits the ValueTask overload too: the Task one wins
    public LoopTask CreateTask(Func<Task> coroutine, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(coroutine);
        _loop?.VerifyAccess();
        CheckCanCreate();
        var task = _loop!.CreateTask(coroutine, name);
        Track(task);
        return task;
    }

    /// <summary>A task in the group whose coroutine starts in <paramref name="context"/> (see <see cref="EventLoop.CreateTask{T}(Func{Task{T}}, string?, ExecutionContext?)"/>).</summary>
    [OverloadResolutionPriority(1)] // an async lambda fits the ValueTask overload too: the Task one wins
    public LoopTask<T> CreateTask<T>(Func<Task<T>> coroutine, string? name, ExecutionContext? context)
    {
        ArgumentNullException.ThrowIfNull(coroutine);
        CheckCanCreate();
        var task = _loop!.CreateTask(coroutine, name, context);
        Track(task);
        return task;
    }

    [OverloadResolutionPriority(1)] // an async lambda fits the ValueTask overload too: the Task one wins
    public LoopTask CreateTask(Func<Task> coroutine, string? name, ExecutionContext? context)
    {
        ArgumentNullException.ThrowIfNull(coroutine);
        CheckCanCreate();
        var task = _loop!.CreateTask(coroutine, name, context);
        Track(task);
        return task;
    }

    /// <summary>A task in the group that <paramref name="cancellationToken"/> cancels (see
    /// <see cref="EventLoop.CreateTask{T}(Func{Task{T}}, string?, CancellationToken)"/>): like any child that
    /// ends cancelled, it does not abort the group.</summary>
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

    /// <summary>A task in the group of a <see cref="ValueTask{TResult}"/> method.</summary>
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

    private void CheckCanCreate()
    {
        if (!_entered) throw new InvalidOperationException($"TaskGroup {this} has not been entered");
        if (_exiting && _tasks.Count == 0) throw new InvalidOperationException($"TaskGroup {this} is finished");
        if (_aborting) throw new InvalidOperationException($"TaskGroup {this} is shutting down");
    }

    private void Track(Future task)
    {
        task.AddDoneCallback(_onTaskDone);
        _tasks.Add(task);
    }

    /// <summary>The end of an <c>await using</c> scope: awaits the tasks (see the class remarks).</summary>
    public async ValueTask DisposeAsync()
    {
        _loop?.VerifyAccess();
        await ExitAsync(null);
    }

    /// <summary>asyncio's <c>__aexit__</c>: <paramref name="error"/> is what the body raised, or null.</summary>
    private async Task ExitAsync(Exception? error)
    {
        _exiting = true;
        Exception? propagateCancellation = error as OperationCanceledException;
        if (_parentCancelRequested && _parent!.Uncancel() == 0) propagateCancellation = null;
        if (error is not null && !_aborting) Abort();

        while (_tasks.Count > 0)
        {
            _onCompleted ??= _loop!.CreateFuture();
            try
            {
                await _onCompleted;
            }
            catch (OperationCanceledException e)
            {
                if (!_aborting)
                {
                    propagateCancellation = e;
                    Abort();
                }
            }

            _onCompleted = null;
        }

        var errors = _errors!;
        if (propagateCancellation is not null && errors.Count == 0)
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(propagateCancellation);
        if (error is not null && error is not OperationCanceledException) errors.Add(error);
        if (errors.Count > 0)
        {
            _errors = null;
            throw new AggregateException("unhandled errors in a TaskGroup", errors);
        }
    }

    private void Abort()
    {
        _aborting = true;
        foreach (var t in _tasks.ToArray())
        {
            if (!t.Done) t.Cancel();
        }
    }

    private void OnTaskDone(Future task)
    {
        _tasks.Remove(task);
        if (_onCompleted is { Done: false } c && _tasks.Count == 0) c.SetResult(default);
        if (task.Cancelled) return;
        if (task.Exception() is not { } e) return;
        _errors?.Add(e);
        if (_parent!.Done)
        {
            _loop!.CallExceptionHandler(new ExceptionContext(
                $"Task {task} has errored out but its parent task {_parent} is already completed", e) { Future = task });
            return;
        }

        if (!_aborting && !_parentCancelRequested)
        {
            Abort();
            _parentCancelRequested = true;
            _parent.Cancel();
        }
    }

    public override string ToString()
    {
        var info = new List<string>();
        if (_tasks.Count > 0) info.Add($"tasks={_tasks.Count}");
        if (_errors is { Count: > 0 }) info.Add($"errors={_errors.Count}");
        if (_aborting) info.Add("cancelling");
        else if (_entered) info.Add("entered");
        return info.Count == 0 ? "<TaskGroup>" : $"<TaskGroup {string.Join(' ', info)}>";
    }
}
