using Tulip.Core;
using Tulip.Core.Interop;

namespace Tulip;

/// <summary>What every task offers, whatever its result type (asyncio.Task's own methods). Loop-affine
/// except where marked <see cref="ThreadSafeAttribute"/>.</summary>
public interface ILoopTask
{
    /// <summary>The task's name; any thread may read it, set it on the loop's.</summary>
    string Name { [ThreadSafe] get; set; }

    /// <summary>Whether the task is done (a snapshot; any thread).</summary>
    bool Done { [ThreadSafe] get; }

    /// <summary>Whether the task ended cancelled (a snapshot; any thread).</summary>
    bool Cancelled { [ThreadSafe] get; }

    /// <summary>The task's loop (fixed; any thread).</summary>
    EventLoop Loop { [ThreadSafe] get; }

    /// <summary>Requests cancellation (asyncio 3.11 <c>Task.cancel(msg)</c>); from another thread it is
    /// posted to the loop (see <see cref="Future.Cancel"/>).</summary>
    [ThreadSafe]
    bool Cancel(string? message = null);

    /// <summary>How many cancellation requests are outstanding (asyncio's <c>cancelling()</c>).</summary>
    int Cancelling();

    /// <summary>Takes one cancellation request back; returns the remaining count (asyncio's <c>uncancel()</c>).</summary>
    int Uncancel();

    /// <summary>Fires when the task is first asked to cancel, so .NET APIs awaited inside it stop too.</summary>
    CancellationToken CancellationToken { get; }

    /// <summary>The task as a future (for Gather, Wait and friends); any thread.</summary>
    [ThreadSafe]
    Future AsFuture();
}

internal interface ILoopTaskInternal
{
    bool TryAwait(Future future, Action continuation);
    bool TryYield(Action continuation);
    void ThrowPendingCancellation();
}

/// <summary>
/// asyncio.Task: drives a coroutine (a C# async method, an F# <c>task { }</c>) one step per loop
/// callback. Every decision is the core's <c>TaskState</c> (its phase, must-cancel, the cancel count,
/// the step's last await, a cancellation still owed to the coroutine, a cancel coming back round a
/// cycle; its doc comment states the invariant): this class keeps the coroutine, its continuation and
/// its waiter, asks <c>TaskCore</c> at each event and applies the answer.
/// <para>How C# awaits map onto steps: awaiting a loop future registers the task's wake-up as that
/// future's done-callback; awaiting anything else (a .NET Task) posts its continuation to the task's
/// own <see cref="SynchronizationContext"/>, which schedules it on the loop thread. Awaits of nested
/// async methods complete inline, as <c>await coro()</c> does in Python.</para>
/// </summary>
public class LoopTask<T> : Future<T>, ILoopTask, ILoopTaskInternal
{
    private static int s_counter;

    private TaskState _ts = TaskCore.Created;
    private readonly Func<Task<T>>? _coroutine;
    private readonly Func<Task>? _voidCoroutine;
    private Task? _running;
    private Action? _continuation;
    private Future? _waiter;
    private readonly StepHandle _stepHandle;
    private readonly TaskContext _context;
    private CancellationTokenSource? _cts;

    // The ExecutionContext the coroutine starts in: its creator's (asyncio tasks copy the contextvars
    // context; issue 13.9), or the one given to CreateTask. Later steps run in the coroutine's own.
    internal ExecutionContext? StartContext = ExecutionContext.Capture();

    /// <summary>A task of <paramref name="coroutine"/>, its first step scheduled; for task types made by an
    /// <see cref="ITaskFactory"/> (otherwise use <see cref="EventLoop.CreateTask{T}(Func{Task{T}}, string?)"/>).</summary>
    protected internal LoopTask(EventLoop loop, Func<Task<T>> coroutine, string? name) : this(loop, name) => _coroutine = coroutine;

    private protected LoopTask(EventLoop loop, Func<Task> coroutine, string? name) : this(loop, name) => _voidCoroutine = coroutine;

    private LoopTask(EventLoop loop, string? name) : base(loop)
    {
        _name = name;
        _number = Interlocked.Increment(ref s_counter);
        _stepHandle = new StepHandle(loop, this);
        _context = new TaskContext(this);
        loop.TaskStarted(this);
        loop.EnqueueSoon(_stepHandle);
    }

    private string? _name;
    private readonly int _number;

    /// <summary>The task's name; "Task-N" unless given (made on first use, so unnamed tasks cost no string).
    /// Any thread may read it (a race makes the same string twice); set it on the loop's.</summary>
    public string Name
    {
        [ThreadSafe]
        get => _name ??= $"Task-{_number}";
        set { LoopRef.VerifyAccess(); _name = value ?? throw new ArgumentNullException(nameof(value)); }
    }

    /// <summary>Tasks are completed by their coroutine only: <c>SetResult</c> is refused, as in asyncio.</summary>
    public override void SetResult(T result) => throw new EventLoopException("Task does not support set_result operation");

    public override void SetException(Exception exception) => throw new EventLoopException("Task does not support set_exception operation");

    /// <summary>
    /// Requests cancellation (asyncio 3.11 <c>Task.cancel(msg)</c>). Thread-safe: from a thread other
    /// than the running loop's the request is posted to the loop, as <c>call_soon_threadsafe(task.cancel)</c>
    /// (see <see cref="Future.Cancel"/>), so a <see cref="System.Threading.CancellationToken"/> callback may call it.
    /// </summary>
    private protected override bool CancelOnLoop(string? message)
    {
        // Tasks that await each other in a cycle would cancel each other forever (CPython: RecursionError;
        // here: a stack overflow that kills the process). The core refuses a cancel that comes back round
        // to this task while it cancels its waiter (BeingCancelled).
        var decision = TaskCore.Cancel(_ts, message, out _ts);
        if (decision is TaskCancelDecision.AlreadyDone or TaskCancelDecision.BeingCancelled) return false;
        if (decision == TaskCancelDecision.CancelWaiter)
        {
            bool accepted = false;
            try
            {
                accepted = _waiter is { } waiter && waiter.Cancel(message);
            }
            finally
            {
                _ts = TaskCore.WaiterCancelOutcome(_ts, accepted);
            }
        }

        if (_cts is { IsCancellationRequested: false } cts)
        {
            try
            {
                cts.Cancel();
            }
            catch (AggregateException e)
            {
                LoopRef.CallExceptionHandler(new ExceptionContext("Exception in a cancellation callback", e) { Future = this });
            }
        }

        return true;
    }

    public int Cancelling() { LoopRef.VerifyAccess(); return TaskCore.Cancelling(_ts); }

    public int Uncancel()
    {
        LoopRef.VerifyAccess();
        _ts = TaskCore.Uncancel(_ts, out int remaining);
        return remaining;
    }

    public CancellationToken CancellationToken
    {
        get
        {
            LoopRef.VerifyAccess();
            if (_cts is null)
            {
                _cts = new CancellationTokenSource();
                if (TaskCore.Cancelling(_ts) > 0) _cts.Cancel();
            }

            return _cts.Token;
        }
    }

    /// <summary>The task itself, as a future (any thread).</summary>
    [ThreadSafe]
    public Future AsFuture() => this;

    // asyncio's repr: <Task pending name='Task-1'>, 'cancelling' once a cancel was requested.
    private protected override string StateText
    {
        get
        {
            if (!Done) return (TaskCore.Cancelling(_ts) > 0 ? "cancelling" : "pending") + $" name='{Name}'";
            var text = base.StateText; // "finished result=…", "cancelled", "exception=…"
            int space = text.IndexOf(' ');
            return space < 0 ? $"{text} name='{Name}'" : $"{text[..space]} name='{Name}'{text[space..]}";
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Steps

    /// <summary>The task's step (asyncio's <c>__step</c>, and <c>__wakeup</c> when it was waiting), run by
    /// its step handle: a loop future's wake-up, a yield's next tick, or the first step.</summary>
    internal void Step() =>
        Step(_waiter is { Cancelled: true } ? TaskStepOrigin.FromCancelledWaiter : TaskStepOrigin.FromLoop);

    private void Step(TaskStepOrigin origin)
    {
        var action = TaskCore.StepArrives(ref _ts, origin, out _);
        if (action == TaskStepStart.LeftoverFree)
        {
            // The coroutine ended outside a step while this wake-up was pending: what it would have
            // resumed was not the coroutine's own wait but an un-awaited call's, which runs on freely.
            RunLeftoverFree();
            return;
        }

        _waiter = null;
        if (action == TaskStepStart.NeverStarted)
        {
            // Cancelled before it ever ran: the body never runs.
            Finish();
            return;
        }

        // ResumeCancelled: the core now owes the coroutine that cancellation (TaskState.ThrowIn); the
        // awaiter's GetResult raises it (ThrowPendingCancellation).
        var loop = LoopRef;
        var previousTask = loop.CurrentTaskInternal;
        var previousContext = SynchronizationContext.Current;
        loop.CurrentTaskInternal = this;
        SynchronizationContext.SetSynchronizationContext(_context);
        try
        {
            if (action == TaskStepStart.FirstRun)
            {
                StartCoroutine();
            }
            else
            {
                var c = _continuation;
                _continuation = null;
                c?.Invoke();
            }
        }
        finally
        {
            loop.CurrentTaskInternal = previousTask;
            SynchronizationContext.SetSynchronizationContext(previousContext);
        }

        AfterStep();
    }

    private void StartCoroutine()
    {
        var ec = StartContext;
        StartContext = null;
        // Already current (no AsyncLocal anywhere, the common case): no switch to pay for.
        if (ec is null || ReferenceEquals(ec, ExecutionContext.Capture())) StartCoroutineHere();
        else ExecutionContext.Run(ec, static s => ((LoopTask<T>)s!).StartCoroutineHere(), this);
    }

    private void StartCoroutineHere()
    {
        try
        {
            _running = _coroutine is not null ? _coroutine() : _voidCoroutine!();
        }
        catch (Exception e)
        {
            // A coroutine function that is not async may throw before returning its Task.
            _running = Task.FromException(e);
        }

        _running ??= Task.FromException(new InvalidOperationException("the coroutine function returned null"));
        if (!_running.IsCompleted)
        {
            // The task is done when its coroutine is, wherever that happens: inside one of its steps
            // (the step's end sees it), inside code the task does not own (a free continuation that
            // completed what the coroutine awaited), or on another thread. Registered while the task's
            // context is current, the hook runs inline where that context is current (the task's steps
            // and its free continuations) and is posted back to the loop from anywhere else; either way
            // it runs on the loop's thread. (Not ConfigureAwait(false): .NET does not inline such a
            // continuation under a synchronization context, it would go to the thread pool.)
            _running.GetAwaiter().UnsafeOnCompleted(CoroutineCompleted);
        }
    }

    private Action CoroutineCompleted => _coroutineCompleted ??= FinishOutside;
    private Action? _coroutineCompleted;

    /// <summary>The coroutine ended: between steps the core decides the outcome here
    /// (TaskState.finishOutside); inside the task's own step, the step's end finishes it.</summary>
    private void FinishOutside()
    {
        var (how, message, error) = EndingOf(_running!);
        // Refused while the task's step runs (the step's end finishes it) and once it is finished.
        if (!TaskCore.TryFinishOutside(ref _ts, how, message!)) return;
        if (how == TaskStepEnd.Raised) StoredExceptionForFinish = error;
        CompleteFromCore();
    }

    private void AfterStep()
    {
        if (_running is { IsCompleted: true })
        {
            Finish();
            return;
        }

        // The task suspends on the step's last await (the core kept it); outside the loop (no loop
        // await), its continuation will be posted to our context.
        switch (TaskCore.Suspend(ref _ts, out string? message))
        {
            case TaskSuspension.WaitsOnFutureCancelIt:
                _ts = TaskCore.WaiterCancelOutcome(_ts, _waiter is { } w && w.Cancel(message));
                break;
            case TaskSuspension.Yields:
                LoopRef.EnqueueSoon(_stepHandle);
                break;
        }
    }

    /// <summary>The coroutine is over: the core decides the outcome, then the future is completed.</summary>
    private void Finish()
    {
        if (!TaskCore.IsDone(_ts))
        {
            // A cancellation still owed to a coroutine that returned ends the task cancelled, unless the
            // coroutine saw it through the token (the core decides: TaskState.endStep).
            var (how, message, error) = EndingOf(_running!);
            _ts = TaskCore.EndStep(_ts, how, message!, out _, out _);
            if (how == TaskStepEnd.Raised) StoredExceptionForFinish = error;
        }

        CompleteFromCore();
    }

    /// <summary>How the coroutine's Task ended, in the core's terms: returned, raised a cancellation, raised.</summary>
    private static (TaskStepEnd How, string? Message, Exception? Error) EndingOf(Task t)
    {
        if (t.IsCanceled) return (TaskStepEnd.RaisedCancellation, CancelMessageOf(t), null);
        if (t.IsFaulted)
        {
            var error = t.Exception!.InnerExceptions.Count == 1 ? t.Exception.InnerException! : t.Exception;
            if (error is OperationCanceledException oce) return (TaskStepEnd.RaisedCancellation, (oce as CancelledException)?.CancelMessage, null);
            return (TaskStepEnd.Raised, null, error);
        }

        return (TaskStepEnd.Returned, null, null);
    }

    /// <summary>Completes the future with the outcome the core decided.</summary>
    private void CompleteFromCore()
    {
        var outcome = TaskCore.Outcome(_ts, out string? cancelMessage);
        LoopRef.TaskFinished(this);
        _cts?.Dispose();
        switch (outcome)
        {
            case TaskOutcome.Succeeded:
                SetResultCore(_running is Task<T> typed ? typed.Result : default!);
                break;
            case TaskOutcome.Faulted:
                SetExceptionCore(StoredExceptionForFinish!);
                break;
            default:
                CancelCore(cancelMessage);
                break;
        }
    }

    private Exception? StoredExceptionForFinish;

    private static string? CancelMessageOf(Task t)
    {
        try
        {
            t.GetAwaiter().GetResult();
        }
        catch (CancelledException e)
        {
            return e.CancelMessage;
        }
        catch (Exception)
        {
        }

        return null;
    }

    // ---------------------------------------------------------------------------------------------
    // What awaiters tell the task (ILoopTaskInternal)

    bool ILoopTaskInternal.TryAwait(Future future, Action continuation)
    {
        var answer = TaskCore.AwaitIn(ref _ts, TaskAwaitKind.Future);
        if (answer == TaskAwaitAnswer.NotInStep) return false;
        ReleaseDisplaced(answer);
        _waiter = future;
        _continuation = continuation;
        future.AddParked(_stepHandle);
        return true;
    }

    bool ILoopTaskInternal.TryYield(Action continuation)
    {
        var answer = TaskCore.AwaitIn(ref _ts, TaskAwaitKind.Yield);
        if (answer == TaskAwaitAnswer.NotInStep) return false;
        ReleaseDisplaced(answer);
        _continuation = continuation;
        return true;
    }

    /// <summary>
    /// A second wait in one step (DESIGN.md, "whose continuation is it"): the coroutine stops at the
    /// last await of a step, so the earlier one was made by a call it did not await (fire-and-forget).
    /// The core says which kind was displaced; its continuation is handed back to the loop as a free
    /// one (no task, the task's context), to run when its future is done (or on the next tick, for a yield).
    /// </summary>
    private void ReleaseDisplaced(TaskAwaitAnswer answer)
    {
        var c = _continuation;
        _continuation = null;
        if (c is null) return;
        switch (answer)
        {
            case TaskAwaitAnswer.ParkedDisplacingFuture:
                ReleaseWait(c);
                break;
            case TaskAwaitAnswer.ParkedDisplacingYield:
                LoopRef.EnqueueSoon(new ContinuationHandle(LoopRef, c, _context));
                break;
        }
    }

    /// <summary>Moves the continuation parked on the task's waiter off the task: a free one on that future.</summary>
    private void ReleaseWait(Action c)
    {
        if (_waiter is not { } earlier) return;
        earlier.RemoveParked(_stepHandle);
        earlier.AddParked(new ContinuationHandle(LoopRef, c, _context));
        _waiter = null;
    }

    /// <summary>A wake-up that came after the task finished: its continuation runs free, now.</summary>
    private void RunLeftoverFree()
    {
        var c = _continuation;
        _continuation = null;
        if (c is not null) ContinuationHandle.RunFree(LoopRef, _context, static c => c(), c);
    }

    void ILoopTaskInternal.ThrowPendingCancellation()
    {
        if (TaskCore.TakeThrowIn(ref _ts, out string? message)) throw new CancelledException(message);
    }

    /// <summary>A continuation posted to the task's context from outside the loop (a .NET Task's).</summary>
    internal void ResumeExternal(SendOrPostCallback callback, object? state)
    {
        switch (TaskCore.ResumeOutside(_ts, IsCoroutineContinuation(state)))
        {
            case TaskOutsideResume.ReleaseWaitThenResume:
                // The step's last loop await was an un-awaited call's, and the coroutine itself awaited
                // a .NET task, which completes now: that loop wait is released to run on freely, and
                // the task resumes (with no cancellation coming in from the released wait).
                var c = _continuation;
                _continuation = null;
                if (c is not null) ReleaseWait(c);
                goto case TaskOutsideResume.Resume;
            case TaskOutsideResume.Resume:
                _continuation = () => callback(state);
                // After the token fired, the awaited operation has seen the cancellation through it.
                Step(_cts is { IsCancellationRequested: true } ? TaskStepOrigin.FromOutsideAfterToken : TaskStepOrigin.FromOutside);
                return;
        }

        // Not the task's own await (a side path of an async call nobody awaited): it runs free, in the task's context.
        ContinuationHandle.RunFree(LoopRef, _context, static s => s.callback(s.state), (callback, state));
    }

    /// <summary>
    /// Whether a continuation posted to the task's context resumes the coroutine itself (not a helper
    /// it called): .NET posts an await's continuation as the awaiting method's MoveNext delegate, whose
    /// target is that method's Task. Anything else (another shape, another method) says "don't know".
    /// </summary>
    private bool IsCoroutineContinuation(object? state) =>
        state is Delegate d && _running is { } running && ReferenceEquals(d.Target, running);

    /// <summary>The task's one reusable handle: its steps and wake-ups.</summary>
    private sealed class StepHandle(EventLoop loop, LoopTask<T> task) : Handle(loop)
    {
        internal override void Invoke() => task.Step();
        internal override string Describe() => $"step of {task}";
    }

    /// <summary>The task's synchronization context: .NET continuations come back as steps of this task.</summary>
    private sealed class TaskContext(LoopTask<T> task) : SynchronizationContext
    {
        public override void Post(SendOrPostCallback d, object? state)
        {
            var loop = task.LoopRef;
            if (loop.IsClosed) return;
            if (loop.IsOnLoopThread)
            {
                // Already on the loop (a .NET continuation completed by loop code): no lock, no wake.
                loop.CallSoon(static s => s.task.ResumeExternal(s.d, s.state), (task, d, state));
                return;
            }

            loop.CallSoonThreadsafe(static s => s.task.ResumeExternal(s.d, s.state), (task, d, state));
        }

        public override void Send(SendOrPostCallback d, object? state)
        {
            if (task.LoopRef.IsOnLoopThread)
            {
                d(state);
                return;
            }

            throw new NotSupportedException("Send to a loop task's context from another thread");
        }

        public override SynchronizationContext CreateCopy() => this;
    }
}

/// <summary>A task of a coroutine with no result (its result is an empty <see cref="ValueTuple"/>).
/// Not sealed: an <see cref="ITaskFactory"/> may make its own task type.</summary>
public class LoopTask : LoopTask<ValueTuple>
{
    protected internal LoopTask(EventLoop loop, Func<Task> coroutine, string? name) : base(loop, coroutine, name) { }
}
