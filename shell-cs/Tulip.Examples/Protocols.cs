using System.Net;
using System.Text;

namespace Tulip.Examples;

/// <summary>
/// Asynchronous I/O with protocol class abstractions: PyMOTW's asyncio_echo_server_protocol.py and
/// asyncio_echo_client_protocol.py, and the Python documentation's UDP echo. Each example ends by
/// itself: the server starts its own (quiet) client for the demo, the client its own (quiet) server.
/// </summary>
public static class Protocols
{
    private const string Section = "Asynchronous I/O with Protocol Class Abstractions";

    public static IEnumerable<Example> Examples =>
    [
        new("echo_server_protocol", Section,
            "CreateServer with a Protocol: connection made, data received, EOF received, connection lost (with its own client)",
            EchoServerExample),
        new("echo_client_protocol", Section,
            "CreateConnection with a Protocol: send in parts, WriteEof, receive the echo and EOF (with its own server)",
            EchoClientExample),
        new("udp_echo", Section,
            "CreateDatagramEndpoint: a UDP echo server and a client sending one datagram (the Python docs' UDP echo)",
            UdpEcho),
    ];

    private static readonly string[] Messages = ["This is the message. ", "It will be sent ", "in parts."];

    /// <summary>PyMOTW's EchoServer: logs each callback as EchoServer_HOST_PORT and echoes.</summary>
    private sealed class EchoServer(Action<string> log) : Protocol
    {
        private ITransport _transport = null!;
        private string _name = "EchoServer";

        public override void ConnectionMade(ITransportBase transport)
        {
            _transport = (ITransport)transport;
            var peer = (IPEndPoint)transport.GetExtraInfo("peername")!;
            _name = $"EchoServer_{peer.Address}_{peer.Port}";
            log($"{_name}: connection accepted");
        }

        public override void DataReceived(ReadOnlySpan<byte> data)
        {
            var repr = BytesRepr(data);
            log($"{_name}: received {repr}");
            _transport.Write(data);
            log($"{_name}: sent {repr}");
        }

        public override bool EofReceived()
        {
            log($"{_name}: received EOF");
            if (_transport.CanWriteEof()) _transport.WriteEof();
            return false; // Python's None: the transport closes itself
        }

        public override void ConnectionLost(Exception? error) =>
            log(error is null ? $"{_name}: closing" : $"{_name}: ERROR: {error.Message}");
    }

    /// <summary>PyMOTW's EchoClient: sends the messages one write each, then EOF; completes the future
    /// at EOF or when the connection is lost.</summary>
    private sealed class EchoClient(string[] messages, Future<bool> completed, Future<bool> lost, Action<string> log) : Protocol
    {
        private ITransport _transport = null!;

        public override void ConnectionMade(ITransportBase transport)
        {
            _transport = (ITransport)transport;
            var peer = (IPEndPoint)transport.GetExtraInfo("peername")!;
            log($"EchoClient: connecting to {peer.Address} port {peer.Port}");
            // This could be WriteLines, except that would make it harder to show each part being sent.
            foreach (var msg in messages)
            {
                var bytes = Encoding.ASCII.GetBytes(msg);
                _transport.Write(bytes);
                log($"EchoClient: sending {BytesRepr(bytes)}");
            }

            if (_transport.CanWriteEof()) _transport.WriteEof();
        }

        public override void DataReceived(ReadOnlySpan<byte> data) => log($"EchoClient: received {BytesRepr(data)}");

        public override bool EofReceived()
        {
            log("EchoClient: received EOF");
            _transport.Close();
            if (!completed.Done) completed.SetResult(true);
            return false;
        }

        public override void ConnectionLost(Exception? exception)
        {
            log("EchoClient: server closed connection");
            _transport.Close();
            if (!completed.Done) completed.SetResult(true);
            lost.SetResult(true);
        }
    }

    /// <summary>The two PyMOTW scripts in one loop; <paramref name="showServer"/> says whose log is shown.</summary>
    private static void EchoPair(ExampleContext ctx, bool showServer)
    {
        Action<string> quiet = _ => { };
        var serverLog = showServer ? ctx.WriteLine : quiet;
        var clientLog = showServer ? quiet : ctx.WriteLine;
        using var loop = ctx.NewLoop();
        // Create the server and let the loop finish the coroutine before running the client.
        var server = loop.RunUntilComplete(() => loop.CreateServerAsync(() => new EchoServer(serverLog), "127.0.0.1", 0));
        int port = ((IPEndPoint)server.Sockets[0].LocalEndPoint!).Port;
        if (showServer) ctx.WriteLine($"main: starting up on 127.0.0.1 port {port} (the demo starts its own client)");
        var completed = loop.CreateFuture<bool>();
        var lost = loop.CreateFuture<bool>();
        if (!showServer) ctx.WriteLine("main: waiting for client to complete");
        try
        {
            loop.RunUntilComplete(() => loop.CreateConnectionAsync(() => new EchoClient(Messages, completed, lost, clientLog), "127.0.0.1", port));
            loop.RunUntilComplete(completed);
            loop.RunUntilComplete(lost);
        }
        finally
        {
            if (showServer) ctx.WriteLine("main: closing server");
            server.Close();
            loop.RunUntilComplete(server.WaitClosedAsync);
            ctx.WriteLine("main: closing event loop");
        }
    }

    private static void EchoServerExample(ExampleContext ctx) => EchoPair(ctx, showServer: true);

    private static void EchoClientExample(ExampleContext ctx) => EchoPair(ctx, showServer: false);

    /// <summary>The Python docs' EchoServerProtocol (UDP): answers each datagram to its sender.</summary>
    private sealed class UdpEchoServer(ExampleContext ctx, Future<bool> closed) : DatagramProtocol
    {
        private IDatagramTransport _transport = null!;

        public override void ConnectionMade(ITransportBase transport) => _transport = (IDatagramTransport)transport;

        public override void DatagramReceived(ReadOnlySpan<byte> data, EndPoint from)
        {
            var message = Encoding.UTF8.GetString(data);
            ctx.WriteLine($"Received '{message}' from {AddressRepr(from)}");
            ctx.WriteLine($"Send '{message}' to {AddressRepr(from)}");
            _transport.SendTo(data, from);
        }

        public override void ConnectionLost(Exception? exception) => closed.SetResult(true);
    }

    /// <summary>The Python docs' EchoClientProtocol (UDP): sends one message, closes on the answer.</summary>
    private sealed class UdpEchoClient(string message, Future<bool> onConLost, ExampleContext ctx) : DatagramProtocol
    {
        private IDatagramTransport _transport = null!;

        public override void ConnectionMade(ITransportBase transport)
        {
            _transport = (IDatagramTransport)transport;
            ctx.WriteLine($"Send: {message}");
            _transport.SendTo(Encoding.UTF8.GetBytes(message));
        }

        public override void DatagramReceived(ReadOnlySpan<byte> data, EndPoint from)
        {
            ctx.WriteLine($"Received: {Encoding.UTF8.GetString(data)}");
            ctx.WriteLine("Close the socket");
            _transport.Close();
        }

        public override void ErrorReceived(Exception exception) => ctx.WriteLine($"Error received: {exception.Message}");

        public override void ConnectionLost(Exception? exception)
        {
            ctx.WriteLine("Connection closed");
            onConLost.SetResult(true);
        }
    }

    private static void UdpEcho(ExampleContext ctx)
    {
        using var loop = ctx.NewLoop();
        loop.RunUntilComplete(async () =>
        {
            ctx.WriteLine("Starting UDP server");
            var serverClosed = loop.CreateFuture<bool>();
            var (server, _) = await loop.CreateDatagramEndpointAsync(() => new UdpEchoServer(ctx, serverClosed),
                localAddress: new IPEndPoint(IPAddress.Loopback, 0));
            var address = (IPEndPoint)server.GetExtraInfo("sockname")!;
            var onConLost = loop.CreateFuture<bool>();
            var (client, _) = await loop.CreateDatagramEndpointAsync(() => new UdpEchoClient("Hello World!", onConLost, ctx),
                remoteAddress: address);
            try
            {
                await onConLost;
            }
            finally
            {
                client.Close();
            }

            server.Close();
            await serverClosed;
        });
    }

    /// <summary>Python's repr of an (IPv4) socket address: ('127.0.0.1', 8888).</summary>
    private static string AddressRepr(EndPoint address) =>
        address is IPEndPoint ip ? $"('{ip.Address}', {ip.Port})" : address.ToString() ?? "";

    /// <summary>Python's repr of a bytes object: b'...' with escapes.</summary>
    internal static string BytesRepr(ReadOnlySpan<byte> data)
    {
        char quote = data.Contains((byte)'\'') && !data.Contains((byte)'"') ? '"' : '\'';
        var sb = new StringBuilder("b").Append(quote);
        foreach (byte b in data)
        {
            switch (b)
            {
                case (byte)'\\': sb.Append(@"\\"); break;
                case (byte)'\t': sb.Append(@"\t"); break;
                case (byte)'\n': sb.Append(@"\n"); break;
                case (byte)'\r': sb.Append(@"\r"); break;
                default:
                    if (b == quote) sb.Append('\\').Append((char)b);
                    else if (b < 0x20 || b >= 0x7f) sb.Append($@"\x{b:x2}");
                    else sb.Append((char)b);
                    break;
            }
        }

        return sb.Append(quote).ToString();
    }
}
