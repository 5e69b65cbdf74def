using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Text;
using System.Threading.Channels;

namespace Tulip.Examples;

/// <summary>Tulip from .NET code (issue 14): System.Threading.Channels and System.IO.Pipelines bridges.</summary>
public static class Bridges
{
    private const string Section = "From .NET";

    public static IEnumerable<Example> Examples =>
    [
        new("channel_bridge", Section, "a thread-pool producer feeds a loop consumer through a ChannelWriter, and a loop producer feeds a thread-pool consumer through a ChannelReader, both bounded", ChannelBridge),
        new("pipe_bridge", Section, "a Kestrel-style line parser on a PipeReader / PipeWriter over a Tulip connection", PipeBridge),
    ];

    private static void ChannelBridge(ExampleContext ctx) => ctx.Run(async () =>
    {
        var loop = EventLoop.GetRunningLoop();

        // Thread pool -> loop: the writer is thread-safe; the loop consumes the queue as usual. The
        // queue holds 2 items and the channel 1: a producer that runs ahead waits in WriteAsync.
        var jobs = new AsyncQueue<string>(maxSize: 2);
        ChannelWriter<string> writer = jobs.AsChannelWriter(loop, capacity: 1);
        var producer = Task.Run(async () =>
        {
            for (int i = 1; i <= 5; i++) await writer.WriteAsync($"job {i}");
            writer.Complete(); // shuts the queue down once it is empty: the await foreach below ends
        });
        await foreach (var job in jobs) ctx.WriteLine($"loop consumer: {job}");
        await producer;
        ctx.WriteLine("thread-pool producer: done");

        // Loop -> thread pool: the reader is thread-safe; PutAsync waits while the readers lag.
        var squares = new AsyncQueue<int>(maxSize: 2);
        ChannelReader<int> reader = squares.AsChannelReader(loop, capacity: 1);
        var consumer = Task.Run(async () =>
        {
            int count = 0, sum = 0;
            await foreach (var n in reader.ReadAllAsync())
            {
                count++;
                sum += n;
            }

            return (count, sum);
        });
        for (int i = 1; i <= 10; i++) await squares.PutAsync(i * i);
        squares.Shutdown(); // the channel completes once the pump has handed everything over
        var (count, total) = await consumer; // a .NET Task awaited in a loop task: resumes on the loop
        ctx.WriteLine($"thread-pool consumer: {count} squares, sum {total}");
    });

    private static void PipeBridge(ExampleContext ctx) => ctx.Run(async () =>
    {
        // The server side speaks System.IO.Pipelines: a parser that looks at a ReadOnlySequence, takes
        // whole lines and leaves a partial one examined but not consumed, as Kestrel's parsers do.
        var server = await Asyncio.StartServer(async (r, w) =>
        {
            await using var pipe = new LoopPipe(r, w);
            while (true)
            {
                var read = await pipe.Input.ReadAsync();
                var buffer = read.Buffer;
                while (buffer.PositionOf((byte)'\n') is { } end)
                {
                    var line = Encoding.UTF8.GetString(buffer.Slice(0, end));
                    ctx.WriteLine($"server: parsed '{line}'");
                    pipe.Output.Write(Encoding.UTF8.GetBytes(line.ToUpperInvariant() + "\n"));
                    buffer = buffer.Slice(buffer.GetPosition(1, end));
                }

                pipe.Input.AdvanceTo(buffer.Start, buffer.End);
                await pipe.Output.FlushAsync(); // waits for the transport's drain: back-pressure
                if (read.IsCompleted) break;
            }
        }, "127.0.0.1", 0);

        var port = ((IPEndPoint)server.Sockets[0].LocalEndPoint!).Port;
        var (reader, writer) = await Asyncio.OpenConnection("127.0.0.1", port);
        // Lines split across writes: the parser keeps the partial line until the rest comes.
        foreach (var part in new[] { "GET /in", "dex\nHost: tu", "lip\n" })
        {
            writer.Write(Encoding.UTF8.GetBytes(part));
            await writer.DrainAsync();
            await Asyncio.Sleep(0.01);
        }

        writer.WriteEof();
        var reply = Encoding.UTF8.GetString(await reader.ReadAsync());
        foreach (var line in reply.Split('\n', StringSplitOptions.RemoveEmptyEntries)) ctx.WriteLine($"client: got '{line}'");
        await writer.DisposeAsync();
        server.Close();
        await server.WaitClosedAsync();
    });
}
