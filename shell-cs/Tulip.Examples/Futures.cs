namespace Tulip.Examples;

/// <summary>Producing results asynchronously: futures.</summary>
public static class Futures
{
    private const string Section = "Futures";

    public static IEnumerable<Example> Examples =>
    [
        new("future_event_loop", Section, "a callback sets a future's result; RunUntilComplete returns it", FutureEventLoop),
        new("future_await", Section, "a coroutine awaits a future that a callback completes", FutureAwait),
        new("future_callback", Section, "done-callbacks with an extra argument run in registration order", FutureCallback),
    ];

    private static void FutureEventLoop(ExampleContext ctx)
    {
        void MarkDone(Future<string> future, string result)
        {
            ctx.WriteLine($"setting future result to '{result}'");
            future.SetResult(result);
        }

        var eventLoop = ctx.NewLoop();
        Future<string> allDone;
        string result;
        try
        {
            allDone = eventLoop.CreateFuture<string>();

            ctx.WriteLine("scheduling mark_done");
            eventLoop.CallSoon(s => MarkDone(s.future, s.result), (future: allDone, result: "the result"));

            ctx.WriteLine("entering event loop");
            result = eventLoop.RunUntilComplete(allDone);
            ctx.WriteLine($"returned result: '{result}'");
        }
        finally
        {
            ctx.WriteLine("closing event loop");
            eventLoop.Close();
        }

        ctx.WriteLine($"future result: '{allDone.Result()}'");

        Require(result == "the result", "RunUntilComplete returned the future's result");
        Require(eventLoop.IsClosed && allDone.Result() == "the result", "the result is still readable after Close");
    }

    private static void FutureAwait(ExampleContext ctx)
    {
        string? returned = null;

        void MarkDone(Future<string> future, string result)
        {
            ctx.WriteLine($"setting future result to '{result}'");
            future.SetResult(result);
        }

        async Task Main(EventLoop loop)
        {
            var allDone = loop.CreateFuture<string>();

            ctx.WriteLine("scheduling mark_done");
            loop.CallSoon(s => MarkDone(s.future, s.result), (future: allDone, result: "the result"));

            var result = await allDone;
            ctx.WriteLine($"returned result: '{result}'");
            returned = result;
        }

        var eventLoop = ctx.NewLoop();
        try
        {
            eventLoop.RunUntilComplete(() => Main(eventLoop));
        }
        finally
        {
            eventLoop.Close();
        }

        Require(returned == "the result", "the awaiting coroutine got the future's result");
    }

    private static void FutureCallback(ExampleContext ctx)
    {
        var invoked = new List<int>();

        void Callback(Future future, int n)
        {
            // The callback gets the untyped Future (as asyncio passes the future itself).
            ctx.WriteLine($"{n}: future done: {((Future<string>)future).Result()}");
            invoked.Add(n);
        }

        async Task RegisterCallbacks(Future<string> allDone)
        {
            ctx.WriteLine("registering callbacks on future");
            allDone.AddDoneCallback(Callback, 1); // functools.partial(callback, n=1)
            allDone.AddDoneCallback(Callback, 2);
            await Task.CompletedTask;
        }

        async Task Main(Future<string> allDone)
        {
            await RegisterCallbacks(allDone);
            ctx.WriteLine("setting result of future");
            allDone.SetResult("the result");
        }

        var eventLoop = ctx.NewLoop();
        try
        {
            var allDone = eventLoop.CreateFuture<string>();
            eventLoop.RunUntilComplete(() => Main(allDone));
        }
        finally
        {
            eventLoop.Close();
        }

        Require(invoked.SequenceEqual([1, 2]),
            $"both callbacks ran, in registration order (ran: [{string.Join(", ", invoked)}])");
    }

    private static void Require(bool condition, string what)
    {
        if (!condition) throw new InvalidOperationException($"the example did not show what it should: {what}");
    }
}
