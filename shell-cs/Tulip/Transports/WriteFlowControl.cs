namespace Tulip.Transports;

/// <summary>
/// The write side's flow control shared by the socket and pipe transports (asyncio's
/// <c>_FlowControlMixin</c>, transports.py): <c>PauseWriting</c> once the buffer goes over the high-water
/// mark, <c>ResumeWriting</c> once it drains to the low one, each called once per crossing; marks 64 KiB
/// and high/4 by default, asyncio's rules when only one is given. A protocol's failure in either call
/// goes to the loop's exception handler and the transport carries on. Loop thread only.
/// </summary>
internal struct WriteFlowControl()
{
    internal const int DefaultHighWater = 64 * 1024;

    private int _high = DefaultHighWater, _low = DefaultHighWater / 4;
    private bool _paused;

    public readonly int High => _high;
    public readonly int Low => _low;

    /// <summary>After the buffer grew to <paramref name="size"/>.</summary>
    public void MaybePause(int size, EventLoop loop, ITransportBase transport, BaseProtocol protocol)
    {
        if (size <= _high || _paused) return;
        _paused = true;
        try
        {
            protocol.PauseWriting();
        }
        catch (Exception e)
        {
            loop.CallExceptionHandler(new ExceptionContext("protocol.pause_writing() failed", e) { Transport = transport, Protocol = protocol });
        }
    }

    /// <summary>After the buffer shrank to <paramref name="size"/>.</summary>
    public void MaybeResume(int size, EventLoop loop, ITransportBase transport, BaseProtocol protocol)
    {
        if (!_paused || size > _low) return;
        _paused = false;
        try
        {
            protocol.ResumeWriting();
        }
        catch (Exception e)
        {
            loop.CallExceptionHandler(new ExceptionContext("protocol.resume_writing() failed", e) { Transport = transport, Protocol = protocol });
        }
    }

    /// <summary>asyncio's <c>set_write_buffer_limits</c> (the caller then calls <see cref="MaybePause"/>).</summary>
    public void SetLimits(int? high, int? low)
    {
        // asyncio: high = 4 * low (Python ints); saturated here rather than wrapped into a misleading error.
        int h = high ?? (low is { } l ? (int)Math.Min(int.MaxValue, 4L * l) : DefaultHighWater);
        int lo = low ?? h / 4;
        if (!(h >= lo && lo >= 0)) throw new ArgumentOutOfRangeException(nameof(high), $"high ({h}) must be >= low ({lo}) must be >= 0");
        _high = h;
        _low = lo;
    }
}
