using System.Collections.Concurrent;

namespace Tulip.Reactive;

/// <summary>
/// Wraps an observer so that it is called on the loop thread only, in the order of the notifications,
/// and never after <see cref="Close"/> (the subscription was disposed) or after a terminal notification.
/// A notification from another thread (or one arriving while earlier ones wait to be delivered) is
/// queued and delivered by a loop callback.
/// </summary>
internal sealed class LoopObserver<T> : IObserver<T>
{
    private readonly EventLoop _loop;
    private readonly IObserver<T> _target;
    private readonly ConcurrentQueue<(byte Kind, T? Value, Exception? Error)> _posted = new();
    private int _postedCount;
    private volatile bool _closed;
    private const byte Next = 0, Error = 1, Completed = 2;

    internal LoopObserver(EventLoop loop, IObserver<T> target)
    {
        _loop = loop;
        _target = target;
    }

    /// <summary>Nothing more reaches the target (safe from any thread).</summary>
    internal void Close() => _closed = true;

    internal bool IsClosed => _closed;

    public void OnNext(T value) => Deliver(Next, value, null);

    public void OnError(Exception error) => Deliver(Error, default, error);

    public void OnCompleted() => Deliver(Completed, default, null);

    private void Deliver(byte kind, T? value, Exception? error)
    {
        if (_closed) return;
        if (Volatile.Read(ref _postedCount) == 0 && _loop.CheckAccess())
        {
            Invoke(kind, value, error);
            return;
        }

        _posted.Enqueue((kind, value, error));
        if (Interlocked.Increment(ref _postedCount) == 1)
        {
            if (_loop.CheckAccess()) _loop.CallSoon(static self => self.Drain(), this);
            else _loop.CallSoonThreadsafe(static self => self.Drain(), this);
        }
    }

    private void Drain()
    {
        while (_posted.TryDequeue(out var n))
        {
            Invoke(n.Kind, n.Value, n.Error);
            if (Interlocked.Decrement(ref _postedCount) == 0) return;
        }
    }

    private void Invoke(byte kind, T? value, Exception? error)
    {
        if (_closed) return;
        switch (kind)
        {
            case Next:
                _target.OnNext(value!);
                break;
            case Error:
                _closed = true;
                _target.OnError(error!);
                break;
            default:
                _closed = true;
                _target.OnCompleted();
                break;
        }
    }
}
