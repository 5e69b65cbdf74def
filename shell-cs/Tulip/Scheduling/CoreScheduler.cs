using Tulip.Core;
using Tulip.Core.Interop;

namespace Tulip.Scheduling;

/// <summary>
/// The pure core behind <see cref="ITickScheduler"/>: the state is an immutable <c>LoopState</c> value
/// replaced at every input. call_soon / call_at are buffered and handed over in one input per batch
/// (the core keeps the arrays), so a tick costs a few core steps, not one per callback.
/// </summary>
internal sealed class CoreScheduler(long now) : ITickScheduler
{
    private LoopState _core = LoopCore.Create(now);
    private long[] _soon = new long[64];
    private int _soonCount;
    private (long, long)[] _timers = new (long, long)[16];
    private int _timerCount;
    private long[] _batch = [];

    /// <summary>The core's state (for tests and traces).</summary>
    public LoopState State
    {
        get
        {
            Flush();
            return _core;
        }
    }

    public void CallSoon(long id)
    {
        if (_soonCount == _soon.Length) Array.Resize(ref _soon, _soon.Length * 2);
        _soon[_soonCount++] = id;
    }

    public void CallAt(long id, long deadline)
    {
        if (_timerCount == _timers.Length) Array.Resize(ref _timers, _timers.Length * 2);
        _timers[_timerCount++] = (id, deadline);
    }

    private void Flush()
    {
        if (_soonCount > 0)
        {
            var ids = _soon.AsSpan(0, _soonCount).ToArray();
            _soonCount = 0;
            _core = LoopCore.CallSoonMany(_core, ids);
        }

        if (_timerCount > 0)
        {
            var entries = _timers.AsSpan(0, _timerCount).ToArray();
            _timerCount = 0;
            _core = LoopCore.CallAtMany(_core, entries);
        }
    }

    public void CancelSoon(long id)
    {
        Flush();
        _core = LoopCore.CancelSoon(_core, id);
    }

    public void CancelTimer(long id)
    {
        Flush();
        _core = LoopCore.CancelTimer(_core, id);
    }

    public void Watch(int token, long? read, long? write)
    {
        Flush();
        _core = LoopCore.Watch(_core, token, read, write);
    }

    public void Unwatch(int token)
    {
        Flush();
        _core = LoopCore.Unwatch(_core, token);
    }

    public void Start()
    {
        Flush();
        _core = LoopCore.Start(_core);
    }

    public void Stop()
    {
        Flush();
        _core = LoopCore.Stop(_core);
    }

    public void Close()
    {
        _soonCount = 0;
        _timerCount = 0;
        _core = LoopCore.Close(_core);
    }

    public PollTimeout BeginTick(long now, ReadOnlySpan<long> posted)
    {
        Flush();
        _core = LoopCore.BeginTick(_core, now, posted.ToArray(), out PollTimeout timeout);
        return timeout;
    }

    public ReadOnlySpan<long> Polled(long now, ReadOnlySpan<long> posted, ReadOnlySpan<IoEvent> io)
    {
        Flush();
        _core = LoopCore.Polled(_core, now, posted.ToArray(), io.ToArray(), out _batch);
        return _batch;
    }

    public bool EndTick()
    {
        Flush();
        _core = LoopCore.EndTick(_core, out bool stopped);
        _batch = [];
        return stopped;
    }

    public void PollFailed()
    {
        Flush();
        _core = LoopCore.PollFailed(_core);
    }

    public bool IsClosed => LoopCore.IsClosed(_core);
    public bool IsRunning => LoopCore.IsRunning(_core);
    public int ReadyCount => LoopCore.ReadyCount(_core) + _soonCount;
    public int TimerCount => LoopCore.TimerCount(_core) + _timerCount;
    public int WatchedCount => LoopCore.WatchedCount(_core);

    public long NextDeadline()
    {
        Flush();
        return LoopCore.TryNextDeadline(_core, out long deadline) ? deadline : long.MinValue;
    }
}
