namespace Tulip.Examples;

/// <summary>Synchronization primitives (PyMOTW's asyncio_lock, asyncio_event, asyncio_condition, asyncio_queue).</summary>
public static class Synchronization
{
    private const string Section = "Synchronization Primitives";

    public static IEnumerable<Example> Examples =>
    [
        new("lock", Section, "two coroutines wait for a lock a callback releases", LockExample),
        new("event", Section, "two coroutines wait for an event a callback sets", EventExample),
        new("condition", Section, "consumers woken by Notify(1), Notify(2) and NotifyAll", ConditionExample),
        new("queue", Section, "producer and consumers over a bounded queue, with TaskDone/Join", QueueExample),
    ];

    private static string Bool(bool b) => b ? "True" : "False";

    private static void LockExample(ExampleContext ctx)
    {
        void Unlock(AsyncLock lk)
        {
            ctx.WriteLine("callback releasing lock");
            lk.Release();
        }

        async Task Coro1(AsyncLock lk)
        {
            ctx.WriteLine("coro1 waiting for the lock");
            using (await lk.LockAsync())
            {
                ctx.WriteLine("coro1 acquired lock");
            }

            ctx.WriteLine("coro1 released lock");
        }

        async Task Coro2(AsyncLock lk)
        {
            ctx.WriteLine("coro2 waiting for the lock");
            await lk.AcquireAsync();
            try
            {
                ctx.WriteLine("coro2 acquired lock");
            }
            finally
            {
                ctx.WriteLine("coro2 released lock");
                lk.Release();
            }
        }

        async Task Main(EventLoop loop)
        {
            // Create and acquire a shared lock.
            var lk = new AsyncLock();
            ctx.WriteLine("acquiring the lock before starting coroutines");
            await lk.AcquireAsync();
            ctx.WriteLine($"lock acquired: {Bool(lk.Locked)}");
            // Schedule a callback to unlock the lock.
            loop.CallLater(0.1, Unlock, lk);
            // Run the coroutines that want to use the lock.
            ctx.WriteLine("waiting for coroutines");
            await Asyncio.Wait([loop.CreateTask(() => Coro1(lk)), loop.CreateTask(() => Coro2(lk))]);
        }

        using var loop = ctx.NewLoop();
        loop.RunUntilComplete(() => Main(loop));
    }

    private static void EventExample(ExampleContext ctx)
    {
        void SetEvent(AsyncEvent ev)
        {
            ctx.WriteLine("setting event in callback");
            ev.Set();
        }

        async Task Coro(string name, AsyncEvent ev)
        {
            ctx.WriteLine($"{name} waiting for event");
            await ev.WaitAsync();
            ctx.WriteLine($"{name} triggered");
        }

        async Task Main(EventLoop loop)
        {
            var ev = new AsyncEvent();
            ctx.WriteLine($"event start state: {Bool(ev.IsSet)}");
            loop.CallLater(0.1, SetEvent, ev);
            await Asyncio.Wait([loop.CreateTask(() => Coro("coro1", ev)), loop.CreateTask(() => Coro("coro2", ev))]);
            ctx.WriteLine($"event end state: {Bool(ev.IsSet)}");
        }

        using var loop = ctx.NewLoop();
        loop.RunUntilComplete(() => Main(loop));
    }

    private static void ConditionExample(ExampleContext ctx)
    {
        async Task Consumer(Condition condition, int n)
        {
            using (await condition.LockAsync())
            {
                ctx.WriteLine($"consumer {n} is waiting");
                await condition.WaitAsync();
                ctx.WriteLine($"consumer {n} triggered");
            }

            ctx.WriteLine($"ending consumer {n}");
        }

        async Task ManipulateCondition(Condition condition)
        {
            ctx.WriteLine("starting manipulate_condition");
            // pause to let consumers start
            await Asyncio.Sleep(0.1);
            for (int i = 1; i < 3; i++)
            {
                using (await condition.LockAsync())
                {
                    ctx.WriteLine($"notifying {i} consumers");
                    condition.Notify(i);
                }

                await Asyncio.Sleep(0.1);
            }

            using (await condition.LockAsync())
            {
                ctx.WriteLine("notifying remaining consumers");
                condition.NotifyAll();
            }

            ctx.WriteLine("ending manipulate_condition");
        }

        async Task Main(EventLoop loop)
        {
            var condition = new Condition();
            // Schedule a task to manipulate the condition variable, then the consumers.
            _ = loop.CreateTask(() => ManipulateCondition(condition));
            await Asyncio.Wait(Enumerable.Range(0, 5).Select(i => loop.CreateTask(() => Consumer(condition, i))).ToList());
        }

        using var loop = ctx.NewLoop();
        loop.RunUntilComplete(() => Main(loop));
    }

    private static void QueueExample(ExampleContext ctx)
    {
        async Task Consumer(int n, AsyncQueue<int?> q)
        {
            ctx.WriteLine($"consumer {n}: starting");
            while (true)
            {
                ctx.WriteLine($"consumer {n}: waiting for item");
                var item = await q.GetAsync();
                ctx.WriteLine($"consumer {n}: has item {item?.ToString() ?? "None"}");
                if (item is not { } i)
                {
                    // None is the signal to stop.
                    q.TaskDone();
                    break;
                }

                await Asyncio.Sleep(0.01 * i);
                q.TaskDone();
            }

            ctx.WriteLine($"consumer {n}: ending");
        }

        async Task Producer(AsyncQueue<int?> q, int numWorkers)
        {
            ctx.WriteLine("producer: starting");
            // Add some numbers to the queue to simulate jobs
            for (int i = 0; i < numWorkers * 3; i++)
            {
                await q.PutAsync(i);
                ctx.WriteLine($"producer: added task {i} to the queue");
            }

            // Add None entries in the queue to signal the consumers to exit
            ctx.WriteLine("producer: adding stop signals to the queue");
            for (int i = 0; i < numWorkers; i++) await q.PutAsync(null);
            ctx.WriteLine("producer: waiting for queue to empty");
            await q.JoinAsync();
            ctx.WriteLine("producer: ending");
        }

        async Task Main(EventLoop loop, int numConsumers)
        {
            // A bounded queue: the producer blocks until the consumers pull some items out.
            var q = new AsyncQueue<int?>(maxSize: numConsumers);
            var tasks = Enumerable.Range(0, numConsumers).Select(i => loop.CreateTask(() => Consumer(i, q))).ToList();
            tasks.Add(loop.CreateTask(() => Producer(q, numConsumers)));
            await Asyncio.Wait(tasks);
        }

        using var loop = ctx.NewLoop();
        loop.RunUntilComplete(() => Main(loop, 2));
    }
}
