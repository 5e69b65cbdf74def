namespace Tulip;

/// <summary>
/// A callback scheduled on the loop (asyncio.Handle). <see cref="Cancel"/> keeps it from running if it
/// has not run yet. Handles are loop-affine: cancel them on the loop's thread.
/// </summary>
public abstract class Handle
{
    // Life of a handle: Parked (registered, not queued: a future's done-callback) -> Queued -> Done,
    // or -> Cancelled from Parked/Queued.
    internal const byte Parked = 0, Queued = 1, Finished = 2, CancelledState = 3;

    internal readonly EventLoop Loop;

    // The id (bits 0-61: slot and stamp, see HandleTable) and the state (bits 62-63) share one word, so
    // a handle is 40 bytes: what keeps a queued callback within 64 bytes with its slot and queue entry.
    private long _bits;
    private const long IdMask = (1L << 62) - 1;

    internal long Id
    {
        get => _bits & IdMask;
        set => _bits = (_bits & ~IdMask) | (value & IdMask);
    }

    internal byte State
    {
        get => (byte)((ulong)_bits >> 62);
        set => _bits = (_bits & IdMask) | ((long)value << 62);
    }

    internal bool IsTimer => this is TimerHandle;

    private protected Handle(EventLoop loop) => Loop = loop;

    /// <summary>Keeps the callback from running. Cancelling twice, or after it ran, does nothing. On the
    /// loop's thread (from another, post the cancel with <see cref="EventLoop.CallSoonThreadsafe(Action)"/>).</summary>
    public void Cancel()
    {
        Loop.VerifyAccess();
        Loop.CancelHandle(this);
    }

    /// <summary>Whether <see cref="Cancel"/> was called before the callback ran.</summary>
    public bool Cancelled
    {
        get
        {
            Loop.VerifyAccess();
            return State == CancelledState;
        }
    }

    /// <summary>Runs the callback. Exceptions go to the loop's exception handler (the caller's job).</summary>
    internal abstract void Invoke();

    /// <summary>Drops the callback and its state once cancelled, so a handle the user still holds keeps
    /// neither alive (asyncio's <c>Handle.cancel</c>: <c>_callback = _args = None</c>; issue 13.5).</summary>
    internal virtual void DropCallback() { }

    /// <summary>What the callback is, for messages (asyncio's handle repr).</summary>
    internal abstract string Describe();

    public override string ToString() =>
        $"<{GetType().Name.Split('`')[0]} {(State == CancelledState ? "cancelled " : "")}{Describe()}>";
}

/// <summary>
/// A handle scheduled for a time (asyncio.TimerHandle), with its deadline. Handles order by
/// <see cref="When"/> as asyncio's do (<c>&lt;</c>, <c>&gt;</c>; <c>&lt;=</c> and <c>&gt;=</c> are
/// "earlier (later) or equal"); equality stays identity, where asyncio compares callback and arguments.
/// </summary>
public abstract class TimerHandle : Handle, IComparable<TimerHandle>
{
    internal long Deadline;

    private protected TimerHandle(EventLoop loop, long deadline) : base(loop) => Deadline = deadline;

    /// <summary>The loop time, in seconds, at which the callback is due (asyncio's <c>when()</c>); fixed, any thread.</summary>
    [ThreadSafe]
    public double When => Core.Time.toSeconds(Deadline);

    /// <summary>The deadline as loop time; fixed, any thread.</summary>
    [ThreadSafe]
    public TimeSpan WhenTime => TimeSpan.FromTicks(Deadline);

    /// <summary>Orders by deadline (asyncio's comparisons use <c>when</c> alone).</summary>
    // Comparisons read only the deadline, fixed at creation: any thread may compare. A null handle
    // sorts before every handle (as Comparer<T>.Default orders nulls), never a NullReferenceException.
    [ThreadSafe]
    public int CompareTo(TimerHandle? other) => other is null ? 1 : Deadline.CompareTo(other.Deadline);

    private static int Order(TimerHandle? a, TimerHandle? b) => a is null ? (b is null ? 0 : -1) : a.CompareTo(b);

    [ThreadSafe]
    public static bool operator <(TimerHandle? a, TimerHandle? b) => Order(a, b) < 0;

    [ThreadSafe]
    public static bool operator >(TimerHandle? a, TimerHandle? b) => Order(a, b) > 0;

    // asyncio: __le__ is `<` or `==` (the same handle here), so equal deadlines of two handles are not <=.
    [ThreadSafe]
    public static bool operator <=(TimerHandle? a, TimerHandle? b) => ReferenceEquals(a, b) || Order(a, b) < 0;

    [ThreadSafe]
    public static bool operator >=(TimerHandle? a, TimerHandle? b) => ReferenceEquals(a, b) || Order(a, b) > 0;
}

internal sealed class ActionHandle(EventLoop loop, Action callback) : Handle(loop)
{
    private Action? _callback = callback;
    internal override void Invoke() => _callback!();
    internal override void DropCallback() => _callback = null;
    internal override string Describe() => _callback is null ? "" : Diagnostics.Naming.Of(_callback);
}

internal sealed class StateHandle<TState>(EventLoop loop, Action<TState> callback, TState state) : Handle(loop)
{
    private Action<TState>? _callback = callback;
    internal Delegate? Callback => _callback;
    private TState _state = state;
    internal override void Invoke() => _callback!(_state);

    internal override void DropCallback()
    {
        _callback = null;
        _state = default!;
    }

    internal override string Describe() => _callback is null ? "" : Diagnostics.Naming.Of(_callback);
}

internal sealed class ActionTimerHandle(EventLoop loop, long deadline, Action callback) : TimerHandle(loop, deadline)
{
    private Action? _callback = callback;
    internal override void Invoke() => _callback!();
    internal override void DropCallback() => _callback = null;
    internal override string Describe() => $"when={When:0.000}{(_callback is null ? "" : " " + Diagnostics.Naming.Of(_callback))}";
}

internal sealed class StateTimerHandle<TState>(EventLoop loop, long deadline, Action<TState> callback, TState state)
    : TimerHandle(loop, deadline)
{
    private Action<TState>? _callback = callback;
    private TState _state = state;
    internal override void Invoke() => _callback!(_state);

    internal override void DropCallback()
    {
        _callback = null;
        _state = default!;
    }

    internal override string Describe() => $"when={When:0.000}{(_callback is null ? "" : " " + Diagnostics.Naming.Of(_callback))}";
}

/// <summary>
/// The continuation of an await that no task owns (code outside a task, or a call a task's coroutine
/// did not await): it runs as a plain callback, with no current task, in the synchronization context
/// that was current when it was registered — so a .NET await further down that path still comes back
/// to the loop, as .NET resumes a fire-and-forget async method on the context it started on.
/// </summary>
internal sealed class ContinuationHandle(EventLoop loop, Action continuation, SynchronizationContext? context) : Handle(loop)
{
    internal override void Invoke() => RunFree(Loop, context, static c => c(), continuation);

    /// <summary>Runs code no task owns: no current task, <paramref name="context"/> current, both restored after.</summary>
    internal static void RunFree<TState>(EventLoop loop, SynchronizationContext? context, Action<TState> action, TState state)
    {
        var previousTask = loop.CurrentTaskInternal;
        var previousContext = SynchronizationContext.Current;
        loop.CurrentTaskInternal = null;
        if (!ReferenceEquals(previousContext, context)) SynchronizationContext.SetSynchronizationContext(context);
        try
        {
            action(state);
        }
        finally
        {
            loop.CurrentTaskInternal = previousTask;
            if (!ReferenceEquals(SynchronizationContext.Current, previousContext)) SynchronizationContext.SetSynchronizationContext(previousContext);
        }
    }

    internal override string Describe() => Diagnostics.Naming.Of(continuation);
}
