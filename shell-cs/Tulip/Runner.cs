using System.Runtime.CompilerServices;

namespace Tulip;

/// <summary>
/// asyncio.Runner (3.11): one loop for several <see cref="Run{T}"/> calls from synchronous code (a
/// task left running by one call goes on in the next), closed with <see cref="Close"/> or
/// <c>using</c>: the tasks still pending are cancelled and awaited (their <c>finally</c> blocks run,
/// and so do the <c>DisposeAsync</c> of <c>await foreach</c> loops they were in), then the loop closes.
/// <para>What .NET cannot do: asyncio's <c>shutdown_asyncgens</c> finds every async generator left
/// suspended, even one no task iterates; .NET keeps no registry of live async enumerators, so an
/// enumerator held outside any task and never disposed is not closed here.</para>
/// </summary>
public sealed class Runner : IDisposable
{
    private enum State { Created, Initialized, Closed }

    private readonly bool _debug;
    private readonly LoopClock? _clock;
    private State _state;
    private EventLoop? _loop;
    private EventLoop? _previous;

    /// <summary>A runner whose loop (made on first use) runs on <paramref name="clock"/> (the real
    /// monotonic clock if null), in debug mode if <paramref name="debug"/>.</summary>
    public Runner(bool debug = false, LoopClock? clock = null)
    {
        _debug = debug;
        _clock = clock;
    }

    /// <summary>The runner's loop (asyncio's <c>get_loop()</c>); <see cref="EventLoopException"/> once closed.</summary>
    public EventLoop GetLoop()
    {
        LazyInit();
        return _loop!;
    }

    /// <summary>Runs <paramref name="main"/> as a task on the runner's loop until it is done; returns its result.</summary>
    [OverloadResolutionPriority(1)] // an async lambda fits the ValueTask overload too: the Task one wins
    public T Run<T>(Func<Task<T>> main)
    {
        ArgumentNullException.ThrowIfNull(main);
        if (EventLoop.RunningOrNull is not null)
            throw new EventLoopException("Runner.run() cannot be called from a running event loop");
        LazyInit();
        return Interrupts.Run(_loop!, main, handleSigterm: false); // Ctrl+C as asyncio.Runner.run
    }

    [OverloadResolutionPriority(1)]
    public void Run(Func<Task> main)
    {
        ArgumentNullException.ThrowIfNull(main);
        Run(async () =>
        {
            await main();
            return default(ValueTuple);
        });
    }

    /// <summary>Run of a <see cref="ValueTask{TResult}"/> method (no <c>.AsTask()</c> at the call).</summary>
    public T Run<T>(Func<ValueTask<T>> main)
    {
        ArgumentNullException.ThrowIfNull(main);
        return Run(() => main().AsTask());
    }

    public void Run(Func<ValueTask> main)
    {
        ArgumentNullException.ThrowIfNull(main);
        Run(() => main().AsTask());
    }

    /// <summary>Cancels and awaits the tasks still pending, shuts the default executor down, then closes the loop. Closing twice does nothing.</summary>
    public void Close()
    {
        if (_state != State.Initialized) return;
        var loop = _loop!;
        try
        {
            Asyncio.CancelAllTasks(loop);
            loop.ShutdownDefaultExecutorOnExit(); // asyncio.Runner.close: shutdown_default_executor
        }
        finally
        {
            EventLoop.SetEventLoop(_previous);
            loop.Close();
            _loop = null;
            _state = State.Closed;
        }
    }

    public void Dispose() => Close();

    private void LazyInit()
    {
        if (_state == State.Closed) throw new EventLoopException("Runner is closed");
        if (_state == State.Initialized) return;
        var loop = _clock is null ? new EventLoop() : new EventLoop(_clock);
        loop.Debug = _debug;
        _previous = EventLoop.CurrentOrNull;
        EventLoop.SetEventLoop(loop);
        _loop = loop;
        _state = State.Initialized;
    }
}
