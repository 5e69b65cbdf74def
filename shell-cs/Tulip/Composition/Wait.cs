namespace Tulip;

/// <summary>When <see cref="Asyncio.Wait{TF}(IEnumerable{TF}, double?, ReturnWhen)"/> returns
/// (asyncio's FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED).</summary>
public enum ReturnWhen
{
    AllCompleted,
    FirstCompleted,
    FirstException,
}

public static partial class Asyncio
{
    /// <summary>
    /// asyncio.wait: waits until the futures are all done (or the first is, or the first fails, as
    /// <paramref name="returnWhen"/> says) or the timeout passes, and returns the done and the pending
    /// ones. A timeout raises nothing and cancels nothing: what is not done is in Pending. An empty
    /// collection is an <see cref="ArgumentException"/> ("Set of Tasks/Futures is empty.").
    /// </summary>
    public static Task<(HashSet<TF> Done, HashSet<TF> Pending)> Wait<TF>(
        IEnumerable<TF> futures, double? timeout = null, ReturnWhen returnWhen = ReturnWhen.AllCompleted)
        where TF : Future => Wait(futures, timeout, returnWhen, CancellationToken.None);

    /// <summary>As <see cref="Wait{TF}(IEnumerable{TF}, double?, ReturnWhen)"/> with the timeout as a
    /// <see cref="TimeSpan"/> (<see cref="System.Threading.Timeout.InfiniteTimeSpan"/>: no limit).</summary>
    public static Task<(HashSet<TF> Done, HashSet<TF> Pending)> Wait<TF>(
        IEnumerable<TF> futures, TimeSpan timeout, ReturnWhen returnWhen = ReturnWhen.AllCompleted,
        CancellationToken cancellationToken = default)
        where TF : Future => Wait(futures, Seconds(timeout), returnWhen, cancellationToken);

    /// <summary>Wait with no timeout whose await <paramref name="cancellationToken"/> cancels.</summary>
    public static Task<(HashSet<TF> Done, HashSet<TF> Pending)> Wait<TF>(IEnumerable<TF> futures, CancellationToken cancellationToken)
        where TF : Future => Wait(futures, null, ReturnWhen.AllCompleted, cancellationToken);

    /// <summary>
    /// Wait whose await <paramref name="cancellationToken"/> cancels: when it fires (any thread,
    /// marshalled onto the loop) the wait raises a <see cref="CancelledException"/> carrying the token,
    /// and the futures are left as they are (asyncio: cancelling wait() does not cancel them). The
    /// registration is disposed when the wait ends.
    /// </summary>
    public static async Task<(HashSet<TF> Done, HashSet<TF> Pending)> Wait<TF>(
        IEnumerable<TF> futures, double? timeout, ReturnWhen returnWhen, CancellationToken cancellationToken)
        where TF : Future
    {
        ArgumentNullException.ThrowIfNull(futures);
        var fs = new HashSet<TF>(futures, ReferenceEqualityComparer.Instance);
        if (fs.Count == 0) throw new ArgumentException("Set of Tasks/Futures is empty.", nameof(futures));
        if (returnWhen is not (ReturnWhen.AllCompleted or ReturnWhen.FirstCompleted or ReturnWhen.FirstException))
            throw new ArgumentException($"Invalid return_when value: {returnWhen}", nameof(returnWhen));
        var loop = EventLoop.GetRunningLoop();
        var waiter = loop.CreateFuture();
        TimerHandle? timeoutHandle = null;
        if (timeout is { } t) timeoutHandle = loop.CallLater(t, static w => ReleaseWaiter(w), waiter);
        int counter = fs.Count;
        Action<Future> onCompletion = f =>
        {
            counter--;
            if (counter <= 0 || returnWhen == ReturnWhen.FirstCompleted ||
                (returnWhen == ReturnWhen.FirstException && !f.Cancelled && f.Exception() is not null))
            {
                timeoutHandle?.Cancel();
                ReleaseWaiter(waiter);
            }
        };
        foreach (var f in fs) f.AddDoneCallback(onCompletion);
        var link = TokenLink.Register(waiter, cancellationToken);
        try
        {
            await waiter;
        }
        finally
        {
            link?.Dispose();
            timeoutHandle?.Cancel();
            foreach (var f in fs) f.RemoveDoneCallback(onCompletion);
        }

        var done = new HashSet<TF>(ReferenceEqualityComparer.Instance);
        var pending = new HashSet<TF>(ReferenceEqualityComparer.Instance);
        foreach (var f in fs) (f.Done ? done : pending).Add(f);
        return (done, pending);
    }

    /// <summary>A <see cref="TimeSpan"/> timeout in asyncio's seconds; <see cref="System.Threading.Timeout.InfiniteTimeSpan"/> is none.</summary>
    internal static double? Seconds(TimeSpan timeout) =>
        timeout == System.Threading.Timeout.InfiniteTimeSpan ? null : timeout.TotalSeconds;

    private static void ReleaseWaiter(Future<ValueTuple> waiter)
    {
        if (!waiter.Done) waiter.SetResult(default);
    }
}
