using System.Runtime.CompilerServices;

namespace Tulip.Reactive;

/// <summary><see cref="IAsyncEnumerable{T}"/> ⇄ <see cref="IObservable{T}"/>, both on the loop.</summary>
public static class AsyncEnumerableBridges
{
    /// <summary>The sequence as an observable: each subscription enumerates it in a loop task; disposal cancels that task. Any thread.</summary>
    [ThreadSafe]
    public static IObservable<T> ToLoopObservable<T>(this IAsyncEnumerable<T> source, EventLoop loop) =>
        LoopObservable.FromAsyncEnumerable(loop, source);

    /// <summary>
    /// The observable as an async sequence, enumerated on the running loop. Items that arrive faster than
    /// they are consumed are buffered (Rx has no back-pressure; feed an <see cref="AsyncQueue{T}"/> with
    /// <see cref="QueueObservables.PipeTo"/> for a bound). The subscription lives while the enumeration
    /// does: ending it early, cancelling <paramref name="cancellationToken"/> or cancelling the enumerating
    /// task disposes it.
    /// </summary>
    public static IAsyncEnumerable<T> ToLoopAsyncEnumerable<T>(this IObservable<T> source, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source); // at the call, not at the first MoveNextAsync
        return Enumerate(source, cancellationToken);
    }

    private static async IAsyncEnumerable<T> Enumerate<T>(IObservable<T> source, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var loop = EventLoop.GetRunningLoop();
        var buffer = new Buffer<T>(loop);
        var gate = new LoopObserver<T>(loop, buffer);
        using var subscription = source.Subscribe(gate);
        using var registration = cancellationToken.Register(static b => ((Buffer<T>)b!).CancelFromToken(), buffer);
        try
        {
            while (true)
            {
                if (buffer.Items.Count > 0)
                {
                    yield return buffer.Items.Dequeue();
                    continue;
                }

                if (buffer.Error is { } e) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e);
                if (buffer.Completed) yield break;
                cancellationToken.ThrowIfCancellationRequested();
                buffer.Waiter = loop.CreateFuture();
                await buffer.Waiter;
                buffer.Waiter = null;
            }
        }
        finally
        {
            gate.Close();
        }
    }

    private sealed class Buffer<T>(EventLoop loop) : IObserver<T>
    {
        internal readonly Queue<T> Items = new();
        internal Exception? Error;
        internal bool Completed;
        internal Future<ValueTuple>? Waiter;

        private void Wake()
        {
            if (Waiter is { Done: false } w) w.SetResult(default);
        }

        public void OnNext(T value)
        {
            Items.Enqueue(value);
            Wake();
        }

        public void OnError(Exception error)
        {
            Error = error;
            Wake();
        }

        public void OnCompleted()
        {
            Completed = true;
            Wake();
        }

        internal void CancelFromToken() =>
            loop.InvokeOnLoop(static b => { if (b.Waiter is { Done: false } w) w.Cancel("enumeration cancelled"); }, this);
    }
}
