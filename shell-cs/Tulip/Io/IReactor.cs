using System.Net.Sockets;

namespace Tulip.Io;

/// <summary>What a registered socket is told when it is ready (loop thread only).</summary>
internal interface IIoHandler
{
    /// <summary>Readiness for this registration: <paramref name="readable"/> / <paramref name="writable"/>
    /// (an error or hang-up reports both, so the next read or write meets it).</summary>
    void OnReady(bool readable, bool writable);
}

/// <summary>
/// The loop's I/O readiness backend (DESIGN.md: the reactor on the loop thread). The tick's poll waits
/// here with the timeout the core computed; ready sockets have their handlers queued as callbacks of
/// the same tick (CPython's <c>_process_events</c> appends them to the ready queue), so I/O callbacks
/// keep asyncio's order. Non-blocking sockets are read and written directly on the loop thread.
/// Two backends behind this seam: <see cref="EpollReactor"/> (Linux) and <see cref="SelectReactor"/>
/// (portable), and the transport suite runs against both.
/// </summary>
internal interface IReactor : IDisposable
{
    /// <summary>Watches <paramref name="socket"/> for the given interests; replaces a previous registration.</summary>
    void Update(Socket socket, IIoHandler handler, bool read, bool write);

    /// <summary>Stops watching <paramref name="socket"/> (before it is closed).</summary>
    void Remove(Socket socket);

    /// <summary>How many sockets are watched.</summary>
    int Count { get; }

    /// <summary>Waits at most <paramref name="timeoutTicks"/> (-1: no limit) for readiness or a wake, then
    /// calls <paramref name="ready"/> for each ready registration. Returns how many were ready.</summary>
    int Poll(long timeoutTicks, Action<IIoHandler, bool, bool> ready);

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
