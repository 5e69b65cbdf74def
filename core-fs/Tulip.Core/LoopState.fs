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

/// The whole scheduler, as a value.
///
/// Invariants (Invariants.check): every id in `Cancelled` is queued in `Ready`, `Timers` or the running
/// batch; `Timers.CancelledCount` is the number of timer entries whose id is in `Cancelled`; every
/// timer's `Seq` is below `NextSeq` and unique; a closed loop is idle and holds nothing.
type LoopState =
    { /// The latest time the shell reported (ticks). Monotonic.
      Now: int64
      Ready: ReadyQueue
      Timers: TimerQueue
      /// Handles cancelled while still queued (lazy cancellation): skipped, then forgotten.
      Cancelled: Set<HandleId>
      /// The next timer sequence number (the tie-break among equal deadlines).
      NextSeq: int64
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
    /// run_forever begins.
    | Start
    /// A tick begins at this time: drop cancelled timers, then say how long the poll may wait.
    | BeginTick of now: int64
    /// The poll returned at this time: move due timers to the ready queue and hand out the batch.
    | Polled of now: int64
    /// The batch has been run.
    | EndTick
    /// The poll failed (the shell's wait raised, e.g. a virtual clock declaring a deadlock): the run
    /// ends at once, as after a stop, and nothing queued is lost. Accepted only while polling.
    | PollFailed
    | Stop
    | Close

/// What the core asks the shell to do.
type Effect =
    /// Wait for I/O at most this long (ticks); None = no limit (nothing is scheduled).
    | Poll of timeout: int64 option
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
          NextSeq = 0L
          Phase = Idle
          Stopping = false
          Closed = false }

    /// A loop whose clock starts at `now` (a shell starts at its clock's current reading).
    let startingAt (now: int64) = { initial with Now = now }

    let isRunning (s: LoopState) = s.Phase <> Idle

    /// The poll-timeout rule (CPython `_run_once`): 0 if anything is ready or a stop is pending;
    /// otherwise the time to the earliest timer, clamped to [0, 24 h]; no limit if nothing is scheduled.
    /// Cancelled timers at the head are assumed dropped already (BeginTick does that first).
    let pollTimeout (s: LoopState) : int64 option =
        if not (ReadyQueue.isEmpty s.Ready) || s.Stopping then
            Some 0L
        else
            match TimerQueue.tryPeek s.Timers with
            | ValueSome e ->
                if e.Deadline <= s.Now then
                    Some 0L
                else
                    // A positive gap that overflowed is simply "very far".
                    let gap = e.Deadline - s.Now
                    Some (if gap < 0L then Time.MaxPollTimeout else min gap Time.MaxPollTimeout)
            | ValueNone -> None
