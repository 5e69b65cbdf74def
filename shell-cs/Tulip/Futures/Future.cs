using System.Runtime.CompilerServices;
using Tulip.Core;
using Tulip.Core.Interop;

namespace Tulip;

/// <summary>
/// asyncio.Future without its result type: the state (pending, result, exception, cancelled), the
/// done-callbacks and cancellation. The transitions are the core's (<c>FutureState</c>); this class only
/// keeps the values and applies what the core decides. Loop-affine: complete it, read its outcome and
/// manage its callbacks on the loop's thread (from another thread use
/// <see cref="EventLoop.CallSoonThreadsafe(Action)"/>); <see cref="Done"/> and <see cref="Cancelled"/> are
/// snapshots any thread may read, and a continuation registered by an await from another thread is
/// marshalled to the loop.
/// </summary>
public abstract class Future
{
    private protected readonly EventLoop LoopRef;
    internal FutureState CoreState = FutureCore.Pending;
    private protected System.Exception? StoredException;
    private UnretrievedExceptionReport? _report;

    private protected Future(EventLoop loop)
    {
        ArgumentNullException.ThrowIfNull(loop);
        LoopRef = loop;
    }

    /// <summary>The loop this future belongs to (asyncio's <c>get_loop()</c>); fixed, any thread.</summary>
    [ThreadSafe]
    public EventLoop Loop => LoopRef;

    /// <summary>Has a result, an exception, or was cancelled. A snapshot any thread may read (awaiters do).</summary>
    [ThreadSafe]
    public bool Done => CoreState.IsDone;

    /// <summary>Was cancelled (asyncio's <c>cancelled()</c>); a snapshot any thread may read.</summary>
    [ThreadSafe]
    public bool Cancelled => FutureCore.IsCancelled(CoreState);

    /// <summary>
    /// The exception it ended with, or null if it has a result. Raises <see cref="CancelledException"/>
    /// if cancelled and <see cref="InvalidStateException"/>("Exception is not set.") if not done.
    /// </summary>
    public System.Exception? Exception()
    {
        LoopRef.VerifyAccess();
        if (!Done) throw new InvalidStateException("Exception is not set.");
        if (Cancelled) throw MakeCancelledException();
        MarkRetrieved();
        return StoredException;
    }

    /// <summary>
    /// Cancels a pending future: it becomes cancelled and its callbacks are scheduled. Returns false
    /// (and changes nothing) if it is already done.
    /// <para>Thread-safe: .NET code cancels from any thread (a <see cref="CancellationToken"/>'s
    /// callback, a timer). From a thread other than the running loop's, the cancellation is posted to
    /// the loop (asyncio's <c>loop.call_soon_threadsafe(fut.cancel)</c>) and the result says whether
    /// the future was still pending when it was posted; on a closed loop nothing happens and the
    /// result is false.</para>
    /// </summary>
    [ThreadSafe]
    public bool Cancel(string? message = null)
    {
        // asyncio clears the traceback log first: cancelling a future that holds an exception, even
        // though it refuses (already done), counts as retrieving that exception (issue 13.4).
        MarkRetrieved();
        var loop = LoopRef;
        if (loop.TryEnterHere(out var access))
        {
            using (access) return CancelOnLoop(message);
        }

        if (Done || loop.IsClosed) return false;
        try
        {
            loop.CallSoonThreadsafe(static s => s.Item1.CancelOnLoop(s.Item2), (this, message));
            return true;
        }
        catch (EventLoopException)
        {
            return false; // closed meanwhile
        }
    }

    /// <summary>What <see cref="Cancel"/> does on the loop's thread (tasks and sleeps add to it).</summary>
    private protected virtual bool CancelOnLoop(string? message) => CancelCore(message);

    private protected bool CancelCore(string? message)
    {
        using var access = LoopRef.Enter();
        if (!FutureCore.Cancel(CoreState, message, out var next, out var toSchedule)) return false;
        CoreState = next;
        LoopRef.ScheduleParked(toSchedule);
        return true;
    }

    /// <summary>Sets the exception (asyncio's <c>set_exception</c>).</summary>
    public virtual void SetException(System.Exception exception) => SetExceptionCore(exception);

    private protected void SetExceptionCore(System.Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        using var access = LoopRef.Enter();
        CoreState = Complete(CoreState, faulted: true, out var toSchedule);
        StoredException = exception;
        _report = new UnretrievedExceptionReport(LoopRef, this, exception);
        LoopRef.ScheduleParked(toSchedule);
    }

    private protected static FutureState Complete(FutureState state, bool faulted, out CallbackIds toSchedule)
    {
        try
        {
            return FutureCore.Complete(state, faulted, out toSchedule);
        }
        catch (RejectedInputException e)
        {
            throw new InvalidStateException(e.Message);
        }
    }

    /// <summary>
    /// Adds a callback run (scheduled with call_soon, never inline) when the future is done, with the
    /// future as argument; on a done future it is scheduled at once.
    /// </summary>
    public void AddDoneCallback(Action<Future> callback)
    {
        ArgumentNullException.ThrowIfNull(callback);
        AddParked(new StateHandle<Future>(LoopRef, callback, this));
    }

    /// <summary>Adds a callback with an extra argument (asyncio's <c>functools.partial</c> idiom).</summary>
    public void AddDoneCallback<TState>(Action<Future, TState> callback, TState state)
    {
        ArgumentNullException.ThrowIfNull(callback);
        AddParked(new StateHandle<(Future, Action<Future, TState>, TState)>(
            LoopRef, static s => s.Item2(s.Item1, s.Item3), (this, callback, state)));
    }

    /// <summary>Removes every registration of <paramref name="callback"/>; returns how many there were.</summary>
    public int RemoveDoneCallback(Action<Future> callback)
    {
        ArgumentNullException.ThrowIfNull(callback);
        using var access = LoopRef.Enter();
        int removed = 0;
        foreach (var id in FutureCore.Callbacks(CoreState))
        {
            if (LoopRef.FindHandle(id) is StateHandle<Future> h && h.Callback == (Delegate)callback)
            {
                CoreState = FutureCore.RemoveCallback(CoreState, id, out int n);
                removed += n;
                LoopRef.ReleaseParked(h);
            }
        }

        return removed;
    }

    /// <summary>Registers a handle (not yet queued) to be scheduled when the future is done.</summary>
    internal void AddParked(Handle handle)
    {
        using var access = LoopRef.Enter();
        long id = LoopRef.RegisterParked(handle);
        CoreState = FutureCore.AddCallback(CoreState, id, out bool now);
        if (now) LoopRef.ScheduleParked(id);
    }

    /// <summary>Unregisters a parked handle that was added with <see cref="AddParked"/>.</summary>
    internal void RemoveParked(Handle handle)
    {
        using var access = LoopRef.Enter();
        CoreState = FutureCore.RemoveCallback(CoreState, handle.Id, out _);
        LoopRef.ReleaseParked(handle);
    }

    private protected void MarkRetrieved()
    {
        // Cancel may come from any thread: take the report once.
        if (_report is not null && Interlocked.Exchange(ref _report, null) is { } r) r.Clear();
    }

    // Carries the token when a CancellationToken cancelled this future (TokenLink).
    private protected CancelledException MakeCancelledException() =>
        TokenLink.Cancelled(this, FutureCore.CancelMessage(CoreState));

    /// <summary>The cancel message of a cancelled future (null if none, or not cancelled).</summary>
    internal string? CancelMessageOrNull() => Cancelled ? FutureCore.CancelMessage(CoreState) : null;

    /// <summary>The result as an object (composition functions over futures of any type); the future must have succeeded.</summary>
    internal abstract object? BoxedResult();

    /// <summary>Throws what the future ended with, if it did not succeed (used by awaiters).</summary>
    internal void ThrowIfNotSucceeded()
    {
        if (!Done) throw new InvalidStateException("Result is not set.");
        if (Cancelled) throw MakeCancelledException();
        MarkRetrieved();
        if (StoredException is { } e) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e);
    }

    private protected virtual string StateText =>
        !Done ? "pending" : Cancelled ? "cancelled" : StoredException is { } e ? $"finished exception={e.GetType().Name}('{e.Message}')" : "finished";

    public override string ToString() => $"<{GetType().Name.Split('`')[0]} {StateText}>";
}

/// <summary>An asyncio.Future with a result of type <typeparamref name="T"/>.</summary>
public class Future<T> : Future
{
    private protected T? Value;

    /// <summary>A pending future on <paramref name="loop"/> (asyncio: <c>loop.create_future()</c>). Any thread:
    /// making one touches no loop state.</summary>
    [ThreadSafe]
    public Future(EventLoop loop) : base(loop) { }

    /// <summary>
    /// The result. Raises the stored exception, <see cref="CancelledException"/> if cancelled, or
    /// <see cref="InvalidStateException"/>("Result is not set.") if not done.
    /// </summary>
    public T Result()
    {
        LoopRef.VerifyAccess();
        return ResultChecked();
    }

    /// <summary>The result, the thread already checked (awaiters check once per await).</summary>
    internal T ResultChecked()
    {
        ThrowIfNotSucceeded();
        return Value!;
    }

    /// <summary>Sets the result and schedules the callbacks; <see cref="InvalidStateException"/> if done.</summary>
    public virtual void SetResult(T result) => SetResultCore(result);

    private protected void SetResultCore(T result)
    {
        using var access = LoopRef.Enter();
        CoreState = Complete(CoreState, faulted: false, out var toSchedule);
        Value = result;
        LoopRef.ScheduleParked(toSchedule);
    }

    /// <summary>Awaits the future and gives its result (any thread may take the awaiter).</summary>
    [ThreadSafe]
    public FutureAwaiter<T> GetAwaiter() => new(this);

    internal override object? BoxedResult() => Result();

    private protected override string StateText =>
        Done && !Cancelled && StoredException is null ? (Value is string s ? $"finished result='{s}'" : $"finished result={Value}") : base.StateText;
}

/// <summary>
/// Awaiting a future of unknown result type. An extension, not an instance method: with one
/// GetAwaiter per type, F#'s <c>task { let! … }</c> resolves <see cref="Future{T}"/> without ambiguity.
/// </summary>
public static class FutureAwaiting
{
    /// <summary>Awaits the future: inside a task, the task resumes in a later tick (any thread may take the awaiter).</summary>
    [ThreadSafe]
    public static FutureAwaiter GetAwaiter(this Future future)
    {
        ArgumentNullException.ThrowIfNull(future);
        return new(future);
    }
}

/// <summary>
/// The awaiter of a <see cref="Future"/>. Registering a continuation works from any thread (from another
/// one it is marshalled, and resumes on the loop's thread); the outcome is read on the loop's thread.
/// </summary>
public readonly struct FutureAwaiter : ICriticalNotifyCompletion
{
    private readonly Future _future;
    internal FutureAwaiter(Future future) => _future = future;

    /// <summary>Whether the future is done (a snapshot; any thread), or the await is refused (a task
    /// awaiting itself, a future of another loop): then GetResult raises at once.</summary>
    [ThreadSafe]
    public bool IsCompleted => _future.Done || _future.Loop.RefusesAwait(_future);

    public void GetResult()
    {
        _future.Loop.VerifyAccess(); // before anything: a foreign thread must not take a task's pending cancel
        _future.Loop.ThrowPendingCancellation();
        if (!_future.Done) _future.Loop.ThrowRefusedAwait(_future);
        _future.ThrowIfNotSucceeded();
    }

    /// <summary>Resumes <paramref name="continuation"/> when the future is done; from another thread, on the loop's.</summary>
    [ThreadSafe]
    public void OnCompleted(Action continuation) => _future.Loop.AwaitFuture(_future, continuation ?? throw new ArgumentNullException(nameof(continuation)));

    /// <inheritdoc cref="OnCompleted"/>
    [ThreadSafe]
    public void UnsafeOnCompleted(Action continuation) => _future.Loop.AwaitFuture(_future, continuation ?? throw new ArgumentNullException(nameof(continuation)));
}

/// <summary>The awaiter of a <see cref="Future{T}"/> (threads: as <see cref="FutureAwaiter"/>).</summary>
public readonly struct FutureAwaiter<T> : ICriticalNotifyCompletion
{
    private readonly Future<T> _future;
    internal FutureAwaiter(Future<T> future) => _future = future;

    /// <summary>Whether the future is done (a snapshot; any thread), or the await is refused (a task
    /// awaiting itself, a future of another loop): then GetResult raises at once.</summary>
    [ThreadSafe]
    public bool IsCompleted => _future.Done || _future.Loop.RefusesAwait(_future);

    public T GetResult()
    {
        _future.Loop.VerifyAccess();
        _future.Loop.ThrowPendingCancellation();
        if (!_future.Done) _future.Loop.ThrowRefusedAwait(_future);
        return _future.ResultChecked();
    }

    /// <summary>Resumes <paramref name="continuation"/> when the future is done; from another thread, on the loop's.</summary>
    [ThreadSafe]
    public void OnCompleted(Action continuation) => _future.Loop.AwaitFuture(_future, continuation ?? throw new ArgumentNullException(nameof(continuation)));

    /// <inheritdoc cref="OnCompleted"/>
    [ThreadSafe]
    public void UnsafeOnCompleted(Action continuation) => _future.Loop.AwaitFuture(_future, continuation ?? throw new ArgumentNullException(nameof(continuation)));
}
