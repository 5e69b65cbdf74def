namespace Tulip.Reactive;

/// <summary>A connection handed out by a stream server: its reader and writer. Immutable, so any thread may
/// read it (the reader and writer themselves are used on the loop's thread).</summary>
[ThreadSafe]
public sealed record LoopConnection(LoopStreamReader Reader, LoopStreamWriter Writer)
{
    private readonly LoopStreamReader _reader = Reader ?? throw new ArgumentNullException(nameof(Reader));
    private readonly LoopStreamWriter _writer = Writer ?? throw new ArgumentNullException(nameof(Writer));

    public LoopStreamReader Reader
    {
        get => _reader;
        init => _reader = value ?? throw new ArgumentNullException(nameof(value));
    }

    public LoopStreamWriter Writer
    {
        get => _writer;
        init => _writer = value ?? throw new ArgumentNullException(nameof(value));
    }
}

/// <summary>Stream readers and stream servers as observables.</summary>
public static class StreamObservables
{
    /// <summary>
    /// The reader's lines (each with its newline) until EOF, then completion; a read error is OnError.
    /// Disposing the subscription cancels the pending read: the stream stays open and whatever was not
    /// read stays in the reader for the next reader. Any thread (the reads run in a loop task).
    /// </summary>
    [ThreadSafe]
    public static IObservable<byte[]> LinesObservable(this LoopStreamReader reader, EventLoop loop)
    {
        ArgumentNullException.ThrowIfNull(reader);
        return LoopObservable.Create<byte[]>(loop, async (observer, _) =>
        {
            while (true)
            {
                var line = await reader.ReadLineBytesAsync();
                if (line.Length == 0) return;
                observer.OnNext(line);
            }
        });
    }

    /// <summary>The reader's data in chunks of at most <paramref name="chunkSize"/> bytes until EOF (disposal as for lines). Any thread.</summary>
    [ThreadSafe]
    public static IObservable<byte[]> ChunksObservable(this LoopStreamReader reader, EventLoop loop, int chunkSize = LoopStreamReader.DefaultLimit)
    {
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(chunkSize);
        return LoopObservable.Create<byte[]>(loop, async (observer, _) =>
        {
            while (true)
            {
                var chunk = await reader.ReadAsync(chunkSize);
                if (chunk.Length == 0) return;
                observer.OnNext(chunk);
            }
        });
    }

    /// <summary>
    /// A stream server per subscription (asyncio's <c>start_server</c>): each accepted connection is an
    /// OnNext of its reader and writer; <paramref name="started"/> is told the server once it listens
    /// (its port, for port 0). A bind error is OnError. Disposing the subscription closes the server —
    /// with <see cref="OnDispose.Cancel"/> (the default) its open connections are aborted too, with
    /// <see cref="OnDispose.StopListening"/> they stay open for whoever holds them. Any thread (the server
    /// runs in a loop task).
    /// </summary>
    [ThreadSafe]
    public static IObservable<LoopConnection> Connections(EventLoop loop, string? host, int port,
        Action<Server>? started = null, OnDispose onDispose = OnDispose.Cancel, int limit = LoopStreamReader.DefaultLimit)
    {
        ArgumentNullException.ThrowIfNull(loop);
        return LoopObservable.Create<LoopConnection>(loop, async (observer, _) =>
        {
            var server = await Asyncio.StartServer((reader, writer) =>
            {
                observer.OnNext(new LoopConnection(reader, writer));
                return Task.CompletedTask;
            }, host, port, limit);
            try
            {
                started?.Invoke(server);
                server.StartServing();
                // Not ServeForever: on cancel it waits for every connection to close, and with
                // StopListening the connections are no longer ours to wait for.
                await loop.CreateFuture();
            }
            finally
            {
                server.Close();
                if (onDispose == OnDispose.Cancel) server.AbortClients();
            }
        });
    }
}
