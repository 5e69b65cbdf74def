namespace Tulip;

/// <summary>concurrent.futures' <c>BrokenExecutor</c> (a <c>RuntimeError</c>): the executor can no longer
/// run work.</summary>
public class BrokenExecutorException : InvalidOperationException
{
    public BrokenExecutorException(string message) : base(message) { }

    public BrokenExecutorException(string message, Exception? inner) : base(message, inner) { }
}

/// <summary>
/// concurrent.futures' <c>BrokenProcessPool</c>: a worker process died (killed, crashed, exited) while the
/// pool had work running or pending. That work fails with this error at once, never hangs; later submits
/// are refused with it too.
/// </summary>
public sealed class BrokenProcessPoolException : BrokenExecutorException
{
    /// <summary>CPython's message for the work that was running or pending.</summary>
    public const string TerminatedMessage = "A process in the process pool was terminated abruptly while the future was running or pending.";

    /// <summary>CPython's message for a submit to a broken pool.</summary>
    public const string NotUsableMessage = "A child process terminated abruptly, the process pool is not usable anymore";

    public BrokenProcessPoolException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>
/// An exception raised by the function a worker process ran: its type cannot cross the process boundary,
/// so it comes back by name (<see cref="RemoteType"/>), with its message and its stack in the worker
/// (<see cref="RemoteStackTrace"/>; CPython chains a <c>_RemoteTraceback</c> the same way).
/// </summary>
public sealed class RemoteWorkerException : Exception
{
    public RemoteWorkerException(string remoteType, string message, string remoteStackTrace, string? remoteText = null)
        : base(message)
    {
        RemoteType = remoteType;
        RemoteStackTrace = remoteStackTrace;
        RemoteText = remoteText ?? $"{remoteType}: {message}";
    }

    /// <summary>The full name of the exception's type in the worker (e.g. <c>System.DivideByZeroException</c>).</summary>
    public string RemoteType { get; }

    /// <summary>The stack trace in the worker process.</summary>
    public string RemoteStackTrace { get; }

    /// <summary>The worker's whole description of the exception (inner exceptions included).</summary>
    public string RemoteText { get; }

    public override string ToString() => $"{base.ToString()}{Environment.NewLine}--- in the worker process ---{Environment.NewLine}{RemoteText}";
}
