namespace Tulip;

/// <summary>
/// How a child is started (asyncio's keyword arguments of <c>subprocess_exec</c> and
/// <c>create_subprocess_exec</c>). Null redirects take the call's default: <see cref="SubprocessRedirect.Pipe"/>
/// for the loop's <c>SubprocessExecAsync</c>, <see cref="SubprocessRedirect.Inherit"/> for
/// <c>Asyncio.CreateSubprocessExec</c>, as asyncio's. <see cref="Text"/>, <see cref="Encoding"/>,
/// <see cref="UniversalNewlines"/>, <see cref="BufferSize"/> and <see cref="Shell"/> exist so that a
/// port of Python code that passes them meets asyncio's refusal at the call
/// (<see cref="ArgumentException"/>, "text must be False"…) rather than a silently different behaviour:
/// pipes carry bytes, unbuffered. Immutable once made; any thread.
/// </summary>
public sealed class SubprocessOptions
{
    public SubprocessRedirect? Stdin { get; init; }
    public SubprocessRedirect? Stdout { get; init; }
    public SubprocessRedirect? Stderr { get; init; }

    /// <summary>The child's whole environment (null: the parent's, as .NET sees it).</summary>
    public IReadOnlyDictionary<string, string>? Environment { get; init; }

    /// <summary>The child's working directory (null: the parent's).</summary>
    public string? WorkingDirectory { get; init; }

    /// <summary>The stream readers' limit (stream level only): past twice this, the pipe is no longer
    /// read until the reader is drained to it (asyncio's <c>limit</c>, 64 KiB).</summary>
    public int Limit { get; init; } = LoopStreamReader.DefaultLimit;

    /// <summary>
    /// The capacity of every pipe made for the child, in bytes (Popen's <c>pipesize</c>, which asyncio passes
    /// through; Linux's <c>F_SETPIPE_SZ</c>, rounded up by the kernel to a power-of-two number of pages).
    /// Zero or negative (the default, -1): the system's (64 KiB). A bigger pipe means fewer wake-ups per
    /// megabyte for bulk transfers; it counts against the user's pipe pages
    /// (<c>/proc/sys/fs/pipe-user-pages-soft</c>), so keep it for children that move a lot of data. A size
    /// the kernel refuses (past <c>/proc/sys/fs/pipe-max-size</c>) fails the spawn with its
    /// <see cref="IOException"/> (errno in the HResult), as Popen raises its OSError.
    /// </summary>
    public int PipeSize { get; init; } = -1;

    /// <summary>Refused when true (asyncio: "text must be False").</summary>
    public bool Text { get; init; }

    /// <summary>Refused when set (asyncio: "encoding must be None").</summary>
    public System.Text.Encoding? Encoding { get; init; }

    /// <summary>Refused when true (asyncio: "universal_newlines must be False").</summary>
    public bool UniversalNewlines { get; init; }

    /// <summary>Refused unless 0 (asyncio: "bufsize must be 0").</summary>
    public int BufferSize { get; init; }

    /// <summary>Refused when it contradicts the call: true on the exec form ("shell must be False"),
    /// false on the shell form ("shell must be True"). Null: the call's own.</summary>
    public bool? Shell { get; init; }

    internal static readonly SubprocessOptions Default = new();

    /// <summary>asyncio's checks, in its order (base_events.subprocess_exec / subprocess_shell).</summary>
    internal void Validate(bool shell)
    {
        if (UniversalNewlines) throw new ArgumentException("universal_newlines must be False", nameof(UniversalNewlines));
        if (Shell is { } s && s != shell) throw new ArgumentException(shell ? "shell must be True" : "shell must be False", nameof(Shell));
        if (BufferSize != 0) throw new ArgumentException("bufsize must be 0", nameof(BufferSize));
        if (Text) throw new ArgumentException("text must be False", nameof(Text));
        if (Encoding is not null) throw new ArgumentException("encoding must be None", nameof(Encoding));
        if (Limit <= 0) throw new ArgumentOutOfRangeException(nameof(Limit), Limit, "Limit cannot be <= 0");
        if (Stdin?.Kind == SubprocessRedirect.Kinds.Stdout) throw new ArgumentException("STDOUT is for stderr only", nameof(Stdin));
        if (Stdout?.Kind == SubprocessRedirect.Kinds.Stdout) throw new ArgumentException("STDOUT is for stderr only", nameof(Stdout));
        if (Environment is not null)
        {
            foreach (var (k, v) in Environment)
            {
                if (string.IsNullOrEmpty(k) || k.Contains('=') || k.Contains('\0')) throw new ArgumentException($"illegal environment variable name {k}", nameof(Environment));
                if (v is null || v.Contains('\0')) throw new ArgumentException($"illegal environment value for {k}", nameof(Environment));
            }
        }
    }
}
