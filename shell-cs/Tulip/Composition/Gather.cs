using System.Runtime.CompilerServices;

namespace Tulip;

/// <summary>
/// The future <see cref="Asyncio.Gather{T}(Future{T}[])"/> returns (asyncio's <c>_GatheringFuture</c>):
/// cancelling it cancels the children that are not done yet, and it is not marked cancelled itself
/// until they have all finished (CPython 3.11 tasks.py, <c>gather</c>).
/// </summary>
public sealed class GatheringFuture<TResult> : Future<TResult>
{
    private readonly Future[] _children;
    private readonly Func<Future[], TResult> _collect;
    private readonly bool _returnExceptions;
    private int _finished;
    private bool _cancelRequested;
    private CancellationToken _token;

    internal GatheringFuture(EventLoop loop, Future[] children, bool returnExceptions, Func<Future[], TResult> collect)
        : base(loop)
    {
        _children = children;
        _returnExceptions = returnExceptions;
        _collect = collect;
    }

    /// <summary>Cancels the children that are not done; true if any was. The gather ends (as
    /// cancelled) once every child has finished.</summary>
    private protected override bool CancelOnLoop(string? message)
    {
        if (Done) return false;
        bool any = false;
        foreach (var child in _children)
        {
            if (child.Cancel(message)) any = true;
        }

        if (any)
        {
            _cancelRequested = true;
            _token = TokenLink.TokenOf(this);
        }

        return any;
    }

    // asyncio's _done_callback, one call per distinct child.
    internal void ChildDone(Future child, int distinct)
    {
        _finished++;
        if (Done)
        {
            // Mark the child's exception as retrieved: the gather already reported its outcome.
            if (!child.Cancelled) child.Exception();
            return;
        }

        if (!_returnExceptions)
        {
            if (child.Cancelled)
            {
                SetExceptionCore(new CancelledException(child.CancelMessageOrNull(), _cancelRequested ? _token : TokenLink.TokenOf(child)));
                return;
            }

            if (child.Exception() is { } e)
            {
                SetExceptionCore(e);
                return;
            }
        }

        if (_finished != distinct) return;
        if (_cancelRequested)
        {
            // 3.11: the gather was cancelled and every child finished; raise CancelledError from the
            // last child (a child that swallowed the cancellation still counts as cancelled here).
            // A token that cancelled the gather travels in the error (issue 14.1).
            SetExceptionCore(new CancelledException(child.Cancelled ? child.CancelMessageOrNull() : null, _token));
            return;
        }

        SetResultCore(_collect(_children));
    }
}

public static partial class Asyncio
{
    /// <summary>
    /// asyncio.gather: a future of the children's results in argument order. The first failure (or a
    /// child's cancellation, as a <see cref="CancelledException"/>) fails the gather at once and the
    /// other children go on running. Cancelling the gather cancels the children. No children: a future
    /// already done with an empty array.
    /// </summary>
    public static GatheringFuture<T[]> Gather<T>(params Future<T>[] children) => Gather((IEnumerable<Future<T>>)children);

    /// <inheritdoc cref="Gather{T}(Future{T}[])"/>
    public static GatheringFuture<T[]> Gather<T>(IEnumerable<Future<T>> children)
    {
        ArgumentNullException.ThrowIfNull(children);
        var array = children.ToArray();
        return Gathering<T[]>(array, false, fs =>
        {
            var results = new T[fs.Length];
            for (int i = 0; i < fs.Length; i++) results[i] = ((Future<T>)fs[i]).Result();
            return results;
        });
    }

    /// <summary>
    /// Gather whose await <paramref name="cancellationToken"/> cancels: when it fires (any thread,
    /// marshalled onto the loop) the gather is cancelled, which cancels the children not done yet
    /// (asyncio: cancelling the gather future cancels its children), and awaiting it raises a
    /// <see cref="CancelledException"/> carrying the token once they have finished. The registration is
    /// disposed when the gather is done.
    /// </summary>
    public static GatheringFuture<T[]> Gather<T>(IEnumerable<Future<T>> children, CancellationToken cancellationToken)
    {
        var gather = Gather(children);
        TokenLink.CancelOnToken(gather, cancellationToken);
        return gather;
    }

    /// <summary>Gather of coroutines: each becomes a task on the running loop, in argument order.</summary>
    [OverloadResolutionPriority(1)] // an async lambda fits the ValueTask overload too: the Task one wins
    public static GatheringFuture<T[]> Gather<T>(params Func<Task<T>>[] coroutines)
    {
        ArgumentNullException.ThrowIfNull(coroutines);
        var loop = EventLoop.GetRunningLoop();
        return Gather(coroutines.Select(c => (Future<T>)loop.CreateTask(c)).ToArray());
    }

    /// <summary>Gather of <see cref="ValueTask{TResult}"/> methods: each becomes a task on the running loop.</summary>
    public static GatheringFuture<T[]> Gather<T>(params Func<ValueTask<T>>[] coroutines)
    {
        ArgumentNullException.ThrowIfNull(coroutines);
        var loop = EventLoop.GetRunningLoop();
        return Gather(coroutines.Select(c => (Future<T>)loop.CreateTask(c)).ToArray());
    }

    /// <summary>Gather of coroutines that <paramref name="cancellationToken"/> cancels (see
    /// <see cref="Gather{T}(IEnumerable{Future{T}}, CancellationToken)"/>).</summary>
    public static GatheringFuture<T[]> Gather<T>(IEnumerable<Func<Task<T>>> coroutines, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(coroutines);
        var loop = EventLoop.GetRunningLoop();
        return Gather(coroutines.Select(c => (Future<T>)loop.CreateTask(c)).ToArray(), cancellationToken);
    }

    /// <summary>Gather of futures of any type whose await <paramref name="cancellationToken"/> cancels.</summary>
    public static GatheringFuture<object?[]> Gather(IEnumerable<Future> children, bool returnExceptions, CancellationToken cancellationToken)
    {
        var gather = Gather(children, returnExceptions);
        TokenLink.CancelOnToken(gather, cancellationToken);
        return gather;
    }

    /// <summary>
    /// asyncio.gather of futures of any result type: results (boxed) in argument order. With
    /// <paramref name="returnExceptions"/>, a child's exception (a cancelled child's
    /// <see cref="CancelledException"/>) takes its place in the results instead of failing the gather.
    /// </summary>
    public static GatheringFuture<object?[]> Gather(IEnumerable<Future> children, bool returnExceptions = false)
    {
        ArgumentNullException.ThrowIfNull(children);
        return Gathering<object?[]>(children.ToArray(), returnExceptions, fs =>
        {
            var results = new object?[fs.Length];
            for (int i = 0; i < fs.Length; i++)
            {
                var f = fs[i];
                // 3.11 reads the future's _cancel_message, which a task that ended cancelled never sets
                // (its message travels in the exception instead): a task gives CancelledError('').
                if (f.Cancelled) results[i] = new CancelledException(f is ILoopTask ? "" : f.CancelMessageOrNull() ?? "");
                else results[i] = f.Exception() ?? f.BoxedResult();
            }

            return results;
        });
    }

    private static GatheringFuture<TR> Gathering<TR>(Future[] children, bool returnExceptions, Func<Future[], TR> collect)
    {
        foreach (var c in children) ArgumentNullException.ThrowIfNull(c, nameof(children));
        if (children.Length == 0)
        {
            // asyncio: gather() of nothing is a future already done with [] (on the current loop).
            var empty = new GatheringFuture<TR>(EventLoop.GetEventLoop(), children, returnExceptions, collect);
            empty.SetResult(collect(children));
            return empty;
        }

        var loop = children[0].Loop;
        foreach (var c in children)
        {
            if (!ReferenceEquals(c.Loop, loop)) throw new ArgumentException(DifferentLoop, nameof(children));
        }

        var outer = new GatheringFuture<TR>(loop, children, returnExceptions, collect);
        // The same future twice counts once (asyncio's arg_to_fut), but appears twice in the results.
        var distinct = new HashSet<Future>(ReferenceEqualityComparer.Instance);
        foreach (var c in children) distinct.Add(c);
        int n = distinct.Count;
        foreach (var c in children)
        {
            if (!distinct.Remove(c)) continue;
            c.AddDoneCallback(static (f, s) => s.outer.ChildDone(f, s.n), (outer, n));
        }

        return outer;
    }
}
