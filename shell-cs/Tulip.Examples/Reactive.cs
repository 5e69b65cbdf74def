using System.Net;
using System.Reactive.Linq;
using System.Reactive.Subjects;
using System.Text;
using Tulip.Reactive;
using Tulip.Testing;

namespace Tulip.Examples;

/// <summary>Rx pipelines on the loop (Tulip.Reactive): the same loop, clock and tasks as the await API.</summary>
public static class Reactive
{
    private const string Section = "Rx on the loop";

    public static IEnumerable<Example> Examples =>
    [
        new("rx_echo", Section, "an Rx echo server: connections -> lines -> responses, with its own client", RxEcho),
        new("rx_timed", Section, "throttle, switch-to-latest and buffer over an hour of loop time, finishing at once on a virtual clock", RxTimed),
    ];

    private static void RxEcho(ExampleContext ctx) => ctx.Run(async () =>
    {
        var loop = EventLoop.GetRunningLoop();
        var listening = loop.CreateFuture<Server>();

        // The server as a pipeline: every connection's lines, each answered in upper case by an async
        // handler, one at a time. Disposing the subscription closes the server and its connections.
        using var serving = StreamObservables.Connections(loop, "127.0.0.1", 0, started: listening.SetResult)
            .Do(_ => ctx.WriteLine("server: new connection"))
            .SelectMany(c => c.Reader.LinesObservable(loop).Select(line => (c.Writer, Line: Encoding.UTF8.GetString(line).TrimEnd('\n'))))
            .SubscribeAsync(loop, async (item, _) =>
            {
                ctx.WriteLine($"server: echo '{item.Line}'");
                item.Writer.Write(Encoding.UTF8.GetBytes(item.Line.ToUpperInvariant() + "\n"));
                await item.Writer.DrainAsync();
            }, AsyncConcurrency.Sequential);

        var server = await listening;
        var port = ((IPEndPoint)server.Sockets[0].LocalEndPoint!).Port;
        var (reader, writer) = await Asyncio.OpenConnection("127.0.0.1", port);
        foreach (var word in new[] { "hello", "rx", "tulip" })
        {
            writer.Write(Encoding.UTF8.GetBytes(word + "\n"));
            var reply = Encoding.UTF8.GetString(await reader.ReadLineBytesAsync()).TrimEnd('\n');
            ctx.WriteLine($"client: '{word}' -> '{reply}'");
        }

        writer.Close();
        await writer.WaitClosedAsync();
        ctx.WriteLine("client: closed");
    });

    private static void RxTimed(ExampleContext ctx)
    {
        // The tour runs on real clocks; this one always runs on a virtual clock, to show an hour of Rx
        // time operators finishing at once (in the tests the context's clock is virtual already).
        var clock = ctx.NewClock() as VirtualClock ?? new VirtualClock();
        var started = DateTime.UtcNow;
        using var loop = new EventLoop(clock);
        var s = new LoopScheduler(loop);
        string T() => $"[{loop.Time(),7:0.0} s]";

        loop.RunUntilComplete(async () =>
        {
            // A search box: keystrokes come in bursts; Throttle waits for 0.5 s of quiet, and a search
            // that is overtaken by a newer query is cancelled (switch to latest).
            using var keys = new Subject<string>();
            var searches = keys
                .Throttle(TimeSpan.FromSeconds(0.5), s)
                .Do(q => ctx.WriteLine($"{T()} query '{q}'"))
                .SelectAsync(loop, async (q, _) =>
                {
                    try
                    {
                        await Asyncio.Sleep(1.0);
                    }
                    catch (CancelledException)
                    {
                        ctx.WriteLine($"{T()} search for '{q}' cancelled: a newer query came");
                        throw;
                    }

                    return $"{q.Length} results for '{q}'";
                }, AsyncConcurrency.SwitchToLatest)
                .Do(r => ctx.WriteLine($"{T()} {r}"))
                .ToListFuture(loop);
            foreach (var (at, text) in new[] { (0.0, "t"), (0.1, "tu"), (0.2, "tul"), (0.3, "tuli"), (0.4, "tulip"), (1.0, "tulips") })
            {
                await Asyncio.Sleep(at - loop.Time());
                keys.OnNext(text);
            }

            await Asyncio.Sleep(5.0 - loop.Time());
            keys.OnCompleted();
            await searches;

            // A sensor read every second for an hour, summarised every ten minutes by Buffer.
            var summaries = Observable.Timer(TimeSpan.FromSeconds(0.5), TimeSpan.FromSeconds(1), s)
                .Take(3600)
                .Buffer(TimeSpan.FromMinutes(10), s)
                .Select(b => $"{T()} {b.Count} readings, mean {b.Average():0.0}")
                .ToListFuture(loop);
            foreach (var line in await summaries) ctx.WriteLine(line);
        });

        var real = DateTime.UtcNow - started;
        ctx.WriteLine($"loop time {loop.Time():0.0} s; real time under a second: {real < TimeSpan.FromSeconds(1)}");
    }
}
