namespace Tulip.Core

/// Where the loop is within a run and a tick (DESIGN.md: the tick recipe).
///
///     Idle --Start--> BetweenTicks --BeginTick--> Polling --Polled--> RunningBatch --EndTick--> BetweenTicks
///                                                    \--PollFailed--> Idle        \--EndTick (stopping)--> Idle
type TickPhase =
    /// Not running (before run_forever, or after it returned).
    | Idle
    /// Running, at a tick boundary.
    | BetweenTicks
    /// The poll timeout was handed out; the shell is waiting for I/O.
    | Polling
    /// The shell is running this batch; what is scheduled meanwhile waits for the next tick.
    | RunningBatch of batch: HandleId array

/// A watched I/O source, named by the shell (the reactor's registration number). Unique among the
/// sources watched at one time; the shell may reuse a token once it was unwatched.
type IoToken = int

/// What the reactor reported for a source. An error or a hang-up is reported as both, so the next
/// read or write meets it.
[<System.Flags>]
type Readiness =
    | None = 0
    | Readable = 1
    | Writable = 2

/// One entry of a poll's result: a watched source and what it is ready for.
[<Struct>]
type IoEvent =
    { Token: IoToken
      Readiness: Readiness }

/// What a watched source runs when it is ready: the handle of its reader and of its writer (either
/// may be absent). The handles stay the same while the source is watched: each readiness admits them
/// again (CPython keeps one reader handle per fd and appends it to the ready queue on every event).
[<Struct>]
type IoWatch =
    { Read: HandleId voption
      Write: HandleId voption }

/// How the poll of a tick may wait.
type PollKind =
    /// At most `Ticks` (0: do not wait): a callback is ready, a stop is pending, or a timer is due.
    | Timed = 0
    /// Nothing is scheduled but sources are watched: only I/O or a post from another thread can bring
    /// work. Wait without limit.
    | UntilIo = 1
    /// Nothing is scheduled and nothing is watched: only a post from another thread can bring work
    /// (with none to come, the loop is deadlocked; a virtual clock says so).
    | UntilPost = 2

/// The poll timeout of a tick (the `Poll` effect): `Kind`, and for `Timed` the limit in ticks.
[<Struct>]
type PollTimeout =
    { Kind: PollKind
      /// The limit in ticks of 100 ns when `Kind` is `Timed` (0 otherwise).
      Ticks: int64 }

    /// Whether the wait is bounded (`Kind = Timed`).
    member t.HasLimit = t.Kind = PollKind.Timed

    static member Of(ticks: int64) = { Kind = PollKind.Timed; Ticks = ticks }
    static member UntilIo = { Kind = PollKind.UntilIo; Ticks = 0L }
    static member UntilPost = { Kind = PollKind.UntilPost; Ticks = 0L }

    override t.ToString() =
        match t.Kind with
        | PollKind.Timed -> sprintf "Timed %d" t.Ticks
        | k -> string k

/// The whole scheduler, as a value.
///
/// Invariants (Invariants.check): every id in `Cancelled` is queued in `Ready`, `Timers` or the running
/// batch; `Timers.CancelledCount` is the number of timer entries whose id is in `Cancelled`; every
/// timer's `Seq` is below `NextSeq` and unique; every watch names at least one handle, and no handle id
/// is named by two watches; a closed loop is idle and holds nothing (and watches nothing).
type LoopState =
    { /// The latest time the shell reported (ticks). Monotonic.
      Now: int64
      Ready: ReadyQueue
      Timers: TimerQueue
      /// Handles cancelled while still queued (lazy cancellation): skipped, then forgotten.
      Cancelled: Set<HandleId>
      /// The next timer sequence number (the tie-break among equal deadlines).
      NextSeq: int64
      /// The watched I/O sources, by token, with the handles their readiness admits.
      Watched: Map<IoToken, IoWatch>
      Phase: TickPhase
      /// `stop()` was called: the current tick finishes, then the run ends.
      Stopping: bool
      Closed: bool }

/// What the shell gives the core. Ids come from the shell; deadlines are absolute loop ticks.
type Input =
    | CallSoon of HandleId
    /// Many call_soon at once, in order (the shell's per-tick batch; the core keeps the array).
    | CallSoonMany of HandleId array
    | CallAt of HandleId * deadline: int64
    /// Many call_at at once, in order: sequence numbers follow the array.
    | CallAtMany of struct (HandleId * int64) array
    /// Cancel a queued call_soon handle. Precondition (the shell's): queued, not yet run or cancelled.
    | CancelSoon of HandleId
    /// Cancel a queued timer. Same precondition.
    | CancelTimer of HandleId
    /// Watch an I/O source: from now on, readiness reported for `token` admits `read` (readable) and
    /// `write` (writable). Replaces the token's previous watch; both absent is `Unwatch`.
    | Watch of token: IoToken * read: HandleId voption * write: HandleId voption
    /// Stop watching a source (its handles are no longer admitted; unknown tokens are ignored).
    | Unwatch of token: IoToken
    /// run_forever begins.
    | Start
    /// A tick begins at this time, with the posts (call_soon_threadsafe) taken in since the last tick,
    /// in post order: they join the ready queue; then cancelled timers are dropped and the core says how
    /// long the poll may wait.
    | BeginTick of now: int64 * posted: HandleId array
    /// The poll returned at this time with the posts taken in during the poll and the I/O readiness it
    /// reported, in the reactor's order: the batch is built by the batch rule (DESIGN.md).
    | Polled of now: int64 * posted: HandleId array * io: IoEvent array
    /// The batch has been run.
    | EndTick
    /// The poll failed (the shell's wait raised, e.g. a virtual clock declaring a deadlock): the run
    /// ends at once, as after a stop, and nothing queued is lost. Accepted only while polling.
    | PollFailed
    | Stop
    | Close

/// What the core asks the shell to do.
type Effect =
    /// Wait for I/O (or a post) as `timeout` says.
    | Poll of timeout: PollTimeout
    /// Run these handles in this order, skipping any cancelled after this effect was emitted.
    | Run of HandleId array
    /// The run is over (stop was requested): run_forever returns.
    | Stopped
    /// The loop closed: every queued handle is discarded.
    | Closed

[<RequireQualifiedAccess>]
module LoopState =
    let initial: LoopState =
        { Now = 0L
          Ready = ReadyQueue.empty
          Timers = TimerQueue.empty
          Cancelled = Set.empty
          Watched = Map.empty
          NextSeq = 0L
          Phase = Idle
          Stopping = false
          Closed = false }

    /// A loop whose clock starts at `now` (a shell starts at its clock's current reading).
    let startingAt (now: int64) = { initial with Now = now }

    let isRunning (s: LoopState) = s.Phase <> Idle

    /// The poll-timeout rule (CPython `_run_once`): 0 if anything is ready or a stop is pending;
    /// otherwise the time to the earliest timer, clamped to [0, 24 h]; if nothing is scheduled, until
    /// I/O when a source is watched, else until a post. Cancelled timers at the head are assumed
    /// dropped already (BeginTick does that first).
    let pollTimeout (s: LoopState) : PollTimeout =
        if not (ReadyQueue.isEmpty s.Ready) || s.Stopping then
            PollTimeout.Of 0L
        else
            match TimerQueue.tryPeek s.Timers with
            | ValueSome e ->
                if e.Deadline <= s.Now then
                    PollTimeout.Of 0L
                else
                    // A positive gap that overflowed is simply "very far".
                    let gap = e.Deadline - s.Now
                    PollTimeout.Of(if gap < 0L then Time.MaxPollTimeout else min gap Time.MaxPollTimeout)
            | ValueNone -> if Map.isEmpty s.Watched then PollTimeout.UntilPost else PollTimeout.UntilIo
