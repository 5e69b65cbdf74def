using System.Text;
using System.Runtime.CompilerServices;
using Tulip.Streams;

namespace Tulip;

/// <summary>
/// asyncio.StreamReader: buffered reads of a connection (CPython 3.11 streams.py, with 3.13's several
/// separators for <see cref="ReadUntilAsync(ReadOnlyMemory{byte}[])"/>). Only one read may wait at a
/// time. Reading pauses the transport when the buffer passes twice the limit and resumes it below.
/// Loop-affine: used on its loop's thread only (<see cref="EventLoopException"/> from another).
/// <para>
/// Every read takes a <see cref="CancellationToken"/> (issue 14): cancelling it is cancelling that
/// await in asyncio's sense. A token already cancelled ends the read at once, consuming nothing; a
/// token that fires while the read waits for data cancels the wait on the loop (an
/// <see cref="OperationCanceledException"/> carrying the token), and the bytes buffered so far stay in
/// the reader (CPython 3.11: a cancelled readexactly / readline / readuntil leaves them in
/// <c>_buffer</c>); data that arrived before the cancel reached the loop is returned. Only a read that
/// really waits registers with the token, and the registration is disposed when the wait ends.
/// </para>
/// </summary>
public sealed class LoopStreamReader
{
    /// <summary>asyncio's <c>_DEFAULT_LIMIT</c>: 64 KiB.</summary>
    public const int DefaultLimit = 64 * 1024;

    private static readonly byte[] Newline = "\n"u8.ToArray();
    private readonly EventLoop _loop;
    private readonly ByteBuffer _buffer = new();
    private readonly int _limit;
    private bool _eof, _paused;
    private Future<ValueTuple>? _waiter;

    // A ReadIntoAsync waiting with an empty buffer: FeedData copies straight into its target (one copy
    // instead of two); if the read is then cancelled, the bytes go back into the buffer.
    private DirectRead? _direct;

    private sealed class DirectRead(Memory<byte> target)
    {
        public readonly Memory<byte> Target = target;
        public int Count;
    }
    private Exception? _exception;
    private ITransport? _transport;

    /// <summary>A reader for <paramref name="loop"/> (any thread may make one; it is used on the loop's).</summary>
    [ThreadSafe]
    public LoopStreamReader(EventLoop loop, int limit = DefaultLimit)
    {
        ArgumentNullException.ThrowIfNull(loop);
        if (limit <= 0) throw new ArgumentOutOfRangeException(nameof(limit), "Limit cannot be <= 0");
        _loop = loop;
        _limit = limit;
    }

    /// <summary>The limit (fixed; any thread).</summary>
    [ThreadSafe]
    public int Limit => _limit;

    /// <summary>Bytes buffered and not read yet.</summary>
    public int BufferedCount
    {
        get
        {
            _loop.VerifyAccess();
            return _buffer.Count;
        }
    }

    /// <summary>
    /// The bytes buffered and not read yet, without consuming them (asyncio's <c>reader._buffer</c>),
    /// also after an exception was set. The view is valid until the next read or feed.
    /// </summary>
    public ReadOnlySpan<byte> Buffered => _buffer.Span;

    /// <summary>A copy of up to <paramref name="n"/> buffered bytes (all with -1), not consumed.</summary>
    public byte[] Peek(int n = -1)
    {
        _loop.VerifyAccess();
        var span = _buffer.Span;
        return (n < 0 || n >= span.Length ? span : span[..n]).ToArray();
    }

    /// <summary>The error the connection ended with, or null (asyncio's <c>exception()</c>).</summary>
    public Exception? Exception()
    {
        _loop.VerifyAccess();
        return _exception;
    }

    public void SetException(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        _loop.VerifyAccess();
        _exception = exception;
        var waiter = _waiter;
        if (waiter is null) return;
        _waiter = null;
        if (!waiter.Cancelled) waiter.SetException(exception);
    }

    public void SetTransport(ITransport transport)
    {
        ArgumentNullException.ThrowIfNull(transport);
        _loop.VerifyAccess();
        if (_transport is not null) throw new InvalidOperationException("Transport already set");
        _transport = transport;
    }

    /// <summary>EOF was fed and everything was read.</summary>
    public bool AtEof
    {
        get
        {
            _loop.VerifyAccess();
            return _eof && _buffer.Count == 0;
        }
    }

    public void FeedEof()
    {
        _loop.VerifyAccess();
        _eof = true;
        WakeUpWaiter();
    }

    public void FeedData(ReadOnlySpan<byte> data)
    {
        _loop.VerifyAccess();
        if (_eof) throw new InvalidOperationException("feed_data after feed_eof");
        if (data.IsEmpty) return;
        if (_direct is { Count: 0 } direct && _buffer.Count == 0 && _waiter is { Cancelled: false })
        {
            int n = Math.Min(data.Length, direct.Target.Length);
            data[..n].CopyTo(direct.Target.Span);
            direct.Count = n;
            _direct = null;
            data = data[n..];
        }

        _buffer.Append(data);
        WakeUpWaiter();
        if (_transport is not null && !_paused && _buffer.Count > 2L * _limit) // long: a limit near int.MaxValue must not wrap
        {
            _transport.PauseReading();
            _paused = true;
        }
    }

    private void WakeUpWaiter()
    {
        var waiter = _waiter;
        if (waiter is null) return;
        _waiter = null;
        if (!waiter.Cancelled) waiter.SetResult(default);
    }

    private void MaybeResumeTransport()
    {
        if (_paused && _buffer.Count <= _limit)
        {
            _paused = false;
            _transport!.ResumeReading();
        }
    }

    private async ValueTask WaitForData(string functionName, CancellationToken cancellationToken)
    {
        if (_waiter is not null)
            throw new EventLoopException($"{functionName}() called while another coroutine is already waiting for incoming data");
        if (_paused)
        {
            _paused = false;
            _transport!.ResumeReading();
        }

        var waiter = new Future<ValueTuple>(_loop);
        _waiter = waiter;
        try
        {
            // No token, no registration: the common case stays one await.
            if (cancellationToken.CanBeCanceled) await TokenCancellation.WaitAsync(waiter, cancellationToken);
            else await waiter;
        }
        finally
        {
            if (ReferenceEquals(_waiter, waiter)) _waiter = null;
        }
    }

    private void ThrowIfFailed()
    {
        if (_exception is { } e) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e);
    }

    /// <summary>
    /// Up to <paramref name="n"/> bytes (at least one unless at EOF: then empty); n &lt; 0 reads to EOF.
    /// A read to EOF that is cancelled puts back what it had read (CPython 3.11 drops those blocks:
    /// a cancelled <c>read()</c> leaves an empty buffer; here nothing read is lost).
    /// </summary>
    public ValueTask<byte[]> ReadAsync(int n = -1, CancellationToken cancellationToken = default)
    {
        _loop.VerifyAccess();
        return cancellationToken.IsCancellationRequested ? ValueTask.FromCanceled<byte[]>(cancellationToken) : ReadCore(n, cancellationToken);
    }

    // The token is looked at only where the read waits: a read to EOF whose data and EOF came before
    // the cancel completes (the check at the door is the public method's).
    private async ValueTask<byte[]> ReadCore(int n, CancellationToken cancellationToken)
    {
        ThrowIfFailed();
        if (n == 0) return [];
        if (n < 0)
        {
            var all = new ByteBuffer();
            try
            {
                while (true)
                {
                    var block = await ReadCore(_limit, cancellationToken);
                    if (block.Length == 0) break;
                    all.Append(block);
                }
            }
            catch (OperationCanceledException)
            {
                _buffer.Prepend(all.Span);
                throw;
            }

            return all.Take(all.Count);
        }

        if (_buffer.Count == 0 && !_eof) await WaitForData("read", cancellationToken);
        var data = _buffer.Take(n);
        MaybeResumeTransport();
        return data;
    }

    /// <summary>
    /// Reads into <paramref name="target"/>: at least one byte unless at EOF (then 0). No allocation when
    /// data is buffered. Cancel-safe: a read cancelled before data arrived consumed nothing; data that won
    /// the race is returned.
    /// </summary>
    public async ValueTask<int> ReadIntoAsync(Memory<byte> target, CancellationToken cancellationToken = default)
    {
        _loop.VerifyAccess();
        cancellationToken.ThrowIfCancellationRequested();
        ThrowIfFailed();
        if (target.IsEmpty) return 0;
        if (_buffer.Count == 0 && !_eof)
        {
            var direct = new DirectRead(target);
            _direct = direct;
            try
            {
                await WaitForData("read", cancellationToken);
            }
            catch
            {
                // Cancelled (or failed) after data was already copied into the caller's buffer: nothing
                // is lost, it goes back in front of the stream.
                _buffer.Prepend(target.Span[..direct.Count]);
                throw;
            }
            finally
            {
                if (ReferenceEquals(_direct, direct)) _direct = null;
            }

            if (direct.Count > 0)
            {
                // More may have arrived behind it (buffered): take what still fits.
                int n0 = direct.Count + _buffer.TakeInto(target.Span[direct.Count..]);
                MaybeResumeTransport();
                return n0;
            }
        }

        int n = _buffer.TakeInto(target.Span);
        MaybeResumeTransport();
        return n;
    }

    /// <summary>Exactly <paramref name="n"/> bytes, or <see cref="IncompleteReadException"/> at EOF.</summary>
    public async ValueTask<byte[]> ReadExactlyAsync(int n, CancellationToken cancellationToken = default)
    {
        if (n < 0) throw new ArgumentOutOfRangeException(nameof(n), "readexactly size can not be less than zero");
        _loop.VerifyAccess();
        cancellationToken.ThrowIfCancellationRequested();
        ThrowIfFailed();
        if (n == 0) return [];
        while (_buffer.Count < n)
        {
            if (_eof)
            {
                var incomplete = _buffer.Take(_buffer.Count);
                throw new IncompleteReadException(incomplete, n);
            }

            await WaitForData("readexactly", cancellationToken);
        }

        var data = _buffer.Take(n);
        MaybeResumeTransport();
        return data;
    }

    /// <summary>
    /// asyncio's <c>readline()</c>: a line as bytes, ending in "\n"; at EOF the partial line (or empty).
    /// Over the limit: the line is dropped if its newline was found, else the buffer is cleared, and
    /// <see cref="LimitOverrunException"/> is raised (3.11 raises ValueError after the same clean-up).
    /// </summary>
    public ValueTask<byte[]> ReadLineBytesAsync() => ReadLineBytesAsync(CancellationToken.None);

    /// <summary><see cref="ReadLineBytesAsync()"/>, whose wait <paramref name="cancellationToken"/> can cancel.</summary>
    public async ValueTask<byte[]> ReadLineBytesAsync(CancellationToken cancellationToken)
    {
        _loop.VerifyAccess();
        try
        {
            return await ReadUntilAsync(Newline, cancellationToken);
        }
        catch (IncompleteReadException e)
        {
            return e.Partial;
        }
        catch (LimitOverrunException e)
        {
            if (_buffer.StartsWithAt(Newline, e.Consumed)) _buffer.Drop(e.Consumed + Newline.Length);
            else _buffer.Clear();
            MaybeResumeTransport();
            throw new LimitOverrunException(e.Message, e.Consumed);
        }
    }

    /// <summary>
    /// A line as text, as <see cref="System.IO.TextReader.ReadLineAsync()"/> gives it: decoded with
    /// <paramref name="encoding"/> (UTF-8 by default), without its "\n" or "\r\n"; null at EOF. The
    /// line is read as <see cref="ReadLineBytesAsync()"/> reads it (same limit, same clean-up).
    /// </summary>
    public async ValueTask<string?> ReadLineAsync(Encoding? encoding = null, CancellationToken cancellationToken = default)
    {
        var line = await ReadLineBytesAsync(cancellationToken);
        if (line.Length == 0) return null;
        int n = line.Length;
        if (line[n - 1] == (byte)'\n')
        {
            n--;
            if (n > 0 && line[n - 1] == (byte)'\r') n--;
        }

        return (encoding ?? Encoding.UTF8).GetString(line, 0, n);
    }

    /// <summary>Data up to and including <paramref name="separator"/>.</summary>
    public ValueTask<byte[]> ReadUntilAsync(ReadOnlyMemory<byte> separator, CancellationToken cancellationToken = default)
    {
        _loop.VerifyAccess();
        return ReadUntilAsync([separator], cancellationToken);
    }

    /// <summary>Data up to and including the first of <paramref name="separators"/> to end (3.13: the
    /// shortest match wins). <see cref="IncompleteReadException"/> at EOF (the buffer is emptied into it);
    /// <see cref="LimitOverrunException"/> past the limit (the data stays).</summary>
    public ValueTask<byte[]> ReadUntilAsync(params ReadOnlyMemory<byte>[] separators) => ReadUntilAsync(separators, default);

    /// <summary><see cref="ReadUntilAsync(ReadOnlyMemory{byte}[])"/> with a token (a params array must come last,
    /// so the token takes the array itself).</summary>
    public async ValueTask<byte[]> ReadUntilAsync(ReadOnlyMemory<byte>[] separators, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(separators);
        if (separators.Length == 0) throw new ArgumentException("Separator should contain at least one element", nameof(separators));
        var seps = separators.OrderBy(s => s.Length).ToArray();
        int minLen = seps[0].Length, maxLen = seps[^1].Length;
        if (minLen == 0) throw new ArgumentException("Separator should be at least one-byte string", nameof(separators));
        _loop.VerifyAccess();
        cancellationToken.ThrowIfCancellationRequested();
        ThrowIfFailed();
        int offset = 0, matchStart = -1, matchEnd = -1;
        while (true)
        {
            int buflen = _buffer.Count;
            if (buflen - offset >= minLen)
            {
                foreach (var sep in seps)
                {
                    int isep = _buffer.IndexOf(sep.Span, offset);
                    if (isep != -1)
                    {
                        int end = isep + sep.Length;
                        if (matchEnd == -1 || end < matchEnd)
                        {
                            matchEnd = end;
                            matchStart = isep;
                        }
                    }
                }

                if (matchEnd != -1) break;
                offset = Math.Max(0, buflen + 1 - maxLen);
                if (offset > _limit) throw new LimitOverrunException("Separator is not found, and chunk exceed the limit", offset);
            }

            if (_eof)
            {
                var chunk = _buffer.Take(_buffer.Count);
                throw new IncompleteReadException(chunk, null);
            }

            await WaitForData("readuntil", cancellationToken);
        }

        if (matchStart > _limit) throw new LimitOverrunException("Separator is found, but chunk is longer than limit", matchStart);
        var data = _buffer.Take(matchEnd);
        MaybeResumeTransport();
        return data;
    }

    /// <summary>The lines of the stream as bytes, each with its "\n", until EOF (asyncio's
    /// <c>async for line in reader</c>). The token (or WithCancellation's) cancels each wait as
    /// <see cref="ReadLineBytesAsync()"/>'s does.</summary>
    public async IAsyncEnumerable<byte[]> ReadLinesAsBytesAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        while (true)
        {
            var line = await ReadLineBytesAsync(cancellationToken);
            if (line.Length == 0) yield break;
            yield return line;
        }
    }

    /// <summary>The lines of the stream as text (see <see cref="ReadLineAsync(Encoding?)"/>), until EOF.</summary>
    public async IAsyncEnumerable<string> ReadLinesAsync(Encoding? encoding = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        while (true)
        {
            var line = await ReadLineAsync(encoding, cancellationToken);
            if (line is null) yield break;
            yield return line;
        }
    }

    /// <summary>The data of the stream in chunks of at most <paramref name="chunkSize"/> bytes, until EOF.</summary>
    public async IAsyncEnumerable<byte[]> ReadChunksAsync(int chunkSize = DefaultLimit, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(chunkSize);
        while (true)
        {
            var chunk = await ReadAsync(chunkSize, cancellationToken);
            if (chunk.Length == 0) yield break;
            yield return chunk;
        }
    }

    public override string ToString()
    {
        var parts = new List<string> { "LoopStreamReader" };
        if (_buffer.Count > 0) parts.Add($"{_buffer.Count} bytes");
        if (_eof) parts.Add("eof");
        if (_limit != DefaultLimit) parts.Add($"limit={_limit}");
        if (_waiter is not null) parts.Add("waiter");
        if (_exception is not null) parts.Add($"exception={_exception.GetType().Name}");
        if (_paused) parts.Add("paused");
        return $"<{string.Join(' ', parts)}>";
    }
}
