namespace Tulip.Transports;

/// <summary>The bytes a transport could not send yet: one growable array with a read offset.</summary>
internal sealed class WriteBuffer
{
    private byte[] _data = [];
    private int _start, _end;

    public int Count => _end - _start;

    public ReadOnlySpan<byte> Pending => _data.AsSpan(_start, _end - _start);

    public void Append(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length > _data.Length - _end)
        {
            int count = Count;
            if (count + bytes.Length <= _data.Length / 2 + 1 && _start > 0)
            {
                // Enough room once the sent prefix is dropped.
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

    public void Consume(int n)
    {
        _start += n;
        if (_start == _end) Clear();
    }

    public void Clear()
    {
        _start = _end = 0;
        // Give back a large buffer once it has drained (a burst should not pin memory).
        if (_data.Length > 1 << 20) _data = [];
    }
}
