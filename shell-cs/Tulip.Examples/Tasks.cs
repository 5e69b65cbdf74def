namespace Tulip.Examples;

/// <summary>Executing tasks concurrently: starting, cancelling, and making tasks from coroutines.</summary>
public static class Tasks
{
    private const string Section = "Tasks";

    public static IEnumerable<Example> Examples =>
    [
        new("create_task", Section, "a task runs while main waits for it; its result", CreateTask),
        new("cancel_task", Section, "a task cancelled before it starts never runs; awaiting it raises", CancelTask),
        new("cancel_task2", Section, "a task cancelled while it sleeps sees the cancellation; so does its awaiter", CancelTask2),
        new("ensure_future", Section, "EnsureFuture wraps a coroutine in a task", EnsureFuture),
    ];

    private static void CreateTask(ExampleContext ctx)
    {
        bool ranInline = false, ran = false;
        string? returned = null;
        LoopTask<string>? created = null;

        async Task<string> TaskFunc()
        {
            ctx.WriteLine("in task_func");
            ran = true;
            await Task.CompletedTask;
            return "the result";
        }

        async Task Main(EventLoop loop)
        {
            ctx.WriteLine("creating task");
            var task = created = loop.CreateTask(TaskFunc);
            ranInline = ran;
            ctx.WriteLine($"waiting for {task}");
            var returnValue = await task;
            ctx.WriteLine($"task completed {task}");
            ctx.WriteLine($"return value: '{returnValue}'");
            returned = returnValue;
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

        Require(!ranInline, "CreateTask only schedules the task: its body does not run inline");
        Require(ran && created is { Done: true } && returned == "the result", "the task ran and main got its result");
    }

    private static void CancelTask(ExampleContext ctx)
    {
        bool bodyRan = false, caught = false;
        LoopTask<string>? created = null;

        async Task<string> TaskFunc()
        {
            bodyRan = true;
            ctx.WriteLine("in task_func");
            await Task.CompletedTask;
            return "the result";
        }

        async Task Main(EventLoop loop)
        {
            ctx.WriteLine("creating task");
            var task = created = loop.CreateTask(TaskFunc);

            ctx.WriteLine("canceling task");
            task.Cancel();

            ctx.WriteLine($"canceled task {task}");
            string result;
            try
            {
                result = await task;
            }
            catch (CancelledException)
            {
                ctx.WriteLine("caught error from canceled task");
                caught = true;
                return;
            }

            ctx.WriteLine($"task result: '{result}'");
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

        Require(!bodyRan, "the body of a task cancelled before it started never runs");
        Require(caught && created is { Cancelled: true }, "awaiting the cancelled task raised CancelledException");
    }

    private static void CancelTask2(ExampleContext ctx)
    {
        bool taskSaw = false, mainSaw = false;
        LoopTask<string>? created = null;
        double start = 0, end = 0;

        async Task<string> TaskFunc()
        {
            ctx.WriteLine("in task_func, sleeping");
            try
            {
                await Asyncio.Sleep(1);
            }
            catch (CancelledException)
            {
                ctx.WriteLine("task_func was canceled");
                taskSaw = true;
                throw;
            }

            return "the result";
        }

        void TaskCanceller(ILoopTask t)
        {
            ctx.WriteLine("in task_canceller");
            t.Cancel();
            ctx.WriteLine("canceled the task");
        }

        async Task Main(EventLoop loop)
        {
            start = loop.Time();
            ctx.WriteLine("creating task");
            var task = created = loop.CreateTask(TaskFunc);
            loop.CallSoon(TaskCanceller, task);
            try
            {
                await task;
            }
            catch (CancelledException)
            {
                ctx.WriteLine("main() also sees task as canceled");
                mainSaw = true;
            }

            end = loop.Time();
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

        Require(taskSaw, "the sleeping task saw CancelledException at its await");
        Require(mainSaw && created is { Cancelled: true }, "main saw the task end cancelled");
        Require(end - start < 1, $"the 1 s sleep was cut short (main went on after {end - start:0.000} s)");
    }

    private static void EnsureFuture(ExampleContext ctx)
    {
        Future<string>? wrappedTask = null;
        string? returned = null;

        async Task<string> Wrapped()
        {
            ctx.WriteLine("wrapped");
            await Task.CompletedTask;
            return "result";
        }

        async Task Inner(Future<string> task)
        {
            ctx.WriteLine("inner: starting");
            ctx.WriteLine($"inner: waiting for {task}");
            var result = await task;
            ctx.WriteLine($"inner: task returned '{result}'");
            returned = result;
        }

        async Task Starter()
        {
            ctx.WriteLine("starter: creating task");
            var task = wrappedTask = Asyncio.EnsureFuture(Wrapped);
            ctx.WriteLine("starter: waiting for inner");
            await Inner(task);
            ctx.WriteLine("starter: inner returned");
        }

        var eventLoop = ctx.NewLoop();
        try
        {
            ctx.WriteLine("entering event loop");
            eventLoop.RunUntilComplete(Starter);
        }
        finally
        {
            eventLoop.Close();
        }

        Require(wrappedTask is ILoopTask { Done: true }, "EnsureFuture turned the coroutine into a task");
        Require(returned == "result", "inner got the task's result");
    }

    private static void Require(bool condition, string what)
    {
        if (!condition) throw new InvalidOperationException($"the example did not show what it should: {what}");
    }
}
