using System.Collections.Concurrent;

namespace Tulip.NameResolution;

/// <summary>
/// The blocking resolver calls, behind a seam a test can replace (a fake, a blocked resolver).
/// Called on a resolver-pool thread, never on a loop's.
/// </summary>
internal interface IResolver
{
    List<AddrInfo> GetAddrInfo(string? host, string? service, int family, int type, int proto, int flags);

    (string Host, string Service) GetNameInfo(System.Net.IPEndPoint endPoint, int flags);
}

internal sealed class NativeResolver : IResolver
{
    public static readonly NativeResolver Instance = new();

    public List<AddrInfo> GetAddrInfo(string? host, string? service, int family, int type, int proto, int flags) =>
        LibC.GetAddrInfo(host, service, family, type, proto, flags);

    public (string Host, string Service) GetNameInfo(System.Net.IPEndPoint endPoint, int flags) => LibC.GetNameInfo(endPoint, flags);
}

/// <summary>
/// The threads lookups run on: a pool of its own (not the default executor, not .NET's thread pool, so
/// slow lookups never starve executor work or the pool's continuations), of bounded concurrency
/// (<see cref="MaxConcurrency"/> lookups at once; the rest queue in FIFO order). Threads are started on
/// demand and leave after <see cref="Linger"/> with nothing to do.
/// <para>A lookup's result comes back through the loop's one door for other threads
/// (<see cref="EventLoop.CallSoonThreadsafe{TState}(Action{TState}, TState)"/>), so the core takes it in at a
/// tick like any post. A lookup cancelled before a thread took it is skipped; one cancelled while it runs
/// finishes on its thread (getaddrinfo cannot be interrupted) and its result is dropped.</para>
/// </summary>
internal sealed class ResolverPool
{
    public static readonly ResolverPool Shared = new(maxConcurrency: 8);

    private readonly ConcurrentQueue<Work> _queue = new();
    private readonly SemaphoreSlim _signal = new(0);
    private readonly object _lock = new();
    private int _threads, _idle;
    private long _started;

    public ResolverPool(int maxConcurrency) => MaxConcurrency = maxConcurrency;

    public int MaxConcurrency { get; }

    public static readonly TimeSpan Linger = TimeSpan.FromSeconds(2);

    /// <summary>Lookups handed to the pool so far (tests: a numeric host never gets here).</summary>
    public long Started => Interlocked.Read(ref _started);

    /// <summary>Runs <paramref name="lookup"/> on a pool thread; the loop future it returns gets the result.</summary>
    public Future<T> Run<T>(EventLoop loop, Func<T> lookup)
    {
        var work = new Work<T>(loop, lookup);
        loop.BeginExternal(); // a virtual clock does not jump past a lookup in flight
        // A cancelled lookup is no longer the loop's to wait for: its count ends now (a virtual clock may
        // jump), not when the blocked getaddrinfo returns.
        work.Future.AddDoneCallback(static (f, w) => { if (f.Cancelled) w.Cancel(); }, (Work)work);
        Interlocked.Increment(ref _started);
        _queue.Enqueue(work);
        _signal.Release();
        lock (_lock)
        {
            if (Volatile.Read(ref _idle) == 0 && _threads < MaxConcurrency)
            {
                _threads++;
                new Thread(Worker) { IsBackground = true, Name = "Tulip resolver" }.Start();
            }
        }

        return work.Future;
    }

    private void Worker()
    {
        while (true)
        {
            Interlocked.Increment(ref _idle);
            bool woke = _signal.Wait(Linger);
            Interlocked.Decrement(ref _idle);
            if (!woke)
            {
                lock (_lock)
                {
                    if (_queue.IsEmpty)
                    {
                        _threads--;
                        return;
                    }
                }
            }

            if (_queue.TryDequeue(out var work)) work.Execute();
        }
    }

    private abstract class Work(EventLoop loop)
    {
        private int _cancelled, _ended;

        protected EventLoop Loop { get; } = loop;

        protected bool IsCancelled => Volatile.Read(ref _cancelled) == 1;

        public void Cancel()
        {
            Volatile.Write(ref _cancelled, 1);
            EndExternal();
        }

        /// <summary>The loop stops counting this lookup as pending work: once, whichever way it ended.</summary>
        protected void EndExternal()
        {
            if (Interlocked.Exchange(ref _ended, 1) == 0) Loop.EndExternal();
        }

        public abstract void Execute();
    }

    private sealed class Work<T>(EventLoop owner, Func<T> lookup) : Work(owner)
    {
        public readonly Future<T> Future = new(owner);
        private T? _result;
        private Exception? _error;

        public override void Execute()
        {
            if (!IsCancelled)
            {
                try
                {
                    _result = lookup();
                }
                catch (Exception e)
                {
                    _error = e;
                }
            }

            try
            {
                Loop.CallSoonThreadsafe(static w => w.Complete(), this);
            }
            catch (EventLoopException)
            {
                EndExternal(); // the loop closed meanwhile: nobody waits for this any more
            }
        }

        private void Complete()
        {
            EndExternal();
            if (Future.Done) return; // cancelled meanwhile: the result is dropped
            if (_error is not null) Future.SetException(_error);
            else Future.SetResult(_result!);
        }
    }
}
