using System.Diagnostics;
using System.Text.Json;
using Tulip;
using Tulip.Core;
using Tulip.Core.Interop;

namespace Tulip.Bench;

/// <summary>
/// The quick mode: the same benchmarks as ../shared/bench/micro/py_micro.py (same names, same N, same
/// shape of output: one "name ops/s" line each, then a JSON line), so Tulip and asyncio/uvloop can be
/// compared in one run. Plus core-only figures (the pure F# scheduler without the shell) and bytes
/// allocated per operation.
/// </summary>
public static class Micro
{
    public sealed record Result(double OpsPerSec, long N, double Seconds, double BytesPerOp, Dictionary<string, object>? Extra = null);

    private static readonly (string Name, long N, Func<long, Result> Run)[] Benches =
    [
        ("call_soon", 1_000_000, CallSoon),
        ("call_later", 100_000, CallLater),
        ("tasks_batch", 100_000, TasksBatch),
        ("tasks_seq", 100_000, TasksSeq),
        ("queue_pingpong", 1_000_000, QueuePingPong),
        ("queue_unbounded", 1_000_000, QueueUnbounded),
        ("lock_handoff", 1_000_000, LockHandoff),
        ("core_call_soon", 1_000_000, CoreCallSoon),
        ("core_timers", 100_000, CoreTimers),
        ("memory_per_callback", 1_000_000, MemoryPerCallback),
        // Issue 18 (twin: bench/executors.py): sequential round trips loop -> executor -> loop, and
        // foreign thread -> loop -> foreign thread.
        ("executor_thread", 20_000, ExecutorThread),
        ("executor_process", 5_000, ExecutorProcess),
        ("run_coroutine_threadsafe", 20_000, RunCoroutineThreadsafe),
        // Issue 16 (twin: bench/getaddrinfo.py): sequential round trips of loop.GetAddrInfoAsync.
        ("getaddrinfo_numeric", 100_000, GetAddrInfoNumeric),
        ("getaddrinfo_localhost", 10_000, GetAddrInfoLocalhost),
        // Issue 17 (bench/subprocess_bench.py is the asyncio/uvloop twin): spawn + communicate round
        // trips of `cat` per second; bulk throughput through one `cat` child, in MiB/s (n = MiB).
        ("subprocess_spawn_communicate", 200, SubprocessSpawnCommunicate),
        ("subprocess_cat_throughput", 256, SubprocessCatThroughput),
        // The same with 1 MiB pipes (SubprocessOptions.PipeSize; the twin passes Popen's pipesize).
        ("subprocess_cat_throughput_1m", 256, SubprocessCatThroughputLarge),
    ];

    public static int Run(string[] args)
    {
        var only = new HashSet<string>();
        double scale = 1.0;
        int runs = 5;
        double minSeconds = 1.0, warmupSeconds = 1.0;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--only": only.UnionWith(args[++i].Split(',', StringSplitOptions.RemoveEmptyEntries)); break;
                case "--scale": scale = double.Parse(args[++i], System.Globalization.CultureInfo.InvariantCulture); break;
                case "--runs": runs = int.Parse(args[++i]); break;
                case "--min-seconds": minSeconds = double.Parse(args[++i], System.Globalization.CultureInfo.InvariantCulture); break;
                case "--warmup-seconds": warmupSeconds = double.Parse(args[++i], System.Globalization.CultureInfo.InvariantCulture); break;
                default: only.Add(args[i]); break;
            }
        }

        var results = new Dictionary<string, object>();
        foreach (var (name, n0, run) in Benches)
        {
            if (only.Count > 0 && !only.Contains(name)) continue;
            long n = Math.Max(1, (long)(n0 * scale));
            // Steady state: warm up past JIT tiering (tier-0 code, OSR and the tier-1 promotion that
            // follows 30 calls and a 100 ms back-off) for at least warmupSeconds of repeated runs,
            // then take each figure over at least minSeconds of runs; the median of `runs` figures.
            // (Issue 12.6: single 0.08 s runs measured tiering, not Tulip: tasks_seq alone read
            // 0.55 M/s, after the others 1.3 M/s.)
            var warm = Stopwatch.StartNew();
            for (int k = 0; k < 3 || warm.Elapsed.TotalSeconds < warmupSeconds; k++) run(n);
            var all = new List<Result>();
            for (int r = 0; r < runs; r++) all.Add(Sample(run, n, minSeconds));

            var median = all.OrderBy(x => x.OpsPerSec).ElementAt(all.Count / 2);
            var extra = median.Extra is { } e ? "  (" + string.Join(", ", e.Select(kv => $"{kv.Key} {Format(kv.Value)}")) + ")" : "";
            Console.WriteLine($"{name,-20} {median.OpsPerSec,16:N0} ops/s  n={median.N:N0} in {median.Seconds:0.000}s  {median.BytesPerOp:0.#} B/op{extra}");
            var entry = new Dictionary<string, object>
            {
                ["ops_per_sec"] = median.OpsPerSec,
                ["n"] = median.N,
                ["seconds"] = median.Seconds,
                ["bytes_per_op"] = median.BytesPerOp,
                ["runs_ops_per_sec"] = all.Select(x => x.OpsPerSec).ToArray(),
            };
            if (median.Extra is { } ex) foreach (var (k, v) in ex) entry[k] = v;
            results[name] = entry;
        }

        s_processPool?.Shutdown(wait: true);
        s_processPool = null;
        Console.WriteLine("JSON " + JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["loop"] = "tulip",
            ["loop_version"] = typeof(EventLoop).Assembly.GetName().Version?.ToString() ?? "?",
            ["runtime"] = System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription,
            ["results"] = results,
        }));
        return 0;
    }

    /// <summary>One figure: runs of n repeated until at least minSeconds were measured; ops over time.</summary>
    private static Result Sample(Func<long, Result> run, long n, double minSeconds)
    {
        double seconds = 0, bytes = 0;
        long ops = 0;
        Result last;
        do
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            last = run(n);
            seconds += last.Seconds;
            ops += last.N;
            bytes += last.BytesPerOp * last.N;
        }
        while (seconds < minSeconds);

        return new Result(ops / seconds, ops, seconds, bytes / ops, last.Extra);
    }

    private static string Format(object v) => v is double d ? d.ToString("N0") : v.ToString() ?? "";

    private static long Allocated() => GC.GetAllocatedBytesForCurrentThread();

    // call_soon: the ready queue kept 1000 deep; each callback schedules its successor.
    private static Result CallSoon(long n)
    {
        using var loop = new EventLoop();
        var done = loop.CreateFuture<int>();
        long run = 0, scheduled = 0;
        Action? cb = null;
        cb = () =>
        {
            run++;
            if (scheduled < n)
            {
                scheduled++;
                loop.CallSoon(cb!);
            }
            else if (run == n)
            {
                done.SetResult(0);
            }
        };
        long a0 = Allocated();
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < Math.Min(1000, n); i++)
        {
            scheduled++;
            loop.CallSoon(cb);
        }

        loop.RunUntilComplete(done);
        sw.Stop();
        if (run != n) throw new InvalidOperationException($"ran {run} of {n}");
        return new Result(n / sw.Elapsed.TotalSeconds, n, sw.Elapsed.TotalSeconds, (Allocated() - a0) / (double)n);
    }

    // call_later: random delays in [0, 10 ms), scheduled from outside the loop, then fired.
    private static Result CallLater(long n)
    {
        using var loop = new EventLoop();
        var rng = new Random(12345);
        var delays = new double[n];
        for (long i = 0; i < n; i++) delays[i] = rng.NextDouble() * 0.010;
        var fired = new List<int>((int)n);
        var done = loop.CreateFuture<int>();
        var handles = new TimerHandle[n];
        Action<int> cb = i =>
        {
            fired.Add(i);
            if (fired.Count == n) done.SetResult(0);
        };
        long a0 = Allocated();
        var t0 = Stopwatch.GetTimestamp();
        for (int i = 0; i < n; i++) handles[i] = loop.CallLater(delays[i], cb, i);
        var t1 = Stopwatch.GetTimestamp();
        long a1 = Allocated();
        Thread.Sleep(12);
        var t2 = Stopwatch.GetTimestamp();
        loop.RunUntilComplete(done);
        var t3 = Stopwatch.GetTimestamp();
        long a2 = Allocated();
        double sched = Stopwatch.GetElapsedTime(t0, t1).TotalSeconds, fire = Stopwatch.GetElapsedTime(t2, t3).TotalSeconds;
        int inversions = 0;
        for (int i = 1; i < fired.Count; i++)
        {
            if (handles[fired[i]].When < handles[fired[i - 1]].When) inversions++;
        }

        return new Result(n / (sched + fire), n, sched + fire, (a1 - a0 + (a2 - a1)) / (double)n, new()
        {
            ["schedule_ops_per_sec"] = n / sched,
            ["fire_ops_per_sec"] = n / fire,
            ["inversions"] = inversions,
        });
    }

    private static readonly SubprocessOptions Piped = new()
    {
        Stdin = SubprocessRedirect.Pipe, Stdout = SubprocessRedirect.Pipe, Stderr = SubprocessRedirect.DevNull,
    };

    private static readonly SubprocessOptions PipedLarge = new()
    {
        Stdin = SubprocessRedirect.Pipe, Stdout = SubprocessRedirect.Pipe, Stderr = SubprocessRedirect.DevNull, PipeSize = 1 << 20,
    };

    private static Result SubprocessSpawnCommunicate(long n)
    {
        using var loop = new EventLoop();
        var input = "hello tulip\n"u8.ToArray();
        long a0 = Allocated();
        var sw = Stopwatch.StartNew();
        loop.RunUntilComplete(async () =>
        {
            for (long i = 0; i < n; i++)
            {
                var p = await Asyncio.CreateSubprocessExec("cat", [], Piped);
                var (stdout, _) = await p.CommunicateAsync(input);
                if (stdout!.Length != input.Length) throw new InvalidOperationException("short output");
                await p.DisposeAsync();
            }
        });
        sw.Stop();
        return new Result(n / sw.Elapsed.TotalSeconds, n, sw.Elapsed.TotalSeconds, (Allocated() - a0) / (double)n);
    }

    // n MiB written to cat's stdin in 256 KiB writes (each awaiting DrainAsync) while a task reads its
    // stdout in 256 KiB reads; ops = MiB.
    private static Result SubprocessCatThroughput(long n) => SubprocessCatThroughput(n, Piped);

    private static Result SubprocessCatThroughputLarge(long n) => SubprocessCatThroughput(n, PipedLarge);

    private static Result SubprocessCatThroughput(long n, SubprocessOptions options)
    {
        using var loop = new EventLoop();
        var chunk = new byte[256 * 1024];
        long total = n * 1024 * 1024;
        long a0 = Allocated();
        var sw = Stopwatch.StartNew();
        loop.RunUntilComplete(async () =>
        {
            var p = await Asyncio.CreateSubprocessExec("cat", [], options);
            var reader = loop.CreateTask(async () =>
            {
                long got = 0;
                while (true)
                {
                    var data = await p.Stdout!.ReadAsync(256 * 1024);
                    if (data.Length == 0) return got;
                    got += data.Length;
                }
            });
            for (long sent = 0; sent < total; sent += chunk.Length)
            {
                p.Stdin!.Write(chunk);
                await p.Stdin.DrainAsync();
            }

            p.Stdin!.Close();
            long received = await reader;
            if (received != total) throw new InvalidOperationException($"received {received} of {total}");
            await p.WaitAsync();
            await p.DisposeAsync();
        });
        sw.Stop();
        return new Result(n / sw.Elapsed.TotalSeconds, n, sw.Elapsed.TotalSeconds, (Allocated() - a0) / (double)n);
    }

    private static Task<int> Noop() => Task.FromResult(0);

    private static Result TasksBatch(long n)
    {
        using var loop = new EventLoop();
        long a0 = Allocated();
        var sw = Stopwatch.StartNew();
        loop.RunUntilComplete(async () =>
        {
            var tasks = new LoopTask<int>[n];
            for (long i = 0; i < n; i++) tasks[i] = loop.CreateTask(Noop);
            foreach (var t in tasks) await t;
        });
        sw.Stop();
        return new Result(n / sw.Elapsed.TotalSeconds, n, sw.Elapsed.TotalSeconds, (Allocated() - a0) / (double)n);
    }

    // queue_pingpong / queue_unbounded (py_micro.py's _queue): a producer puts 0..n-1, a consumer gets
    // and checks the order, both gathered. maxsize 1: every pair blocks both sides (ping-pong).
    private static Result QueuePingPong(long n) => QueueBench(n, 1);

    private static Result QueueUnbounded(long n) => QueueBench(n, 0);

    private static Result QueueBench(long n, int maxSize)
    {
        using var loop = new EventLoop();
        long a0 = Allocated();
        var sw = Stopwatch.StartNew();
        loop.RunUntilComplete(async () =>
        {
            var q = new AsyncQueue<long>(maxSize);

            async Task<int> Producer()
            {
                for (long i = 0; i < n; i++) await q.PutAsync(i);
                return 0;
            }

            async Task<int> Consumer()
            {
                long expect = 0;
                for (long i = 0; i < n; i++)
                {
                    long v = await q.GetAsync();
                    if (v != expect) throw new InvalidOperationException($"queue out of order: {v} != {expect}");
                    expect++;
                }

                return 0;
            }

            await Asyncio.Gather(Producer, Consumer);
        });
        sw.Stop();
        return new Result(n / sw.Elapsed.TotalSeconds, n, sw.Elapsed.TotalSeconds, (Allocated() - a0) / (double)n);
    }

    // lock_handoff: two tasks take turns on one lock (async with lock: await sleep(0)), n acquisitions in
    // all; every release hands the lock to the other task, which waits for it. No py_micro.py peer:
    // bench/lock_handoff.py is asyncio's twin.
    private static Result LockHandoff(long n)
    {
        using var loop = new EventLoop();
        long a0 = Allocated();
        var sw = Stopwatch.StartNew();
        long count = 0;
        loop.RunUntilComplete(async () =>
        {
            var lk = new AsyncLock();

            async Task<int> Worker()
            {
                while (count < n)
                {
                    using (await lk.LockAsync())
                    {
                        count++;
                        await Asyncio.Sleep(0);
                    }
                }

                return 0;
            }

            await Asyncio.Gather(Worker, Worker);
        });
        sw.Stop();
        return new Result(count / sw.Elapsed.TotalSeconds, count, sw.Elapsed.TotalSeconds, (Allocated() - a0) / (double)count);
    }

    private static Result TasksSeq(long n)
    {
        using var loop = new EventLoop();
        long a0 = Allocated();
        var sw = Stopwatch.StartNew();
        loop.RunUntilComplete(async () =>
        {
            for (long i = 0; i < n; i++) await loop.CreateTask(Noop);
        });
        sw.Stop();
        return new Result(n / sw.Elapsed.TotalSeconds, n, sw.Elapsed.TotalSeconds, (Allocated() - a0) / (double)n);
    }

    // getaddrinfo round trips, one after another (as bench/getaddrinfo.py): a numeric host is answered on
    // the loop's thread (asyncio's _ipaddr_info fast path); localhost goes to the resolver pool and back.
    private static Result GetAddrInfoNumeric(long n) => GetAddrInfoBench(n, "127.0.0.1");

    private static Result GetAddrInfoLocalhost(long n) => GetAddrInfoBench(n, "localhost");

    private static Result GetAddrInfoBench(long n, string host)
    {
        using var loop = new EventLoop();
        long a0 = Allocated();
        var sw = Stopwatch.StartNew();
        loop.RunUntilComplete(async () =>
        {
            for (long i = 0; i < n; i++)
                await loop.GetAddrInfoAsync(host, 80, System.Net.Sockets.AddressFamily.Unspecified, System.Net.Sockets.SocketType.Stream);
        });
        sw.Stop();
        return new Result(n / sw.Elapsed.TotalSeconds, n, sw.Elapsed.TotalSeconds, (Allocated() - a0) / (double)n);
    }

    // The pure core alone: ticks of 1000 ids through CallSoonMany / BeginTick / Polled / EndTick.
    private static Result CoreCallSoon(long n)
    {
        var s = LoopCore.Start(LoopCore.Create(0));
        long a0 = Allocated();
        var sw = Stopwatch.StartNew();
        long done = 0, next = 0;
        while (done < n)
        {
            var ids = new long[1000];
            for (int i = 0; i < ids.Length; i++) ids[i] = next++;
            s = LoopCore.CallSoonMany(s, ids);
            s = LoopCore.BeginTick(s, 0, [], out _);
            s = LoopCore.Polled(s, 0, [], [], out var batch);
            done += batch.Length;
            s = LoopCore.EndTick(s, out _);
        }

        sw.Stop();
        return new Result(done / sw.Elapsed.TotalSeconds, done, sw.Elapsed.TotalSeconds, (Allocated() - a0) / (double)done);
    }

    // The pure core alone: schedule n timers with random deadlines, then fire them all.
    private static Result CoreTimers(long n)
    {
        var rng = new Random(12345);
        var entries = new (long, long)[n];
        for (long i = 0; i < n; i++) entries[i] = (i, (long)(rng.NextDouble() * 100_000));
        var s = LoopCore.Start(LoopCore.Create(0));
        long a0 = Allocated();
        var sw = Stopwatch.StartNew();
        foreach (var e in entries) s = LoopCore.CallAtMany(s, [e]);
        s = LoopCore.BeginTick(s, 0, [], out _);
        s = LoopCore.Polled(s, 200_000, [], [], out var batch);
        s = LoopCore.EndTick(s, out _);
        sw.Stop();
        long prev = long.MinValue;
        foreach (var id in batch)
        {
            var d = entries[id].Item2;
            if (d < prev) throw new InvalidOperationException("core fired out of order");
            prev = d;
        }

        return new Result(n / sw.Elapsed.TotalSeconds, n, sw.Elapsed.TotalSeconds, (Allocated() - a0) / (double)n);
    }

    // Memory per queued callback: n call_soon queued (not run), bytes retained per callback.
    private static Result MemoryPerCallback(long n)
    {
        var loop = new EventLoop();
        Action cb = static () => { };
        GC.Collect();
        long before = GC.GetTotalMemory(true);
        var sw = Stopwatch.StartNew();
        for (long i = 0; i < n; i++) loop.CallSoon(cb);
        sw.Stop();
        long after = GC.GetTotalMemory(true);
        GC.KeepAlive(loop);
        loop.Close();
        return new Result(n / sw.Elapsed.TotalSeconds, n, sw.Elapsed.TotalSeconds, (after - before) / (double)n);
    }

    private static int Square(int x) => x * x;

    // executor_thread: one loop task awaits N run_in_executor calls in turn (a one-thread pool, started).
    private static Result ExecutorThread(long n)
    {
        using var executor = new ThreadPoolExecutor(1);
        using var loop = new EventLoop();
        return RoundTrips(loop, n, () => loop.RunInExecutor(executor, Square, 3));
    }

    // The pool outlives the runs (a worker process takes ~0.1 s to start): shut down at the end.
    private static ProcessPoolExecutor? s_processPool;

    // executor_process: the same through a one-process pool (JSON over the worker's pipes).
    private static ProcessPoolExecutor ProcessPool => s_processPool ??= new ProcessPoolExecutor(1);

    private static Result ExecutorProcess(long n)
    {
        using var loop = new EventLoop();
        var pool = ProcessPool;
        return RoundTrips(loop, n, () => loop.RunInExecutor(pool, Square, 3));
    }

    private static Result RoundTrips(EventLoop loop, long n, Func<Future<int>> call)
    {
        loop.RunUntilComplete(async () => await call()); // the worker started
        long a0 = Allocated();
        var sw = Stopwatch.StartNew();
        long sum = loop.RunUntilComplete(async () =>
        {
            long total = 0;
            for (long i = 0; i < n; i++) total += await call();
            return total;
        });
        sw.Stop();
        if (sum != 9 * n) throw new InvalidOperationException($"sum {sum}");
        return new Result(n / sw.Elapsed.TotalSeconds, n, sw.Elapsed.TotalSeconds, (Allocated() - a0) / (double)n);
    }

    // run_coroutine_threadsafe: a foreign thread submits a coroutine to a running loop and waits for its
    // Task, N times in turn.
    private static Result RunCoroutineThreadsafe(long n)
    {
        using var loop = new EventLoop();
        using var started = new ManualResetEventSlim();
        var runner = new Thread(() =>
        {
            loop.CallSoon(started.Set);
            loop.RunForever();
        });
        runner.Start();
        started.Wait();
        Func<Task<int>> coroutine = static () => Task.FromResult(1);
        var sw = Stopwatch.StartNew();
        long sum = 0;
        for (long i = 0; i < n; i++) sum += Asyncio.RunCoroutineThreadsafe(coroutine, loop).GetAwaiter().GetResult();
        sw.Stop();
        loop.CallSoonThreadsafe(loop.Stop);
        runner.Join();
        if (sum != n) throw new InvalidOperationException($"sum {sum}");
        return new Result(n / sw.Elapsed.TotalSeconds, n, sw.Elapsed.TotalSeconds, 0);
    }
}
