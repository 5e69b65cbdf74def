using Tulip.Core;
using Tulip.Core.Interop;
using Tulip.Subprocess;

namespace Tulip.Transports;

/// <summary>
/// The read end of a pipe as a transport (CPython's <c>_UnixReadPipeTransport</c>): reads on readiness
/// into the loop's shared buffer and hands the bytes to <see cref="Protocol.DataReceived"/>; at EOF,
/// <c>EofReceived</c> then <c>ConnectionLost(null)</c> (what EofReceived returns is ignored: a pipe
/// has no other half to keep open). Pause/ResumeReading stop and restart the watch, which is how a
/// stream reader past its limit holds the writer back.
/// </summary>
internal sealed unsafe class ReadPipeTransport : PipeTransport
{
    private bool _paused;

    public ReadPipeTransport(EventLoop loop, int fd, IDisposable? owner, BaseProtocol protocol, Future<ValueTuple>? waiter)
        : base(loop, fd, owner, protocol, waiter)
    {
        if (protocol is not (Tulip.Protocol or BufferedProtocol))
            throw new ArgumentException("a read pipe needs a Protocol or BufferedProtocol", nameof(protocol));
        _readHandle = new StateHandle<ReadPipeTransport>(loop, static t => t.ReadReady(), this);
    }

    private readonly Handle _readHandle;

    protected override void Started()
    {
        if (!Closing && !_paused) Loop.SetWatch(Source, _readHandle, null);
    }

    public override bool IsReading { get { Loop.VerifyAccess(); return !_paused && !Closing; } }

    public override void PauseReading()
    {
        Loop.VerifyAccess();
        if (Closing || _paused) return;
        _paused = true;
        Loop.SetWatch(Source, null, null);
    }

    public override void ResumeReading()
    {
        Loop.VerifyAccess();
        if (Closing || !_paused) return;
        _paused = false;
        if (IsConnected) Loop.SetWatch(Source, _readHandle, null);
    }

    private void ReadReady()
    {
        if (FdClosed || Closing || _paused) return;
        if (CurrentProtocol is BufferedProtocol buffered)
        {
            ReadIntoBuffer(buffered);
            return;
        }

        var buf = Loop.ReadBuffer;
        nint n;
        fixed (byte* p = buf) n = PosixNative.read(Fd, p, buf.Length);
        if (n < 0)
        {
            int errno = PosixNative.Errno;
            if (errno is PosixNative.EAGAIN or PosixNative.EINTR) return;
            FatalError(PosixNative.IoError(errno), "Fatal read error on pipe transport");
            return;
        }

        if (n == 0)
        {
            Eof(() => ((Protocol)CurrentProtocol).EofReceived());
            return;
        }

        DataCall(new ReadOnlySpan<byte>(buf, 0, (int)n));
    }

    private void ReadIntoBuffer(BufferedProtocol protocol)
    {
        Memory<byte> target;
        try
        {
            target = protocol.GetBuffer(-1);
            if (target.Length == 0) throw new InvalidOperationException("get_buffer() returned an empty buffer");
        }
        catch (Exception e)
        {
            FatalError(e, "Fatal error: protocol.get_buffer() call failed.");
            return;
        }

        nint n;
        fixed (byte* p = target.Span) n = PosixNative.read(Fd, p, target.Length);
        if (n < 0)
        {
            int errno = PosixNative.Errno;
            if (errno is PosixNative.EAGAIN or PosixNative.EINTR) return;
            FatalError(PosixNative.IoError(errno), "Fatal read error on pipe transport");
            return;
        }

        if (n == 0)
        {
            Eof(protocol.EofReceived);
            return;
        }

        try
        {
            protocol.BufferUpdated((int)n);
        }
        catch (Exception e)
        {
            FatalError(e, "Fatal error: protocol.buffer_updated() call failed.");
        }
    }

    private void Eof(Func<bool> eofReceived)
    {
        Closing = true;
        Loop.SetWatch(Source, null, null);
        if (!Call(Core.ProtocolCall.EofReceived, () => eofReceived(), "eof_received")) return;
        CallSoonConnectionLost(null);
    }

    public override void Close()
    {
        Loop.VerifyAccess();
        if (!Closing) ForceClose(null);
    }

    /// <summary>Closes at once (a read pipe has nothing buffered to flush).</summary>
    public override void Abort() => Close();

    protected override void ForceClose(Exception? e)
    {
        Closing = true;
        CallSoonConnectionLost(e);
    }
}
