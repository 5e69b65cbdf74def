namespace Tulip.Reactive;

/// <summary>Unix signals as an observable (the Rx face of <see cref="EventLoop.AddSignalHandler(int, Action)"/>).</summary>
public static class SignalObservables
{
    /// <summary>
    /// Each arrival of one of <paramref name="signals"/> (its number), observed on the loop's thread. A
    /// subscription installs the loop's handlers (one tick after subscribing, by the subscription's loop
    /// task) and disposing it removes them; a refused signal (SIGKILL, an invalid number) is the
    /// observer's error. Any thread.
    /// </summary>
    [ThreadSafe]
    public static IObservable<int> ObserveSignals(this EventLoop loop, params int[] signals)
    {
        ArgumentNullException.ThrowIfNull(loop);
        ArgumentNullException.ThrowIfNull(signals);
        var copy = (int[])signals.Clone();
        return LoopObservable.Create<int>(loop, async (observer, ct) =>
        {
            await foreach (var s in loop.ReceiveSignalsAsync(copy, ct)) observer.OnNext(s);
        });
    }
}
