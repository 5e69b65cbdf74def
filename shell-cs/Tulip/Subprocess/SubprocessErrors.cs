namespace Tulip;

/// <summary>
/// The program (or the working directory) to start does not exist: Python's <c>FileNotFoundError</c>
/// raised by <c>create_subprocess_exec</c>, with its errno (ENOENT, 2; or ENOTDIR, 20) and the path.
/// </summary>
public class SubprocessNotFoundException : FileNotFoundException
{
    public SubprocessNotFoundException(string message, string? fileName, int errno)
        : base(message, fileName)
    {
        Errno = errno;
        HResult = errno;
    }

    /// <summary>The OS error number (ENOENT = 2).</summary>
    public int Errno { get; }
}

/// <summary>
/// Starting the child failed for another OS reason (permission denied, too many processes…): Python's
/// <c>OSError</c> with its errno.
/// </summary>
public class SubprocessStartException : IOException
{
    public SubprocessStartException(string message, int errno)
        : base(message, errno) => Errno = errno;

    public int Errno { get; }
}

/// <summary>
/// asyncio's <c>ProcessLookupError</c>: the subprocess transport is closed (or was never connected),
/// so there is no process to signal.
/// </summary>
public class ProcessLookupException : InvalidOperationException
{
    public ProcessLookupException(string message) : base(message) { }
}
