namespace Tulip.Streams;

/// <summary>
/// A growable array with a read offset (a bytearray with cheap deletes at the front): a stream
/// reader's buffer, and a transport's bytes not sent yet.
/// </summary>
internal sealed class ByteBuffer
{
    private byte[] _data = [];
    private int _start, _end;

    public int Count => _end - _start;

    public ReadOnlySpan<byte> Span => _data.AsSpan(_start, _end - _start);

    public void Append(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length > _data.Length - _end)
        {
            int count = Count;
            if (_start > 0 && count + bytes.Length <= _data.Length)
            {
                Buffer.BlockCopy(_data, _start, _data, 0, count);
            }
            else
            {
                var bigger = new byte[Math.Max(_data.Length * 2, count + bytes.Length)];
                Buffer.BlockCopy(_data, _start, bigger, 0, count);
                _data = bigger;
            }

            _start = 0;
            _end = count;
        }

        bytes.CopyTo(_data.AsSpan(_end));
        _end += bytes.Length;
    }

    /// <summary>Removes and returns the first <paramref name="n"/> bytes.</summary>
    public byte[] Take(int n)
    {
        n = Math.Min(n, Count);
        var result = _data.AsSpan(_start, n).ToArray();
        Drop(n);
        return result;
    }

    /// <summary>Copies the first bytes into <paramref name="target"/> and removes them; returns how many.</summary>
    public int TakeInto(Span<byte> target)
    {
        int n = Math.Min(target.Length, Count);
        _data.AsSpan(_start, n).CopyTo(target);
        Drop(n);
        return n;
    }

    /// <summary>Puts <paramref name="bytes"/> back in front of what is buffered.</summary>
    public void Prepend(ReadOnlySpan<byte> bytes)
    {
        if (bytes.IsEmpty) return;
        if (bytes.Length <= _start)
        {
            _start -= bytes.Length;
            bytes.CopyTo(_data.AsSpan(_start));
            return;
        }

        var rest = Span.ToArray();
        _start = _end = 0;
        Append(bytes);
        Append(rest);
    }

    public void Drop(int n)
    {
        _start += n;
        if (_start >= _end) _start = _end = 0;
    }

    public void Clear()
    {
        _start = _end = 0;
        // Give back a large buffer once it has drained (a burst should not pin memory).
        if (_data.Length > 1 << 20) _data = [];
    }

    /// <summary>Index of <paramref name="separator"/> at or after <paramref name="offset"/>, or -1.</summary>
    public int IndexOf(ReadOnlySpan<byte> separator, int offset)
    {
        if (offset >= Count) return -1;
        int i = Span[offset..].IndexOf(separator);
        return i < 0 ? -1 : i + offset;
    }

    public bool StartsWithAt(ReadOnlySpan<byte> separator, int offset) =>
        offset + separator.Length <= Count && Span.Slice(offset, separator.Length).SequenceEqual(separator);
}
