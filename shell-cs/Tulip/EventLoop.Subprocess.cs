using System.Runtime.InteropServices;
using Tulip.Subprocess;
using Tulip.Transports;

namespace Tulip;

public sealed partial class EventLoop
{
    /// <summary>Subprocess transports not finished yet (ConnectionLost not called): if the loop closes
    /// first, a child still running is killed and reaped, and the pipes still open are closed.</summary>
    internal readonly HashSet<SubprocessTransport> Subprocesses = new();

    private void CloseSubprocesses()
    {
        foreach (var t in Subprocesses.ToArray()) t.CloseForLoopClose();
        Subprocesses.Clear();
    }

    /// <summary>
    /// Starts <paramref name="program"/> with <paramref name="args"/> and connects a protocol to it
    /// (asyncio's <c>loop.subprocess_exec</c>): the three streams default to pipes. Returns once the
    /// protocol's <c>ConnectionMade</c> has run. A missing program is a
    /// <see cref="SubprocessNotFoundException"/> (errno 2); options asyncio refuses are refused here
    /// (<see cref="SubprocessOptions"/>). The token: already cancelled, nothing is started; fired while
    /// the pipes connect, the child is killed and reaped and its pipes closed before the call ends
    /// with <see cref="OperationCanceledException"/> (asyncio: <c>transp.close(); await transp._wait()</c>).
    /// </summary>
    public Task<(ISubprocessTransport Transport, TProtocol Protocol)> SubprocessExecAsync<TProtocol>(Func<TProtocol> protocolFactory,
        string program, IEnumerable<string>? args = null, SubprocessOptions? options = null, CancellationToken cancellationToken = default)
        where TProtocol : SubprocessProtocol
    {
        ArgumentNullException.ThrowIfNull(protocolFactory);
        ArgumentNullException.ThrowIfNull(program);
        VerifyAccess();
        options ??= SubprocessOptions.Default;
        options.Validate(shell: false);
        var argv = Argv(program, args);
        return SpawnAsync(protocolFactory, program, argv, options, SubprocessRedirect.Pipe, cancellationToken);
    }

    /// <summary>Runs <paramref name="command"/> with <c>/bin/sh -c</c> (asyncio's <c>loop.subprocess_shell</c>);
    /// otherwise as <see cref="SubprocessExecAsync{TProtocol}"/>.</summary>
    public Task<(ISubprocessTransport Transport, TProtocol Protocol)> SubprocessShellAsync<TProtocol>(Func<TProtocol> protocolFactory,
        string command, SubprocessOptions? options = null, CancellationToken cancellationToken = default)
        where TProtocol : SubprocessProtocol
    {
        ArgumentNullException.ThrowIfNull(protocolFactory);
        ArgumentNullException.ThrowIfNull(command);
        VerifyAccess();
        options ??= SubprocessOptions.Default;
        options.Validate(shell: true);
        if (command.Contains('\0')) throw new ArgumentException("embedded null byte", nameof(command));
        return SpawnAsync(protocolFactory, "/bin/sh", ["/bin/sh", "-c", command], options, SubprocessRedirect.Pipe, cancellationToken);
    }

    internal static List<string> Argv(string program, IEnumerable<string>? args)
    {
        if (program.Length == 0) throw new ArgumentException("the program is empty", nameof(program));
        var argv = new List<string> { program };
        if (args is not null)
        {
            foreach (var a in args)
            {
                if (a is null) throw new ArgumentException("an argument is null", nameof(args));
                argv.Add(a);
            }
        }

        foreach (var a in argv)
        {
            if (a.Contains('\0')) throw new ArgumentException("embedded null byte", nameof(args));
        }

        return argv;
    }

    /// <summary>Pipes and pidfds need epoll: refused up front on the select reactor, before any child or
    /// descriptor exists.</summary>
    private void RequirePipeReactor()
    {
        bool epoll = _reactor is not null ? _reactor is Io.EpollReactor : _reactorKind switch
        {
            Io.ReactorKind.Select => false,
            Io.ReactorKind.Epoll => true,
            _ => Io.EpollReactor.IsSupported,
        };
        if (!epoll) throw new NotSupportedException("subprocesses and pipe transports need the epoll reactor (this loop uses select)");
    }

    internal async Task<(ISubprocessTransport Transport, TProtocol Protocol)> SpawnAsync<TProtocol>(Func<TProtocol> protocolFactory,
        string program, List<string> argv, SubprocessOptions options, SubprocessRedirect defaultRedirect, CancellationToken cancellationToken)
        where TProtocol : SubprocessProtocol
    {
        cancellationToken.ThrowIfCancellationRequested();
        ThrowIfClosed();
        RequirePipeReactor();
        var protocol = protocolFactory() ?? throw new InvalidOperationException("the protocol factory returned null");
        var child = Spawner.Spawn(program, argv, options, defaultRedirect);
        var waiter = CreateFuture();
        var transport = new SubprocessTransport(this, protocol, child, waiter);
        try
        {
            if (cancellationToken.CanBeCanceled) await TokenCancellation.WaitAsync(waiter, cancellationToken);
            else await waiter;
        }
        catch
        {
            transport.Close();
            await transport.ExitFuture();
            throw;
        }

        return (transport, protocol);
    }

    // ---------------------------------------------------------------------------------------------
    // asyncio's connect_read_pipe / connect_write_pipe: any pipe as a transport.

    /// <summary>
    /// The read end of a pipe (or a FIFO, a socket, a terminal) as a read transport feeding a protocol
    /// (asyncio's <c>connect_read_pipe</c>). The transport owns <paramref name="pipe"/> from here on: it is
    /// made non-blocking and disposed when the transport closes. Regular files are refused (epoll cannot
    /// watch them). Returns once the protocol's <c>ConnectionMade</c> has run.
    /// </summary>
    public Task<(ITransport Transport, TProtocol Protocol)> ConnectReadPipeAsync<TProtocol>(Func<TProtocol> protocolFactory, SafeHandle pipe,
        CancellationToken cancellationToken = default)
        where TProtocol : BaseProtocol
    {
        ArgumentNullException.ThrowIfNull(pipe);
        ArgumentNullException.ThrowIfNull(protocolFactory);
        VerifyAccess();
        return ConnectPipeAsync(protocolFactory, PipeFd(pipe), pipe, write: false, cancellationToken);
    }

    /// <summary><see cref="ConnectReadPipeAsync{TProtocol}(Func{TProtocol}, SafeHandle, CancellationToken)"/> over a
    /// <see cref="FileStream"/> of a pipe (disposed when the transport closes).</summary>
    public Task<(ITransport Transport, TProtocol Protocol)> ConnectReadPipeAsync<TProtocol>(Func<TProtocol> protocolFactory, FileStream pipe,
        CancellationToken cancellationToken = default)
        where TProtocol : BaseProtocol
    {
        ArgumentNullException.ThrowIfNull(pipe);
        ArgumentNullException.ThrowIfNull(protocolFactory);
        VerifyAccess();
        return ConnectPipeAsync(protocolFactory, PipeFd(pipe.SafeFileHandle), pipe, write: false, cancellationToken);
    }

    /// <summary>
    /// The write end of a pipe as a write transport (asyncio's <c>connect_write_pipe</c>): writes are
    /// buffered with flow control (PauseWriting / ResumeWriting), Close flushes first, and the reader
    /// going away closes the transport. Owns <paramref name="pipe"/> as the read form does.
    /// </summary>
    public Task<(ITransport Transport, TProtocol Protocol)> ConnectWritePipeAsync<TProtocol>(Func<TProtocol> protocolFactory, SafeHandle pipe,
        CancellationToken cancellationToken = default)
        where TProtocol : BaseProtocol
    {
        ArgumentNullException.ThrowIfNull(pipe);
        ArgumentNullException.ThrowIfNull(protocolFactory);
        VerifyAccess();
        return ConnectPipeAsync(protocolFactory, PipeFd(pipe), pipe, write: true, cancellationToken);
    }

    /// <summary><see cref="ConnectWritePipeAsync{TProtocol}(Func{TProtocol}, SafeHandle, CancellationToken)"/> over a <see cref="FileStream"/>.</summary>
    public Task<(ITransport Transport, TProtocol Protocol)> ConnectWritePipeAsync<TProtocol>(Func<TProtocol> protocolFactory, FileStream pipe,
        CancellationToken cancellationToken = default)
        where TProtocol : BaseProtocol
    {
        ArgumentNullException.ThrowIfNull(pipe);
        ArgumentNullException.ThrowIfNull(protocolFactory);
        VerifyAccess();
        return ConnectPipeAsync(protocolFactory, PipeFd(pipe.SafeFileHandle), pipe, write: true, cancellationToken);
    }

    private static int PipeFd(SafeHandle handle)
    {
        if (handle.IsClosed || handle.IsInvalid) throw new ArgumentException("the pipe is closed", nameof(handle));
        int fd = (int)handle.DangerousGetHandle();
        // Seekable means a regular file (or a block device): epoll refuses those (asyncio: "Pipe
        // transport is for pipes/sockets only.").
        if (PosixNative.lseek(fd, 0, 1 /* SEEK_CUR */) >= 0) throw new ArgumentException("Pipe transport is for pipes/sockets only.", "pipe");
        return fd;
    }

    private async Task<(ITransport Transport, TProtocol Protocol)> ConnectPipeAsync<TProtocol>(Func<TProtocol> protocolFactory, int fd,
        IDisposable owner, bool write, CancellationToken cancellationToken)
        where TProtocol : BaseProtocol
    {
        ArgumentNullException.ThrowIfNull(protocolFactory);
        VerifyAccess();
        cancellationToken.ThrowIfCancellationRequested();
        ThrowIfClosed();
        RequirePipeReactor();
        var protocol = protocolFactory() ?? throw new InvalidOperationException("the protocol factory returned null");
        var waiter = CreateFuture();
        PipeTransport transport = write
            ? new WritePipeTransport(this, fd, owner, protocol, waiter)
            : new ReadPipeTransport(this, fd, owner, protocol, waiter);
        try
        {
            if (cancellationToken.CanBeCanceled) await TokenCancellation.WaitAsync(waiter, cancellationToken);
            else await waiter;
        }
        catch
        {
            transport.Close();
            throw;
        }

        return (transport, protocol);
    }
}
