namespace Tulip.Examples;

/// <summary>Cooperative multitasking with coroutines.</summary>
public static class Coroutines
{
    private const string Section = "Coroutines";

    public static IEnumerable<Example> Examples =>
    [
        new("coroutine", Section, "RunUntilComplete runs a coroutine to its end", Coroutine),
        new("coroutine_return", Section, "the coroutine's return value comes back to the caller", CoroutineReturn),
        new("coroutine_chain", Section, "one coroutine awaits two others in sequence", CoroutineChain),
        new("generator", Section, "the pre-async style: an iterator that yields what it waits for", GeneratorExample),
    ];

    private static void Coroutine(ExampleContext ctx)
    {
        async Task Body()
        {
            ctx.WriteLine("in coroutine");
            await Task.CompletedTask;
        }

        var loop = ctx.NewLoop();
        try
        {
            ctx.WriteLine("starting coroutine");
            ctx.WriteLine("entering event loop");
            loop.RunUntilComplete(Body);
        }
        finally
        {
            ctx.WriteLine("closing event loop");
            loop.Close();
        }
    }

    private static void CoroutineReturn(ExampleContext ctx)
    {
        async Task<string> Body()
        {
            ctx.WriteLine("in coroutine");
            await Task.CompletedTask;
            return "result";
        }

        using var loop = ctx.NewLoop();
        var value = loop.RunUntilComplete(Body);
        ctx.WriteLine($"it returned: '{value}'");
    }

    private static void CoroutineChain(ExampleContext ctx)
    {
        async Task<(string, string)> Outer()
        {
            ctx.WriteLine("in outer");
            ctx.WriteLine("waiting for result1");
            var result1 = await Phase1();
            ctx.WriteLine("waiting for result2");
            var result2 = await Phase2(result1);
            return (result1, result2);
        }

        async Task<string> Phase1()
        {
            ctx.WriteLine("in phase1");
            await Asyncio.Sleep(0);
            return "result1";
        }

        async Task<string> Phase2(string arg)
        {
            ctx.WriteLine("in phase2");
            await Asyncio.Sleep(0);
            return $"result2 derived from {arg}";
        }

        using var loop = ctx.NewLoop();
        var value = loop.RunUntilComplete(Outer);
        ctx.WriteLine($"return value: ('{value.Item1}', '{value.Item2}')");
    }

    private static void GeneratorExample(ExampleContext ctx)
    {
        using var loop = ctx.NewLoop();

        IEnumerable<object?> Outer()
        {
            ctx.WriteLine("in outer");
            ctx.WriteLine("waiting for result1");
            var phase1 = loop.CreateTask(Generator.Coroutine<string>(Phase1));
            yield return phase1;
            var result1 = phase1.Result();
            ctx.WriteLine("waiting for result2");
            var phase2 = loop.CreateTask(Generator.Coroutine<string>(() => Phase2(result1)));
            yield return phase2;
            yield return Generator.Return((result1, phase2.Result()));
        }

        IEnumerable<object?> Phase1()
        {
            ctx.WriteLine("in phase1");
            yield return null; // give up one tick, like a bare yield
            yield return Generator.Return("result1");
        }

        IEnumerable<object?> Phase2(string arg)
        {
            ctx.WriteLine("in phase2");
            yield return Generator.Return($"result2 derived from {arg}");
        }

        var value = loop.RunUntilComplete(loop.CreateTask(Generator.Coroutine<(string, string)>(Outer)));
        ctx.WriteLine($"return value: ('{value.Item1}', '{value.Item2}')");
    }
}
