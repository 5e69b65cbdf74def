using System.Net;
using System.Net.Sockets;
using Tulip.Core;
using Tulip.Core.Interop;
using Tulip.Io;

namespace Tulip.Transports;

/// <summary>
/// A stream transport over a non-blocking socket (TCP or Unix), after CPython's
/// <c>_SelectorSocketTransport</c>: reads on readiness, writes directly and buffers the rest, flow
/// control with high/low water marks on every write path, close flushes, abort discards. The protocol
/// callback grammar is the core's (<c>ProtocolGrammar</c>) and is checked on every call.
/// </summary>
internal sealed class SocketTransport : ITransport
{
    internal const int DefaultHighWater = WriteFlowControl.DefaultHighWater;
    internal const int MaxReadSize = 256 * 1024;
    private const int LogThresholdForConnLostWrites = 5;

    private readonly EventLoop _loop;
    private readonly Socket _sock;
    private readonly Server? _server;
    private BaseProtocol _protocol;
    private ProtocolPhase _grammar = ProtocolPhase.Fresh;
    private readonly Streams.ByteBuffer _buffer = new();
    private readonly Handle _readHandle, _writeHandle;
    private readonly IoSource _source;
    private bool _closing, _eof, _readingPaused, _readRegistered, _writeRegistered, _sockClosed;
    private int _connLost;
    private WriteFlowControl _flow = new();
    private readonly EndPoint? _peer, _local;

    public SocketTransport(EventLoop loop, Socket sock, BaseProtocol protocol, Future<ValueTuple>? waiter, Server? server)
    {
        _loop = loop;
        _sock = sock;
        _protocol = protocol;
        _server = server;
        _readHandle = new StateHandle<SocketTransport>(loop, static t => t.ReadReady(), this);
        _writeHandle = new StateHandle<SocketTransport>(loop, static t => t.WriteReady(), this);
        _source = new IoSource(sock);
        try
        {
            _peer = sock.RemoteEndPoint;
            _local = sock.LocalEndPoint;
        }
        catch (SocketException)
        {
        }

        server?.Attach(this);
        // asyncio: connection_made is called soon, and reading starts after it.
        loop.CallSoon(static s => s.Item1.MakeConnection(s.Item2), (this, waiter));
    }

    private void MakeConnection(Future<ValueTuple>? waiter)
    {
        if (_connLost > 0)
        {
            if (waiter is { Done: false }) waiter.Cancel();
            return;
        }

        if (!Call(ProtocolCall.ConnectionMade, () => _protocol.ConnectionMade(this), "connection_made"))
        {
            if (waiter is { Done: false }) waiter.SetException(new IOException("connection_made failed"));
            return;
        }

        if (!_closing && !_readingPaused) RegisterRead(true);
        if (waiter is { Done: false }) waiter.SetResult(default);
    }

    public BaseProtocol Protocol
    {
        get { _loop.VerifyAccess(); return _protocol; }
        set { _loop.VerifyAccess(); _protocol = value ?? throw new ArgumentNullException(nameof(value)); }
    }

    public bool IsClosing { get { _loop.VerifyAccess(); return _closing; } }

    public object? GetExtraInfo(string name, object? defaultValue = null) => (name ?? throw new ArgumentNullException(nameof(name))) switch
    {
        "peername" => _peer ?? defaultValue,
        "sockname" => _local ?? defaultValue,
        "socket" => _sock,
        _ => defaultValue,
    };

    // ---------------------------------------------------------------------------------------------
    // The protocol grammar: every callback goes through here.

    private bool Call(ProtocolCall call, Action action, string what)
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

    private void FatalError(Exception e, string message)
    {
        if (e is not (SocketException or IOException))
        {
            _loop.CallExceptionHandler(new ExceptionContext(message, e) { Transport = this, Protocol = _protocol });
        }

        ForceClose(e);
    }

    // ---------------------------------------------------------------------------------------------
    // Reactor registration

    private void RegisterRead(bool on)
    {
        if (_readRegistered == on || _sockClosed) return;
        _readRegistered = on;
        ApplyInterest();
    }

    private void RegisterWrite(bool on)
    {
        if (_writeRegistered == on || _sockClosed) return;
        _writeRegistered = on;
        ApplyInterest();
    }

    private void ApplyInterest() =>
        _loop.SetWatch(_source, _readRegistered ? _readHandle : null, _writeRegistered ? _writeHandle : null);

    // ---------------------------------------------------------------------------------------------
    // Reading

    public bool IsReading { get { _loop.VerifyAccess(); return !_readingPaused && !_closing; } }

    public void PauseReading()
    {
        _loop.VerifyAccess();
        if (_closing || _readingPaused) return;
        _readingPaused = true;
        RegisterRead(false);
    }

    public void ResumeReading()
    {
        _loop.VerifyAccess();
        if (_closing || !_readingPaused) return;
        _readingPaused = false;
        if (_grammar.IsConnected) RegisterRead(true);
    }

    private void ReadReady()
    {
        if (_sockClosed || _closing || _readingPaused) return;
        if (_protocol is BufferedProtocol buffered)
        {
            ReadIntoBuffer(buffered);
            return;
        }

        var buf = _loop.ReadBuffer;
        int n = _sock.Receive(buf, SocketFlags.None, out SocketError err);
        if (err != SocketError.Success)
        {
            if (err is SocketError.WouldBlock or SocketError.Interrupted) return;
            FatalError(new SocketException((int)err), "Fatal read error on socket transport");
            return;
        }

        if (n == 0)
        {
            OnEof(() => ((Protocol)_protocol).EofReceived());
            return;
        }

        // The hot path: no closure. DataReceived keeps the grammar in Connected (checked by the core's
        // rule where it can change: Fresh or after EOF is refused).
        if (!_grammar.IsConnected) _grammar = ProtocolCore.Next(_grammar, ProtocolCall.DataReceived);
        try
        {
            ((Protocol)_protocol).DataReceived(new ReadOnlySpan<byte>(buf, 0, n));
        }
        catch (Exception e)
        {
            FatalError(e, "Fatal error: protocol.data_received() call failed.");
        }
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

        int n = _sock.Receive(target.Span, SocketFlags.None, out SocketError err);
        if (err != SocketError.Success)
        {
            if (err is SocketError.WouldBlock or SocketError.Interrupted) return;
            FatalError(new SocketException((int)err), "Fatal read error on socket transport");
            return;
        }

        if (n == 0)
        {
            OnEof(protocol.EofReceived);
            return;
        }

        if (!_grammar.IsConnected) _grammar = ProtocolCore.Next(_grammar, ProtocolCall.DataReceived);
        try
        {
            protocol.BufferUpdated(n);
        }
        catch (Exception e)
        {
            FatalError(e, "Fatal error: protocol.buffer_updated() call failed.");
        }
    }

    private void OnEof(Func<bool> eofReceived)
    {
        bool keepOpen = false;
        if (!Call(ProtocolCall.EofReceived, () => keepOpen = eofReceived(), "eof_received")) return;
        if (keepOpen)
        {
            // Half-open: the protocol closes later; nothing more to read.
            RegisterRead(false);
        }
        else
        {
            Close();
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Writing

    public void Write(ReadOnlySpan<byte> data)
    {
        _loop.VerifyAccess();
        if (_eof) throw new InvalidOperationException("Cannot call write() after write_eof()");
        if (data.IsEmpty) return;
        if (_connLost > 0 || _sockClosed)
        {
            if (_connLost >= LogThresholdForConnLostWrites) Diagnostics.LoopLog.Error("socket.send() raised exception.");
            _connLost++;
            return;
        }

        if (_buffer.Count == 0)
        {
            int n = _sock.Send(data, SocketFlags.None, out SocketError err);
            if (err != SocketError.Success && err is not (SocketError.WouldBlock or SocketError.Interrupted))
            {
                FatalError(new SocketException((int)err), "Fatal write error on socket transport");
                return;
            }

            if (err == SocketError.Success)
            {
                data = data[n..];
                if (data.IsEmpty) return;
            }

            RegisterWrite(true);
        }

        _buffer.Append(data);
        MaybePauseProtocol();
    }

    public void WriteLines(IEnumerable<ReadOnlyMemory<byte>> lines)
    {
        ArgumentNullException.ThrowIfNull(lines);
        _loop.VerifyAccess();
        // Every write path goes through Write, so every one meets the flow control
        // (CVE-2024-12254 was a writelines that bypassed it).
        foreach (var line in lines) Write(line.Span);
    }

    private void WriteReady()
    {
        if (_sockClosed || _buffer.Count == 0)
        {
            RegisterWrite(false);
            return;
        }

        int n = _sock.Send(_buffer.Span, SocketFlags.None, out SocketError err);
        if (err != SocketError.Success)
        {
            if (err is SocketError.WouldBlock or SocketError.Interrupted) return;
            RegisterWrite(false);
            _buffer.Clear();
            FatalError(new SocketException((int)err), "Fatal write error on socket transport");
            return;
        }

        _buffer.Drop(n);
        MaybeResumeProtocol();
        if (_buffer.Count > 0) return;
        RegisterWrite(false);
        if (_closing) CallSoonConnectionLost(null);
        else if (_eof) ShutdownWrite();
    }

    public void WriteEof()
    {
        _loop.VerifyAccess();
        if (_closing || _eof) return;
        _eof = true;
        if (_buffer.Count == 0) ShutdownWrite();
    }

    private void ShutdownWrite()
    {
        try
        {
            _sock.Shutdown(SocketShutdown.Send);
        }
        catch (SocketException)
        {
        }
    }

    public bool CanWriteEof() => true;

    private void MaybePauseProtocol() => _flow.MaybePause(_buffer.Count, _loop, this, _protocol);

    private void MaybeResumeProtocol() => _flow.MaybeResume(_buffer.Count, _loop, this, _protocol);

    public void SetWriteBufferLimits(int? high = null, int? low = null)
    {
        _loop.VerifyAccess();
        _flow.SetLimits(high, low);
        MaybePauseProtocol();
    }

    public int GetWriteBufferSize() { _loop.VerifyAccess(); return _buffer.Count; }

    /// <summary>The storage the write buffer holds (for tests: a drained buffer should hold none).</summary>
    internal int WriteBufferCapacity => _buffer.Capacity;

    public (int Low, int High) GetWriteBufferLimits() { _loop.VerifyAccess(); return (_flow.Low, _flow.High); }

    // ---------------------------------------------------------------------------------------------
    // Closing

    public void Close()
    {
        _loop.VerifyAccess();
        if (_closing) return;
        _closing = true;
        RegisterRead(false);
        if (_buffer.Count == 0)
        {
            CallSoonConnectionLost(null);
        }
    }

    public void Abort() { _loop.VerifyAccess(); ForceClose(null); }

    public void Abort(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        ForceClose(exception);
    }

    private void ForceClose(Exception? e)
    {
        if (_connLost > 0) return;
        if (_buffer.Count > 0)
        {
            _buffer.Clear();
            RegisterWrite(false);
        }

        if (!_closing)
        {
            _closing = true;
            RegisterRead(false);
        }

        CallSoonConnectionLost(e);
    }

    private void CallSoonConnectionLost(Exception? e)
    {
        if (_connLost > 0) return;
        _connLost++;
        _loop.CallSoon(static s => s.Item1.ConnectionLost(s.Item2), (this, e));
    }

    private void ConnectionLost(Exception? e)
    {
        try
        {
            if (_grammar.IsConnected || _grammar.IsEofSeen)
            {
                Call(ProtocolCall.ConnectionLost, () => _protocol.ConnectionLost(e), "connection_lost");
            }
        }
        finally
        {
            CloseSocket();
            _server?.Detach(this);
        }
    }

    private void CloseSocket()
    {
        if (_sockClosed) return;
        _readRegistered = _writeRegistered = false;
        _loop.Unwatch(_source);
        _sockClosed = true;
        _sock.Dispose();
    }

    public override string ToString() => $"<SocketTransport fd={(_sockClosed ? "closed" : _sock.Handle.ToString())} {(_closing ? "closing" : "open")}>";
}
