using System.Net.Sockets;
using Tulip.Core;

namespace Tulip.Io;

/// <summary>
/// The loop's I/O readiness backend (DESIGN.md: the reactor on the loop thread), in mio's shape: it
/// knows sockets by token, and a poll returns data — (token, readiness) pairs — and calls no user
/// code. The loop hands the poll's result to the core (<c>Polled</c>), which decides which handles
/// the readiness admits and where they go in the batch. Non-blocking sockets are read and written
/// directly on the loop thread. Two backends behind this seam: <see cref="EpollReactor"/> (Linux) and
/// <see cref="SelectReactor"/> (portable); the transport suite runs against both. Loop thread only,
/// except <see cref="Wake"/>.
/// </summary>
internal interface IReactor : IDisposable
{
    /// <summary>Watches <paramref name="socket"/> for the given interests (at least one); returns its
    /// token: small, non-negative, unique among the sockets watched now (reused after
    /// <see cref="Unregister"/>).</summary>
    int Register(Socket socket, bool read, bool write);

    /// <summary>Watches a raw descriptor (a pipe end, a pidfd) that is not a <see cref="Socket"/>; its
    /// owner unregisters it before closing it. Backends that cannot watch one throw
    /// <see cref="NotSupportedException"/>.</summary>
    int RegisterFd(int fd, bool read, bool write);

    /// <summary>Changes the interests of a registered token (at least one).</summary>
    void Modify(int token, bool read, bool write);

    /// <summary>Stops watching the token's socket (before it is closed; a closed one is tolerated).</summary>
    void Unregister(int token);

    /// <summary>How many sockets are watched.</summary>
    int Count { get; }

    /// <summary>Waits at most <paramref name="timeoutTicks"/> (-1: no limit) for readiness or a wake,
    /// then writes one event per ready socket into <paramref name="events"/> (at most its length; the
    /// rest stay ready for the next poll). Returns how many it wrote. Calls no user code.</summary>
    int Poll(long timeoutTicks, Span<IoEvent> events);

    /// <summary>Ends a poll early (thread-safe).</summary>
    void Wake();
}

/// <summary>Which reactor a loop uses.</summary>
public enum ReactorKind
{
    /// <summary>epoll where available (Linux x64/arm64), else the portable one.</summary>
    Default,

    /// <summary>epoll (Linux).</summary>
    Epoll,

    /// <summary>Socket.Select: portable, for macOS and Windows (and to test the seam).</summary>
    Select,
}
