using Tulip.Subprocess;

namespace Tulip;

/// <summary>
/// asyncio.subprocess.Process: a child started by <see cref="Asyncio.CreateSubprocessExec(string, string[])"/>
/// or <see cref="Asyncio.CreateSubprocessShell"/>, with its piped streams. Loop-affine, except the
/// members marked thread-safe. Disposing it kills the child if it still runs, waits for the exit (the
/// child is reaped) and closes its pipes.
/// </summary>
public sealed class LoopProcess : IAsyncDisposable
{
    private readonly EventLoop _loop;
    private readonly SubprocessTransport _transport;
    private readonly SubprocessStreamProtocol _protocol;

    internal LoopProcess(EventLoop loop, SubprocessTransport transport, SubprocessStreamProtocol protocol)
    {
        _loop = loop;
        _transport = transport;
        _protocol = protocol;
        Stdin = protocol.Stdin;
        Stdout = protocol.Stdout;
        Stderr = protocol.Stderr;
        Pid = transport.GetPid();
    }

    /// <summary>The subprocess transport underneath (asyncio's <c>_transport</c>): its pipe transports,
    /// for example to close the read end of stdout without killing the child (fixed; any thread).</summary>
    [ThreadSafe]
    public ISubprocessTransport Transport => _transport;

    /// <summary>The child's stdin when it is a pipe, else null (fixed; any thread).</summary>
    [ThreadSafe]
    public LoopStreamWriter? Stdin { get; }

    /// <summary>The child's stdout when it is a pipe, else null (fixed; any thread).</summary>
    [ThreadSafe]
    public LoopStreamReader? Stdout { get; }

    /// <summary>The child's stderr when it is a pipe, else null (fixed; any thread).</summary>
    [ThreadSafe]
    public LoopStreamReader? Stderr { get; }

    /// <summary>The process id (fixed; any thread).</summary>
    [ThreadSafe]
    public int Pid { get; }

    /// <summary>The exit code (minus the signal's number if a signal ended it), or null while it runs.</summary>
    public int? ReturnCode
    {
        get
        {
            _loop.VerifyAccess();
            return _transport.GetReturnCode();
        }
    }

    /// <summary>
    /// Waits for the child to exit and returns its return code. It returns at the exit, even while a
    /// grandchild still holds the child's stdout open (CPython 3.11; cpython#119710). It does not read
    /// the pipes: a child filling a pipe nobody reads blocks forever (use <see cref="CommunicateAsync"/>).
    /// The token cancels the wait only: the child runs on.
    /// </summary>
    public async Task<int> WaitAsync(CancellationToken cancellationToken = default)
    {
        _loop.VerifyAccess();
        cancellationToken.ThrowIfCancellationRequested();
        var exit = _transport.ExitFuture();
        if (exit.Done || !cancellationToken.CanBeCanceled) return await exit;
        using var canceller = TokenCanceller.Start(exit, cancellationToken);
        try
        {
            return await exit;
        }
        catch (CancelledException) when (canceller is { Fired: true })
        {
            throw TokenCancellation.Cancelled(cancellationToken);
        }
    }

    /// <summary>
    /// Writes <paramref name="input"/> to stdin (then closes it), reads stdout and stderr to their EOF,
    /// all three at once so that no pipe fills while another is awaited, then waits for the exit
    /// (asyncio's <c>communicate</c>). Returns what was read (null for a stream that is not a pipe). A
    /// child that exits without reading its input is not an error (a broken pipe on stdin is ignored,
    /// as asyncio's). With no input, stdin is left open, as asyncio's.
    /// The token: unlike asyncio (where a cancelled communicate leaves the child running with its pipes
    /// half read), a cancelled CommunicateAsync kills the child, waits for it to be reaped and closes
    /// its pipes before raising (subprocess.run's timeout does the same): nothing is left behind.
    /// </summary>
    public async Task<(byte[]? Stdout, byte[]? Stderr)> CommunicateAsync(byte[]? input = null, CancellationToken cancellationToken = default)
    {
        _loop.VerifyAccess();
        cancellationToken.ThrowIfCancellationRequested();
        if (input is not null && Stdin is null) throw new InvalidOperationException("stdin is not a pipe: start the process with Stdin = SubprocessRedirect.Pipe");
        var parts = new List<Future<byte[]?>>(3);
        var stdin = input is not null ? _loop.CreateTask(() => FeedStdinAsync(input)) : null;
        if (stdin is not null) parts.Add(stdin);
        var stdout = Stdout is { } o ? _loop.CreateTask(() => ReadStreamAsync(o, 1)) : null;
        if (stdout is not null) parts.Add(stdout);
        var stderr = Stderr is { } e ? _loop.CreateTask(() => ReadStreamAsync(e, 2)) : null;
        if (stderr is not null) parts.Add(stderr);
        try
        {
            await Asyncio.Gather(parts, cancellationToken);
            await WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            await KillAndReapAsync();
            throw;
        }

        return (stdout?.Result(), stderr?.Result());
    }

    private async Task<byte[]?> FeedStdinAsync(byte[] input)
    {
        var stdin = Stdin!;
        stdin.Write(input);
        try
        {
            await stdin.DrainAsync();
        }
        catch (IOException)
        {
            // asyncio's _feed_stdin: a child that does not read its input (BrokenPipeError,
            // ConnectionResetError) is not communicate's error.
        }

        stdin.Close();
        return null;
    }

    private async Task<byte[]?> ReadStreamAsync(LoopStreamReader reader, int fd)
    {
        var output = await reader.ReadAsync(-1);
        _transport.GetPipeTransport(fd)?.Close();
        return output;
    }

    private async Task KillAndReapAsync()
    {
        if (_transport.GetReturnCode() is null)
        {
            try
            {
                _transport.Kill();
            }
            catch (ProcessLookupException)
            {
            }
        }

        _transport.Close();
        await _transport.ExitFuture();
    }

    public void SendSignal(int signal)
    {
        _loop.VerifyAccess();
        _transport.SendSignal(signal);
    }

    /// <summary>SIGTERM.</summary>
    public void Terminate()
    {
        _loop.VerifyAccess();
        _transport.Terminate();
    }

    /// <summary>SIGKILL.</summary>
    public void Kill()
    {
        _loop.VerifyAccess();
        _transport.Kill();
    }

    /// <summary>Kills the child if it still runs, waits until it is reaped and closes its pipes.</summary>
    public async ValueTask DisposeAsync()
    {
        _loop.VerifyAccess();
        await KillAndReapAsync();
    }

    public override string ToString() => $"<LoopProcess {Pid}>";
}
