using Tulip.Core;

namespace Tulip.Scheduling;

/// <summary>
/// The scheduler core as the shell drives it: the signature of <c>Tulip.Core.Loop.step</c>, one method
/// per input. Two implementations: <see cref="CoreScheduler"/> is the pure F# core itself (the
/// specification), <see cref="MutableScheduler"/> its mutable twin (arrays and a binary heap, no allocation
/// per callback), which the property suite proves equal to the model on generated input sequences
/// (DESIGN.md §1). Loop thread only.
/// <para>Preconditions (the shell's, as in LoopState.fs): ids are unique among live handles; a handle
/// is cancelled only while queued; tick inputs come in phase order; a handle named by a watch is not
/// call_soon'd or timed while watched; tokens are small and non-negative (the reactor's).</para>
/// </summary>
internal interface ITickScheduler
{
    void CallSoon(long id);
    void CallAt(long id, long deadline);
    void CancelSoon(long id);
    void CancelTimer(long id);
    /// <summary>Watches a source: its readiness admits <paramref name="read"/> / <paramref name="write"/>
    /// (null: none; both null unwatches).</summary>
    void Watch(int token, long? read, long? write);

    void Unwatch(int token);

    void Start();
    void Stop();
    void Close();

    /// <summary>Tick steps 1-2: the posts taken in join the ready queue; returns the poll timeout.</summary>
    PollTimeout BeginTick(long now, ReadOnlySpan<long> posted);

    /// <summary>Tick steps 3-4: the posts of the poll and its I/O readiness go in; the batch to run comes
    /// out, in order (the batch rule), valid until <see cref="EndTick"/>. Ids cancelled (or whose source
    /// stopped watching) while the batch runs are the shell's to skip.</summary>
    ReadOnlySpan<long> Polled(long now, ReadOnlySpan<long> posted, ReadOnlySpan<IoEvent> io);

    /// <summary>Ends the tick; true when the run is over (stop was requested).</summary>
    bool EndTick();

    /// <summary>The poll raised: the run ends now (idle again), nothing queued is lost.</summary>
    void PollFailed();

    bool IsClosed { get; }
    bool IsRunning { get; }
    int ReadyCount { get; }
    int TimerCount { get; }
    int WatchedCount { get; }

    /// <summary>The earliest live deadline, or long.MinValue if no timer is queued.</summary>
    long NextDeadline();
}

/// <summary>Which scheduler a loop runs on.</summary>
public enum SchedulerKind
{
    /// <summary>The mutable twin of the core, proven equal to it by generated traces (the default).</summary>
    Fast,

    /// <summary>The pure F# core itself: slower, and the specification (for verification and debugging).</summary>
    Model,
}
