using System.Buffers;

namespace Tulip.Streams;

/// <summary>
/// A growable array with a read offset (a bytearray with cheap deletes at the front): a stream
/// reader's buffer, and a transport's bytes not sent yet.
/// </summary>
/// <remarks>
/// Storage is held only while it holds something. A transport that took a 50 MB burst for a slow peer
/// used to keep the doubled array (~81 MiB) for the rest of the connection's life; CPython's bytearray
/// frees its storage when <c>del buf[:n]</c> empties it, and so does this. Arrays up to
/// <see cref="PoolLimit"/> are rented from <see cref="ArrayPool{T}.Shared"/> and returned when the buffer
/// empties, so a busy connection whose buffer fills and empties all the time (a partial send per echo)
/// allocates nothing, and an idle one holds nothing. Larger arrays exist only for bursts past the flow
/// control: they are plain arrays left to the GC (the shared pool would keep them alive), and one is
/// swapped for a smaller copy once three quarters of it are free, so a buffer that drains slowly without
/// ever quite emptying gives memory back too (amortised: each byte is copied O(1) times).
/// </remarks>
internal sealed class ByteBuffer
{
    /// <summary>The largest array taken from the shared pool (bigger ones are plain arrays).</summary>
    internal const int PoolLimit = 1 << 20;

    private byte[] _data = [];
    private bool _pooled;
    private int _start, _end;

    public int Count => _end - _start;

    /// <summary>The bytes of storage held (what the buffer costs the heap, whatever it holds now).</summary>
    public int Capacity => _data.Length;

    public ReadOnlySpan<byte> Span => _data.AsSpan(_start, _end - _start);

    public void Append(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length > _data.Length - _end)
        {
            int count = Count;
            if (_start > 0 && count + bytes.Length <= _data.Length)
            {
                Buffer.BlockCopy(_data, _start, _data, 0, count);
                _start = 0;
                _end = count;
            }
            else
            {
                long doubled = Math.Min(2L * _data.Length, Array.MaxLength);
                Reallocate((int)Math.Max(doubled, checked(count + bytes.Length)));
            }
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
        if (_start >= _end)
        {
            Clear();
        }
        else if (!_pooled && Count <= _data.Length / 4)
        {
            // A burst's big array, mostly drained: keep twice what is left.
            Reallocate(2 * Count);
        }
    }

    /// <summary>Empties the buffer and lets its storage go.</summary>
    public void Clear()
    {
        _start = _end = 0;
        Release();
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

    /// <summary>Moves what is buffered to the front of a new array of at least <paramref name="minimum"/> bytes.</summary>
    private void Reallocate(int minimum)
    {
        int count = Count;
        bool pooled = minimum <= PoolLimit;
        // Uninitialised: every byte of it is written before it is read.
        var next = pooled ? ArrayPool<byte>.Shared.Rent(minimum) : GC.AllocateUninitializedArray<byte>(minimum);
        Buffer.BlockCopy(_data, _start, next, 0, count);
        Release();
        _data = next;
        _pooled = pooled;
        _start = 0;
        _end = count;
    }

    private void Release()
    {
        var old = _data;
        if (old.Length == 0) return;
        _data = [];
        if (_pooled) ArrayPool<byte>.Shared.Return(old);
        _pooled = false;
    }
}
