using Tulip.Core;
using Tulip.Core.Interop;
using Tulip.Io;
using Tulip.Subprocess;

namespace Tulip.Transports;

/// <summary>
/// What the two pipe transports share (CPython's <c>_UnixReadPipeTransport</c> /
/// <c>_UnixWritePipeTransport</c>): a non-blocking raw descriptor watched through the loop's one door
/// (<see cref="EventLoop.SetWatch"/> on an <see cref="IoSource"/> made from the descriptor), the protocol
/// grammar checked on every callback, and the close that runs <c>ConnectionLost</c> soon and then
/// releases the descriptor (its owner: the pipe handle or stream it came from, or the fd itself).
/// A pipe has one direction: the other direction's members throw <see cref="NotSupportedException"/>
/// (asyncio's read and write pipe transports do not have them at all).
/// </summary>
internal abstract class PipeTransport : ITransport
{
    protected readonly EventLoop Loop;
    protected readonly int Fd;
    protected readonly IoSource Source;
    private readonly IDisposable? _owner;
    private BaseProtocol _protocol;
    private ProtocolPhase _grammar = ProtocolPhase.Fresh;
    protected bool Closing;
    protected int ConnLost;
    private bool _fdClosed, _lostScheduled;
    private readonly Dictionary<string, object?> _extra = new();

    /// <param name="owner">Disposed to release the descriptor (null: the transport closes the fd).</param>
    protected PipeTransport(EventLoop loop, int fd, IDisposable? owner, BaseProtocol protocol, Future<ValueTuple>? waiter)
    {
        Loop = loop;
        Fd = fd;
        _owner = owner;
        _protocol = protocol;
        Source = new IoSource(fd);
        _extra["pipe"] = owner ?? (object)fd;
        PosixNative.SetNonBlocking(fd);
        // asyncio: connection_made soon, then the reader is added, then the waiter is woken.
        loop.CallSoon(static s => s.Item1.MakeConnection(s.Item2), (this, waiter));
    }

    private void MakeConnection(Future<ValueTuple>? waiter)
    {
        if (_lostScheduled || _fdClosed)
        {
            if (waiter is { Done: false }) waiter.Cancel();
            return;
        }

        if (!Call(ProtocolCall.ConnectionMade, () => _protocol.ConnectionMade(this), "connection_made"))
        {
            if (waiter is { Done: false }) waiter.SetException(new IOException("connection_made failed"));
            return;
        }

        Started();
        if (waiter is { Done: false }) waiter.SetResult(default);
    }

    /// <summary>After ConnectionMade: start watching the descriptor.</summary>
    protected abstract void Started();

    public BaseProtocol Protocol
    {
        get { Loop.VerifyAccess(); return _protocol; }
        set { Loop.VerifyAccess(); _protocol = value ?? throw new ArgumentNullException(nameof(value)); }
    }

    protected BaseProtocol CurrentProtocol => _protocol;

    protected bool IsConnected => _grammar.IsConnected;

    public bool IsClosing { get { Loop.VerifyAccess(); return Closing; } }

    /// <summary>"pipe": the handle, stream or descriptor the transport was made over (asyncio's name).</summary>
    public object? GetExtraInfo(string name, object? defaultValue = null) =>
        _extra.TryGetValue(name ?? throw new ArgumentNullException(nameof(name)), out var v) ? v : defaultValue;

    protected bool Call(ProtocolCall call, Action action, string what)
    {
        _grammar = ProtocolCore.Next(_grammar, call);
        try
        {
            action();
            return true;
        }
        catch (Exception e)
        {
            FatalError(e, $"Fatal error: protocol.{what}() call failed.");
            return false;
        }
    }

    protected void DataCall(ReadOnlySpan<byte> data)
    {
        if (!_grammar.IsConnected) _grammar = ProtocolCore.Next(_grammar, ProtocolCall.DataReceived);
        try
        {
            ((Protocol)_protocol).DataReceived(data);
        }
        catch (Exception e)
        {
            FatalError(e, "Fatal error: protocol.data_received() call failed.");
        }
    }

    /// <summary>asyncio's <c>_fatal_error</c>: OS errors are the connection's end (ConnectionLost hears
    /// them); anything else also goes to the loop's exception handler.</summary>
    protected void FatalError(Exception e, string message)
    {
        if (e is not IOException)
            Loop.CallExceptionHandler(new ExceptionContext(message, e) { Transport = this, Protocol = _protocol });
        ForceClose(e);
    }

    protected abstract void ForceClose(Exception? e);

    protected void CallSoonConnectionLost(Exception? e)
    {
        if (_lostScheduled) return;
        _lostScheduled = true;
        Loop.Unwatch(Source);
        Loop.CallSoon(static s => s.Item1.ConnectionLost(s.Item2), (this, e));
    }

    private void ConnectionLost(Exception? e)
    {
        try
        {
            if (_grammar.IsConnected || _grammar.IsEofSeen)
                Call(ProtocolCall.ConnectionLost, () => _protocol.ConnectionLost(e), "connection_lost");
        }
        finally
        {
            CloseFd();
        }
    }

    /// <summary>Releases the descriptor (once): unwatched first, so the reactor never holds a closed fd.</summary>
    internal void CloseFd()
    {
        if (_fdClosed) return;
        _fdClosed = true;
        Loop.Unwatch(Source);
        if (_owner is not null) _owner.Dispose();
        else PosixNative.close(Fd);
    }

    protected bool FdClosed => _fdClosed;

    /// <summary>The descriptor (for the hygiene tests: its pipe must be gone once the transport closed).</summary>
    internal int FileDescriptor => Fd;

    // The other direction's members: a pipe has one.
    public virtual void Write(ReadOnlySpan<byte> data) => throw ReadOnly();
    public virtual void WriteLines(IEnumerable<ReadOnlyMemory<byte>> lines) => throw ReadOnly();
    public virtual void WriteEof() => throw ReadOnly();
    public virtual bool CanWriteEof() => false;
    public virtual void Abort() => throw ReadOnly();
    public virtual void SetWriteBufferLimits(int? high = null, int? low = null) => throw ReadOnly();
    public virtual int GetWriteBufferSize() => throw ReadOnly();
    public virtual (int Low, int High) GetWriteBufferLimits() => throw ReadOnly();
    public virtual bool IsReading => throw WriteOnly();
    public virtual void PauseReading() => throw WriteOnly();
    public virtual void ResumeReading() => throw WriteOnly();

    public abstract void Close();

    private static NotSupportedException ReadOnly() => new("a read pipe transport cannot write");
    private static NotSupportedException WriteOnly() => new("a write pipe transport cannot read");

    public override string ToString() => $"<{GetType().Name} fd={(_fdClosed ? "closed" : Fd.ToString())} {(Closing ? "closing" : "open")}>";
}
