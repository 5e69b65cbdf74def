using System.Net;

namespace Tulip;

/// <summary>
/// asyncio.BaseProtocol: what every protocol hears from its transport. Callbacks run on the loop
/// thread, in the grammar <c>ConnectionMade (DataReceived* EofReceived?)? ConnectionLost</c>; an
/// exception escaping one goes to the loop's exception handler and the connection is closed.
/// </summary>
public abstract class BaseProtocol
{
    /// <summary>The connection is up: keep the transport to write to it.</summary>
    public virtual void ConnectionMade(ITransportBase transport) { }

    /// <summary>The connection is gone: null for a regular close or EOF, else the error.</summary>
    public virtual void ConnectionLost(Exception? exception) { }

    /// <summary>The transport's write buffer went over the high-water mark: stop writing.</summary>
    public virtual void PauseWriting() { }

    /// <summary>The buffer drained to the low-water mark: writing may resume.</summary>
    public virtual void ResumeWriting() { }
}

/// <summary>asyncio.Protocol: a stream protocol that receives data as it arrives.</summary>
public abstract class Protocol : BaseProtocol
{
    /// <summary>Bytes arrived. The span is valid only during the call: copy what you keep.</summary>
    public virtual void DataReceived(ReadOnlySpan<byte> data) { }

    /// <summary>The peer will send no more. Return true to keep the connection half-open (you close it
    /// later); false (the default) closes the transport.</summary>
    public virtual bool EofReceived() => false;
}

/// <summary>asyncio.BufferedProtocol: the transport reads straight into the protocol's buffer (no copy).</summary>
public abstract class BufferedProtocol : BaseProtocol
{
    /// <summary>A buffer to read into; <paramref name="sizeHint"/> is -1 or the wanted size.</summary>
    public abstract Memory<byte> GetBuffer(int sizeHint);

    /// <summary>The first <paramref name="count"/> bytes of the last buffer were filled.</summary>
    public abstract void BufferUpdated(int count);

    public virtual bool EofReceived() => false;
}

/// <summary>asyncio.DatagramProtocol.</summary>
public abstract class DatagramProtocol : BaseProtocol
{
    /// <summary>A datagram arrived from <paramref name="from"/>; the span is valid only during the call.</summary>
    public virtual void DatagramReceived(ReadOnlySpan<byte> data, EndPoint from) { }

    /// <summary>A send or receive failed (ICMP errors, for instance); the endpoint stays open.</summary>
    public virtual void ErrorReceived(Exception exception) { }
}
