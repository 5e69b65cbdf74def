using System.Net;
using Tulip;

namespace Tulip.Bench;

/// <summary>
/// The echo server measured with ../shared/bench's load generator (bench/echo-server.sh): binds
/// 127.0.0.1 and runs until killed. Modes: protocol (a three-line Protocol, as py_echo.py's),
/// buffered (a BufferedProtocol: no copy on receive).
/// </summary>
public static class EchoServer
{
    public static int Run(string[] args)
    {
        string mode = "protocol";
        int port = 25000;
        string reactor = "default";
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--mode": mode = args[++i]; break;
                case "--port": port = int.Parse(args[++i]); break;
                case "--reactor": reactor = args[++i]; break;
            }
        }

        using var loop = new EventLoop();
        loop.Reactor = reactor == "select" ? Io.ReactorKind.Select : Io.ReactorKind.Default;
        Server server;
        if (mode == "streams")
        {
            // py_echo.py --mode streams: reader.read(128 KiB) / writer.write + await drain().
            server = loop.RunUntilComplete(() => Asyncio.StartServer(async (reader, writer) =>
            {
                var buffer = new byte[128 * 1024];
                while (true)
                {
                    int n = await reader.ReadIntoAsync(buffer);
                    if (n == 0) break;
                    writer.Write(buffer.AsSpan(0, n));
                    await writer.DrainAsync();
                }

                writer.Close();
            }, "127.0.0.1", port));
        }
        else
        {
            Func<BaseProtocol> factory = mode switch
            {
                "protocol" => () => new EchoProtocol(),
                "buffered" => () => new EchoBufferedProtocol(),
                _ => throw new ArgumentException($"unknown mode {mode} (protocol, buffered, streams)"),
            };
            server = loop.RunUntilComplete(() => loop.CreateServerAsync(factory, "127.0.0.1", port));
        }

        Console.WriteLine($"listening on {server.Sockets[0].LocalEndPoint} (mode {mode})");
        Console.Out.Flush();
        loop.RunForever();
        return 0;
    }

    private sealed class EchoProtocol : Protocol
    {
        private ITransport? _transport;
        public override void ConnectionMade(ITransportBase transport) => _transport = (ITransport)transport;
        public override void DataReceived(ReadOnlySpan<byte> data) => _transport!.Write(data);
    }

    private sealed class EchoBufferedProtocol : BufferedProtocol
    {
        private ITransport? _transport;
        private readonly byte[] _buffer = new byte[256 * 1024];
        public override void ConnectionMade(ITransportBase transport) => _transport = (ITransport)transport;
        public override Memory<byte> GetBuffer(int sizeHint) => _buffer;
        public override void BufferUpdated(int count) => _transport!.Write(_buffer.AsSpan(0, count));
    }
}
