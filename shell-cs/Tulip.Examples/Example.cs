namespace Tulip.Examples;

/// <summary>Where an example writes and which clock its loops run on (the tour: real; the tests: virtual).</summary>
public sealed class ExampleContext(TextWriter output, Func<LoopClock> clocks)
{
    public TextWriter Out { get; } = output;

    /// <summary>A clock for a new loop.</summary>
    public LoopClock NewClock() => clocks();

    /// <summary>A new loop on this context's clock.</summary>
    public EventLoop NewLoop() => new(NewClock());

    /// <summary>asyncio.run on this context's clock.</summary>
    public T Run<T>(Func<Task<T>> main) => Asyncio.Run(main, clock: NewClock());

    public void Run(Func<Task> main) => Asyncio.Run(main, clock: NewClock());

    public void WriteLine(string line) => Out.WriteLine(line);
}

/// <summary>One runnable example: the chapter's name for it, what it shows, and its body.</summary>
public sealed record Example(string Name, string Section, string Shows, Action<ExampleContext> Body);
