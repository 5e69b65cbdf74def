namespace Tulip.Core

/// Loop time is an integer count of ticks (100 ns, the unit of System.TimeSpan), so deadlines compare
/// exactly and "equal deadline" means equal. asyncio keeps float seconds; conversions live only here,
/// at the edge, so nothing inside the core ever rounds.
[<RequireQualifiedAccess>]
module Time =
    /// Ticks per second (TimeSpan's unit).
    [<Literal>]
    let TicksPerSecond = 10_000_000L

    /// The longest the loop ever sleeps in one poll: 24 h, as CPython's MAXIMUM_SELECT_TIMEOUT.
    [<Literal>]
    let MaxPollTimeout = 864_000_000_000L

    /// Seconds (asyncio's float delays) to ticks, rounded to the nearest tick; NaN and negative
    /// delays are the caller's to reject, infinities saturate.
    let ofSeconds (seconds: float) : int64 =
        let t = seconds * float TicksPerSecond

        if t >= 9.2e18 then System.Int64.MaxValue
        elif t <= -9.2e18 then System.Int64.MinValue
        else int64 (System.Math.Round t)

    /// Ticks to seconds, as asyncio's `loop.time()` reports them.
    let toSeconds (ticks: int64) : float = float ticks / float TicksPerSecond

    /// `a + b` that saturates instead of overflowing (a delay of "forever" must not wrap to the past).
    let addSaturating (a: int64) (b: int64) : int64 =
        let s = a + b
        // Overflow happened iff both operands have the sign opposite to the sum's.
        if ((a ^^^ s) &&& (b ^^^ s)) < 0L then
            (if a < 0L then System.Int64.MinValue else System.Int64.MaxValue)
        else
            s
