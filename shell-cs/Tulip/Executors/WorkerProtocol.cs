using System.Buffers.Binary;
using System.Text.Json;

namespace Tulip.Executors.Protocol;

/// <summary>
/// The process pool's wire format, compiled into both Tulip (the parent) and Tulip.Worker (the child),
/// which share nothing else: frames of a 4-byte little-endian length and that many bytes of UTF-8 JSON,
/// over the worker's stdin (requests) and stdout (responses). One request at a time per worker.
/// <para>Request: <c>{"id":n, "assembly":path, "type":name, "method":name, "token":metadataToken,
/// "args":[…]}</c>. Response: <c>{"id":n, "ok":true, "result":…}</c> or <c>{"id":n, "ok":false,
/// "type":remoteTypeName, "message":…, "stack":…}</c>.</para>
/// </summary>
internal static class WorkerFrames
{
    /// <summary>Largest frame accepted (a corrupt length must not allocate gigabytes).</summary>
    public const int MaxFrame = 256 * 1024 * 1024;

    public static void Write(Stream stream, ReadOnlySpan<byte> payload)
    {
        Span<byte> header = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(header, payload.Length);
        stream.Write(header);
        stream.Write(payload);
        stream.Flush();
    }

    /// <summary>The next frame, or null at a clean end of stream (the other side closed it).</summary>
    public static byte[]? Read(Stream stream)
    {
        Span<byte> header = stackalloc byte[4];
        int got = ReadFully(stream, header);
        if (got == 0) return null;
        if (got < 4) throw new EndOfStreamException("the stream ended inside a frame header");
        int length = BinaryPrimitives.ReadInt32LittleEndian(header);
        if (length < 0 || length > MaxFrame) throw new InvalidDataException($"bad frame length {length}");
        var payload = new byte[length];
        if (ReadFully(stream, payload) < length) throw new EndOfStreamException("the stream ended inside a frame");
        return payload;
    }

    private static int ReadFully(Stream stream, Span<byte> buffer)
    {
        int total = 0;
        while (total < buffer.Length)
        {
            int n = stream.Read(buffer[total..]);
            if (n == 0) break;
            total += n;
        }

        return total;
    }

    /// <summary>Builds a JSON payload with a writer (the envelope is written by hand: no reflection).</summary>
    public static byte[] Json(Action<Utf8JsonWriter> write)
    {
        var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer)) write(w);
        return buffer.ToArray();
    }
}
