using System.Net;

namespace Tulip;

/// <summary>
/// asyncio.BaseTransport. Loop-affine: used on its loop's thread only (<see cref="EventLoopException"/>
/// from another: a write from two threads would interleave the byte stream).
/// </summary>
public interface ITransportBase
{
    /// <summary>Closes: buffered data is still sent, then the protocol's ConnectionLost(null) is called.</summary>
    void Close();

    bool IsClosing { get; }

    /// <summary>"peername", "sockname", "socket" (asyncio's names): fixed when the connection was made, so any thread may ask.</summary>
    [ThreadSafe]
    object? GetExtraInfo(string name, object? defaultValue = null);

    BaseProtocol Protocol { get; set; }
}

/// <summary>asyncio.Transport: a bidirectional stream.</summary>
public interface ITransport : ITransportBase
{
    /// <summary>Sends what it can now and buffers the rest (never blocks).</summary>
    void Write(ReadOnlySpan<byte> data);

    void WriteLines(IEnumerable<ReadOnlyMemory<byte>> lines);

    /// <summary>Closes the write side once the buffer is flushed (half-close).</summary>
    void WriteEof();

    /// <summary>Whether <see cref="WriteEof"/> is supported: a constant of the transport's kind (any thread).</summary>
    [ThreadSafe]
    bool CanWriteEof();

    /// <summary>Closes at once: buffered data is discarded.</summary>
    void Abort();

    /// <summary>Closes at once with an error: buffered data is discarded and the protocol's
    /// <c>ConnectionLost</c> gets <paramref name="exception"/>, so stream users see it
    /// (asyncio's <c>_force_close(exc)</c>). Transports written before it existed do not support it.</summary>
    void Abort(Exception exception) => throw new NotSupportedException($"{GetType().Name} cannot be aborted with an error");

    bool IsReading { get; }
    void PauseReading();
    void ResumeReading();

    /// <summary>Flow control marks: PauseWriting above <paramref name="high"/>, ResumeWriting at or below
    /// <paramref name="low"/> (defaults 64 KiB and high/4; asyncio's rules when only one is given).</summary>
    void SetWriteBufferLimits(int? high = null, int? low = null);

    int GetWriteBufferSize();

    (int Low, int High) GetWriteBufferLimits();
}

/// <summary>asyncio.DatagramTransport.</summary>
public interface IDatagramTransport : ITransportBase
{
    /// <summary>Sends a datagram to <paramref name="to"/> (or the connected peer when null).</summary>
    void SendTo(ReadOnlySpan<byte> data, EndPoint? to = null);

    void Abort();

    int GetWriteBufferSize();
}
