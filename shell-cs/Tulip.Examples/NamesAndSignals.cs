using System.Net;
using System.Net.Sockets;

namespace Tulip.Examples;

/// <summary>
/// Interacting with domain name services (PyMOTW's asyncio_getaddrinfo.py and asyncio_getnameinfo.py)
/// and receiving Unix signals (asyncio_signal.py). PyMOTW looks up pymotw.com and python.org; the tour
/// must pass with no network, so these look up localhost, numeric addresses and the machine's own name.
/// </summary>
public static class NamesAndSignals
{
    private const string DnsSection = "Interacting with Domain Name Services";
    private const string SignalSection = "Receiving Unix Signals";

    public static IEnumerable<Example> Examples =>
    [
        new("getaddrinfo", DnsSection, "GetAddrInfo: family, type, protocol, canonical name and socket address for several hosts", GetAddrInfo),
        new("getnameinfo", DnsSection, "GetNameInfo: host and service names for (address, port) pairs, named and numeric", GetNameInfo),
        new("signal", SignalSection, "AddSignalHandler for SIGHUP, SIGUSR1 and SIGINT, sent by the process to itself", Signal),
    ];

    private static void GetAddrInfo(ExampleContext ctx) => ctx.Run(async () =>
    {
        var loop = EventLoop.GetRunningLoop();
        (string Host, string Service)[] targets = [("localhost", "https"), ("127.0.0.1", "http"), ("::1", "ssh")];
        foreach (var (host, service) in targets)
        {
            var info = await loop.GetAddrInfoAsync(host, service, protocol: ProtocolType.Tcp, flags: AddrInfoFlags.CanonName);
            foreach (var entry in info)
                ctx.WriteLine($"{host + "/" + service,-16}: {entry.Family} {entry.Type} {entry.Protocol} '{entry.CanonicalName}' {entry.Address}");
        }

        // The machine's own name: from /etc/hosts, or the resolver's error where it has none.
        var self = Dns.GetHostName();
        try
        {
            var mine = await loop.GetAddrInfoAsync(self, 0, AddressFamily.InterNetwork, SocketType.Stream);
            ctx.WriteLine($"this machine    : {mine.Count} IPv4 address(es), first {mine[0].Address.Address}");
        }
        catch (AddressInfoException e)
        {
            ctx.WriteLine($"this machine    : not resolved: [Errno {e.ResolverCode}] {e.Message}");
        }

        // Bad names never reach the resolver.
        try
        {
            await loop.GetAddrInfoAsync(new string('a', 64) + ".example", 80);
        }
        catch (ArgumentException e)
        {
            ctx.WriteLine($"refused         : {e.Message.Split(" (Parameter")[0]}");
        }
    });

    private static void GetNameInfo(ExampleContext ctx) => ctx.Run(async () =>
    {
        var loop = EventLoop.GetRunningLoop();
        (string Address, int Port, NameInfoFlags Flags)[] targets =
        [
            ("127.0.0.1", 80, NameInfoFlags.None),
            ("127.0.0.1", 22, NameInfoFlags.None),
            ("127.0.0.1", 443, NameInfoFlags.NumericHost | NameInfoFlags.NumericServ),
            ("::1", 443, NameInfoFlags.NumericHost),
        ];
        foreach (var (address, port, flags) in targets)
        {
            var (host, service) = await loop.GetNameInfoAsync(new IPEndPoint(IPAddress.Parse(address), port), flags);
            ctx.WriteLine($"{address + ":" + port,-14} ({flags}): {host} {service}");
        }
    });

    /// <summary>asyncio_signal.py: each handler reports its signal. PyMOTW sleeps 0.01 s after each kill
    /// and hopes the signal came; here each send waits for its handler, so the order is always the same.</summary>
    private static void Signal(ExampleContext ctx) => ctx.Run(async () =>
    {
        var loop = EventLoop.GetRunningLoop();
        Future<ValueTuple>? arrived = null;

        void Handler(string name)
        {
            ctx.WriteLine($"signal_handler('{name}')");
            arrived?.SetResult(default);
        }

        (string Name, int Number)[] signals = [("SIGHUP", UnixSignal.SIGHUP), ("SIGUSR1", UnixSignal.SIGUSR1), ("SIGINT", UnixSignal.SIGINT)];
        var handled = new List<(string Name, int Number)>();
        foreach (var (name, number) in signals)
        {
            try
            {
                loop.AddSignalHandler(number, Handler, name);
                handled.Add((name, number));
            }
            catch (SignalIgnoredException e)
            {
                // Started as a background job (SIGINT ignored): say so rather than wait for a signal.
                ctx.WriteLine($"not handling {name}: {e.Message}");
            }
        }

        try
        {
            ctx.WriteLine("starting send_signals for this process");
            foreach (var (name, number) in new[] { signals[0], signals[0], signals[1], signals[2] })
            {
                if (!handled.Contains((name, number))) continue;
                arrived = loop.CreateFuture<ValueTuple>();
                ctx.WriteLine($"sending {name}");
                UnixSignal.SendToSelf(number);
                ctx.WriteLine("yielding control");
                await arrived;
            }
        }
        finally
        {
            foreach (var (_, number) in handled) loop.RemoveSignalHandler(number);
        }
    });
}
