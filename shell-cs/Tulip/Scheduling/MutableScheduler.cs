using System.Runtime.CompilerServices;
using Tulip.Core;
using Tulip.Core.Interop;

namespace Tulip.Scheduling;

/// <summary>
/// The mutable twin of the pure core (<c>Tulip.Core.Loop.step</c>): the same inputs, the same answers,
/// the same rejections, on arrays and a binary heap instead of persistent structures. Each method below
/// names the core function it mirrors; the property suite (SchedulerConformance) feeds generated input
/// sequences to both and requires identical outputs at every step.
/// </summary>
internal sealed class MutableScheduler(long now) : ITickScheduler
{
    private enum Phase : byte { Idle, BetweenTicks, Polling, RunningBatch }

    private struct Entry
    {
        public long Deadline, Seq, Id;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly bool Before(in Entry o) => Deadline < o.Deadline || (Deadline == o.Deadline && Seq < o.Seq);
    }

    private long _now = now;
    private Phase _phase;
    private bool _stopping, _closed;

    private long[] _ready = new long[256];
    private int _readyCount;
    private long[] _batch = new long[256];
    private int _batchCount;

    private Entry[] _heap = new Entry[64];
    private int _heapCount;
    private int _timerCancelled;
    private long _nextSeq;

    // LoopState.Cancelled: handles cancelled while queued, skipped and then forgotten.
    private readonly HashSet<long> _cancelled = new(IdComparer.Instance);

    // LoopState.Watched, by token: the handles a source's readiness admits, and which of them it has
    // (bit 1: read, bit 2: write). _admitted stamps (per token and interest) the tick that admitted
    // them last, so a handle joins a batch at most once.
    private long[] _watchRead = new long[64], _watchWrite = new long[64];
    private byte[] _watchHas = new byte[64];
    private int[] _readAdmitted = new int[64], _writeAdmitted = new int[64];
    private int _tickStamp;
    private int _watchedCount;

    // The timers moved into the running batch (the model looks them up in the batch itself).
    private readonly HashSet<long> _firedTimers = new(IdComparer.Instance);

    /// <summary>
    /// Handle ids are (stamp &lt;&lt; 32 | slot) with stamp and slot rising together, so long's own hash
    /// (low word XOR high word) collapses them onto a handful of buckets: mix the bits instead.
    /// </summary>
    private sealed class IdComparer : IEqualityComparer<long>
    {
        public static readonly IdComparer Instance = new();
        public bool Equals(long x, long y) => x == y;
        public int GetHashCode(long id) => (int)((ulong)(id * -7046029254386353131L) >> 32);
    }

    private static RejectedInputException Reject(Rejection r) => new(r);

    // Loop.step CallSoon
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void CallSoon(long id)
    {
        if (_closed) throw Reject(Rejection.LoopClosed);
        if (_readyCount == _ready.Length) Array.Resize(ref _ready, _ready.Length * 2);
        _ready[_readyCount++] = id;
    }

    // Loop.step CallAt (enqueueTimer)
    public void CallAt(long id, long deadline)
    {
        if (_closed) throw Reject(Rejection.LoopClosed);
        if (_heapCount == _heap.Length) Array.Resize(ref _heap, _heap.Length * 2);
        Push(new Entry { Deadline = deadline, Seq = _nextSeq++, Id = id });
    }

    private void PopHead()
    {
        var last = _heap[--_heapCount];
        _heap[_heapCount] = default;
        if (_heapCount == 0) return;
        int i = 0;
        while (true)
        {
            int child = 2 * i + 1;
            if (child >= _heapCount) break;
            if (child + 1 < _heapCount && _heap[child + 1].Before(_heap[child])) child++;
            if (!_heap[child].Before(last)) break;
            _heap[i] = _heap[child];
            i = child;
        }

        _heap[i] = last;
    }

    // Loop.step CancelSoon / CancelTimer
    public void CancelSoon(long id)
    {
        if (_closed) return;
        if (!_cancelled.Add(id)) throw Reject(Rejection.NewNotPending(id));
    }

    public void CancelTimer(long id)
    {
        if (_closed) return;
        if (!_cancelled.Add(id)) throw Reject(Rejection.NewNotPending(id));
        // Due already (moved into the running batch): skipped like a ready handle, not counted.
        if (_phase == Phase.RunningBatch && _firedTimers.Contains(id)) return;
        _timerCancelled++;
    }

    // Loop.step Watch / Unwatch
    public void Watch(int token, long? read, long? write)
    {
        if (_closed) throw Reject(Rejection.LoopClosed);
        if (read is null && write is null)
        {
            Unwatch(token);
            return;
        }

        ArgumentOutOfRangeException.ThrowIfNegative(token);
        if (token >= _watchHas.Length)
        {
            int size = Math.Max(token + 1, _watchHas.Length * 2);
            Array.Resize(ref _watchRead, size);
            Array.Resize(ref _watchWrite, size);
            Array.Resize(ref _watchHas, size);
            Array.Resize(ref _readAdmitted, size);
            Array.Resize(ref _writeAdmitted, size);
        }

        if (_watchHas[token] == 0) _watchedCount++;
        _watchRead[token] = read.GetValueOrDefault();
        _watchWrite[token] = write.GetValueOrDefault();
        _watchHas[token] = (byte)((read.HasValue ? 1 : 0) | (write.HasValue ? 2 : 0));
    }

    public void Unwatch(int token)
    {
        if ((uint)token >= (uint)_watchHas.Length || _watchHas[token] == 0) return;
        _watchHas[token] = 0;
        _watchedCount--;
    }

    public void Start()
    {
        if (_closed) throw Reject(Rejection.LoopClosed);
        if (_phase != Phase.Idle) throw Reject(Rejection.AlreadyRunning);
        _phase = Phase.BetweenTicks;
    }

    public void Stop() => _stopping = true;

    public void Close()
    {
        if (_phase != Phase.Idle) throw Reject(Rejection.CloseWhileRunning);
        if (_closed) return;
        _closed = true;
        _readyCount = 0;
        _batchCount = 0;
        Array.Clear(_heap, 0, _heapCount);
        _heapCount = 0;
        _timerCancelled = 0;
        _cancelled.Clear();
        _stopping = false;
        Array.Clear(_watchHas);
        _watchedCount = 0;
    }

    private void CheckTime(long now)
    {
        if (now < _now) throw Reject(Rejection.NewTimeWentBackwards(_now, now));
    }

    // Loop.step BeginTick: the posts join the ready queue, dropCancelledTimers, then LoopState.pollTimeout.
    public PollTimeout BeginTick(long now, ReadOnlySpan<long> posted)
    {
        if (_phase != Phase.BetweenTicks) throw Reject(Rejection.NewOutOfPhase("BetweenTicks"));
        CheckTime(now);
        _now = now;
        _phase = Phase.Polling;
        Append(posted);
        DropCancelledTimers();
        if (_readyCount > 0 || _stopping) return PollTimeout.Of(0);
        if (_heapCount == 0) return _watchedCount > 0 ? PollTimeout.UntilIo : PollTimeout.UntilPost;
        long deadline = _heap[0].Deadline;
        if (deadline <= _now) return PollTimeout.Of(0);
        long gap = deadline - _now;
        return PollTimeout.Of(gap < 0 ? Time.MaxPollTimeout : Math.Min(gap, Time.MaxPollTimeout));
    }

    private void Append(ReadOnlySpan<long> ids)
    {
        if (ids.IsEmpty) return;
        if (_readyCount + ids.Length > _ready.Length) Array.Resize(ref _ready, Math.Max(_ready.Length * 2, _readyCount + ids.Length));
        ids.CopyTo(_ready.AsSpan(_readyCount));
        _readyCount += ids.Length;
    }

    // Loop.admitIo: for each event in order, the reader then the writer, each at most once per tick.
    private void AdmitIo(ReadOnlySpan<IoEvent> io)
    {
        if (io.IsEmpty || _watchedCount == 0) return;
        int stamp = ++_tickStamp;
        if (_readyCount + 2 * io.Length > _ready.Length) Array.Resize(ref _ready, Math.Max(_ready.Length * 2, _readyCount + 2 * io.Length));
        foreach (var e in io)
        {
            int t = e.Token;
            if ((uint)t >= (uint)_watchHas.Length) continue;
            int has = _watchHas[t];
            if (has == 0) continue;
            if ((e.Readiness & Readiness.Readable) != 0 && (has & 1) != 0 && _readAdmitted[t] != stamp)
            {
                _readAdmitted[t] = stamp;
                _ready[_readyCount++] = _watchRead[t];
            }

            if ((e.Readiness & Readiness.Writable) != 0 && (has & 2) != 0 && _writeAdmitted[t] != stamp)
            {
                _writeAdmitted[t] = stamp;
                _ready[_readyCount++] = _watchWrite[t];
            }
        }
    }

    // Loop.dropCancelledTimers: compact by CPython's 100 / 50% rule, else drop cancelled heads.
    private void DropCancelledTimers()
    {
        if (_timerCancelled == 0) return;
        if (_heapCount > TimerQueueModule.MinCompactSize && _timerCancelled * 2 > _heapCount)
        {
            var live = new List<Entry>(_heapCount - _timerCancelled);
            for (int i = 0; i < _heapCount; i++)
            {
                if (_cancelled.Remove(_heap[i].Id)) continue;
                live.Add(_heap[i]);
            }

            Array.Clear(_heap, 0, _heapCount);
            _heapCount = 0;
            _timerCancelled = 0;
            foreach (var e in live) Push(e);
            return;
        }

        while (_heapCount > 0 && _cancelled.Remove(_heap[0].Id))
        {
            PopHead();
            _timerCancelled--;
        }
    }

    /// <summary>Sifts a new entry up from the end of the heap (room is the caller's).</summary>
    private void Push(Entry e)
    {
        int i = _heapCount++;
        while (i > 0)
        {
            int parent = (i - 1) >> 1;
            if (!e.Before(_heap[parent])) break;
            _heap[i] = _heap[parent];
            i = parent;
        }

        _heap[i] = e;
    }

    // Loop.step Polled: the batch rule (posts, then admitIo, then moveDueTimers), drain the ready
    // queue, skip (and forget) cancelled ids.
    public ReadOnlySpan<long> Polled(long now, ReadOnlySpan<long> posted, ReadOnlySpan<IoEvent> io)
    {
        if (_phase != Phase.Polling) throw Reject(Rejection.NewOutOfPhase("Polling"));
        CheckTime(now);
        _now = now;
        Append(posted);
        AdmitIo(io);
        while (_heapCount > 0 && _heap[0].Deadline <= now)
        {
            long id = _heap[0].Id;
            PopHead();
            if (_timerCancelled > 0 && _cancelled.Remove(id))
            {
                _timerCancelled--;
                continue;
            }

            if (_readyCount == _ready.Length) Array.Resize(ref _ready, _ready.Length * 2);
            _ready[_readyCount++] = id;
            _firedTimers.Add(id);
        }

        (_batch, _ready) = (_ready, _batch);
        _batchCount = _readyCount;
        _readyCount = 0;
        if (_cancelled.Count > 0)
        {
            int kept = 0;
            for (int i = 0; i < _batchCount; i++)
            {
                long id = _batch[i];
                if (_cancelled.Remove(id)) continue;
                _batch[kept++] = id;
            }

            _batchCount = kept;
        }

        _phase = Phase.RunningBatch;
        return new ReadOnlySpan<long>(_batch, 0, _batchCount);
    }

    // Loop.step EndTick
    public bool EndTick()
    {
        if (_phase != Phase.RunningBatch) throw Reject(Rejection.NewOutOfPhase("RunningBatch"));
        if (_cancelled.Count > 0)
        {
            for (int i = 0; i < _batchCount; i++) _cancelled.Remove(_batch[i]);
        }

        _batchCount = 0;
        if (_firedTimers.Count > 0) _firedTimers.Clear();
        if (_stopping)
        {
            _stopping = false;
            _phase = Phase.Idle;
            return true;
        }

        _phase = Phase.BetweenTicks;
        return false;
    }

    // Loop.step PollFailed
    public void PollFailed()
    {
        if (_phase != Phase.Polling) throw Reject(Rejection.NewOutOfPhase("Polling"));
        _stopping = false;
        _phase = Phase.Idle;
    }

    public bool IsClosed => _closed;
    public bool IsRunning => _phase != Phase.Idle;
    public int ReadyCount => _readyCount;
    public int TimerCount => _heapCount;
    public int WatchedCount => _watchedCount;

    // LoopCore.NextDeadline: the head after dropping cancelled timers (without changing the state).
    public long NextDeadline()
    {
        if (_heapCount == 0) return long.MinValue;
        if (_timerCancelled == 0 || !_cancelled.Contains(_heap[0].Id)) return _heap[0].Deadline;
        long best = long.MinValue;
        Entry? min = null;
        for (int i = 0; i < _heapCount; i++)
        {
            if (_cancelled.Contains(_heap[i].Id)) continue;
            if (min is null || _heap[i].Before(min.Value)) min = _heap[i];
        }

        return min?.Deadline ?? best;
    }
}
