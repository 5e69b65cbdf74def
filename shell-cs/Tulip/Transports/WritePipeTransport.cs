using Tulip.Core;
using Tulip.Subprocess;

namespace Tulip.Transports;

/// <summary>
/// The write end of a pipe as a transport (CPython's <c>_UnixWritePipeTransport</c>): writes directly
/// and buffers the rest, with the socket transport's flow control (<see cref="WriteFlowControl"/>:
/// PauseWriting above the high-water mark, ResumeWriting at the low one; 64 KiB and high/4) and its
/// <see cref="Streams.ByteBuffer"/>. <see cref="Close"/> is
/// <see cref="WriteEof"/>: everything buffered is written first, then <c>ConnectionLost(null)</c>;
/// <see cref="Abort()"/> discards. The descriptor is also watched for readability, which on a pipe's
/// write end means the reader went away (epoll reports EPOLLERR): the transport then closes, with a
/// broken-pipe error if data was still buffered, as asyncio's <c>_read_ready</c>.
/// </summary>
internal sealed unsafe class WritePipeTransport : PipeTransport, ITransport
{
    private const int LogThresholdForConnLostWrites = 5;
    private readonly Streams.ByteBuffer _buffer = new();
    private readonly Handle _readHandle, _writeHandle;
    private bool _writing, _watching;
    private WriteFlowControl _flow = new();

    public WritePipeTransport(EventLoop loop, int fd, IDisposable? owner, BaseProtocol protocol, Future<ValueTuple>? waiter)
        : base(loop, fd, owner, protocol, waiter)
    {
        _readHandle = new StateHandle<WritePipeTransport>(loop, static t => t.PeerClosed(), this);
        _writeHandle = new StateHandle<WritePipeTransport>(loop, static t => t.WriteReady(), this);
    }

    protected override void Started()
    {
        _watching = true;
        Apply();
    }

    private void Apply()
    {
        if (FdClosed) return;
        Loop.SetWatch(Source, _watching ? _readHandle : null, _writing ? _writeHandle : null);
    }

    public override bool IsReading => false;

    public override void Write(ReadOnlySpan<byte> data)
    {
        Loop.VerifyAccess();
        if (data.IsEmpty) return;
        // asyncio: after close, abort or a lost connection, writes are dropped (and logged after a few).
        if (ConnLost > 0 || Closing)
        {
            if (ConnLost >= LogThresholdForConnLostWrites) Diagnostics.LoopLog.Error("pipe closed by peer or os.write(pipe, data) raised exception.");
            ConnLost++;
            return;
        }

        if (_buffer.Count == 0)
        {
            nint n;
            fixed (byte* p = data) n = PosixNative.write(Fd, p, data.Length);
            if (n < 0)
            {
                int errno = PosixNative.Errno;
                if (errno is not (PosixNative.EAGAIN or PosixNative.EINTR))
                {
                    ConnLost++;
                    FatalError(PosixNative.IoError(errno), "Fatal write error on pipe transport");
                    return;
                }

                n = 0;
            }

            data = data[(int)n..];
            if (data.IsEmpty) return;
            _writing = true;
            Apply();
        }

        _buffer.Append(data);
        MaybePauseProtocol();
    }

    public override void WriteLines(IEnumerable<ReadOnlyMemory<byte>> lines)
    {
        ArgumentNullException.ThrowIfNull(lines);
        Loop.VerifyAccess();
        foreach (var line in lines) Write(line.Span); // every path meets the flow control
    }

    private void WriteReady()
    {
        if (FdClosed || _buffer.Count == 0)
        {
            _writing = false;
            Apply();
            return;
        }

        nint n;
        fixed (byte* p = _buffer.Span) n = PosixNative.write(Fd, p, _buffer.Count);
        if (n < 0)
        {
            int errno = PosixNative.Errno;
            if (errno is PosixNative.EAGAIN or PosixNative.EINTR) return;
            _buffer.Clear();
            ConnLost++;
            _writing = false;
            Apply();
            FatalError(PosixNative.IoError(errno), "Fatal write error on pipe transport");
            return;
        }

        _buffer.Drop((int)n);
        MaybeResumeProtocol();
        if (_buffer.Count > 0) return;
        _writing = false;
        Apply();
        if (Closing)
        {
            _watching = false;
            CallSoonConnectionLost(null);
        }
    }

    /// <summary>The reader closed its end (the only readiness a write end reports for reading).</summary>
    private void PeerClosed()
    {
        if (FdClosed) return;
        if (_buffer.Count > 0) ForceClose(PosixNative.IoError(PosixNative.EPIPE));
        else ForceClose(null);
    }

    public override bool CanWriteEof() => true;

    /// <summary>Closes once the buffer is written (a pipe's EOF is its close).</summary>
    public override void WriteEof()
    {
        Loop.VerifyAccess();
        if (Closing) return;
        Closing = true;
        if (_buffer.Count == 0)
        {
            _watching = false;
            Apply();
            CallSoonConnectionLost(null);
        }
    }

    public override void Close()
    {
        Loop.VerifyAccess();
        if (!FdClosed && !Closing) WriteEof();
    }

    public override void Abort()
    {
        Loop.VerifyAccess();
        ForceClose(null);
    }

    public void Abort(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        Loop.VerifyAccess();
        ForceClose(exception);
    }

    protected override void ForceClose(Exception? e)
    {
        Closing = true;
        _buffer.Clear();
        _writing = _watching = false;
        CallSoonConnectionLost(e);
    }

    private void MaybePauseProtocol() => _flow.MaybePause(_buffer.Count, Loop, this, CurrentProtocol);

    private void MaybeResumeProtocol() => _flow.MaybeResume(_buffer.Count, Loop, this, CurrentProtocol);

    public override void SetWriteBufferLimits(int? high = null, int? low = null)
    {
        Loop.VerifyAccess();
        _flow.SetLimits(high, low);
        MaybePauseProtocol();
    }

    public override int GetWriteBufferSize() { Loop.VerifyAccess(); return _buffer.Count; }

    public override (int Low, int High) GetWriteBufferLimits() { Loop.VerifyAccess(); return (_flow.Low, _flow.High); }
}
