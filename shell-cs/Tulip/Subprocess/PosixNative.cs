using System.Runtime.InteropServices;

namespace Tulip.Subprocess;

/// <summary>
/// The libc calls behind pipes and child processes (Linux, glibc): raw descriptors read and written on
/// the loop thread, posix_spawn, pidfd, waitpid. Every descriptor made here is close-on-exec.
/// </summary>
internal static unsafe partial class PosixNative
{
    public const int O_NONBLOCK = 0x800, O_CLOEXEC = 0x80000;
    public const int F_GETFL = 3, F_SETFL = 4, F_DUPFD_CLOEXEC = 1030, F_SETPIPE_SZ = 1031, F_GETPIPE_SZ = 1032;
    public const int EINTR = 4, EAGAIN = 11, ENOENT = 2, ESRCH = 3, ECHILD = 10, EPIPE = 32, ESPIPE = 29;
    public const int WNOHANG = 1;
    public const int SIGKILL = 9, SIGTERM = 15;
    public const short POSIX_SPAWN_SETSIGDEF = 0x04, POSIX_SPAWN_SETSIGMASK = 0x08;

    [LibraryImport("libc", SetLastError = true)]
    public static partial int pipe2(int* fds, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int fcntl(int fd, int cmd, int arg);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint read(int fd, byte* buf, nint count);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint write(int fd, byte* buf, nint count);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true)]
    public static partial long lseek(int fd, long offset, int whence);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int access(byte* path, int mode);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int kill(int pid, int sig);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int waitpid(int pid, int* status, int options);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int pidfd_open(int pid, uint flags);

    [LibraryImport("libc")]
    public static partial int posix_spawn(int* pid, byte* path, void* fileActions, void* attr, byte** argv, byte** envp);

    [LibraryImport("libc")]
    public static partial int posix_spawn_file_actions_init(void* fa);

    [LibraryImport("libc")]
    public static partial int posix_spawn_file_actions_destroy(void* fa);

    [LibraryImport("libc")]
    public static partial int posix_spawn_file_actions_adddup2(void* fa, int fd, int newfd);

    [LibraryImport("libc")]
    public static partial int posix_spawn_file_actions_addchdir_np(void* fa, byte* path);

    [LibraryImport("libc")]
    public static partial int posix_spawn_file_actions_addclosefrom_np(void* fa, int from);

    [LibraryImport("libc")]
    public static partial int posix_spawnattr_init(void* attr);

    [LibraryImport("libc")]
    public static partial int posix_spawnattr_destroy(void* attr);

    [LibraryImport("libc")]
    public static partial int posix_spawnattr_setflags(void* attr, short flags);

    [LibraryImport("libc")]
    public static partial int posix_spawnattr_setsigmask(void* attr, void* sigset);

    [LibraryImport("libc")]
    public static partial int posix_spawnattr_setsigdefault(void* attr, void* sigset);

    [LibraryImport("libc")]
    public static partial int sigemptyset(void* set);

    [LibraryImport("libc")]
    public static partial int sigfillset(void* set);

    [LibraryImport("libc")]
    public static partial int sigaddset(void* set, int signal);

    public static int Errno => Marshal.GetLastPInvokeError();

    private static int s_devNull = -1;

    /// <summary>/dev/null, read-write and close-on-exec, opened once for the process (a DEVNULL redirect is
    /// a dup2 of it in the child: no open, fstat and flock per spawn as File.OpenHandle would do).</summary>
    public static int DevNull
    {
        get
        {
            int fd = Volatile.Read(ref s_devNull);
            if (fd >= 0) return fd;
            fd = open("/dev/null", 2 /* O_RDWR */ | O_CLOEXEC);
            if (fd < 0) throw IoError(Errno, "open /dev/null");
            int had = Interlocked.CompareExchange(ref s_devNull, fd, -1);
            if (had < 0) return fd;
            close(fd);
            return had;
        }
    }

    /// <summary>Makes <paramref name="fd"/> non-blocking (the loop's end of a pipe: the child's end stays blocking).</summary>
    public static void SetNonBlocking(int fd)
    {
        int flags = fcntl(fd, F_GETFL, 0);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) throw IoError(Errno, "fcntl");
    }

    /// <summary>A close-on-exec pipe: (read end, write end).</summary>
    public static (int Read, int Write) Pipe()
    {
        int* fds = stackalloc int[2];
        if (pipe2(fds, O_CLOEXEC) < 0) throw IoError(Errno, "pipe2");
        return (fds[0], fds[1]);
    }

    /// <summary>
    /// The wait status as asyncio reports it: the exit code, or minus the signal's number
    /// (<c>subprocess._handle_exitstatus</c>).
    /// </summary>
    public static int DecodeStatus(int status)
    {
        int sig = status & 0x7f;
        if (sig == 0) return (status >> 8) & 0xff;
        return -sig;
    }

    /// <summary>An OS error as an <see cref="IOException"/> carrying the errno in its HResult, with
    /// Python's message shape ("[Errno 32] Broken pipe").</summary>
    public static IOException IoError(int errno, string? what = null)
    {
        string text = Marshal.GetPInvokeErrorMessage(errno);
        return new IOException($"[Errno {errno}] {text}{(what is null ? "" : $" ({what})")}", errno);
    }
}
