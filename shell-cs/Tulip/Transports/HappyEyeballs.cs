using System.Net;
using System.Net.Sockets;

namespace Tulip.Transports;

/// <summary>
/// How create_connection tries a host's addresses (asyncio 3.11 <c>base_events.create_connection</c>,
/// <c>_interleave_addrinfos</c> and <c>staggered.staggered_race</c>, RFC 8305 "Happy Eyeballs"): in
/// the resolver's order one after another, or, with a delay, as a staggered race: each attempt starts
/// when the one before it fails or the delay passes, the first to connect wins and the others are
/// cancelled (a loser that connects anyway is closed). Every attempt's error is kept: when all fail,
/// one error is raised as itself (or when all read the same), otherwise "Multiple exceptions: …".
/// </summary>
internal static class HappyEyeballs
{
    /// <summary>asyncio's _interleave_addrinfos: the first <paramref name="firstFamilyCount"/> of the first
    /// family, then one of each family in turn.</summary>
    public static List<AddrInfo> Interleave(IReadOnlyList<AddrInfo> infos, int firstFamilyCount)
    {
        var byFamily = new List<Queue<AddrInfo>>();
        var index = new Dictionary<AddressFamily, int>();
        foreach (var info in infos)
        {
            if (!index.TryGetValue(info.Family, out int i))
            {
                i = byFamily.Count;
                index.Add(info.Family, i);
                byFamily.Add(new Queue<AddrInfo>());
            }

            byFamily[i].Enqueue(info);
        }

        var result = new List<AddrInfo>(infos.Count);
        for (int k = 0; k < firstFamilyCount - 1 && byFamily.Count > 0 && byFamily[0].Count > 0; k++) result.Add(byFamily[0].Dequeue());
        while (result.Count < infos.Count)
        {
            foreach (var q in byFamily)
            {
                if (q.Count > 0) result.Add(q.Dequeue());
            }
        }

        return result;
    }

    /// <summary>One attempt: a socket for <paramref name="info"/>, bound to <paramref name="local"/> if
    /// given, connected. Its error is recorded; cancelled or failed, the socket is closed.</summary>
    private static async Task<Socket> ConnectOne(EventLoop loop, AddrInfo info, EndPoint? local, List<(EndPoint, Exception)> errors,
        CancellationToken cancellationToken)
    {
        var sock = new Socket(info.Family, SocketType.Stream, ProtocolType.Tcp) { Blocking = false };
        try
        {
            if (local is not null) sock.Bind(local);
            await loop.SockConnectAsync(sock, info.Address, cancellationToken);
            return sock;
        }
        catch (Exception e)
        {
            sock.Dispose();
            if (e is SocketException) errors.Add((info.Address, e));
            throw;
        }
    }

    /// <summary>Tries <paramref name="infos"/> (sequentially, or staggered by <paramref name="delay"/>
    /// seconds); the connected socket, or the aggregated error.</summary>
    public static async Task<Socket> Connect(EventLoop loop, IReadOnlyList<AddrInfo> infos, EndPoint? local, double? delay,
        CancellationToken cancellationToken)
    {
        var errors = new List<(EndPoint, Exception)>();
        Socket? sock = null;
        if (delay is null)
        {
            foreach (var info in infos)
            {
                try
                {
                    sock = await ConnectOne(loop, info, local, errors, cancellationToken);
                    break;
                }
                catch (SocketException)
                {
                }
            }
        }
        else
        {
            sock = await StaggeredRace(loop, infos, local, delay.Value, errors, cancellationToken);
        }

        return sock ?? throw Aggregate(errors);
    }

    private static Exception Aggregate(List<(EndPoint Address, Exception Error)> errors)
    {
        if (errors.Count == 0) return new SocketException((int)SocketError.HostNotFound, "getaddrinfo() returned empty list");
        if (errors.Count == 1) return errors[0].Error;
        // asyncio's str(OSError): "[Errno 111] Connect call failed ('::1', 1, 0, 0)".
        var texts = errors.Select(e => e.Error is SocketException se
            ? $"[Errno {se.NativeErrorCode}] Connect call failed ({e.Address}): {se.Message}"
            : $"{e.Error.Message} ({e.Address})").ToList();
        if (texts.All(t => t == texts[0])) return errors[0].Error;
        return new ConnectionAttemptsException($"Multiple exceptions: {string.Join(", ", texts)}", errors);
    }

    private static async Task<Socket?> StaggeredRace(EventLoop loop, IReadOnlyList<AddrInfo> infos, EndPoint? local, double delay,
        List<(EndPoint, Exception)> errors, CancellationToken cancellationToken)
    {
        var done = loop.CreateFuture<Socket?>();
        var running = new List<LoopTask<Socket>>();
        int started = 0, finished = 0;
        TimerHandle? timer = null;

        void StartNext()
        {
            timer?.Cancel();
            timer = null;
            if (done.Done || started == infos.Count) return;
            var info = infos[started++];
            var attempt = loop.CreateTask(() => ConnectOne(loop, info, local, errors, CancellationToken.None));
            int mine = started;
            running.Add(attempt);
            attempt.AddDoneCallback(_ =>
            {
                finished++;
                bool ok = !attempt.Cancelled && attempt.Exception() is null;
                if (ok)
                {
                    var s = attempt.Result();
                    if (done.Done) s.Dispose(); // connected after another won: not needed
                    else done.SetResult(s);
                    return;
                }

                // A failure starts the next attempt at once (staggered_race's previous_failed).
                if (mine == started) StartNext();
                if (!done.Done && finished == infos.Count) done.SetResult(null);
            });
            if (started < infos.Count) timer = loop.CallLater(delay, StartNext);
        }

        StartNext();
        using var canceller = TokenCanceller.Start(done, cancellationToken);
        try
        {
            return await done;
        }
        catch (CancelledException) when (canceller is { Fired: true })
        {
            throw TokenCancellation.Cancelled(cancellationToken);
        }
        finally
        {
            timer?.Cancel();
            foreach (var t in running)
            {
                if (!t.Done) t.Cancel();
            }
        }
    }
}
