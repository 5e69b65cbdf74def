using System.Net;
using System.Net.Sockets;
using Tulip.Core;
using Tulip.Core.Interop;
using Tulip.Io;

namespace Tulip.Transports;

/// <summary>A UDP endpoint (asyncio's <c>_SelectorDatagramTransport</c>).</summary>
internal sealed class DatagramTransport : IDatagramTransport
{
    private readonly EventLoop _loop;
    private readonly Socket _sock;
    private DatagramProtocol _protocol;
    private readonly EndPoint? _remote;
    private readonly Queue<(byte[] Data, EndPoint? To)> _pending = new();
    private int _pendingBytes;
    private readonly Handle _readHandle, _writeHandle;
    private readonly IoSource _source;
    private bool _closing, _closed, _writeRegistered, _made;
    private ProtocolPhase _grammar = ProtocolPhase.Fresh;
    private readonly EndPoint _anyFrom;
    private readonly EndPoint? _local; // bound (or connected) before the transport is made: fixed

    public DatagramTransport(EventLoop loop, Socket sock, DatagramProtocol protocol, EndPoint? remote, Future<ValueTuple> waiter)
    {
        _loop = loop;
        _sock = sock;
        _protocol = protocol;
        _remote = remote;
        _local = sock.LocalEndPoint;
        _anyFrom = sock.AddressFamily == AddressFamily.InterNetworkV6 ? new IPEndPoint(IPAddress.IPv6Any, 0) : new IPEndPoint(IPAddress.Any, 0);
        _readHandle = new StateHandle<DatagramTransport>(loop, static t => t.ReadReady(), this);
        _writeHandle = new StateHandle<DatagramTransport>(loop, static t => t.WriteReady(), this);
        _source = new IoSource(sock);
        loop.CallSoon(static s =>
        {
            var (t, w) = s;
            if (t._closing || w.Done)
            {
                // Aborted, or its creator was cancelled while waiting: no ConnectionMade, nothing registered.
                if (!w.Done) w.Cancel();
                return;
            }

            t._grammar = ProtocolCore.Next(t._grammar, ProtocolCall.ConnectionMade);
            t._made = true;
            try
            {
                t._protocol.ConnectionMade(t);
            }
            catch (Exception e)
            {
                t._loop.CallExceptionHandler(new ExceptionContext("Fatal error: protocol.connection_made() call failed.", e) { Transport = t });
                t.Abort();
                w.SetException(e);
                return;
            }

            t.Apply();
            w.SetResult(default);
        }, (this, waiter));
    }

    public BaseProtocol Protocol
    {
        get
        {
            _loop.VerifyAccess();
            return _protocol;
        }
        set
        {
            ArgumentNullException.ThrowIfNull(value);
            _loop.VerifyAccess();
            _protocol = value as DatagramProtocol ?? throw new ArgumentException("a datagram transport needs a DatagramProtocol", nameof(value));
        }
    }

    public bool IsClosing
    {
        get
        {
            _loop.VerifyAccess();
            return _closing;
        }
    }

    public object? GetExtraInfo(string name, object? defaultValue = null) => (name ?? throw new ArgumentNullException(nameof(name))) switch
    {
        "peername" => _remote ?? defaultValue,
        "sockname" => _closed ? defaultValue : _local ?? defaultValue,
        "socket" => _sock,
        _ => defaultValue,
    };

    public int GetWriteBufferSize()
    {
        _loop.VerifyAccess();
        return _pendingBytes;
    }

    private void Apply()
    {
        if (_closed) return;
        _loop.SetWatch(_source, _closing ? null : _readHandle, _writeRegistered ? _writeHandle : null);
    }

    private void ReadReady()
    {
        if (_closing || _closed) return;
        var buf = _loop.ReadBuffer;
        try
        {
            // Readiness means a datagram (maybe empty) or a pending error: always consume it, or a
            // level-triggered reactor reports the socket ready forever.
            EndPoint from = _anyFrom;
            int n = _sock.ReceiveFrom(buf, SocketFlags.None, ref from);
            _protocol.DatagramReceived(new ReadOnlySpan<byte>(buf, 0, n), from);
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.WouldBlock or SocketError.Interrupted)
        {
        }
        catch (SocketException e)
        {
            // ICMP errors (ConnectionRefused…) are reported; the endpoint stays open, as in asyncio.
            _protocol.ErrorReceived(e);
        }
        catch (Exception e)
        {
            _loop.CallExceptionHandler(new ExceptionContext("Fatal error: protocol.datagram_received() call failed.", e) { Transport = this });
            Abort();
        }
    }

    public void SendTo(ReadOnlySpan<byte> data, EndPoint? to = null)
    {
        _loop.VerifyAccess();
        if (_closing) return;
        to ??= _remote ?? throw new ArgumentException("no address given and the endpoint is not connected", nameof(to));
        if (_pending.Count == 0)
        {
            try
            {
                _sock.SendTo(data, SocketFlags.None, to);
                return;
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.WouldBlock or SocketError.Interrupted)
            {
            }
            catch (SocketException e)
            {
                _protocol.ErrorReceived(e);
                return;
            }
        }

        _pending.Enqueue((data.ToArray(), to));
        _pendingBytes += data.Length;
        if (!_writeRegistered)
        {
            _writeRegistered = true;
            Apply();
        }
    }

    private void WriteReady()
    {
        while (_pending.Count > 0)
        {
            var (data, to) = _pending.Peek();
            try
            {
                _sock.SendTo(data, SocketFlags.None, to!);
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.WouldBlock or SocketError.Interrupted)
            {
                return;
            }
            catch (SocketException e)
            {
                _protocol.ErrorReceived(e);
            }

            _pending.Dequeue();
            _pendingBytes -= data.Length;
        }

        _writeRegistered = false;
        Apply();
        if (_closing) Finish(null);
    }

    public void Close()
    {
        _loop.VerifyAccess();
        if (_closing) return;
        _closing = true;
        Apply();
        if (_pending.Count == 0) _loop.CallSoon(static s => s.Item1.Finish(s.Item2), (this, (Exception?)null));
    }

    public void Abort()
    {
        _loop.VerifyAccess();
        _pending.Clear();
        _pendingBytes = 0;
        _closing = true;
        _loop.CallSoon(static s => s.Item1.Finish(s.Item2), (this, (Exception?)null));
    }

    private void Finish(Exception? e)
    {
        if (_closed) return;
        _closed = true;
        _loop.Unwatch(_source);
        _sock.Dispose();
        if (!_made) return;
        _grammar = ProtocolCore.Next(_grammar, ProtocolCall.ConnectionLost);
        try
        {
            _protocol.ConnectionLost(e);
        }
        catch (Exception ex)
        {
            _loop.CallExceptionHandler(new ExceptionContext("Fatal error: protocol.connection_lost() call failed.", ex) { Transport = this });
        }
    }
}
