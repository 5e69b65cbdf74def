namespace Tulip;

/// <summary>
/// What the loop's exception handler receives about an error that has no caller to raise to (asyncio's
/// context dict: message, exception, future, task, handle, transport, protocol…).
/// </summary>
public sealed class ExceptionContext
{
    public ExceptionContext(string message, Exception? exception = null)
    {
        ArgumentNullException.ThrowIfNull(message); // asyncio's context always has a 'message'
        Message = message;
        Exception = exception;
    }

    public string Message { get; }
    public Exception? Exception { get; }
    public Future? Future { get; init; }
    public Handle? Handle { get; init; }
    public object? Transport { get; init; }
    public object? Protocol { get; init; }

    /// <summary>Anything else worth reporting, by name.</summary>
    public IReadOnlyDictionary<string, object?> Extra
    {
        get => _extra;
        init => _extra = value ?? throw new ArgumentNullException(nameof(value)); // ToString reads it
    }

    private readonly IReadOnlyDictionary<string, object?> _extra = new Dictionary<string, object?>();

    /// <summary>The task, when <see cref="Future"/> is one.</summary>
    public ILoopTask? Task => Future as ILoopTask;

    public override string ToString()
    {
        var sb = new System.Text.StringBuilder(Message);
        if (Future is not null) sb.Append("\n").Append(Future is ILoopTask ? "task: " : "future: ").Append(Future);
        if (Handle is not null) sb.Append("\nhandle: ").Append(Handle);
        if (Transport is not null) sb.Append("\ntransport: ").Append(Transport);
        if (Protocol is not null) sb.Append("\nprotocol: ").Append(Protocol);
        foreach (var (k, v) in Extra) sb.Append('\n').Append(k).Append(": ").Append(v);
        if (Exception is not null) sb.Append('\n').Append(Exception);
        return sb.ToString();
    }
}

/// <summary>A loop's exception handler (asyncio's <c>set_exception_handler</c> signature).</summary>
public delegate void ExceptionHandler(EventLoop loop, ExceptionContext context);
