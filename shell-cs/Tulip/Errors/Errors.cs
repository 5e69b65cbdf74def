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
