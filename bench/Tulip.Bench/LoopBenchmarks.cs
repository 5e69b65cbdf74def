using BenchmarkDotNet.Attributes;
using Tulip.Core.Interop;

namespace Tulip.Bench;

/// <summary>BenchmarkDotNet: the scheduler hot paths, per operation, with allocations.</summary>
[MemoryDiagnoser]
public class LoopBenchmarks
{
    private const int Batch = 1000;
    private readonly Action _noop = static () => { };

    /// <summary>1000 call_soon callbacks run in one tick of a real loop.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public void CallSoonTick()
    {
        using var loop = new EventLoop();
        for (int i = 0; i < Batch; i++) loop.CallSoon(_noop);
        loop.CallSoon(loop.Stop);
        loop.RunForever();
    }

    /// <summary>1000 timers scheduled at distinct deadlines, then fired, through the pure core only.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public long CoreTimersScheduleFire()
    {
        var s = LoopCore.Start(LoopCore.Create(0));
        for (long i = 0; i < Batch; i++) s = LoopCore.CallAtMany(s, [(i, (i * 7919) % Batch)]);
        s = LoopCore.BeginTick(s, 0, [], out _);
        s = LoopCore.Polled(s, Batch, [], [], out var batch);
        return batch.Length;
    }

    /// <summary>create_task + await, one at a time.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public void TasksSeq()
    {
        using var loop = new EventLoop();
        loop.RunUntilComplete(async () =>
        {
            for (int i = 0; i < Batch; i++) await loop.CreateTask(static () => Task.FromResult(0));
        });
    }
}
