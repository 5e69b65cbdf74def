namespace Tulip.Diagnostics;

/// <summary>
/// Where the loop writes what it has to say with no caller to say it to (the default exception
/// handler, debug-mode warnings). By default <see cref="System.Diagnostics.Trace"/>; set
/// <see cref="Sink"/> to route it elsewhere (a logger, a test's list). Never Console.
/// </summary>
public static class LoopLog
{
    private static Action<string> s_sink = DefaultSink;

    public static Action<string> Sink
    {
        get => s_sink;
        set => s_sink = value ?? DefaultSink;
    }

    public static void Error(string message)
    {
        ArgumentNullException.ThrowIfNull(message); // a sink gets text
        s_sink(message);
    }

    /// <summary>A warning (asyncio's <c>logger.warning</c>): the same sink; by default a Trace warning.</summary>
    internal static void Warning(string message)
    {
        var sink = s_sink;
        if (sink == (Action<string>)DefaultSink) System.Diagnostics.Trace.TraceWarning(message);
        else sink(message);
    }

    private static void DefaultSink(string message) => System.Diagnostics.Trace.TraceError(message);
}
