using Tulip.Subprocess;

namespace Tulip;

public static partial class Asyncio
{
    /// <summary>Starts <paramref name="program"/> with <paramref name="args"/>, every stream inherited
    /// (asyncio's <c>create_subprocess_exec</c> with its defaults).</summary>
    public static Task<LoopProcess> CreateSubprocessExec(string program, params string[] args)
    {
        ArgumentNullException.ThrowIfNull(program);
        ArgumentNullException.ThrowIfNull(args);
        return CreateSubprocessExec(program, args, null, CancellationToken.None);
    }

    /// <summary>
    /// Starts <paramref name="program"/> (searched on PATH unless it names a directory) and returns the
    /// process with stream readers and a writer for the streams that are pipes (asyncio's
    /// <c>create_subprocess_exec</c>). Streams not set in <paramref name="options"/> are inherited, as
    /// asyncio's defaults. A missing program: <see cref="SubprocessNotFoundException"/> (errno 2). Options
    /// asyncio refuses (text, an encoding, a buffer size, a shell flag): <see cref="ArgumentException"/>.
    /// The token: already cancelled, nothing is started; fired while the pipes connect, the child is
    /// killed and reaped before the call raises.
    /// </summary>
    public static async Task<LoopProcess> CreateSubprocessExec(string program, IEnumerable<string>? args, SubprocessOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(program);
        var loop = EventLoop.GetRunningLoop();
        options ??= SubprocessOptions.Default;
        options.Validate(shell: false);
        var argv = EventLoop.Argv(program, args);
        var (transport, protocol) = await loop.SpawnAsync(() => new SubprocessStreamProtocol(loop, options.Limit), program, argv, options,
            SubprocessRedirect.Inherit, cancellationToken);
        return new LoopProcess(loop, (SubprocessTransport)transport, protocol);
    }

    /// <summary>Runs <paramref name="command"/> with <c>/bin/sh -c</c> (asyncio's <c>create_subprocess_shell</c>);
    /// otherwise as <see cref="CreateSubprocessExec(string, IEnumerable{string}?, SubprocessOptions?, CancellationToken)"/>.</summary>
    public static async Task<LoopProcess> CreateSubprocessShell(string command, SubprocessOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(command);
        var loop = EventLoop.GetRunningLoop();
        options ??= SubprocessOptions.Default;
        options.Validate(shell: true);
        if (command.Contains('\0')) throw new ArgumentException("embedded null byte", nameof(command));
        var (transport, protocol) = await loop.SpawnAsync(() => new SubprocessStreamProtocol(loop, options.Limit), "/bin/sh",
            ["/bin/sh", "-c", command], options, SubprocessRedirect.Inherit, cancellationToken);
        return new LoopProcess(loop, (SubprocessTransport)transport, protocol);
    }
}
