using System.Runtime.CompilerServices;

namespace Tulip;

/// <summary>
/// One piece of work handed to an executor (concurrent.futures' <c>_WorkItem</c>): what to call, and
/// where its outcome goes. Its state is claimed once, either by a worker (<see cref="TryStart"/>) or by a
/// cancellation (<see cref="TryCancel"/>): work cancelled before a worker claims it never runs, and work
/// that started is not interrupted (as <c>Future.cancel()</c> of a running concurrent future fails).
/// </summary>
internal abstract class WorkItem
{
    private const int Pending = 0, Running = 1, Finished = 2, Cancelled = 3;
    private int _state;

    /// <summary>What the caller asked to run (the process pool reads its method).</summary>
    public abstract Delegate Function { get; }

    /// <summary>The argument passed, if <see cref="HasArgument"/>.</summary>
    public abstract object? Argument { get; }

    public abstract bool HasArgument { get; }

    /// <summary>What the executor keeps with the item while it is queued (the process pool: the request).</summary>
    public object? Tag;

    /// <summary>The declared result type (<see cref="ValueTuple"/> for an action).</summary>
    public abstract Type ResultType { get; }

    /// <summary>A worker claims the item; false when it was cancelled first (then it is skipped).</summary>
    public bool TryStart() => Interlocked.CompareExchange(ref _state, Running, Pending) == Pending;

    /// <summary>Cancels the item if no worker claimed it; its sink is told (<see cref="OnCancelled"/>).</summary>
    public bool TryCancel()
    {
        if (Interlocked.CompareExchange(ref _state, Cancelled, Pending) != Pending) return false;
        OnCancelled();
        return true;
    }

    /// <summary>Fails an item no worker will run (a broken pool); false if it had started or ended.</summary>
    public bool TryFailPending(Exception error)
    {
        if (Interlocked.CompareExchange(ref _state, Finished, Pending) != Pending) return false;
        Deliver(default, error);
        return true;
    }

    /// <summary>Runs the function on the calling (worker) thread and delivers its outcome.</summary>
    public abstract void Execute();

    /// <summary>Delivers an outcome computed elsewhere (a worker process): the boxed result or the error.</summary>
    public void Complete(object? boxedResult, Exception? error)
    {
        Volatile.Write(ref _state, Finished);
        Deliver(boxedResult, error);
    }

    private protected void MarkFinished() => Volatile.Write(ref _state, Finished);

    private protected abstract void Deliver(object? boxedResult, Exception? error);

    private protected abstract void OnCancelled();
}

/// <summary>A work item with a typed result; the sink (a .NET task or a loop future) is the subclass's.</summary>
internal abstract class WorkItem<T> : WorkItem
{
    private readonly Delegate _function;
    private readonly Func<T> _call;
    private readonly object? _argument;
    private readonly bool _hasArgument;
    private readonly ExecutionContext? _context;

    protected WorkItem(WorkCall<T> call)
    {
        _function = call.Function;
        _call = call.Call;
        _argument = call.Argument;
        _hasArgument = call.HasArgument;
        _context = call.Context;
    }

    public override Delegate Function => _function;

    public override object? Argument => _argument;

    public override bool HasArgument => _hasArgument;

    public override Type ResultType => typeof(T);

    public sealed override void Execute()
    {
        T result;
        try
        {
            if (_context is null) result = _call();
            else
            {
                // asyncio.to_thread copies the contextvars: here the caller's ExecutionContext flows.
                var box = new StrongBox<T>();
                ExecutionContext.Run(_context, static s =>
                {
                    var (b, f) = ((StrongBox<T>, Func<T>))s!;
                    b.Value = f();
                }, (box, _call));
                result = box.Value!;
            }
        }
        catch (Exception e)
        {
            MarkFinished();
            DeliverTyped(default!, e);
            return;
        }

        MarkFinished();
        DeliverTyped(result, null);
    }

    private protected sealed override void Deliver(object? boxedResult, Exception? error) =>
        DeliverTyped(error is null ? (T)boxedResult! : default!, error);

    /// <summary>Hands the outcome to the sink (any thread: a worker's).</summary>
    private protected abstract void DeliverTyped(T result, Exception? error);
}

/// <summary>What to call: the delegate as given (its method read by the process pool) and a thunk
/// that calls it with its argument (what a thread runs).</summary>
internal readonly record struct WorkCall<T>(Delegate Function, Func<T> Call, object? Argument, bool HasArgument, ExecutionContext? Context)
{
    public static WorkCall<T> Of(Func<T> f) => new(f, f, null, false, null);

    public static WorkCall<T> Of<TArg>(Func<TArg, T> f, TArg arg) => new(f, () => f(arg), arg, true, null);

    public static WorkCall<ValueTuple> Of(Action f) => new(f, () =>
    {
        f();
        return default;
    }, null, false, null);

    public static WorkCall<ValueTuple> Of<TArg>(Action<TArg> f, TArg arg) => new(f, () =>
    {
        f(arg);
        return default;
    }, arg, true, null);
}

/// <summary>Work whose outcome completes a .NET task (<see cref="Executor.Submit{TResult}(Func{TResult}, CancellationToken)"/>).</summary>
internal sealed class TaskWorkItem<T> : WorkItem<T>
{
    private readonly TaskCompletionSource<T> _source = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationToken _token;
    private CancellationTokenRegistration _registration;

    public TaskWorkItem(WorkCall<T> call, CancellationToken token) : base(call) => _token = token;

    public Task<T> Task => _source.Task;

    /// <summary>Listens to the token before the item is queued (so no outcome can come before the
    /// registration exists): a cancel before a worker claims it means it never runs.</summary>
    public void Listen()
    {
        if (_token.CanBeCanceled) _registration = _token.UnsafeRegister(static s => ((TaskWorkItem<T>)s!).TryCancel(), this);
    }

    /// <summary>The item was not queued after all (the executor refused it).</summary>
    public void StopListening() => _registration.Dispose();

    private protected override void DeliverTyped(T result, Exception? error)
    {
        _registration.Unregister();
        if (error is null) _source.TrySetResult(result);
        else if (error is OperationCanceledException oce) _source.TrySetCanceled(oce.CancellationToken);
        else _source.TrySetException(error);
    }

    private protected override void OnCancelled()
    {
        _registration.Unregister();
        _source.TrySetCanceled(_token);
    }
}

/// <summary>
/// Work whose outcome completes a loop future (run_in_executor's <c>wrap_future</c> chain). Both ways go
/// through the one door: the worker posts the outcome with <see cref="EventLoop.CallSoonThreadsafe{TState}(Action{TState}, TState)"/>
/// and the loop sets the future (unless it was cancelled meanwhile); the future's cancel (on the loop)
/// cancels the item, so work not yet started never runs. While the item is out, the loop counts it as
/// external work, so a virtual clock does not jump past it.
/// </summary>
internal sealed class LoopWorkItem<T> : WorkItem<T>
{
    private readonly Future<T> _future;
    private T _result = default!;
    private Exception? _error;
    private int _released;

    public LoopWorkItem(Future<T> future, WorkCall<T> call) : base(call)
    {
        _future = future;
        future.Loop.BeginExternal();
    }

    /// <summary>The submit failed (refused by the executor): nothing is out any more.</summary>
    public void Abandon() => Release();

    private protected override void DeliverTyped(T result, Exception? error)
    {
        _result = result;
        _error = error;
        try
        {
            _future.Loop.CallSoonThreadsafe(static item => item.SetOnLoop(), this);
        }
        catch (EventLoopException)
        {
            // The loop was closed while the work ran: nobody can await the outcome any more.
        }
        finally
        {
            Release();
        }
    }

    private void SetOnLoop()
    {
        if (_future.Done) return; // cancelled while the work ran: its outcome is dropped (asyncio's _set_state)
        if (_error is null) _future.SetResult(_result);
        else if (_error is OperationCanceledException) _future.Cancel();
        else _future.SetException(_error);
    }

    private protected override void OnCancelled()
    {
        // Cancelled by the future (loop thread, it is already cancelled) or by the executor's shutdown
        // (any thread): the future learns it on the loop.
        if (!_future.Loop.IsOnLoopThread)
        {
            try
            {
                _future.Loop.CallSoonThreadsafe(static f => f.Cancel(), _future);
            }
            catch (EventLoopException)
            {
            }
        }
        else if (!_future.Done) _future.Cancel();

        Release();
    }

    private void Release()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0) _future.Loop.EndExternal();
    }
}

/// <summary>
/// The loop future of executor work: its cancel (on the loop's thread) cancels the work item at once,
/// not a tick later through a done-callback, so work cancelled before a worker claimed it never runs
/// even if a worker frees up in the same tick.
/// </summary>
internal sealed class ExecutorFuture<T>(EventLoop loop) : Future<T>(loop)
{
    public WorkItem? Item;

    private protected override bool CancelOnLoop(string? message)
    {
        if (!CancelCore(message)) return false;
        Item?.TryCancel();
        return true;
    }
}
