namespace Tulip.Subprocess;

/// <summary>
/// CPython 3.11's <c>SubprocessStreamProtocol</c>: stdout and stderr feed stream readers (whose limit
/// pauses the pipe), stdin is a stream writer whose drain follows the stdin pipe's flow control (a
/// <see cref="StreamReaderProtocol"/> without a reader holds the drain waiters), and the transport is
/// closed once the child has exited and both read pipes are done.
/// </summary>
internal sealed class SubprocessStreamProtocol(EventLoop loop, int limit) : SubprocessProtocol
{
    private readonly StreamReaderProtocol _stdinProtocol = new(null, null, loop);
    private readonly List<int> _pipeFds = new();
    private ISubprocessTransport? _transport;
    private bool _processExited;

    public LoopStreamWriter? Stdin { get; private set; }
    public LoopStreamReader? Stdout { get; private set; }
    public LoopStreamReader? Stderr { get; private set; }

    public override void ConnectionMade(ITransportBase transport)
    {
        var t = (ISubprocessTransport)transport;
        _transport = t;
        if (t.GetPipeTransport(1) is { } stdout)
        {
            Stdout = new LoopStreamReader(loop, limit);
            Stdout.SetTransport(stdout);
            _pipeFds.Add(1);
        }

        if (t.GetPipeTransport(2) is { } stderr)
        {
            Stderr = new LoopStreamReader(loop, limit);
            Stderr.SetTransport(stderr);
            _pipeFds.Add(2);
        }

        if (t.GetPipeTransport(0) is { } stdin)
        {
            _stdinProtocol.ConnectionMade(stdin);
            Stdin = new LoopStreamWriter(stdin, _stdinProtocol, null, loop);
        }
    }

    public override void PipeDataReceived(int fd, ReadOnlySpan<byte> data)
    {
        var reader = fd == 1 ? Stdout : fd == 2 ? Stderr : null;
        reader?.FeedData(data);
    }

    public override void PipeConnectionLost(int fd, Exception? exception)
    {
        if (fd == 0)
        {
            Stdin?.Close();
            _stdinProtocol.ConnectionLost(exception);
            return;
        }

        var reader = fd == 1 ? Stdout : fd == 2 ? Stderr : null;
        if (reader is not null)
        {
            if (exception is null) reader.FeedEof();
            else reader.SetException(exception);
        }

        _pipeFds.Remove(fd);
        MaybeCloseTransport();
    }

    public override void ProcessExited()
    {
        _processExited = true;
        MaybeCloseTransport();
    }

    public override void PauseWriting() => _stdinProtocol.PauseWriting();

    public override void ResumeWriting() => _stdinProtocol.ResumeWriting();

    private void MaybeCloseTransport()
    {
        if (_pipeFds.Count == 0 && _processExited && _transport is not null)
        {
            _transport.Close();
            _transport = null;
        }
    }
}
