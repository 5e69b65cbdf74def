namespace Tulip;

public static partial class Asyncio
{
    /// <summary>Connects and returns a reader and writer (asyncio's <c>open_connection</c>).</summary>
    public static async Task<(LoopStreamReader Reader, LoopStreamWriter Writer)> OpenConnection(string? host, int port,
        int limit = LoopStreamReader.DefaultLimit)
    {
        var loop = EventLoop.GetRunningLoop();
        var reader = new LoopStreamReader(loop, limit);
        var protocol = new StreamReaderProtocol(reader, null, loop);
        var (transport, _) = await loop.CreateConnectionAsync(() => protocol, host, port);
        return (reader, new LoopStreamWriter(transport, protocol, reader, loop));
    }

    /// <summary>Connects to a Unix-domain socket (asyncio's <c>open_unix_connection</c>).</summary>
    public static async Task<(LoopStreamReader Reader, LoopStreamWriter Writer)> OpenUnixConnection(string path,
        int limit = LoopStreamReader.DefaultLimit)
    {
        var loop = EventLoop.GetRunningLoop();
        var reader = new LoopStreamReader(loop, limit);
        var protocol = new StreamReaderProtocol(reader, null, loop);
        var (transport, _) = await loop.CreateUnixConnectionAsync(() => protocol, path);
        return (reader, new LoopStreamWriter(transport, protocol, reader, loop));
    }

    /// <summary>
    /// Serves connections: <paramref name="clientConnected"/> runs as a task per connection with its reader
    /// and writer (asyncio's <c>start_server</c>).
    /// </summary>
    public static Task<Server> StartServer(Func<LoopStreamReader, LoopStreamWriter, Task> clientConnected, string? host, int port,
        int limit = LoopStreamReader.DefaultLimit, int backlog = 100)
    {
        ArgumentNullException.ThrowIfNull(clientConnected);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(limit); // now, not per connection (asyncio's StreamReader: 'Limit cannot be <= 0')
        var loop = EventLoop.GetRunningLoop();
        return loop.CreateServerAsync(() => new StreamReaderProtocol(new LoopStreamReader(loop, limit), clientConnected, loop), host, port, backlog);
    }

    /// <summary>A Unix-domain stream server (asyncio's <c>start_unix_server</c>).</summary>
    public static Task<Server> StartUnixServer(Func<LoopStreamReader, LoopStreamWriter, Task> clientConnected, string path,
        int limit = LoopStreamReader.DefaultLimit, int backlog = 100)
    {
        ArgumentNullException.ThrowIfNull(clientConnected);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(limit);
        var loop = EventLoop.GetRunningLoop();
        return loop.CreateUnixServerAsync(() => new StreamReaderProtocol(new LoopStreamReader(loop, limit), clientConnected, loop), path, backlog);
    }
}
