using System.Net;
using System.Text;

namespace Tulip.Examples;

/// <summary>Asynchronous I/O using coroutines and streams (PyMOTW's asyncio_echo_*_coroutine).</summary>
public static class Streams
{
    private const string Section = "Asynchronous I/O Using Coroutines and Streams";

    public static IEnumerable<Example> Examples =>
    [
        new("echo_server_coroutine", Section, "StartServer: a coroutine per connection echoes with read / write / drain (with its own client)", EchoServer),
        new("echo_client_coroutine", Section, "OpenConnection: send in parts, WriteEof, read the echo to EOF (with its own server)", EchoClient),
        new("log_tail", Section, "await foreach over the lines of a stream: a client tails a server's log", LogTail),
    ];

    private static readonly string[] Messages = ["This is the message. ", "It will be sent ", "in parts."];

    private static string Repr(byte[] data) => "b'" + Encoding.ASCII.GetString(data) + "'";

    /// <summary>The server of asyncio_echo_server_coroutine.py: logs as echo_HOST_PORT.</summary>
    private static Func<LoopStreamReader, LoopStreamWriter, Task> Echo(ExampleContext ctx) => async (reader, writer) =>
    {
        var peer = (IPEndPoint)writer.GetExtraInfo("peername")!;
        var log = $"echo_{peer.Address}_{peer.Port}";
        ctx.WriteLine($"{log}: connection accepted");
        while (true)
        {
            var data = await reader.ReadAsync(128);
            if (data.Length > 0)
            {
                ctx.WriteLine($"{log}: received {Repr(data)}");
                writer.Write(data);
                await writer.DrainAsync();
                ctx.WriteLine($"{log}: sent {Repr(data)}");
            }
            else
            {
                ctx.WriteLine($"{log}: closing");
                writer.Close();
                return;
            }
        }
    };

    /// <summary>The client of asyncio_echo_client_coroutine.py; returns what came back.</summary>
    private static async Task<string> Client(ExampleContext ctx, int port)
    {
        ctx.WriteLine($"echo_client: connecting to 127.0.0.1 port {port}");
        var (reader, writer) = await Asyncio.OpenConnection("127.0.0.1", port);
        // This could be WriteLines, but sending each part on its own shows them being sent.
        foreach (var msg in Messages)
        {
            writer.Write(Encoding.ASCII.GetBytes(msg));
            ctx.WriteLine($"echo_client: sending {Repr(Encoding.ASCII.GetBytes(msg))}");
        }

        if (writer.CanWriteEof()) writer.WriteEof();
        await writer.DrainAsync();
        ctx.WriteLine("echo_client: waiting for response");
        var received = new StringBuilder();
        while (true)
        {
            var data = await reader.ReadAsync(128);
            if (data.Length > 0)
            {
                ctx.WriteLine($"echo_client: received {Repr(data)}");
                received.Append(Encoding.ASCII.GetString(data));
            }
            else
            {
                ctx.WriteLine("echo_client: closing");
                writer.Close();
                await writer.WaitClosedAsync();
                return received.ToString();
            }
        }
    }

    private static void Run(ExampleContext ctx, string who)
    {
        using var loop = ctx.NewLoop();
        var echoed = loop.RunUntilComplete(async () =>
        {
            var server = await Asyncio.StartServer(Echo(ctx), "127.0.0.1", 0);
            int port = ((IPEndPoint)server.Sockets[0].LocalEndPoint!).Port;
            ctx.WriteLine($"main: starting up on 127.0.0.1 port {port} ({who})");
            var result = await Client(ctx, port);
            ctx.WriteLine("main: closing server");
            server.Close();
            await server.WaitClosedAsync();
            return result;
        });
        ctx.WriteLine("main: closing event loop");
        if (echoed != string.Concat(Messages)) throw new InvalidOperationException($"echo came back as '{echoed}'");
    }

    private static void EchoServer(ExampleContext ctx) => Run(ctx, "the demo starts its own client");

    private static void EchoClient(ExampleContext ctx) => Run(ctx, "the demo starts its own server");

    /// <summary>A server writes a log line every 0.2 s; a client tails it with await foreach.</summary>
    private static void LogTail(ExampleContext ctx)
    {
        using var loop = ctx.NewLoop();
        double start = loop.Time();
        var lines = loop.RunUntilComplete(async () =>
        {
            var server = await Asyncio.StartServer(async (_, writer) =>
            {
                for (int i = 1; i <= 5; i++)
                {
                    await Asyncio.Sleep(0.2);
                    writer.Write(Encoding.ASCII.GetBytes($"t={loop.Time() - start:0.0} event {i}\n"));
                    await writer.DrainAsync();
                }

                writer.Close();
            }, "127.0.0.1", 0);
            int port = ((IPEndPoint)server.Sockets[0].LocalEndPoint!).Port;
            var (reader, writer) = await Asyncio.OpenConnection("127.0.0.1", port);
            int count = 0;
            await foreach (var line in reader.ReadLinesAsBytesAsync())
            {
                ctx.WriteLine($"tail: {Encoding.ASCII.GetString(line).TrimEnd('\n')}");
                count++;
            }

            ctx.WriteLine("tail: end of log");
            writer.Close();
            server.Close();
            await server.WaitClosedAsync();
            return count;
        });
        if (lines != 5) throw new InvalidOperationException($"tailed {lines} lines, expected 5");
    }
}
