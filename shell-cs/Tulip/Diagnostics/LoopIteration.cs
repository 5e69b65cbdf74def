namespace Tulip;

/// <summary>One iteration of the loop, as <see cref="EventLoop.IterationHook"/> reports it.</summary>
/// <param name="PollTimeout">How long the poll could wait (zero when something was ready; null: no limit).</param>
/// <param name="CallbacksRun">Callbacks (handles, task steps, I/O callbacks, timers) that ran.</param>
public readonly record struct LoopIteration(TimeSpan? PollTimeout, int CallbacksRun);
