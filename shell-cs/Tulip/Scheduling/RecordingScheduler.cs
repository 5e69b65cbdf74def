using Tulip.Core;
using Tulip.Core.Interop;

namespace Tulip.Scheduling;

/// <summary>
/// A scheduler that records what passes through it: every input the shell gives the core (as the
/// core's own <see cref="Input"/> values, arrivals included) and what was answered. Because every
/// order is the core's, feeding the recorded inputs to <c>Loop.step</c> from the same start
/// reproduces the run's every batch: the record of a run is a test case of the core, and the seed of
/// replay (DESIGN.md: arrivals have one door). Loop thread only, as the scheduler it wraps.
/// </summary>
internal sealed class RecordingScheduler(ITickScheduler inner, long start) : ITickScheduler
{
    private readonly List<(Input Input, Effect[]? Effects, Rejection? Rejected)> _steps = new();

    /// <summary>The clock reading the loop started at (the core's initial <c>Now</c>).</summary>
    public long StartedAt { get; } = start;

    /// <summary>Every input in order, with the effects answered (or the rejection).</summary>
    public IReadOnlyList<(Input Input, Effect[]? Effects, Rejection? Rejected)> Steps => _steps;

    private void Do(Input input, Action step) => Do<bool>(input, () =>
    {
        step();
        return true;
    }, _ => []);

    private T Do<T>(Input input, Func<T> step, Func<T, Effect[]> effects)
    {
        try
        {
            var answer = step();
            _steps.Add((input, effects(answer), null));
            return answer;
        }
        catch (RejectedInputException e)
        {
            _steps.Add((input, null, e.Rejection));
            throw;
        }
    }

    public void CallSoon(long id) => Do(Input.NewCallSoon(id), () => inner.CallSoon(id));
    public void CallAt(long id, long deadline) => Do(Input.NewCallAt(id, deadline), () => inner.CallAt(id, deadline));
    public void CancelSoon(long id) => Do(Input.NewCancelSoon(id), () => inner.CancelSoon(id));
    public void CancelTimer(long id) => Do(Input.NewCancelTimer(id), () => inner.CancelTimer(id));

    public void Watch(int token, long? read, long? write) =>
        Do(Input.NewWatch(token, Opt(read), Opt(write)), () => inner.Watch(token, read, write));

    private static Microsoft.FSharp.Core.FSharpValueOption<long> Opt(long? v) =>
        v is { } x ? Microsoft.FSharp.Core.FSharpValueOption<long>.NewValueSome(x) : Microsoft.FSharp.Core.FSharpValueOption<long>.ValueNone;

    public void Unwatch(int token) => Do(Input.NewUnwatch(token), () => inner.Unwatch(token));
    public void Start() => Do(Input.Start, inner.Start);
    public void Stop() => Do(Input.Stop, inner.Stop);

    public void Close()
    {
        bool was = inner.IsClosed;
        Do<bool>(Input.Close, () =>
        {
            inner.Close();
            return was;
        }, w => w ? [] : [Effect.Closed]);
    }

    public PollTimeout BeginTick(long now, ReadOnlySpan<long> posted)
    {
        var p = posted.ToArray();
        return Do(Input.NewBeginTick(now, p), () => inner.BeginTick(now, p), t => [Effect.NewPoll(t)]);
    }

    public ReadOnlySpan<long> Polled(long now, ReadOnlySpan<long> posted, ReadOnlySpan<IoEvent> io)
    {
        var p = posted.ToArray();
        var e = io.ToArray();
        return Do(Input.NewPolled(now, p, e), () => inner.Polled(now, p, e).ToArray(), b => [Effect.NewRun(b)]);
    }

    public bool EndTick() => Do(Input.EndTick, inner.EndTick, stopped => stopped ? [Effect.Stopped] : []);

    public void PollFailed() => Do<bool>(Input.PollFailed, () =>
    {
        inner.PollFailed();
        return true;
    }, _ => [Effect.Stopped]);

    public bool IsClosed => inner.IsClosed;
    public bool IsRunning => inner.IsRunning;
    public int ReadyCount => inner.ReadyCount;
    public int TimerCount => inner.TimerCount;
    public int WatchedCount => inner.WatchedCount;
    public long NextDeadline() => inner.NextDeadline();
}
