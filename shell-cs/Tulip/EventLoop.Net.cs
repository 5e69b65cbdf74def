using System.Net;
using System.Net.Sockets;
using Tulip.Io;
using Tulip.Transports;

namespace Tulip;

public sealed partial class EventLoop
{
    // ---------------------------------------------------------------------------------------------
    // Readiness as a loop future: the building block of the sock_* functions and of connect.

    /// <summary>
    /// A future completed when <paramref name="socket"/> is readable (or writable). Built on the
    /// socket's add_reader / add_writer slots, so a reader and a writer may wait on one socket at once
    /// (asyncio's sock_recv beside sock_sendall); cancelling the future frees its slot.
    /// </summary>
    internal Future<ValueTuple> WhenReady(Socket socket, bool write)
    {
        var future = new Future<ValueTuple>(this);
        Action? callback = null;
        callback = () =>
        {
            RemoveIfStill(socket, write, callback!);
            if (!future.Done) future.SetResult(default);
        };
        var watcher = WatcherFor(socket);
        if (write) watcher.SetWriter(callback);
        else watcher.SetReader(callback);
        future.AddParked(new StateHandle<(EventLoop Loop, Socket Socket, bool Write, Action Callback)>(this,
            static s => s.Loop.RemoveIfStill(s.Socket, s.Write, s.Callback), (this, socket, write, callback)));
        return future;
    }

    private void RemoveIfStill(Socket socket, bool write, Action callback)
    {
        if (_watchers.TryGetValue(socket, out var w) && w.Has(write, callback))
        {
            if (write) w.SetWriter(null);
            else w.SetReader(null);
        }
    }

    private void RequireNonBlocking(Socket socket, [System.Runtime.CompilerServices.CallerArgumentExpression(nameof(socket))] string? paramName = null)
    {
        ArgumentNullException.ThrowIfNull(socket, paramName);
        VerifyAccess();
        if (socket.Blocking) throw new ArgumentException("the socket must be non-blocking", paramName);
    }

    // ---------------------------------------------------------------------------------------------
    // Low-level socket operations (asyncio's loop.sock_*).
    //
    // Each takes a token (issue 14): already cancelled, the call fails at once and touches the socket
    // not at all; fired while the call waits for readiness, the readiness future is cancelled on the
    // loop, which frees its add_reader / add_writer slot (CPython 3.11: after a cancelled sock_recv,
    // sock_recv_into, sock_accept, sock_sendall or sock_connect, remove_reader / remove_writer finds
    // nothing), and the call ends with an OperationCanceledException carrying the token. The socket
    // is the caller's: a cancelled SockConnectAsync leaves it open (as 3.11's sock_connect). A call
    // that does not wait registers nothing with the token.

    /// <summary>Receives into <paramref name="buffer"/>; returns the count (0 at EOF).</summary>
    public async Task<int> SockRecvIntoAsync(Socket socket, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        RequireNonBlocking(socket);
        cancellationToken.ThrowIfCancellationRequested();
        while (true)
        {
            int n = socket.Receive(buffer.Span, SocketFlags.None, out SocketError err);
            if (err == SocketError.Success) return n;
            if (err is not (SocketError.WouldBlock or SocketError.Interrupted)) throw new SocketException((int)err);
            var ready = WhenReady(socket, write: false);
            if (cancellationToken.CanBeCanceled) await TokenCancellation.WaitAsync(ready, cancellationToken);
            else await ready;
        }
    }

    /// <summary>Receives up to <paramref name="maxBytes"/> bytes (empty at EOF).</summary>
    public async Task<byte[]> SockRecvAsync(Socket socket, int maxBytes, CancellationToken cancellationToken = default)
    {
        RequireNonBlocking(socket);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxBytes);
        cancellationToken.ThrowIfCancellationRequested();
        // Not maxBytes up front (int.MaxValue would be 2 GiB): what one receive can return, i.e. what is
        // queued now, or a transport's read size, whichever is more — at most maxBytes.
        var buffer = new byte[Math.Min(maxBytes, Math.Max(socket.Available, SocketTransport.MaxReadSize))];
        int n = await SockRecvIntoAsync(socket, buffer, cancellationToken);
        return n == buffer.Length ? buffer : buffer[..n];
    }

    /// <summary>Sends all of <paramref name="data"/>. Cancelled while it waits, what was sent stays sent
    /// and the rest is not (as asyncio's sock_sendall: the count is not reported).</summary>
    public async Task SockSendAllAsync(Socket socket, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        RequireNonBlocking(socket);
        cancellationToken.ThrowIfCancellationRequested();
        while (!data.IsEmpty)
        {
            int n = socket.Send(data.Span, SocketFlags.None, out SocketError err);
            if (err == SocketError.Success)
            {
                data = data[n..];
                continue;
            }

            if (err is not (SocketError.WouldBlock or SocketError.Interrupted)) throw new SocketException((int)err);
            var ready = WhenReady(socket, write: true);
            if (cancellationToken.CanBeCanceled) await TokenCancellation.WaitAsync(ready, cancellationToken);
            else await ready;
        }
    }

    /// <summary>Accepts a connection; the new socket is non-blocking.</summary>
    public async Task<(Socket Connection, EndPoint? Address)> SockAcceptAsync(Socket listener, CancellationToken cancellationToken = default)
    {
        RequireNonBlocking(listener);
        cancellationToken.ThrowIfCancellationRequested();
        while (true)
        {
            try
            {
                var conn = listener.Accept();
                conn.Blocking = false;
                return (conn, conn.RemoteEndPoint);
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.WouldBlock or SocketError.Interrupted)
            {
            }

            var ready = WhenReady(listener, write: false);
            if (cancellationToken.CanBeCanceled) await TokenCancellation.WaitAsync(ready, cancellationToken);
            else await ready;
        }
    }

    /// <summary>Connects a non-blocking socket; raises the typed <see cref="SocketException"/> on failure
    /// (ConnectionRefused, HostUnreachable, NetworkUnreachable, TimedOut…).</summary>
    public async Task SockConnectAsync(Socket socket, EndPoint address, CancellationToken cancellationToken = default)
    {
        RequireNonBlocking(socket);
        ArgumentNullException.ThrowIfNull(address);
        cancellationToken.ThrowIfCancellationRequested();
        try
        {
            socket.Connect(address);
            return;
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.WouldBlock or SocketError.InProgress or SocketError.AlreadyInProgress)
        {
        }

        var ready = WhenReady(socket, write: true);
        if (cancellationToken.CanBeCanceled) await TokenCancellation.WaitAsync(ready, cancellationToken);
        else await ready;
        var error = (SocketError)(int)socket.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.Error)!;
        if (error != SocketError.Success) throw new SocketException((int)error);
    }

    // ---------------------------------------------------------------------------------------------
    // Name resolution (the DNS issue will add getaddrinfo proper).

    private static async Task<IPAddress[]> Resolve(string? host, bool passive, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(host))
        {
            return passive
                ? (Socket.OSSupportsIPv6 ? [IPAddress.Any, IPAddress.IPv6Any] : [IPAddress.Any])
                : [IPAddress.Loopback];
        }

        if (IPAddress.TryParse(host, out var literal)) return [literal];
        var found = await Dns.GetHostAddressesAsync(host, cancellationToken);
        if (found.Length == 0) throw new SocketException((int)SocketError.HostNotFound);
        return found;
    }

    // ---------------------------------------------------------------------------------------------
    // Servers and connections (asyncio's create_server / create_connection and the Unix variants).
    //
    // Each takes a token: already cancelled, the call fails at once, before any socket is made; fired
    // while a name is resolved or a connection is under way, the wait ends with an
    // OperationCanceledException carrying the token, and the half-open socket is closed and
    // unregistered (CPython 3.11: a cancelled create_connection leaves no selector entry). Once the
    // socket is connected the call completes (the protocol's ConnectionMade is one tick away).

    /// <summary>
    /// Listens on <paramref name="host"/>:<paramref name="port"/> (every address the host resolves to;
    /// null: all interfaces) and gives each connection a protocol from the factory.
    /// </summary>
    public Task<Server> CreateServerAsync(Func<BaseProtocol> protocolFactory, string? host, int port, int backlog = 100,
        bool reuseAddress = true, bool reusePort = false, bool startServing = true, CancellationToken cancellationToken = default) =>
        CreateServerAsync(protocolFactory, [host], port, backlog, reuseAddress, reusePort, startServing, cancellationToken);

    /// <summary>
    /// Listens on every address of every host in <paramref name="hosts"/> (asyncio's <c>host</c> given as
    /// a sequence), one listening socket each, all served by the one <see cref="Server"/>.
    /// </summary>
    public async Task<Server> CreateServerAsync(Func<BaseProtocol> protocolFactory, IEnumerable<string?> hosts, int port, int backlog = 100,
        bool reuseAddress = true, bool reusePort = false, bool startServing = true, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(protocolFactory);
        ArgumentNullException.ThrowIfNull(hosts);
        ArgumentOutOfRangeException.ThrowIfNegative(port);
        ArgumentOutOfRangeException.ThrowIfNegative(backlog);
        ThrowIfClosed();
        VerifyAccess();
        cancellationToken.ThrowIfCancellationRequested();
        var addresses = new List<IPAddress>();
        foreach (var host in hosts) addresses.AddRange(await Resolve(host, passive: true, cancellationToken));
        if (addresses.Count == 0) throw new ArgumentException("no host to listen on", nameof(hosts));
        var sockets = new List<Socket>();
        try
        {
            foreach (var address in addresses.Distinct())
            {
                var sock = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                sockets.Add(sock);
                if (reuseAddress && !OperatingSystem.IsWindows()) sock.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                if (reusePort) SetReusePort(sock);
                if (address.AddressFamily == AddressFamily.InterNetworkV6) sock.DualMode = false; // as CPython: IPV6_V6ONLY
                sock.Bind(new IPEndPoint(address, port));
                sock.Blocking = false;
            }
        }
        catch
        {
            foreach (var s in sockets) s.Dispose();
            throw;
        }

        var server = new Server(this, sockets, protocolFactory, backlog);
        if (startServing) server.StartServing();
        return server;
    }

    /// <summary>A server on a socket the caller made and bound.</summary>
    public Task<Server> CreateServerAsync(Func<BaseProtocol> protocolFactory, Socket socket, int backlog = 100, bool startServing = true,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(protocolFactory);
        ArgumentNullException.ThrowIfNull(socket);
        ArgumentOutOfRangeException.ThrowIfNegative(backlog);
        ThrowIfClosed();
        VerifyAccess();
        if (cancellationToken.IsCancellationRequested) return Task.FromCanceled<Server>(cancellationToken);
        socket.Blocking = false;
        var server = new Server(this, [socket], protocolFactory, backlog);
        if (startServing) server.StartServing();
        return Task.FromResult(server);
    }

    /// <summary>A Unix-domain stream server at <paramref name="path"/> (an existing socket file is replaced).</summary>
    public Task<Server> CreateUnixServerAsync(Func<BaseProtocol> protocolFactory, string path, int backlog = 100, bool startServing = true,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(protocolFactory);
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentOutOfRangeException.ThrowIfNegative(backlog);
        ThrowIfClosed();
        VerifyAccess();
        if (cancellationToken.IsCancellationRequested) return Task.FromCanceled<Server>(cancellationToken); // before the file is replaced
        if (File.Exists(path) && (File.GetAttributes(path) & FileAttributes.Normal) == 0) File.Delete(path);
        var sock = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            sock.Bind(new UnixDomainSocketEndPoint(path));
        }
        catch
        {
            sock.Dispose();
            throw;
        }

        return CreateServerAsync(protocolFactory, sock, backlog, startServing);
    }

    /// <summary>
    /// Connects to <paramref name="host"/>:<paramref name="port"/> and returns the transport and protocol
    /// once ConnectionMade has run (asyncio's <c>create_connection</c>). The host is resolved with
    /// <see cref="GetAddrInfoAsync(string?, int, AddressFamily, SocketType, ProtocolType, AddrInfoFlags, CancellationToken)"/>
    /// (a null host: the loopback addresses, as getaddrinfo(None) gives asyncio) and its addresses are
    /// tried in the resolver's order, one after another; with <paramref name="happyEyeballsDelay"/>
    /// (seconds; RFC 8305 suggests 0.25) as a staggered race: the next attempt starts when the previous one
    /// fails or the delay passes, and the first to connect wins. <paramref name="interleave"/> reorders the
    /// addresses by family first (1 when a delay is given: IPv6, IPv4, IPv6…). When every address fails the
    /// error is the one attempt's, or a <see cref="ConnectionAttemptsException"/> ("Multiple exceptions: …")
    /// holding all of them. Cancel the awaiting task, or the token, to give up: every socket is closed and
    /// unregistered.
    /// </summary>
    public async Task<(ITransport Transport, TProtocol Protocol)> CreateConnectionAsync<TProtocol>(Func<TProtocol> protocolFactory,
        string? host, int port, EndPoint? localAddress = null, double? happyEyeballsDelay = null, int? interleave = null,
        CancellationToken cancellationToken = default)
        where TProtocol : BaseProtocol
    {
        ArgumentNullException.ThrowIfNull(protocolFactory);
        if (happyEyeballsDelay is { } d && (double.IsNaN(d) || d < 0))
            throw new ArgumentOutOfRangeException(nameof(happyEyeballsDelay), d, "the delay must be a non-negative number of seconds");
        if (interleave is < 0) throw new ArgumentOutOfRangeException(nameof(interleave), interleave, "interleave must be 0 or more");
        ThrowIfClosed();
        VerifyAccess();
        cancellationToken.ThrowIfCancellationRequested();
        var infos = await GetAddrInfoAsync(host, port, AddressFamily.Unspecified, SocketType.Stream, ProtocolType.Unspecified,
            AddrInfoFlags.None, cancellationToken);
        // asyncio 3.11: a delay without an interleave count interleaves by 1.
        int order = interleave ?? (happyEyeballsDelay is null ? 0 : 1);
        if (order > 0) infos = Transports.HappyEyeballs.Interleave(infos, order);
        var sock = await Transports.HappyEyeballs.Connect(this, infos, localAddress, happyEyeballsDelay, cancellationToken);
        sock.NoDelay = true;
        return await MakeTransport(sock, protocolFactory);
    }

    /// <summary>Wraps a connected socket the caller made (a token already cancelled: nothing is done, the
    /// socket stays the caller's).</summary>
    public Task<(ITransport Transport, TProtocol Protocol)> CreateConnectionAsync<TProtocol>(Func<TProtocol> protocolFactory, Socket socket,
        CancellationToken cancellationToken = default)
        where TProtocol : BaseProtocol
    {
        ArgumentNullException.ThrowIfNull(protocolFactory);
        ArgumentNullException.ThrowIfNull(socket);
        ThrowIfClosed();
        VerifyAccess();
        if (cancellationToken.IsCancellationRequested) return Task.FromCanceled<(ITransport, TProtocol)>(cancellationToken);
        socket.Blocking = false;
        return MakeTransport(socket, protocolFactory);
    }

    /// <summary>Connects to the Unix-domain socket at <paramref name="path"/>.</summary>
    public async Task<(ITransport Transport, TProtocol Protocol)> CreateUnixConnectionAsync<TProtocol>(Func<TProtocol> protocolFactory, string path,
        CancellationToken cancellationToken = default)
        where TProtocol : BaseProtocol
    {
        ArgumentNullException.ThrowIfNull(protocolFactory);
        ArgumentException.ThrowIfNullOrEmpty(path);
        ThrowIfClosed();
        VerifyAccess();
        cancellationToken.ThrowIfCancellationRequested();
        var sock = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { Blocking = false };
        try
        {
            await SockConnectAsync(sock, new UnixDomainSocketEndPoint(path), cancellationToken);
        }
        catch
        {
            sock.Dispose();
            throw;
        }

        return await MakeTransport(sock, protocolFactory);
    }

    private Task<(ITransport, TProtocol)> MakeTransport<TProtocol>(Socket sock, Func<TProtocol> protocolFactory)
        where TProtocol : BaseProtocol =>
        Attach<TProtocol, ITransport>(sock, protocolFactory,
            (protocol, waiter) => new SocketTransport(this, sock, protocol, waiter, null), static t => t.Abort());

    /// <summary>
    /// Gives a connected socket its protocol and transport and waits for ConnectionMade. Whatever goes
    /// wrong first (the factory throws, the wait is cancelled) leaves the socket closed: as asyncio's
    /// <c>_create_connection_transport</c>.
    /// </summary>
    private async Task<(TTransport, TProtocol)> Attach<TProtocol, TTransport>(Socket sock, Func<TProtocol> protocolFactory,
        Func<TProtocol, Future<ValueTuple>, TTransport> makeTransport, Action<TTransport> abort)
    {
        TProtocol protocol;
        try
        {
            protocol = protocolFactory();
        }
        catch
        {
            sock.Dispose();
            throw;
        }

        var waiter = CreateFuture();
        var transport = makeTransport(protocol, waiter);
        try
        {
            await waiter;
        }
        catch
        {
            abort(transport);
            throw;
        }

        return (transport, protocol);
    }

    /// <summary>
    /// A datagram endpoint bound to <paramref name="localAddress"/> and/or connected to
    /// <paramref name="remoteAddress"/> (asyncio's <c>create_datagram_endpoint</c>).
    /// </summary>
    public async Task<(IDatagramTransport Transport, TProtocol Protocol)> CreateDatagramEndpointAsync<TProtocol>(Func<TProtocol> protocolFactory,
        EndPoint? localAddress = null, EndPoint? remoteAddress = null, bool reuseAddress = false, CancellationToken cancellationToken = default)
        where TProtocol : DatagramProtocol
    {
        ArgumentNullException.ThrowIfNull(protocolFactory);
        if (localAddress is null && remoteAddress is null) throw new ArgumentException("unexpected address family: give a local or a remote address");
        ThrowIfClosed();
        VerifyAccess();
        cancellationToken.ThrowIfCancellationRequested(); // nothing waits after this: the endpoint is made at once
        var family = (localAddress ?? remoteAddress)!.AddressFamily;
        var sock = new Socket(family, SocketType.Dgram, family == AddressFamily.Unix ? ProtocolType.Unspecified : ProtocolType.Udp) { Blocking = false };
        try
        {
            if (reuseAddress) sock.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            if (localAddress is not null) sock.Bind(localAddress);
            if (remoteAddress is not null) sock.Connect(remoteAddress);
        }
        catch
        {
            sock.Dispose();
            throw;
        }

        return await Attach<TProtocol, IDatagramTransport>(sock, protocolFactory,
            (protocol, waiter) => new DatagramTransport(this, sock, protocol, remoteAddress, waiter), static t => t.Abort());
    }


    private static void SetReusePort(Socket sock)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) throw new PlatformNotSupportedException("reuse_port not supported by socket module");
        const int SOL_SOCKET = 1, SO_REUSEPORT_LINUX = 15, SO_REUSEPORT_MAC = 0x0200;
        int level = OperatingSystem.IsLinux() ? SOL_SOCKET : 0xffff;
        sock.SetRawSocketOption(level, OperatingSystem.IsLinux() ? SO_REUSEPORT_LINUX : SO_REUSEPORT_MAC, BitConverter.GetBytes(1));
    }
}
