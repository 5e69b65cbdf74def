namespace Tulip.Reactive;

/// <summary>
/// Getting onto the loop thread. Rx calls in from any thread (a timer, a socket callback, another
/// loop); Tulip's objects are loop-affine, so every adapter enters through here.
/// </summary>
internal static class LoopThread
{
    /// <summary>True when a call may touch the loop directly: on its thread, or while it is not running.</summary>
    internal static bool CanRunHere(EventLoop loop) => !loop.IsRunning || loop.OnLoopThread;

    /// <summary>Runs <paramref name="action"/> now if on the loop thread (or the loop is idle), else posts it.</summary>
    internal static void Run<TState>(EventLoop loop, Action<TState> action, TState state)
    {
        if (CanRunHere(loop)) action(state);
        else loop.CallSoonThreadsafe(action, state);
    }
}
