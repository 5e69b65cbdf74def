namespace Tulip.Examples;

/// <summary>
/// The chapter's "combining coroutines with threads and processes" (PyMOTW's asyncio_executor_thread.py
/// and asyncio_executor_process.py): blocking work handed to an executor beside the loop, awaited as loop
/// futures.
/// </summary>
public static class Executors
{
    private const string Section = "Combining coroutines with threads and processes";

    public static IEnumerable<Example> Examples =>
    [
        new("executor_thread", Section, "RunInExecutor on a thread pool: blocking work runs beside the loop; the log says which thread ran what", ExecutorThread),
        new("executor_process", Section, "the same on a process pool: a static method runs in worker processes, whose ids the results carry", ExecutorProcess),
    ];

    private static void ExecutorThread(ExampleContext ctx)
    {
        var output = TextWriter.Synchronized(ctx.Out); // the worker threads log too
        using var executor = new ThreadPoolExecutor(maxWorkers: 3);
        Thread? main = null;
        void Log(string name, string message)
        {
            var thread = Thread.CurrentThread == main ? "MainThread" : Thread.CurrentThread.Name;
            output.WriteLine($"{thread,10} {name,18}: {message}");
        }

        // The blocking function: a plain synchronous method (time.sleep in PyMOTW).
        int Blocks(int n)
        {
            Log($"blocks({n})", "running");
            Thread.Sleep(100);
            Log($"blocks({n})", "done");
            return n * n;
        }

        ctx.Run(async () =>
        {
            main = Thread.CurrentThread;
            const string me = "run_blocking_tasks";
            Log(me, "starting");
            Log(me, "creating executor tasks");
            var loop = EventLoop.GetRunningLoop();
            var blocking = Enumerable.Range(0, 6).Select(i => loop.RunInExecutor(executor, Blocks, i)).ToArray();
            Log(me, "waiting for executor tasks");
            var (completed, _) = await Asyncio.Wait(blocking);
            var results = completed.Select(f => ((Future<int>)f).Result()).Order();
            Log(me, $"results: [{string.Join(", ", results)}]");

            // Debug mode (asyncio: "coroutines cannot be used with call_soon()"): an async lambda given
            // where a plain callback is expected would run as async void; it is refused instead.
            loop.Debug = true;
            try
            {
                loop.CallSoon(async () => await Asyncio.Sleep(0));
            }
            catch (ArgumentException e)
            {
                Log(me, e.Message.Split(" (")[0]);
            }

            loop.Debug = false;
            Log(me, "exiting");
        });
    }

    /// <summary>What a worker process sends back: its process id with the result.</summary>
    public sealed record BlockResult(int Pid, int N, int Square);

    /// <summary>The work of executor_process: a static method, so the worker process can name it.</summary>
    public static BlockResult Blocks(int n)
    {
        Thread.Sleep(100);
        return new BlockResult(Environment.ProcessId, n, n * n);
    }

    private static void ExecutorProcess(ExampleContext ctx)
    {
        using var executor = new ProcessPoolExecutor(maxWorkers: 3);
        void Log(string name, string message) => ctx.WriteLine($"PID {Environment.ProcessId,5} {name,18}: {message}");

        ctx.Run(async () =>
        {
            const string me = "run_blocking_tasks";
            Log(me, "starting");
            Log(me, "creating executor tasks");
            var loop = EventLoop.GetRunningLoop();
            var blocking = Enumerable.Range(0, 6).Select(i => loop.RunInExecutor(executor, Blocks, i)).ToArray();
            Log(me, "waiting for executor tasks");
            var pids = new HashSet<int>();
            foreach (var next in Asyncio.AsCompleted(blocking))
            {
                var r = await next;
                pids.Add(r.Pid);
                ctx.WriteLine($"PID {r.Pid,5} {$"blocks({r.N})",18}: ran in a worker process, result {r.Square}");
            }

            Log(me, $"results: [{string.Join(", ", blocking.Select(f => f.Result().Square))}]");
            Log(me, $"{pids.Count} worker process(es), none of them this one: {!pids.Contains(Environment.ProcessId)}");
            Log(me, "exiting");
        });
    }
}
