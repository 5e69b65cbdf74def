namespace Tulip;

/// <summary>
/// asyncio.SubprocessProtocol: what a child's transport tells its protocol, on the loop thread.
/// Order (CPython 3.11, pinned by SubprocessTests): <c>ConnectionMade</c> first;
/// <c>PipeDataReceived</c> per chunk; <c>PipeConnectionLost</c> once per pipe; <c>ProcessExited</c>
/// once; <c>ConnectionLost</c> last, when the process has exited and every pipe is closed.
/// </summary>
public abstract class SubprocessProtocol : BaseProtocol
{
    /// <summary>The child wrote to stdout (fd 1) or stderr (fd 2). The span is valid only during the call.</summary>
    public virtual void PipeDataReceived(int fd, ReadOnlySpan<byte> data) { }

    /// <summary>One of the child's pipes closed (fd 0, 1 or 2): null for EOF or a regular close, else the error.</summary>
    public virtual void PipeConnectionLost(int fd, Exception? exception) { }

    /// <summary>The child exited (its return code is the transport's <see cref="ISubprocessTransport.GetReturnCode"/>).</summary>
    public virtual void ProcessExited() { }
}

/// <summary>
/// asyncio.SubprocessTransport: a running child and its pipes. Loop-affine.
/// </summary>
public interface ISubprocessTransport : ITransportBase
{
    /// <summary>The child's process id (fixed at the spawn; any thread).</summary>
    [ThreadSafe]
    int GetPid();

    /// <summary>The exit code, minus the signal number if a signal ended it, or null while it runs.</summary>
    int? GetReturnCode();

    /// <summary>The pipe transport of fd 0 (a write pipe), 1 or 2 (read pipes), or null when that
    /// stream is not a pipe.</summary>
    ITransport? GetPipeTransport(int fd);

    /// <summary>Sends <paramref name="signal"/> (a POSIX signal number) unless the child has already
    /// been reaped; <see cref="ProcessLookupException"/> once the transport is closed.</summary>
    void SendSignal(int signal);

    /// <summary>SIGTERM.</summary>
    void Terminate();

    /// <summary>SIGKILL.</summary>
    void Kill();
}
