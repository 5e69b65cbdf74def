using System.Net.Sockets;
using System.Runtime.InteropServices;
using Tulip.Core;

namespace Tulip.Io;

/// <summary>
/// Linux epoll, level-triggered (as CPython's selectors and libuv's default), with an eventfd for wakes.
/// Registrations are identified by a token (an index into a table), never by an object pointer.
/// </summary>
internal sealed unsafe partial class EpollReactor : IReactor
{
    private const int EPOLLIN = 0x001, EPOLLOUT = 0x004, EPOLLERR = 0x008, EPOLLHUP = 0x010, EPOLLRDHUP = 0x2000;
    private const int EPOLL_CTL_ADD = 1, EPOLL_CTL_DEL = 2, EPOLL_CTL_MOD = 3;
    private const int EPOLL_CLOEXEC = 0x80000, EFD_NONBLOCK = 0x800, EFD_CLOEXEC = 0x80000;
    private const int EINTR = 4, ENOENT = 2, EBADF = 9;
    private const ulong WakeToken = ulong.MaxValue;

    private readonly int _epfd;
    private readonly int _eventfd;
    // By token: the socket (null for a raw descriptor) and the descriptor (-1: a free token). A raw
    // descriptor (a pipe, a pidfd) is owned by its transport, which unregisters it before closing it.
    private Socket?[] _sockets = new Socket?[64];
    private int[] _fds = NewFds(64);
    private int _count;
    private readonly Stack<int> _freeTokens = new();
    private int _nextToken;
    private readonly EpollEvent[] _events = new EpollEvent[256];
    private int _wakePending;

    public static bool IsSupported =>
        OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.Arm64;

    public EpollReactor()
    {
        _epfd = epoll_create1(EPOLL_CLOEXEC);
        if (_epfd < 0) throw new SocketException(Marshal.GetLastPInvokeError());
        _eventfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (_eventfd < 0) throw new SocketException(Marshal.GetLastPInvokeError());
        var ev = new EpollEvent { Events = EPOLLIN, Data = WakeToken };
        if (epoll_ctl(_epfd, EPOLL_CTL_ADD, _eventfd, &ev) < 0) throw new SocketException(Marshal.GetLastPInvokeError());
    }

    public int Count => _count;

    private static int[] NewFds(int n)
    {
        var fds = new int[n];
        Array.Fill(fds, -1);
        return fds;
    }

    public int Register(Socket socket, bool read, bool write) => Add(socket, (int)socket.Handle, read, write);

    public int RegisterFd(int fd, bool read, bool write)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(fd);
        return Add(null, fd, read, write);
    }

    private int Add(Socket? socket, int fd, bool read, bool write)
    {
        int token = _freeTokens.Count > 0 ? _freeTokens.Pop() : _nextToken++;
        if (token >= _sockets.Length)
        {
            int old = _sockets.Length;
            Array.Resize(ref _sockets, old * 2);
            Array.Resize(ref _fds, old * 2);
            Array.Fill(_fds, -1, old, old);
        }

        var add = new EpollEvent { Events = Interests(read, write), Data = (ulong)token };
        if (epoll_ctl(_epfd, EPOLL_CTL_ADD, fd, &add) < 0)
        {
            _freeTokens.Push(token);
            throw new SocketException(Marshal.GetLastPInvokeError());
        }

        _sockets[token] = socket;
        _fds[token] = fd;
        _count++;
        return token;
    }

    private static uint Interests(bool read, bool write) => (read ? (uint)EPOLLIN : 0) | (write ? (uint)EPOLLOUT : 0);

    public void Modify(int token, bool read, bool write)
    {
        if ((uint)token >= (uint)_fds.Length || _fds[token] < 0) throw new InvalidOperationException($"token {token} is not registered");
        int fd = _sockets[token] is { } socket ? (int)socket.Handle : _fds[token];
        var ev = new EpollEvent { Events = Interests(read, write), Data = (ulong)token };
        if (epoll_ctl(_epfd, EPOLL_CTL_MOD, fd, &ev) < 0) throw new SocketException(Marshal.GetLastPInvokeError());
    }

    public void Unregister(int token)
    {
        if ((uint)token >= (uint)_fds.Length || _fds[token] < 0) return;
        var socket = _sockets[token];
        int rawFd = _fds[token];
        _sockets[token] = null;
        _fds[token] = -1;
        _freeTokens.Push(token);
        _count--;
        try
        {
            int fd = socket is null ? rawFd : (int)socket.Handle;
            var ev = default(EpollEvent);
            if (epoll_ctl(_epfd, EPOLL_CTL_DEL, fd, &ev) < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno is not (ENOENT or EBADF)) throw new SocketException(errno);
            }
        }
        catch (ObjectDisposedException)
        {
            // Closed already: the kernel dropped it from the set with its last descriptor.
        }
    }

    public int Poll(long timeoutTicks, Span<IoEvent> ready)
    {
        int ms = timeoutTicks < 0 ? -1
            : timeoutTicks == 0 ? 0
            : (int)Math.Min(int.MaxValue, (timeoutTicks + TimeSpan.TicksPerMillisecond - 1) / TimeSpan.TicksPerMillisecond);
        int max = Math.Min(_events.Length, ready.Length);
        int n;
        fixed (EpollEvent* events = _events)
        {
            n = epoll_wait(_epfd, events, max, ms);
        }

        if (n < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno == EINTR) return 0;
            throw new SocketException(errno);
        }

        int written = 0;
        for (int i = 0; i < n; i++)
        {
            ref var ev = ref _events[i];
            if (ev.Data == WakeToken)
            {
                ulong value;
                _ = read(_eventfd, &value, 8);
                Volatile.Write(ref _wakePending, 0);
                continue;
            }

            bool error = (ev.Events & (EPOLLERR | EPOLLHUP)) != 0;
            var readiness = Readiness.None;
            if (error || (ev.Events & (EPOLLIN | EPOLLRDHUP)) != 0) readiness |= Readiness.Readable;
            if (error || (ev.Events & EPOLLOUT) != 0) readiness |= Readiness.Writable;
            ready[written++] = new IoEvent((int)ev.Data, readiness);
        }

        return written;
    }

    public void Wake()
    {
        if (Interlocked.Exchange(ref _wakePending, 1) == 1) return;
        ulong one = 1;
        _ = write(_eventfd, &one, 8);
    }

    public void Dispose()
    {
        _ = close(_eventfd);
        _ = close(_epfd);
    }

    // epoll_event is packed on x86-64 (12 bytes) and naturally aligned elsewhere (16 bytes).
    [StructLayout(LayoutKind.Sequential, Pack = 4)]
    private struct EpollEventPacked
    {
        public uint Events;
        public ulong Data;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct EpollEvent
    {
        public uint Events;
        public ulong Data;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int epoll_create1(int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int eventfd(uint initval, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint read(int fd, void* buf, nint count);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint write(int fd, void* buf, nint count);

    private static int epoll_ctl(int epfd, int op, int fd, EpollEvent* ev)
    {
        if (RuntimeInformation.ProcessArchitecture == Architecture.X64)
        {
            var packed = new EpollEventPacked { Events = ev->Events, Data = ev->Data };
            return epoll_ctl_x64(epfd, op, fd, &packed);
        }

        return epoll_ctl_native(epfd, op, fd, ev);
    }

    private static int epoll_wait(int epfd, EpollEvent* events, int maxevents, int timeout)
    {
        if (RuntimeInformation.ProcessArchitecture != Architecture.X64) return epoll_wait_native(epfd, events, maxevents, timeout);
        var packed = stackalloc EpollEventPacked[maxevents];
        int n = epoll_wait_x64(epfd, packed, maxevents, timeout);
        for (int i = 0; i < n; i++) events[i] = new EpollEvent { Events = packed[i].Events, Data = packed[i].Data };
        return n;
    }

    [LibraryImport("libc", EntryPoint = "epoll_ctl", SetLastError = true)]
    private static partial int epoll_ctl_x64(int epfd, int op, int fd, EpollEventPacked* ev);

    [LibraryImport("libc", EntryPoint = "epoll_ctl", SetLastError = true)]
    private static partial int epoll_ctl_native(int epfd, int op, int fd, EpollEvent* ev);

    [LibraryImport("libc", EntryPoint = "epoll_wait", SetLastError = true)]
    private static partial int epoll_wait_x64(int epfd, EpollEventPacked* events, int maxevents, int timeout);

    [LibraryImport("libc", EntryPoint = "epoll_wait", SetLastError = true)]
    private static partial int epoll_wait_native(int epfd, EpollEvent* events, int maxevents, int timeout);
}
