using System.Net;
using System.Net.Sockets;

namespace Tulip.Io;

/// <summary>
/// The portable reactor: <see cref="Socket.Select"/> over the watched sockets, with a loopback socket
/// pair for wakes. O(n) per poll, so meant for platforms without epoll and for testing the seam; the
/// transport suite runs against it too.
/// </summary>
internal sealed class SelectReactor : IReactor
{
    private readonly Dictionary<Socket, (IIoHandler Handler, bool Read, bool Write)> _watched = new(ReferenceEqualityComparer.Instance);
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

    public int Count => _watched.Count;

    public void Update(Socket socket, IIoHandler handler, bool read, bool write) => _watched[socket] = (handler, read, write);

    public void Remove(Socket socket) => _watched.Remove(socket);

    public int Poll(long timeoutTicks, Action<IIoHandler, bool, bool> ready)
    {
        _read.Clear();
        _write.Clear();
        _error.Clear();
        _read.Add(_wakeReader);
        foreach (var (socket, (_, r, w)) in _watched)
        {
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

        int dispatched = 0;
        var seen = new HashSet<Socket>(ReferenceEqualityComparer.Instance);
        foreach (var s in _read) seen.Add(s);
        foreach (var s in _write) seen.Add(s);
        foreach (var s in _error) seen.Add(s);
        foreach (var socket in seen)
        {
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

            if (!_watched.TryGetValue(socket, out var reg)) continue;
            bool error = _error.Contains(socket);
            ready(reg.Handler, error || _read.Contains(socket), error || _write.Contains(socket));
            dispatched++;
        }

        return dispatched;
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
