namespace Tulip;

/// <summary>
/// Reports an exception set on a future that nobody retrieved, when the future is collected (CPython's
/// "Future exception was never retrieved"; asyncio 3.3's _TracebackLogger). Only futures that hold an
/// unretrieved exception carry one, so ordinary futures stay cheap to allocate (no finalizer).
/// </summary>
internal sealed class UnretrievedExceptionReport
{
    private EventLoop? _loop;
    private string? _what;
    private Exception? _exception;

    public UnretrievedExceptionReport(EventLoop loop, Future future, Exception exception)
    {
        _loop = loop;
        _what = future.ToString();
        _exception = exception;
    }

    public void Clear()
    {
        _loop = null;
        _exception = null;
        GC.SuppressFinalize(this);
    }

    ~UnretrievedExceptionReport()
    {
        if (_loop is not { } loop || _exception is not { } e) return;
        var kind = _what?.StartsWith("<LoopTask", StringComparison.Ordinal) == true ? "Task" : "Future";
        var context = new ExceptionContext($"{kind} exception was never retrieved", e)
        {
            Extra = new Dictionary<string, object?> { ["future"] = _what },
        };
        loop.ReportFromAnyThread(context);
    }
}
