namespace Tulip;

/// <summary>
/// asyncio's <c>CancelledError</c>: the awaited future or task was cancelled. It is an
/// <see cref="OperationCanceledException"/>, so .NET code that catches cancellation catches it too.
/// </summary>
public class CancelledException : OperationCanceledException
{
    public CancelledException() : base("The operation was cancelled.") { }

    public CancelledException(string? cancelMessage)
        : base(cancelMessage ?? "The operation was cancelled.") => CancelMessage = cancelMessage;

    /// <summary>A wait cancelled through <paramref name="token"/> (<see cref="OperationCanceledException.CancellationToken"/>).</summary>
    public CancelledException(CancellationToken token) : base("The operation was cancelled.", token) { }

    public CancelledException(string? cancelMessage, CancellationToken token)
        : base(cancelMessage ?? "The operation was cancelled.", token) => CancelMessage = cancelMessage;

    /// <summary>The message given to <c>Cancel(msg)</c>, or null (asyncio: <c>CancelledError.args</c>).</summary>
    public string? CancelMessage { get; }
}

/// <summary>asyncio's <c>InvalidStateError</c>: an operation not allowed in the future's current state.</summary>
public class InvalidStateException : InvalidOperationException
{
    public InvalidStateException(string message) : base(message) { }
}

/// <summary>
/// asyncio's <c>RuntimeError</c> raised by the loop itself (closed loop, nested run, stopped before the
/// future completed…).
/// </summary>
public class EventLoopException : InvalidOperationException
{
    public EventLoopException(string message) : base(message) { }
}

/// <summary>
/// Python's <c>KeyboardInterrupt</c> as <see cref="Asyncio.Run{T}(Func{Task{T}}, bool, LoopClock?, bool)"/> raises it: Ctrl+C
/// (SIGINT) cancelled the main task, which has unwound (its <c>finally</c> blocks ran). A cancellation,
/// so code that catches <see cref="OperationCanceledException"/> catches it; a console app may catch it
/// and exit with 130 (128 + SIGINT), as a Python program interrupted by Ctrl+C does.
/// </summary>
public sealed class KeyboardInterruptException : CancelledException
{
    public KeyboardInterruptException() : base("interrupted (SIGINT)") { }

    public KeyboardInterruptException(int signal) : base($"interrupted (signal {signal})") => Signal = signal;

    /// <summary>The signal that interrupted the run (SIGINT, or SIGTERM where that was asked for).</summary>
    public int Signal { get; } = UnixSignal.SIGINT;
}

/// <summary>
/// create_connection tried every address of the host and each attempt failed with a different error
/// (asyncio's <c>OSError('Multiple exceptions: …')</c>). <see cref="Attempts"/> holds each address and
/// its error in the order tried; <see cref="System.Net.Sockets.SocketException.SocketErrorCode"/> is the first one's.
/// </summary>
public sealed class ConnectionAttemptsException : System.Net.Sockets.SocketException
{
    public ConnectionAttemptsException(string message, IReadOnlyList<(System.Net.EndPoint Address, Exception Error)> attempts)
        : base(FirstCode(attempts), message) => Attempts = attempts;

    private static int FirstCode(IReadOnlyList<(System.Net.EndPoint Address, Exception Error)> attempts)
    {
        ArgumentNullException.ThrowIfNull(attempts);
        return attempts.Count > 0 && attempts[0].Error is System.Net.Sockets.SocketException s
            ? (int)s.SocketErrorCode
            : (int)System.Net.Sockets.SocketError.SocketError;
    }

    /// <summary>Each address tried and why it failed.</summary>
    public IReadOnlyList<(System.Net.EndPoint Address, Exception Error)> Attempts { get; }
}

/// <summary>
/// SIGINT or SIGQUIT cannot be handled in this process: it started with the signal ignored (SIG_IGN
/// inherited from its parent, as a shell gives a background job or <c>nohup</c> a command), and the
/// .NET runtime then never forwards it. Run <c>env --default-signal=INT</c> … to start with the default.
/// </summary>
public sealed class SignalIgnoredException : InvalidOperationException
{
    public SignalIgnoredException(int signal)
        : base($"sig {signal} is ignored in this process (SIG_IGN inherited from its parent); the .NET runtime does not deliver it") =>
        Signal = signal;

    /// <summary>The signal concerned.</summary>
    public int Signal { get; }
}
