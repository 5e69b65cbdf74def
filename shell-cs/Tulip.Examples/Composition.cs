namespace Tulip.Examples;

/// <summary>Composing coroutines with control structures (PyMOTW's asyncio_wait, asyncio_gather…).</summary>
public static class Composition
{
    private const string Section = "Composing Coroutines with Control Structures";

    public static IEnumerable<Example> Examples =>
    [
        new("wait", Section, "Wait for a set of tasks; results from the done set", Wait),
        new("wait_timeout", Section, "Wait with a timeout returns the pending tasks, which main then cancels", WaitTimeout),
        new("gather", Section, "Gather returns the results in argument order", Gather),
        new("as_completed", Section, "AsCompleted gives the results as the tasks finish", AsCompleted),
        new("task_group", Section, "TaskGroup awaits its tasks; a failure cancels the others", TaskGroupExample),
        new("timeout", Section, "Timeout scopes and WaitFor turn a deadline into TimeoutException", TimeoutExample),
    ];

    private static Func<int, Task<string>> Phase(ExampleContext ctx, Func<int, double> delay, bool reportCancel = false) => async i =>
    {
        ctx.WriteLine($"in phase {i}");
        try
        {
            await Asyncio.Sleep(delay(i));
        }
        catch (CancelledException) when (reportCancel)
        {
            ctx.WriteLine($"phase {i} canceled");
            throw;
        }

        ctx.WriteLine($"done with phase {i}");
        return $"phase {i} result";
    };

    private static string PyList(IEnumerable<string> items) => "[" + string.Join(", ", items.Select(s => $"'{s}'")) + "]";

    private static void Wait(ExampleContext ctx)
    {
        var phase = Phase(ctx, i => 0.1 * i);

        async Task Main(EventLoop loop, int numPhases)
        {
            ctx.WriteLine("starting main");
            var phases = Enumerable.Range(0, numPhases).Select(i => loop.CreateTask(() => phase(i))).ToList();
            ctx.WriteLine("waiting for phases to complete");
            var (completed, _) = await Asyncio.Wait(phases);
            var results = completed.Select(t => t.Result());
            ctx.WriteLine($"results: {PyList(results)}");
        }

        using var loop = ctx.NewLoop();
        loop.RunUntilComplete(() => Main(loop, 3));
    }

    private static void WaitTimeout(ExampleContext ctx)
    {
        var phase = Phase(ctx, i => 0.1 * i, reportCancel: true);

        async Task Main(EventLoop loop, int numPhases)
        {
            ctx.WriteLine("starting main");
            var phases = Enumerable.Range(0, numPhases).Select(i => loop.CreateTask(() => phase(i))).ToList();
            ctx.WriteLine("waiting 0.1 for phases to complete");
            var (completed, pending) = await Asyncio.Wait(phases, timeout: 0.1);
            ctx.WriteLine($"{completed.Count} completed and {pending.Count} pending");
            // Cancel the remaining tasks so they do not generate errors as we exit without finishing them.
            if (pending.Count > 0)
            {
                ctx.WriteLine("canceling tasks");
                foreach (var t in pending) t.Cancel();
            }

            ctx.WriteLine("exiting main");
        }

        using var loop = ctx.NewLoop();
        // The cancelled phases run their last step in the tick in which the loop stops, as in asyncio.
        loop.RunUntilComplete(() => Main(loop, 3));
    }

    private static void Gather(ExampleContext ctx)
    {
        async Task<string> Phase1()
        {
            ctx.WriteLine("in phase1");
            await Asyncio.Sleep(2);
            ctx.WriteLine("done with phase1");
            return "phase1 result";
        }

        async Task<string> Phase2()
        {
            ctx.WriteLine("in phase2");
            await Asyncio.Sleep(1);
            ctx.WriteLine("done with phase2");
            return "phase2 result";
        }

        async Task Main()
        {
            ctx.WriteLine("starting main");
            ctx.WriteLine("waiting for phases to complete");
            var results = await Asyncio.Gather(Phase1, Phase2);
            ctx.WriteLine($"results: {PyList(results)}");
        }

        using var loop = ctx.NewLoop();
        loop.RunUntilComplete(Main);
    }

    private static void AsCompleted(ExampleContext ctx)
    {
        var phase = Phase(ctx, i => 0.5 - 0.1 * i);

        async Task<List<string>> Main(int numPhases)
        {
            ctx.WriteLine("starting main");
            var phases = Enumerable.Range(0, numPhases).Select(i => (Func<Task<string>>)(() => phase(i))).ToList();
            ctx.WriteLine("waiting for phases to complete");
            var results = new List<string>();
            foreach (var nextToComplete in Asyncio.AsCompleted(phases))
            {
                var answer = await nextToComplete;
                ctx.WriteLine($"received answer '{answer}'");
                results.Add(answer);
            }

            ctx.WriteLine($"results: {PyList(results)}");
            return results;
        }

        using var loop = ctx.NewLoop();
        loop.RunUntilComplete(() => Main(3));
    }

    private static void TaskGroupExample(ExampleContext ctx)
    {
        async Task<string> Fetch(string name, double delay)
        {
            ctx.WriteLine($"fetch {name}: starting");
            await Asyncio.Sleep(delay);
            ctx.WriteLine($"fetch {name}: done");
            return $"{name} data";
        }

        async Task<int> Broken(double delay)
        {
            await Asyncio.Sleep(delay);
            throw new ArgumentException($"broken after {delay}");
        }

        async Task Main()
        {
            var (a, b) = await TaskGroup.RunAsync(async tg =>
            {
                var a = tg.CreateTask(() => Fetch("a", 0.2));
                var b = tg.CreateTask(() => Fetch("b", 0.1));
                ctx.WriteLine("tasks created");
                await Task.CompletedTask;
                return (a, b);
            });
            ctx.WriteLine($"results: {PyList([a.Result(), b.Result()])}");

            LoopTask<string>? slow = null;
            try
            {
                await TaskGroup.RunAsync(async tg =>
                {
                    slow = tg.CreateTask(() => Fetch("slow", 1));
                    _ = tg.CreateTask(() => Broken(0.1));
                    await Task.CompletedTask;
                });
            }
            catch (AggregateException eg)
            {
                ctx.WriteLine($"group failed: {PyList(eg.InnerExceptions.Select(e => e.Message))}");
            }

            ctx.WriteLine($"slow cancelled: {(slow!.Cancelled ? "True" : "False")}");
        }

        ctx.Run(Main);
    }

    private static void TimeoutExample(ExampleContext ctx)
    {
        async Task Main()
        {
            var loop = Asyncio.GetRunningLoop();
            TimeoutScope? cm = null;
            try
            {
                await using (cm = Asyncio.Timeout(0.1))
                {
                    ctx.WriteLine("sleeping 1s inside a 0.1s timeout");
                    await Asyncio.Sleep(1);
                }
            }
            catch (TimeoutException)
            {
                ctx.WriteLine($"timed out; expired: {(cm!.Expired ? "True" : "False")}");
            }

            await using (cm = Asyncio.Timeout(null))
            {
                cm.Reschedule(loop.Time() + 1);
                ctx.WriteLine("deadline moved 1s ahead");
                await Asyncio.Sleep(0.1);
            }

            ctx.WriteLine($"finished in time; expired: {(cm.Expired ? "True" : "False")}");
            try
            {
                await Asyncio.WaitFor(async () => await Asyncio.Sleep(1), 0.1);
            }
            catch (TimeoutException)
            {
                ctx.WriteLine("wait_for timed out");
            }
        }

        ctx.Run(Main);
    }
}
