using System.Text;

namespace Tulip.Reactive;

/// <summary>A child's output as an observable (asyncio has no Rx face; the process is asyncio's
/// <c>create_subprocess_exec</c>).</summary>
public static class SubprocessObservables
{
    /// <summary>
    /// Each subscription starts <paramref name="program"/> and emits its stdout's lines (decoded with
    /// <paramref name="encoding"/>, UTF-8 by default, without their newline); with
    /// <paramref name="mergeStderr"/> its stderr goes into the same pipe (asyncio's <c>STDOUT</c>), else
    /// stderr is inherited. stdin is /dev/null. At EOF the subscription waits for the exit, tells
    /// <paramref name="exited"/> the return code (minus the signal for a signal) and completes; a failed
    /// start (<see cref="SubprocessNotFoundException"/>) or a read error is OnError.
    /// Disposing the subscription before the end: with <see cref="OnDispose.Cancel"/> (the default) the
    /// child is killed, reaped and its pipe closed; with <see cref="OnDispose.StopListening"/> the child
    /// is detached: it runs on, the loop still reaps it when it exits, and the read end of its stdout is
    /// closed (its further writes fail with EPIPE / SIGPIPE, as a shell pipeline whose reader quit).
    /// Any thread (the child runs in a loop task; observers are called on the loop thread).
    /// </summary>
    [ThreadSafe]
    public static IObservable<string> Lines(EventLoop loop, string program, IEnumerable<string>? args = null, bool mergeStderr = false,
        OnDispose onDispose = OnDispose.Cancel, Action<int>? exited = null, Encoding? encoding = null)
    {
        ArgumentNullException.ThrowIfNull(loop);
        ArgumentNullException.ThrowIfNull(program);
        var argv = args?.ToArray() ?? []; // a snapshot: each subscription starts the same command
        var options = new SubprocessOptions
        {
            Stdin = SubprocessRedirect.DevNull,
            Stdout = SubprocessRedirect.Pipe,
            Stderr = mergeStderr ? SubprocessRedirect.Stdout : SubprocessRedirect.Inherit,
        };
        return LoopObservable.Create<string>(loop, async (observer, token) =>
        {
            var proc = await Asyncio.CreateSubprocessExec(program, argv, options, token);
            bool finished = false;
            try
            {
                while (await proc.Stdout!.ReadLineAsync(encoding, token) is { } line) observer.OnNext(line);
                int code = await proc.WaitAsync(token);
                finished = true;
                exited?.Invoke(code);
            }
            finally
            {
                if (finished || onDispose == OnDispose.Cancel) await proc.DisposeAsync();
                else proc.Transport.GetPipeTransport(1)?.Close(); // detached: the loop reaps it when it exits
            }
        });
    }
}
