using Tulip.Signals;

namespace Tulip;

/// <summary>
/// asyncio.Runner's Ctrl+C handling (3.11's <c>Runner.run</c> and <c>_on_sigint</c>): while the main task
/// runs, the first SIGINT cancels it (its <c>finally</c> blocks run, the tasks it awaits are cancelled as
/// usual) and the handler removes itself, so a second SIGINT gets the default action (the process ends);
/// once the main task has unwound, the run raises <see cref="KeyboardInterruptException"/> — unless
/// the task swallowed the cancellation and returned, as asyncio's <c>uncancel() == 0</c> check allows.
/// <para>Installed, as asyncio does, only on the main thread (managed thread 1: the thread
/// <c>Main</c> runs on), and only as a fallback: a loop with its own SIGINT handler (anywhere in the
/// process) takes the signal instead. SIGTERM is handled the same way only when asked for.</para>
/// </summary>
internal static class Interrupts
{
    public static T Run<T>(EventLoop loop, Func<Task<T>> main, bool handleSigterm)
    {
        // asyncio installs its handler only where SIGINT has its default handler: not where it is ignored.
        bool install = OperatingSystem.IsLinux() && Environment.CurrentManagedThreadId == 1
            && !NameResolution.LibC.IsIgnored(UnixSignal.SIGINT);
        if (!install && !handleSigterm) return loop.RunUntilComplete(main);
        // (A second SIGINT while the loop is stuck in blocking code still ends the process: the dispatcher
        // lets a fallback's second arrival take the default action, on the signal thread.)
        var task = loop.CreateTask(main);
        int interruptedBy = 0;
        var installed = new List<LoopSignal>();

        void Interrupt(int signal)
        {
            // The second one gets the default action: remove ours before anything else.
            foreach (var t in installed) loop.RemoveSignalHandlerIf(t);
            installed.Clear();
            if (task.Done) return;
            interruptedBy = signal;
            task.Cancel();
        }

        // asyncio.Runner installs nothing where the program already handles the signal: a handler this loop
        // has keeps it (and Run's finally, which removes only its own, leaves it in place).
        if (install && !loop.HandledSignals.Contains(UnixSignal.SIGINT))
            installed.Add(loop.AddSignalHandler(UnixSignal.SIGINT, () => Interrupt(UnixSignal.SIGINT), fallback: true));
        if (handleSigterm && !loop.HandledSignals.Contains(UnixSignal.SIGTERM))
            installed.Add(loop.AddSignalHandler(UnixSignal.SIGTERM, () => Interrupt(UnixSignal.SIGTERM), fallback: true));
        try
        {
            return loop.RunUntilComplete(task);
        }
        catch (OperationCanceledException) when (interruptedBy != 0)
        {
            throw new KeyboardInterruptException(interruptedBy);
        }
        finally
        {
            foreach (var t in installed) loop.RemoveSignalHandlerIf(t);
        }
    }
}
