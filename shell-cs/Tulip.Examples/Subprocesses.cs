using System.Text;

namespace Tulip.Examples;

/// <summary>
/// Working with subprocesses (PyMOTW's asyncio_subprocess_*). The chapter runs <c>df -hl</c>, whose
/// output depends on the machine; these list a directory the example makes (<c>ls -1</c>), so the
/// output is the same everywhere, and pipe text through <c>tr</c>.
/// </summary>
public static class Subprocesses
{
    private const string Section = "Working with Subprocesses";

    public static IEnumerable<Example> Examples =>
    [
        new("subprocess_protocol", Section,
            "SubprocessExec with a SubprocessProtocol: collect a command's output (ls -1 of a fresh directory), parse it, report the exit code",
            SubprocessProtocolExample),
        new("subprocess_coroutine", Section,
            "CreateSubprocessExec with stdout as a stream: read it line by line, then WaitAsync for the exit code",
            SubprocessCoroutine),
        new("subprocess_protocol_write", Section,
            "SubprocessExec with stdin and stdout pipes: write text to tr through the stdin pipe transport, collect the upper-cased text",
            SubprocessProtocolWrite),
        new("subprocess_coroutine_write", Section,
            "CreateSubprocessExec + CommunicateAsync: send text to tr, read back the transformed text and the exit code",
            SubprocessCoroutineWrite),
    ];

    /// <summary>A directory with three files, removed by the caller.</summary>
    private static string MakeDirectory()
    {
        var dir = Directory.CreateTempSubdirectory("tulip-subprocess-").FullName;
        foreach (var name in new[] { "alpha.txt", "beta.txt", "gamma.txt" }) File.WriteAllText(Path.Combine(dir, name), name);
        return dir;
    }

    private static List<string> Parse(string output) => output.Split('\n', StringSplitOptions.RemoveEmptyEntries).ToList();

    /// <summary>asyncio_subprocess_protocol.py's DFProtocol: buffers stdout, reports at the end.</summary>
    private sealed class ListingProtocol(ExampleContext ctx, Future<(int, List<string>)> done) : SubprocessProtocol
    {
        private static readonly string[] FdNames = ["stdin", "stdout", "stderr"];
        private readonly MemoryStream _buffer = new();
        private ISubprocessTransport? _transport;

        public override void ConnectionMade(ITransportBase transport)
        {
            ctx.WriteLine("process started");
            _transport = (ISubprocessTransport)transport;
        }

        public override void PipeDataReceived(int fd, ReadOnlySpan<byte> data)
        {
            if (fd == 1) _buffer.Write(data);
        }

        // Reported when the pipe closes, not per chunk: how the output is split into reads varies.
        public override void PipeConnectionLost(int fd, Exception? exception)
        {
            if (fd == 1) ctx.WriteLine($"read {_buffer.Length} bytes from {FdNames[fd]}");
        }

        // Reported at ConnectionLost, which comes after the exit and after every pipe closed (the
        // exit itself may come before or after the last bytes are read).
        public override void ConnectionLost(Exception? exception)
        {
            int code = _transport!.GetReturnCode() ?? -1;
            ctx.WriteLine($"exited w/ return code {code}");
            var results = code == 0 ? Parse(Encoding.UTF8.GetString(_buffer.ToArray())) : [];
            done.SetResult((code, results));
        }
    }

    private static void SubprocessProtocolExample(ExampleContext ctx)
    {
        var dir = MakeDirectory();
        try
        {
            var (code, results) = ctx.Run(async () =>
            {
                var loop = EventLoop.GetRunningLoop();
                ctx.WriteLine("in run_ls");
                var done = new Future<(int, List<string>)>(loop);
                ctx.WriteLine("launching process");
                var (transport, _) = await loop.SubprocessExecAsync(() => new ListingProtocol(ctx, done), "ls", ["-1", dir],
                    new SubprocessOptions { Stdin = SubprocessRedirect.DevNull, Stderr = SubprocessRedirect.DevNull });
                ctx.WriteLine("launched process");
                try
                {
                    return await done;
                }
                finally
                {
                    transport.Close();
                }
            });
            ctx.WriteLine($"return code {code}");
            ctx.WriteLine("parsing results");
            foreach (var r in results) ctx.WriteLine(r);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    private static void SubprocessCoroutine(ExampleContext ctx)
    {
        var dir = MakeDirectory();
        try
        {
            var (code, results) = ctx.Run(async () =>
            {
                ctx.WriteLine("in run_ls");
                var buffer = new StringBuilder();
                ctx.WriteLine("launching process");
                await using var proc = await Asyncio.CreateSubprocessExec("ls", ["-1", dir], new SubprocessOptions { Stdout = SubprocessRedirect.Pipe });
                ctx.WriteLine("process started");
                while (true)
                {
                    var line = Encoding.UTF8.GetString(await proc.Stdout!.ReadLineBytesAsync());
                    ctx.WriteLine($"read '{line.Replace("\n", "\\n")}'");
                    if (line.Length == 0)
                    {
                        ctx.WriteLine("no more output from command");
                        break;
                    }

                    buffer.Append(line);
                }

                ctx.WriteLine("waiting for process to complete");
                int returnCode = await proc.WaitAsync();
                ctx.WriteLine($"return code {returnCode}");
                return (returnCode, returnCode == 0 ? Parse(buffer.ToString()) : []);
            });
            ctx.WriteLine("parsing results");
            ctx.WriteLine($"return code: {code}");
            foreach (var r in results) ctx.WriteLine(r);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    private const string Text = "line one\nline two\nline three\n";

    /// <summary>asyncio_subprocess_protocol_write.py's ToUpper.</summary>
    private sealed class ToUpper(ExampleContext ctx, Future<(int, List<string>)> done) : SubprocessProtocol
    {
        private readonly MemoryStream _buffer = new();
        private ISubprocessTransport? _transport;

        public override void ConnectionMade(ITransportBase transport)
        {
            ctx.WriteLine("process started");
            _transport = (ISubprocessTransport)transport;
        }

        public override void PipeDataReceived(int fd, ReadOnlySpan<byte> data)
        {
            if (fd == 1) _buffer.Write(data);
        }

        public override void PipeConnectionLost(int fd, Exception? exception)
        {
            if (fd == 1) ctx.WriteLine($"read {_buffer.Length} bytes from stdout");
        }

        public override void ConnectionLost(Exception? exception)
        {
            ctx.WriteLine("process exited");
            int code = _transport!.GetReturnCode() ?? -1;
            ctx.WriteLine($"return code {code}");
            done.SetResult((code, code == 0 ? Parse(Encoding.UTF8.GetString(_buffer.ToArray())) : []));
        }
    }

    private static void SubprocessProtocolWrite(ExampleContext ctx)
    {
        var (code, results) = ctx.Run(async () =>
        {
            var loop = EventLoop.GetRunningLoop();
            var done = new Future<(int, List<string>)>(loop);
            ctx.WriteLine("launching process");
            var (transport, _) = await loop.SubprocessExecAsync(() => new ToUpper(ctx, done), "tr", ["[:lower:]", "[:upper:]"],
                new SubprocessOptions { Stderr = SubprocessRedirect.DevNull });
            try
            {
                ctx.WriteLine("writing input");
                var stdin = transport.GetPipeTransport(0)!;
                stdin.Write(Encoding.UTF8.GetBytes(Text));
                stdin.Close(); // flushes, then closes: tr sees EOF
                ctx.WriteLine("waiting for process to complete");
                return await done;
            }
            finally
            {
                transport.Close();
            }
        });
        ctx.WriteLine($"return code: {code}");
        ctx.WriteLine("results:");
        foreach (var r in results) ctx.WriteLine(r);
    }

    private static void SubprocessCoroutineWrite(ExampleContext ctx)
    {
        var (code, results) = ctx.Run(async () =>
        {
            ctx.WriteLine("in to_upper");
            ctx.WriteLine("launching process");
            await using var proc = await Asyncio.CreateSubprocessExec("tr", ["[:lower:]", "[:upper:]"],
                new SubprocessOptions { Stdin = SubprocessRedirect.Pipe, Stdout = SubprocessRedirect.Pipe });
            ctx.WriteLine($"pid {proc.Pid}");
            ctx.WriteLine("communicating with process");
            var (stdout, _) = await proc.CommunicateAsync(Encoding.UTF8.GetBytes(Text));
            ctx.WriteLine("waiting for process to complete");
            int returnCode = await proc.WaitAsync();
            ctx.WriteLine($"return code {returnCode}");
            return (returnCode, returnCode == 0 ? Encoding.UTF8.GetString(stdout!) : "");
        });
        ctx.WriteLine($"return code: {code}");
        ctx.WriteLine("results:");
        foreach (var r in Parse(results)) ctx.WriteLine(r);
    }
}
