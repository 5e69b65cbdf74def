namespace Tulip.Core

/// Only ids cross the core/shell boundary, never closures or OS objects (mio's Token, Elmish's SubId).
/// A handle id names one scheduled callback: the shell keeps the callback in a table indexed by it.
/// The shell allocates ids; the core treats them as opaque, unique keys.
type HandleId = int64

/// Why the core refused an input. A rejected input leaves the state unchanged (a law the properties
/// check); the shell turns the reason into the exception its caller expects.
type Rejection =
    /// The loop is closed: asyncio's RuntimeError('Event loop is closed').
    | LoopClosed
    /// A run was requested while the loop runs: asyncio's RuntimeError('This event loop is already running').
    | AlreadyRunning
    /// Close was requested while the loop runs: RuntimeError('Cannot close a running event loop').
    | CloseWhileRunning
    /// The input is not valid in the loop's current phase of a tick (a shell bug, never a user error).
    | OutOfPhase of expected: string
    /// A handle was cancelled twice. (An id the core never saw is the shell's precondition to avoid:
    /// checking it would cost a lookup per callback; Invariants.check reports it.)
    | NotPending of HandleId
    /// A future or task transition that its state machine forbids: asyncio's InvalidStateError.
    | InvalidState of message: string
    /// The shell reported a time earlier than one it reported before (loop time is monotonic).
    | TimeWentBackwards of now: int64 * reported: int64

    override this.ToString() =
        match this with
        | LoopClosed -> "Event loop is closed"
        | AlreadyRunning -> "This event loop is already running"
        | CloseWhileRunning -> "Cannot close a running event loop"
        | OutOfPhase e -> sprintf "input out of phase (expected %s)" e
        | NotPending h -> sprintf "handle %d is not pending" h
        | InvalidState m -> m
        | TimeWentBackwards (n, r) -> sprintf "loop time went backwards (%d after %d)" r n
