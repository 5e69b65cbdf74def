namespace Tulip;

public static partial class Asyncio
{
    /// <summary>
    /// Connects and returns a reader and writer (asyncio's <c>open_connection</c>). The token cancels the
    /// connect as <see cref="EventLoop.CreateConnectionAsync{TProtocol}(Func{TProtocol}, string?, int, System.Net.EndPoint?, double?, int?, CancellationToken)"/>'s:
    /// already cancelled, no connection is attempted; fired while connecting, the half-open socket is closed.
    /// </summary>
    public static async Task<(LoopStreamReader Reader, LoopStreamWriter Writer)> OpenConnection(string? host, int port,
        int limit = LoopStreamReader.DefaultLimit, double? happyEyeballsDelay = null, int? interleave = null,
        CancellationToken cancellationToken = default)
    {
        var loop = EventLoop.GetRunningLoop();
        var reader = new LoopStreamReader(loop, limit);
        var protocol = new StreamReaderProtocol(reader, null, loop);
        var (transport, _) = await loop.CreateConnectionAsync(() => protocol, host, port, null, happyEyeballsDelay, interleave, cancellationToken);
        return (reader, new LoopStreamWriter(transport, protocol, reader, loop));
    }

    /// <summary>Connects to a Unix-domain socket (asyncio's <c>open_unix_connection</c>).</summary>
    public static async Task<(LoopStreamReader Reader, LoopStreamWriter Writer)> OpenUnixConnection(string path,
        int limit = LoopStreamReader.DefaultLimit, CancellationToken cancellationToken = default)
    {
        var loop = EventLoop.GetRunningLoop();
        var reader = new LoopStreamReader(loop, limit);
        var protocol = new StreamReaderProtocol(reader, null, loop);
        var (transport, _) = await loop.CreateUnixConnectionAsync(() => protocol, path, cancellationToken);
        return (reader, new LoopStreamWriter(transport, protocol, reader, loop));
    }

    /// <summary>
    /// Serves connections: <paramref name="clientConnected"/> runs as a task per connection with its reader
    /// and writer (asyncio's <c>start_server</c>). The token cancels the start (a host name's resolution);
    /// already cancelled, no socket is made. It does not stop the server once started: close it, or
    /// pass a token to <see cref="Server.ServeForeverAsync(CancellationToken)"/>.
    /// </summary>
    public static Task<Server> StartServer(Func<LoopStreamReader, LoopStreamWriter, Task> clientConnected, string? host, int port,
        int limit = LoopStreamReader.DefaultLimit, int backlog = 100, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(clientConnected);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(limit); // now, not per connection (asyncio's StreamReader: 'Limit cannot be <= 0')
        var loop = EventLoop.GetRunningLoop();
        return loop.CreateServerAsync(() => new StreamReaderProtocol(new LoopStreamReader(loop, limit), clientConnected, loop), host, port, backlog,
            cancellationToken: cancellationToken);
    }

    /// <summary>A Unix-domain stream server (asyncio's <c>start_unix_server</c>).</summary>
    public static Task<Server> StartUnixServer(Func<LoopStreamReader, LoopStreamWriter, Task> clientConnected, string path,
        int limit = LoopStreamReader.DefaultLimit, int backlog = 100, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(clientConnected);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(limit);
        var loop = EventLoop.GetRunningLoop();
        return loop.CreateUnixServerAsync(() => new StreamReaderProtocol(new LoopStreamReader(loop, limit), clientConnected, loop), path, backlog,
            cancellationToken: cancellationToken);
    }
}
