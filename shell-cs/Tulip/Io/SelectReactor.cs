using System.Net;
using System.Net.Sockets;
using Tulip.Core;

namespace Tulip.Io;

/// <summary>
/// The portable reactor: <see cref="Socket.Select"/> over the watched sockets, with a loopback socket
/// pair for wakes. O(n) per poll, so meant for platforms without epoll and for testing the seam; the
/// transport suite runs against it too.
/// </summary>
internal sealed class SelectReactor : IReactor
{
    // By token: the socket and its interests (null: a free token).
    private (Socket? Socket, bool Read, bool Write)[] _watched = new (Socket?, bool, bool)[16];
    private readonly Dictionary<Socket, int> _tokenOf = new(ReferenceEqualityComparer.Instance);
    private readonly Stack<int> _freeTokens = new();
    private int _nextToken;
    private readonly Socket _wakeReader;
    private readonly Socket _wakeWriter;
    private int _wakePending;
    private readonly List<Socket> _read = new(), _write = new(), _error = new();
    private readonly byte[] _drain = new byte[64];

    public SelectReactor()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        _wakeWriter = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        _wakeWriter.Connect(listener.LocalEndPoint!);
        _wakeReader = listener.Accept();
        _wakeReader.Blocking = false;
    }

    public int Count => _tokenOf.Count;

    public int Register(Socket socket, bool read, bool write)
    {
        int token = _freeTokens.Count > 0 ? _freeTokens.Pop() : _nextToken++;
        if (token >= _watched.Length) Array.Resize(ref _watched, _watched.Length * 2);
        _watched[token] = (socket, read, write);
        _tokenOf[socket] = token;
        return token;
    }

    // Socket.Select takes sockets only: pipes and pidfds need the epoll reactor (subprocesses, pipe transports).
    public int RegisterFd(int fd, bool read, bool write) =>
        throw new NotSupportedException("the select reactor watches sockets only; pipes need the epoll reactor (ReactorKind.Epoll)");

    public void Modify(int token, bool read, bool write)
    {
        var socket = _watched[token].Socket ?? throw new InvalidOperationException($"token {token} is not registered");
        _watched[token] = (socket, read, write);
    }

    public void Unregister(int token)
    {
        if ((uint)token >= (uint)_watched.Length || _watched[token].Socket is not { } socket) return;
        _watched[token] = default;
        _tokenOf.Remove(socket);
        _freeTokens.Push(token);
    }

    public int Poll(long timeoutTicks, Span<IoEvent> events)
    {
        _read.Clear();
        _write.Clear();
        _error.Clear();
        _read.Add(_wakeReader);
        for (int t = 0; t < _nextToken; t++)
        {
            var (socket, r, w) = _watched[t];
            if (socket is null) continue;
            if (r) _read.Add(socket);
            if (w) _write.Add(socket);
            if (r || w) _error.Add(socket);
        }

        int micro = timeoutTicks < 0 ? -1 : (int)Math.Min(int.MaxValue, timeoutTicks / 10);
        try
        {
            Socket.Select(_read, _write.Count > 0 ? _write : null, _error, micro);
        }
        catch (ObjectDisposedException)
        {
            return 0; // a socket was closed by another thread: the next poll sees the new set
        }

        int written = 0;
        var seen = new HashSet<Socket>(ReferenceEqualityComparer.Instance);
        foreach (var list in (List<Socket>[])[_read, _write, _error])
        {
            foreach (var socket in list)
            {
                if (!seen.Add(socket)) continue;
                if (ReferenceEquals(socket, _wakeReader))
                {
                    try
                    {
                        while (_wakeReader.Available > 0) _wakeReader.Receive(_drain);
                    }
                    catch (SocketException)
                    {
                    }

                    Volatile.Write(ref _wakePending, 0);
                    continue;
                }

                if (written == events.Length || !_tokenOf.TryGetValue(socket, out int token)) continue;
                bool error = _error.Contains(socket);
                var readiness = Readiness.None;
                if (error || _read.Contains(socket)) readiness |= Readiness.Readable;
                if (error || _write.Contains(socket)) readiness |= Readiness.Writable;
                events[written++] = new IoEvent(token, readiness);
            }
        }

        return written;
    }

    public void Wake()
    {
        if (Interlocked.Exchange(ref _wakePending, 1) == 1) return;
        try
        {
            _wakeWriter.Send([1]);
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
    }

    public void Dispose()
    {
        _wakeReader.Dispose();
        _wakeWriter.Dispose();
    }
}
