namespace Tulip.Reactive;

/// <summary>How an async-aware operator runs its function when items arrive while earlier calls still run.</summary>
public enum AsyncConcurrencyMode
{
    /// <summary>One call at a time, in arrival order; items that arrive meanwhile wait (unbounded).</summary>
    Sequential,

    /// <summary>One call at a time; items arriving while it runs are dropped.</summary>
    DropWhileBusy,

    /// <summary>A new item cancels the running call and replaces it; only the latest call's result is emitted.</summary>
    SwitchToLatest,

    /// <summary>Up to N calls at once; results are emitted as they complete; further items wait.</summary>
    Parallel,
}

/// <summary>An explicit concurrency policy for <see cref="AsyncOperators"/>.</summary>
public readonly record struct AsyncConcurrency
{
    private AsyncConcurrency(AsyncConcurrencyMode mode, int maxParallel)
    {
        Mode = mode;
        MaxParallel = maxParallel;
    }

    public AsyncConcurrencyMode Mode { get; }

    /// <summary>How many calls may run at once (1 except for <see cref="AsyncConcurrencyMode.Parallel"/>).</summary>
    public int MaxParallel { get; }

    public static AsyncConcurrency Sequential => new(AsyncConcurrencyMode.Sequential, 1);

    public static AsyncConcurrency DropWhileBusy => new(AsyncConcurrencyMode.DropWhileBusy, 1);

    public static AsyncConcurrency SwitchToLatest => new(AsyncConcurrencyMode.SwitchToLatest, 1);

    public static AsyncConcurrency Parallel(int maxParallel)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxParallel);
        return new(AsyncConcurrencyMode.Parallel, maxParallel);
    }

    public override string ToString() => Mode == AsyncConcurrencyMode.Parallel ? $"Parallel({MaxParallel})" : Mode.ToString();
}
