using System.Globalization;

namespace Tulip.Examples;

/// <summary>Scheduling calls to regular functions: soon, after a delay, at a given loop time.</summary>
public static class Scheduling
{
    private const string Section = "Scheduling calls";

    public static IEnumerable<Example> Examples =>
    [
        new("call_soon", Section, "callbacks with arguments run in FIFO order on the next loop turn", CallSoon),
        new("call_later", Section, "callbacks after 0.2 s and 0.1 s, and a call_soon one that still runs first", CallLater),
        new("call_at", Section, "loop.Time() is monotonic; callbacks at now+0.2 / now+0.1 run in deadline order", CallAt),
    ];

    private static void CallSoon(ExampleContext ctx)
    {
        var invoked = new List<int>();

        void Callback(int arg, string kwarg = "default")
        {
            ctx.WriteLine($"callback invoked with {arg} and {kwarg}");
            invoked.Add(arg);
        }

        async Task Main(EventLoop loop)
        {
            ctx.WriteLine("registering callbacks");
            loop.CallSoon(arg => Callback(arg), 1);
            // functools.partial(callback, kwarg='not default')
            Action<int> wrapped = arg => Callback(arg, kwarg: "not default");
            loop.CallSoon(wrapped, 2);

            await Asyncio.Sleep(0.1);
        }

        var eventLoop = ctx.NewLoop();
        try
        {
            ctx.WriteLine("entering event loop");
            eventLoop.RunUntilComplete(() => Main(eventLoop));
        }
        finally
        {
            ctx.WriteLine("closing event loop");
            eventLoop.Close();
        }

        Require(invoked.SequenceEqual([1, 2]), $"the callbacks ran in FIFO order (ran: [{string.Join(", ", invoked)}])");
    }

    private static void CallLater(ExampleContext ctx)
    {
        var invoked = new List<(int N, double At)>();
        double start = 0;

        async Task Main(EventLoop loop)
        {
            void Callback(int n)
            {
                ctx.WriteLine($"callback {n} invoked");
                invoked.Add((n, loop.Time()));
            }

            start = loop.Time();
            ctx.WriteLine("registering callbacks");
            loop.CallLater(0.2, Callback, 1);
            loop.CallLater(0.1, Callback, 2);
            loop.CallSoon(Callback, 3);

            await Asyncio.Sleep(0.4);
        }

        var eventLoop = ctx.NewLoop();
        try
        {
            ctx.WriteLine("entering event loop");
            eventLoop.RunUntilComplete(() => Main(eventLoop));
        }
        finally
        {
            ctx.WriteLine("closing event loop");
            eventLoop.Close();
        }

        Require(invoked.Select(x => x.N).SequenceEqual([3, 2, 1]),
            $"call_soon first, then the timers by deadline (ran: [{string.Join(", ", invoked.Select(x => x.N))}])");
        Require(invoked[1].At - start >= 0.1, $"callback 2 waited 0.1 s (ran after {invoked[1].At - start:0.000} s)");
        Require(invoked[2].At - start >= 0.2, $"callback 1 waited 0.2 s (ran after {invoked[2].At - start:0.000} s)");
    }

    private static void CallAt(ExampleContext ctx)
    {
        var invoked = new List<(int N, double At)>();
        double now = 0;

        void Callback(int n, EventLoop loop)
        {
            double at = loop.Time();
            ctx.WriteLine($"callback {n} invoked at {PyFloat(at)}");
            invoked.Add((n, at));
        }

        async Task Main(EventLoop loop)
        {
            now = loop.Time();
            ctx.WriteLine($"clock time: {PyFloat((DateTime.UtcNow - DateTime.UnixEpoch).TotalSeconds)}");
            ctx.WriteLine($"loop  time: {PyFloat(now)}");

            ctx.WriteLine("registering callbacks");
            loop.CallAt(now + 0.2, s => Callback(s.n, s.loop), (n: 1, loop));
            loop.CallAt(now + 0.1, s => Callback(s.n, s.loop), (n: 2, loop));
            loop.CallSoon(s => Callback(s.n, s.loop), (n: 3, loop));

            await Asyncio.Sleep(1);
        }

        var eventLoop = ctx.NewLoop();
        try
        {
            ctx.WriteLine("entering event loop");
            eventLoop.RunUntilComplete(() => Main(eventLoop));
        }
        finally
        {
            ctx.WriteLine("closing event loop");
            eventLoop.Close();
        }

        Require(invoked.Select(x => x.N).SequenceEqual([3, 2, 1]),
            $"call_soon first, then the timers by deadline (ran: [{string.Join(", ", invoked.Select(x => x.N))}])");
        Require(invoked[0].At >= now && invoked[1].At >= now + 0.1 && invoked[2].At >= now + 0.2,
            "no callback ran before its time");
    }

    /// <summary>A float as Python's repr prints it: shortest round-trip digits, at least one decimal.</summary>
    internal static string PyFloat(double x)
    {
        var s = x.ToString("R", CultureInfo.InvariantCulture);
        return s.Contains('.') || s.Contains('E') || !double.IsFinite(x) ? s : s + ".0";
    }

    private static void Require(bool condition, string what)
    {
        if (!condition) throw new InvalidOperationException($"the example did not show what it should: {what}");
    }
}
