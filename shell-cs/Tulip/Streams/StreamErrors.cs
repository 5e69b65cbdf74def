namespace Tulip;

/// <summary>
/// asyncio's <c>IncompleteReadError</c>: EOF came before the expected bytes. <see cref="Partial"/> has
/// what was read; <see cref="Expected"/> is the wanted count (null when reading up to a separator).
/// </summary>
public class IncompleteReadException : EndOfStreamException
{
    /// <summary>The error for <paramref name="partial"/> read of <paramref name="expected"/>; a null
    /// <paramref name="partial"/> means nothing was read (an exception's constructor does not refuse).</summary>
    public IncompleteReadException(byte[]? partial, int? expected)
        : base($"{partial?.Length ?? 0} bytes read on a total of {(expected is { } e ? e.ToString() : "undefined")} expected bytes")
    {
        Partial = partial ?? [];
        Expected = expected;
    }

    public byte[] Partial { get; }
    public int? Expected { get; }
}

/// <summary>
/// asyncio's <c>LimitOverrunError</c>: the separator was not found within the stream's limit.
/// <see cref="Consumed"/> is how many bytes can be consumed; the data stays in the buffer. (ReadLine
/// raises it too, where asyncio raises ValueError, after dropping the line as 3.11 does.)
/// </summary>
public class LimitOverrunException : Exception
{
    public LimitOverrunException(string message, int consumed) : base(message) => Consumed = consumed;

    public int Consumed { get; }
}

/// <summary>
/// asyncio's <c>ConnectionResetError</c> on streams: the peer reset the connection (a read or a drain
/// after the reset), or a drain found the connection already lost ("Connection lost"). An
/// <see cref="IOException"/>, as .NET streams fail, that a caller can tell from other I/O errors;
/// <see cref="Exception.InnerException"/> is the socket's error when there was one.
/// </summary>
public class ConnectionResetException : IOException
{
    public ConnectionResetException(string message, Exception? innerException = null) : base(message, innerException) { }

    /// <summary>Always <see cref="System.Net.Sockets.SocketError.ConnectionReset"/>.</summary>
    public System.Net.Sockets.SocketError SocketErrorCode => System.Net.Sockets.SocketError.ConnectionReset;
}
