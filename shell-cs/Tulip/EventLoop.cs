using System.Runtime.CompilerServices;
using Tulip.Core;
using Tulip.Core.Interop;
using Tulip.Scheduling;

namespace Tulip;

/// <summary>
/// asyncio's event loop: one thread runs callbacks, timers and task steps, in the order the pure core
/// (Tulip.Core, <c>Loop.step</c>) decides. This class keeps what the core must not see — the callbacks,
/// the clock, the thread — in tables indexed by id, batches each tick's inputs into one core call, and
/// applies the effects in order. It has no ordering logic of its own.
/// </summary>
public sealed partial class EventLoop : IDisposable, IArrivalProbe
{
    [ThreadStatic] private static EventLoop? t_running;

    private readonly LoopClock _clock;
    private readonly ITickScheduler _sched;
    private readonly HandleTable _table = new();

    // Callbacks from other threads (call_soon_threadsafe), taken in at the start of a tick.
    private readonly object _inboxLock = new();
    private List<Handle> _inbox = new(), _inboxSpare = new();
    private volatile bool _inboxNonEmpty;

    private int _threadId = -1;
    private ExceptionHandler? _exceptionHandler;
    private int _externalPending;

    /// <summary>A loop on the real monotonic clock. Any thread may make one (the thread that runs it owns it).</summary>
    [ThreadSafe]
    public EventLoop() : this(new MonotonicClock()) { }

    /// <summary>A loop on the given clock (Tulip.Testing's virtual clock, for instance) and scheduler; any thread may make one.</summary>
    [ThreadSafe]
    public EventLoop(LoopClock clock, SchedulerKind scheduler = SchedulerKind.Fast)
    {
        ArgumentNullException.ThrowIfNull(clock);
        _clock = clock;
        long now = clock.Now;
        _sched = scheduler == SchedulerKind.Model ? new CoreScheduler(now) : new MutableScheduler(now);
        _tickNow = now;
        Scheduler = scheduler;
        TimeProvider = new LoopTimeProvider(this);
    }

    /// <summary>A loop whose scheduler records every input and answer (tests: the record of a run
    /// replayed through the pure core).</summary>
    internal EventLoop(LoopClock clock, Func<long, ITickScheduler> scheduler, SchedulerKind kind)
    {
        ArgumentNullException.ThrowIfNull(clock);
        _clock = clock;
        _tickNow = clock.Now;
        _sched = scheduler(_tickNow);
        Scheduler = kind;
        TimeProvider = new LoopTimeProvider(this);
    }

    /// <summary>Which scheduler the loop runs on: the pure core (Model) or its proven twin (Fast). Fixed; any thread.</summary>
    [ThreadSafe]
    public SchedulerKind Scheduler { get; }

    /// <summary>The clock the loop runs on (fixed; any thread).</summary>
    [ThreadSafe]
    public LoopClock Clock => _clock;

    /// <summary>Loop time in seconds, monotonic (asyncio's <c>loop.time()</c>). Any thread.</summary>
    [ThreadSafe]
    public double Time() => Core.Time.toSeconds(_clock.Now);

    /// <summary>Loop time as a <see cref="TimeSpan"/> since the loop's clock started. Any thread.</summary>
    [ThreadSafe]
    public TimeSpan Now => TimeSpan.FromTicks(_clock.Now);

    /// <summary>A <see cref="System.TimeProvider"/> whose time and timers are the loop's, so
    /// <c>Task.Delay(d, loop.TimeProvider)</c> and <c>PeriodicTimer</c> obey loop (and virtual) time.
    /// Any thread (its timers are set up through the loop's thread-safe door).</summary>
    [ThreadSafe]
    public TimeProvider TimeProvider { get; }

    /// <summary>Whether the loop is running (a snapshot; any thread).</summary>
    [ThreadSafe]
    public bool IsRunning => _sched.IsRunning;

    /// <summary>Whether the loop is closed (a snapshot; any thread).</summary>
    [ThreadSafe]
    public bool IsClosed => _sched.IsClosed;

    /// <summary>Debug mode (asyncio's <c>set_debug</c>): reports slow callbacks. A flag the loop reads at
    /// each callback, so any thread may set it; it takes effect from the next callback.</summary>
    [ThreadSafe]
    public bool Debug { get; set; }

    /// <summary>In debug mode, a callback running longer than this is reported (asyncio: 0.1 s). Any thread,
    /// as <see cref="Debug"/>.</summary>
    [ThreadSafe]
    public TimeSpan SlowCallbackDuration { get; set; } = TimeSpan.FromMilliseconds(100);


    // ---------------------------------------------------------------------------------------------
    // Scheduling

    /// <summary>Runs <paramref name="callback"/> on the next tick, after the callbacks already queued.</summary>
    public Handle CallSoon(Action callback)
    {
        ArgumentNullException.ThrowIfNull(callback);
        if (Debug) CheckNotCoroutine(callback, "CallSoon");
        var h = new ActionHandle(this, callback);
        EnqueueSoon(h);
        return h;
    }

    /// <summary>call_soon with an argument, allocating no closure.</summary>
    public Handle CallSoon<TState>(Action<TState> callback, TState state)
    {
        ArgumentNullException.ThrowIfNull(callback);
        if (Debug) CheckNotCoroutine(callback, "CallSoon");
        var h = new StateHandle<TState>(this, callback, state);
        EnqueueSoon(h);
        return h;
    }

    /// <summary>Runs <paramref name="callback"/> after <paramref name="delaySeconds"/> of loop time.</summary>
    public TimerHandle CallLater(double delaySeconds, Action callback) =>
        CallAtTicks(Core.Time.addSaturating(_clock.Now, DelayTicks(delaySeconds)), callback);

    public TimerHandle CallLater<TState>(double delaySeconds, Action<TState> callback, TState state) =>
        CallAtTicks(Core.Time.addSaturating(_clock.Now, DelayTicks(delaySeconds)), callback, state);

    public TimerHandle CallLater(TimeSpan delay, Action callback) =>
        CallAtTicks(Core.Time.addSaturating(_clock.Now, delay.Ticks), callback);

    public TimerHandle CallLater<TState>(TimeSpan delay, Action<TState> callback, TState state) =>
        CallAtTicks(Core.Time.addSaturating(_clock.Now, delay.Ticks), callback, state);

    /// <summary>Runs <paramref name="callback"/> at loop time <paramref name="whenSeconds"/> (see <see cref="Time"/>).</summary>
    public TimerHandle CallAt(double whenSeconds, Action callback) => CallAtTicks(WhenTicks(whenSeconds), callback);

    public TimerHandle CallAt<TState>(double whenSeconds, Action<TState> callback, TState state) =>
        CallAtTicks(WhenTicks(whenSeconds), callback, state);

    public TimerHandle CallAt(TimeSpan when, Action callback) => CallAtTicks(when.Ticks, callback);

    public TimerHandle CallAt<TState>(TimeSpan when, Action<TState> callback, TState state) =>
        CallAtTicks(when.Ticks, callback, state);

    private TimerHandle CallAtTicks(long deadline, Action callback)
    {
        ArgumentNullException.ThrowIfNull(callback);
        if (Debug) CheckNotCoroutine(callback, "CallAt");
        var h = new ActionTimerHandle(this, deadline, callback);
        EnqueueTimer(h);
        return h;
    }

    private TimerHandle CallAtTicks<TState>(long deadline, Action<TState> callback, TState state)
    {
        ArgumentNullException.ThrowIfNull(callback);
        if (Debug) CheckNotCoroutine(callback, "CallAt");
        var h = new StateTimerHandle<TState>(this, deadline, callback, state);
        EnqueueTimer(h);
        return h;
    }

    private static long DelayTicks(double seconds)
    {
        if (double.IsNaN(seconds)) throw new ArgumentOutOfRangeException(nameof(seconds), "delay is NaN");
        return Core.Time.ofSeconds(seconds);
    }

    private static long WhenTicks(double seconds)
    {
        if (double.IsNaN(seconds)) throw new ArgumentOutOfRangeException(nameof(seconds), "time is NaN");
        return Core.Time.ofSeconds(seconds);
    }

    /// <summary>
    /// call_soon from any thread: the only scheduling call that is thread-safe. Wakes a sleeping loop
    /// at once. Callbacks from one thread run in the order that thread scheduled them.
    /// </summary>
    [ThreadSafe]
    public Handle CallSoonThreadsafe(Action callback)
    {
        ArgumentNullException.ThrowIfNull(callback);
        if (Debug) CheckNotCoroutine(callback, "CallSoonThreadsafe");
        var h = new ActionHandle(this, callback);
        PostThreadsafe(h);
        return h;
    }

    /// <summary>call_soon_threadsafe with an argument (any thread), allocating no closure.</summary>
    [ThreadSafe]
    public Handle CallSoonThreadsafe<TState>(Action<TState> callback, TState state)
    {
        ArgumentNullException.ThrowIfNull(callback);
        if (Debug) CheckNotCoroutine(callback, "CallSoonThreadsafe");
        var h = new StateHandle<TState>(this, callback, state);
        PostThreadsafe(h);
        return h;
    }

    private void PostThreadsafe(Handle h)
    {
        ThrowIfClosed();
        // One FIFO with CallSoon (asyncio appends both to its ready queue; issue 13.7): a thread that may
        // touch the loop (its own, or any while it is idle) queues directly, after what the inbox holds.
        if (TryEnterHere(out var access))
        {
            using (access)
            {
                ThrowIfClosed();
                EnqueueDirect(h);
            }

            return;
        }

        lock (_inboxLock)
        {
            _inbox.Add(h);
            _inboxNonEmpty = true;
        }

        WakeLoop();
    }

    /// <summary>asyncio's RuntimeError('Event loop is closed') for every call a closed loop refuses.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void ThrowIfClosed()
    {
        if (_sched.IsClosed) ThrowClosed();
    }

    private static void ThrowClosed() => throw new EventLoopException("Event loop is closed");

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void EnqueueSoon(Handle h)
    {
        // The loop's own thread while it runs (the hot path): a running loop is never closed.
        if (_threadId != Environment.CurrentManagedThreadId)
        {
            EnqueueSoonOffLoop(h);
            return;
        }

        _table.Register(h);
        h.State = Handle.Queued;
        _sched.CallSoon(h.Id);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void EnqueueSoonOffLoop(Handle h)
    {
        using var access = EnterSlow();
        ThrowIfClosed();
        _table.Register(h);
        h.State = Handle.Queued;
        _sched.CallSoon(h.Id);
    }

    private void EnqueueTimer(TimerHandle h)
    {
        using var access = Enter();
        ThrowIfClosed();
        _table.Register(h);
        h.State = Handle.Queued;
        _sched.CallAt(h.Id, h.Deadline);
    }

    /// <summary>Registers a handle that is not queued yet (a future's done-callback).</summary>
    internal long RegisterParked(Handle h)
    {
        h.State = Handle.Parked;
        return _table.Register(h);
    }

    internal Handle? FindHandle(long id) => _table.Find(id);

    internal void ReleaseParked(Handle h)
    {
        if (h.State == Handle.Parked) h.State = Handle.CancelledState;
        _table.Release(h);
    }

    /// <summary>Queues parked handles the core returned (a done future's callbacks), in order.</summary>
    internal void ScheduleParked(in CallbackIds ids)
    {
        for (int i = 0; i < ids.Count; i++) ScheduleParked(ids[i]);
    }

    internal void ScheduleParked(long id)
    {
        // A parked handle that was cancelled (released) since has a stale id: nothing to run.
        if (_table.Find(id) is not { } h) return;
        if (_sched.IsClosed) return;
        h.State = Handle.Queued;
        _sched.CallSoon(id);
    }

    internal void CancelHandle(Handle h)
    {
        using var access = Enter();
        switch (h.State)
        {
            case Handle.Parked:
                h.State = Handle.CancelledState;
                _table.Release(h);
                h.DropCallback();
                return;
            case Handle.Queued:
                if (h.IsTimer) _sched.CancelTimer(h.Id);
                else _sched.CancelSoon(h.Id);
                h.State = Handle.CancelledState;
                _table.Release(h);
                h.DropCallback();
                return;
            default:
                return; // already ran or cancelled: asyncio ignores it
        }
    }

    private void EnqueueDirect(Handle h)
    {
        // Posts still in the inbox were made before this one (perhaps by this thread, while the loop
        // ran on another): they join first, so each thread's posts keep their order.
        foreach (long id in TakePosts()) _sched.CallSoon(id);
        EnqueueSoon(h);
    }

    /// <summary>
    /// The posts waiting in the inbox, registered as queued handles (cancelled ones dropped), in post
    /// order: what a tick hands the core as <c>posted</c>. The span is valid until the next call.
    /// </summary>
    private ReadOnlySpan<long> TakePosts()
    {
        if (!_inboxNonEmpty) return default;
        List<Handle> taken;
        lock (_inboxLock)
        {
            taken = _inbox;
            _inbox = _inboxSpare;
            _inboxSpare = taken;
            _inboxNonEmpty = false;
        }

        if (_posted.Length < taken.Count) _posted = new long[Math.Max(taken.Count, _posted.Length * 2)];
        int n = 0;
        foreach (var h in taken)
        {
            if (h.State == Handle.CancelledState) continue;
            _table.Register(h);
            h.State = Handle.Queued;
            _posted[n++] = h.Id;
        }

        taken.Clear();
        return new ReadOnlySpan<long>(_posted, 0, n);
    }

    private long[] _posted = new long[16];

    bool IArrivalProbe.PostsPending => _inboxNonEmpty;

    bool IArrivalProbe.ExternalWorkPending => Volatile.Read(ref _externalPending) > 0;

    // ---------------------------------------------------------------------------------------------
    // Running

    /// <summary>Runs ticks until <see cref="Stop"/> is called (asyncio's <c>run_forever</c>).</summary>
    public void RunForever()
    {
        // Taking the gate makes the start atomic with respect to other threads' use of an idle loop:
        // a call that began before the start finishes first, one that comes after sees a running loop.
        lock (_gate)
        {
            ThrowIfClosed();
            if (IsRunning) throw new EventLoopException("This event loop is already running");
            if (t_running is not null) throw new EventLoopException("Cannot run the event loop while another loop is running");
            _sched.Start();
            _threadId = Environment.CurrentManagedThreadId;
        }

        var previousContext = SynchronizationContext.Current;
        t_running = this;
        try
        {
            while (!RunOnce())
            {
            }
        }
        finally
        {
            t_running = null;
            SynchronizationContext.SetSynchronizationContext(previousContext);
            lock (_gate) _threadId = -1;
        }
    }

    /// <summary>
    /// One tick (DESIGN.md: the tick recipe): begin it with the posts taken in, poll as the core's
    /// timeout allows (the clock's policy), hand the arrivals to the core, run the batch it returns, end
    /// the tick. Every order is the core's. Returns true when the run is over.
    /// </summary>
    private bool RunOnce()
    {
        // The poll timeout depends on the time only when nothing is ready and a timer waits: otherwise
        // the tick starts at the time its last one read (a legal input: time does not go backwards),
        // and the clock is read once per tick, after the poll, as CPython's _run_once does.
        var posted = TakePosts();
        if (posted.IsEmpty && _sched.ReadyCount == 0 && _sched.TimerCount > 0) _tickNow = _clock.Now;
        var timeout = _sched.BeginTick(_tickNow, posted);
        int io;
        try
        {
            io = _clock.PollArrivals(_reactor, timeout, this, _ioEvents);
        }
        catch
        {
            // The wait raised (a virtual clock's deadlock, a reactor failure): the run ends here, the
            // loop is idle and closable, and nothing queued is lost (the core's PollFailed).
            _sched.PollFailed();
            throw;
        }

        _tickNow = _clock.Now;
        int ran = RunBatch(_sched.Polled(_tickNow, TakePosts(), new ReadOnlySpan<IoEvent>(_ioEvents, 0, io)));
        _iterationHook?.Invoke(new LoopIteration(timeout.HasLimit ? TimeSpan.FromTicks(timeout.Ticks) : null, ran));
        return _sched.EndTick();
    }

    // The time the scheduler was last given (BeginTick may start a tick at it: see RunOnce).
    private long _tickNow;

    // The poll's result, reused every tick (as many events per poll as epoll hands out at once).
    private readonly IoEvent[] _ioEvents = new IoEvent[256];

    /// <summary>
    /// Called at the end of every iteration (tick) with its poll timeout and how many callbacks it ran:
    /// what CPython's tests read from a recording selector; for tests and debug counters. Loop-affine.
    /// </summary>
    public Action<LoopIteration>? IterationHook
    {
        get
        {
            VerifyAccess();
            return _iterationHook;
        }
        set
        {
            VerifyAccess();
            _iterationHook = value;
        }
    }

    private Action<LoopIteration>? _iterationHook;

    private int RunBatch(ReadOnlySpan<long> batch)
    {
        int ran = 0;
        foreach (long id in batch)
        {
            // A handle cancelled while the batch ran has been released: its id finds nothing.
            var h = _table.Find(id);
            if (h is null) continue;
            ran++;
            // A watched source's handle stays registered (parked) while it is watched: its readiness
            // admits the same id again. Every other handle runs once.
            if (h.State != Handle.Parked)
            {
                _table.Release(h);
                h.State = Handle.Finished;
            }
            if (Debug)
            {
                RunTimed(h);
                continue;
            }

            try
            {
                h.Invoke();
            }
            catch (Exception e)
            {
                CallExceptionHandler(new ExceptionContext($"Exception in callback {h}", e) { Handle = h });
            }
        }

        return ran;
    }

    private void RunTimed(Handle h)
    {
        long start = _clock.Now;
        try
        {
            h.Invoke();
        }
        catch (Exception e)
        {
            CallExceptionHandler(new ExceptionContext($"Exception in callback {h}", e) { Handle = h });
        }

        var took = TimeSpan.FromTicks(_clock.Now - start);
        if (took >= SlowCallbackDuration)
        {
            Diagnostics.LoopLog.Error($"Executing {h} took {took.TotalSeconds:0.000} seconds");
        }
    }

    /// <summary>Asks the loop to stop after the current tick (asyncio's <c>stop()</c>). Before a run,
    /// it makes the next <see cref="RunForever"/> run exactly one tick.</summary>
    public void Stop()
    {
        using var access = Enter();
        _sched.Stop();
    }

    /// <summary>
    /// Closes the loop: queued callbacks are discarded, any further scheduling is refused, and the default
    /// executor is shut down without waiting (asyncio's <c>close()</c>). Refused while running; closing twice
    /// does nothing.
    /// </summary>
    public void Close()
    {
        if (IsRunning) throw new EventLoopException("Cannot close a running event loop");
        using var access = Enter();
        if (IsRunning) throw new EventLoopException("Cannot close a running event loop");
        if (IsClosed) return;
        CloseSubprocesses(); // while the reactor is open: their pidfds and pipes are unwatched, then closed
        _sched.Close();
        _table.Clear();
        CloseReactor();
        CloseSignals(); // asyncio: close() removes the loop's signal handlers
        lock (_inboxLock) _inbox.Clear();
        FailThreadsafeStarts(); // their posts were just dropped: their callers must not wait forever
        if (ReferenceEquals(s_threadLoop, this)) s_threadLoop = null;
        // asyncio's close(): the default executor is shut down without waiting (Run has joined it already).
        if (_defaultExecutor is { } executor)
        {
            _defaultExecutor = null;
            executor.Shutdown(wait: false);
        }
    }

    public void Dispose() => Close();

    /// <summary>
    /// Raises <see cref="EventLoopException"/> unless <see cref="CheckAccess"/> holds: the check every
    /// loop-bound member makes (everything not marked <see cref="ThreadSafeAttribute"/> is
    /// loop-affine), for your own loop-bound types too. One compare on the loop's thread.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void VerifyAccess()
    {
        if (_threadId != Environment.CurrentManagedThreadId && _threadId != -1)
        {
            ThrowWrongThread();
        }
    }

    private static void ThrowWrongThread() =>
        throw new EventLoopException(
            "Non-thread-safe operation invoked on an event loop other than the current one; use CallSoonThreadsafe");


    // ---------------------------------------------------------------------------------------------
    // Thread access, public: what an adapter (Tulip.Reactive, your own) needs to call the loop from
    // wherever its events come from. WPF's Dispatcher names: CheckAccess / VerifyAccess / Invoke.

    /// <summary>Whether the calling thread is the thread running this loop now (false while the loop
    /// is not running).</summary>
    [ThreadSafe]
    public bool IsOnLoopThread => _threadId == Environment.CurrentManagedThreadId;

    /// <summary>
    /// Whether the calling thread may use the loop's loop-bound members directly: it is the thread
    /// running the loop, or no thread runs the loop (it is idle or closed). Another thread may start
    /// running the loop right after this returns true; to act on the answer atomically, use
    /// <see cref="InvokeOnLoop{TState}(Action{TState}, TState)"/>.
    /// </summary>
    [ThreadSafe]
    public bool CheckAccess()
    {
        int owner = _threadId;
        return owner == -1 || owner == Environment.CurrentManagedThreadId;
    }

    /// <summary>
    /// Runs <paramref name="action"/>(<paramref name="state"/>) on the loop: at once, before returning,
    /// when the calling thread may touch the loop (the loop's own thread while it runs, or any thread
    /// while no thread runs it: then serialised with other threads and with the start of a run), else
    /// posted as <see cref="CallSoonThreadsafe{TState}(Action{TState}, TState)"/> does. Exceptions of an
    /// action run at once reach the caller. Raises <see cref="EventLoopException"/> if it must post and
    /// the loop is closed.
    /// </summary>
    [ThreadSafe]
    public void InvokeOnLoop<TState>(Action<TState> action, TState state)
    {
        ArgumentNullException.ThrowIfNull(action);
        if (TryEnterHere(out var access))
        {
            using (access) action(state);
            return;
        }

        CallSoonThreadsafe(action, state);
    }

    /// <summary>Runs <paramref name="action"/> on the loop, at once or posted: see
    /// <see cref="InvokeOnLoop{TState}(Action{TState}, TState)"/>.</summary>
    [ThreadSafe]
    public void InvokeOnLoop(Action action)
    {
        ArgumentNullException.ThrowIfNull(action);
        InvokeOnLoop(static a => a(), action);
    }

    // ---------------------------------------------------------------------------------------------
    // The gate: who may touch the loop's state. The thread running the loop may, without a lock (the
    // hot path is one compare). While no thread runs it, any thread may, one at a time: such calls and
    // the start of a run take the gate, so a call either completes before a run starts or sees the
    // loop running (and is refused) — never half of each. (Issue 11: a foreign CallSoon racing a run's
    // start lost callbacks or hung the run.)

    private readonly object _gate = new();

    /// <summary>Scope of a call that touches the loop's state: refused from a foreign thread while the
    /// loop runs; serialised with other threads and with run starts while it is idle.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal LoopAccess Enter()
    {
        if (_threadId == Environment.CurrentManagedThreadId) return default;
        return EnterSlow();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private LoopAccess EnterSlow()
    {
        if (!TryEnterHere(out var access)) ThrowWrongThread();
        return access;
    }

    /// <summary>
    /// The one test of who may touch the loop, and the scope to do it in: true on the running loop's
    /// thread (nothing held) or when no thread runs it (the gate held until the access is disposed);
    /// false, holding nothing, when another thread runs it — the caller then posts or refuses. Checking
    /// and entering are one step, so a run cannot start in between.
    /// </summary>
    internal bool TryEnterHere(out LoopAccess access)
    {
        access = default;
        int owner = _threadId;
        if (owner == Environment.CurrentManagedThreadId) return true;
        if (owner != -1) return false;
        Monitor.Enter(_gate);
        if (_threadId == -1)
        {
            access = new LoopAccess(_gate);
            return true;
        }

        Monitor.Exit(_gate);
        return false;
    }

    /// <summary>Holds the gate (or nothing, on the running loop's thread) until disposed.</summary>
    internal readonly struct LoopAccess(object? gate) : IDisposable
    {
        public void Dispose()
        {
            if (gate is not null) Monitor.Exit(gate);
        }
    }

    /// <summary>Work outside the loop that may still wake it (a virtual clock won't jump while any is pending).</summary>
    internal void BeginExternal() => Interlocked.Increment(ref _externalPending);

    internal void EndExternal() => Interlocked.Decrement(ref _externalPending);

    /// <summary>Counts for the hygiene checks of tests: live handles (queued or parked).</summary>
    internal int LiveHandles => _table.Live;

    internal int ReadyCount => _sched.ReadyCount;

    internal int TimerCount => _sched.TimerCount;

    /// <summary>The earliest live deadline (ticks), or long.MinValue when no timer is queued.</summary>
    internal long NextDeadline() => _sched.NextDeadline();

    // ---------------------------------------------------------------------------------------------
    // The running loop of this thread, and the thread's current loop (asyncio's policy, simplified).

    [ThreadStatic] private static EventLoop? s_threadLoop;

    /// <summary>The loop running on this thread, or null.</summary>
    internal static EventLoop? RunningOrNull => t_running;

    /// <summary>The loop running on this thread; <see cref="EventLoopException"/>("no running event loop") if none.
    /// Any thread (it answers for the calling one).</summary>
    [ThreadSafe]
    public static EventLoop GetRunningLoop() => t_running ?? throw new EventLoopException("no running event loop");

    /// <summary>
    /// asyncio 3.11's <c>get_event_loop()</c>: the running loop, else this thread's current loop, made
    /// (and set) if there is none. Any thread (it answers for the calling one).
    /// </summary>
    [ThreadSafe]
    public static EventLoop GetEventLoop()
    {
        if (t_running is { } r) return r;
        if (s_threadLoop is { IsClosed: false } l) return l;
        s_threadLoop = new EventLoop();
        return s_threadLoop;
    }

    internal static EventLoop? CurrentOrNull => s_threadLoop;

    /// <summary>Sets this thread's current loop (asyncio's <c>set_event_loop</c>); any thread, for itself.</summary>
    [ThreadSafe]
    public static void SetEventLoop(EventLoop? loop) => s_threadLoop = loop;
}
