using System.Collections;
using System.Runtime.InteropServices;

namespace Tulip.Subprocess;

/// <summary>
/// Starts a child with posix_spawn and hands back its pid and the parent's ends of its pipes.
///
/// Why posix_spawn and not <see cref="System.Diagnostics.Process"/>: Process redirects all or nothing
/// (no DEVNULL, no stderr-into-stdout, no file or inherited descriptor per stream), reads its pipes
/// through its own streams, and reports the exit on a thread-pool thread after reaping the child
/// itself. asyncio's semantics need each stream's redirection chosen independently and the parent's
/// pipe ends as raw non-blocking descriptors the loop's epoll watches directly. posix_spawn gives
/// both, and the exit is then observed through a pidfd watched by the same reactor (ChildWatch), the
/// child reaped by <c>waitpid(pid)</c> on exactly that pid. The runtime's own SIGCHLD handling
/// reaps only the pids Process started (waitpid per pid; it reaps everything only when SIGCHLD was
/// ignored at startup), so the two coexist (tested beside Process in SubprocessTests).
///
/// Every descriptor the parent makes is close-on-exec; the child gets its three streams by dup2 and
/// nothing else (closefrom(3), as Python's close_fds=True). Signals: an empty mask, and SIGPIPE and
/// SIGXFSZ back to their defaults in the child (the runtime ignores SIGPIPE; a child must not inherit
/// that: Python's restore_signals=True).
/// </summary>
internal static unsafe class Spawner
{
    internal readonly record struct Child(int Pid, int Stdin, int Stdout, int Stderr);

    private static bool s_noCloseFrom;

    public static Child Spawn(string program, IReadOnlyList<string> args, SubprocessOptions options, SubprocessRedirect defaultRedirect)
    {
        string path = Resolve(program, options);
        if (options.WorkingDirectory is { } cwd && !Directory.Exists(cwd))
            throw new SubprocessNotFoundException($"[Errno 2] No such file or directory: '{cwd}'", cwd, PosixNative.ENOENT);

        var redirects = new[] { options.Stdin ?? defaultRedirect, options.Stdout ?? defaultRedirect, options.Stderr ?? defaultRedirect };
        var toClose = new List<int>();          // child ends: closed in the parent after the spawn
        int[] parentEnds = [-1, -1, -1];
        int[] sources = [-1, -1, -1];
        var strings = new List<nint>();
        byte* fa = stackalloc byte[1024]; // posix_spawn_file_actions_t: 80 bytes on glibc x64
        byte* attr = stackalloc byte[1024]; // posix_spawnattr_t: 336 bytes
        byte* sigs = stackalloc byte[256]; // sigset_t: 128 bytes
        bool faInit = false, attrInit = false, ok = false;
        try
        {
            for (int i = 0; i < 3; i++)
            {
                switch (redirects[i].Kind)
                {
                    case SubprocessRedirect.Kinds.Pipe:
                        var (r, w) = PosixNative.Pipe();
                        parentEnds[i] = i == 0 ? w : r;
                        sources[i] = i == 0 ? r : w;
                        toClose.Add(sources[i]);
                        // Popen's pipesize (3.10): the pipe's capacity; a refusal (past
                        // /proc/sys/fs/pipe-max-size, or the user's pipe pages spent) fails the spawn.
                        if (options.PipeSize > 0 && PosixNative.fcntl(r, PosixNative.F_SETPIPE_SZ, options.PipeSize) < 0)
                            throw PosixNative.IoError(PosixNative.Errno, "fcntl F_SETPIPE_SZ");
                        break;
                    case SubprocessRedirect.Kinds.DevNull:
                        sources[i] = PosixNative.DevNull;
                        break;
                    case SubprocessRedirect.Kinds.Handle:
                        sources[i] = redirects[i].Descriptor;
                        break;
                }
            }

            // The child's dup2s run in order 0, 1, 2: a source that is itself one of 0..2 (stdout given
            // the parent's fd 0, say) would be overwritten by an earlier dup2 before its own. Such a
            // source is copied above 2 first (close-on-exec; closed in the parent after the spawn).
            for (int i = 0; i < 3; i++)
            {
                if (sources[i] is >= 0 and < 3 && sources[i] != i)
                {
                    int copy = PosixNative.fcntl(sources[i], PosixNative.F_DUPFD_CLOEXEC, 3);
                    if (copy < 0) throw PosixNative.IoError(PosixNative.Errno, "fcntl F_DUPFD_CLOEXEC");
                    toClose.Add(copy);
                    sources[i] = copy;
                }
            }

            Check(PosixNative.posix_spawn_file_actions_init(fa), "posix_spawn_file_actions_init");
            faInit = true;
            for (int i = 0; i < 3; i++)
            {
                if (sources[i] >= 0) Check(PosixNative.posix_spawn_file_actions_adddup2(fa, sources[i], i), "adddup2");
                else if (redirects[i].Kind == SubprocessRedirect.Kinds.Stdout) Check(PosixNative.posix_spawn_file_actions_adddup2(fa, 1, 2), "adddup2");
            }

            if (!s_noCloseFrom)
            {
                try
                {
                    Check(PosixNative.posix_spawn_file_actions_addclosefrom_np(fa, 3), "addclosefrom_np");
                }
                catch (EntryPointNotFoundException)
                {
                    s_noCloseFrom = true; // glibc < 2.34: close-on-exec alone keeps the parent's descriptors out
                }
            }

            if (options.WorkingDirectory is { } dir)
                Check(PosixNative.posix_spawn_file_actions_addchdir_np(fa, Utf8(dir, strings)), "addchdir_np");

            Check(PosixNative.posix_spawnattr_init(attr), "posix_spawnattr_init");
            attrInit = true;
            PosixNative.sigemptyset(sigs);
            Check(PosixNative.posix_spawnattr_setsigmask(attr, sigs), "setsigmask");
            // Handled signals are reset by exec itself; ignored ones would be inherited. Python's
            // restore_signals resets SIGPIPE and SIGXFSZ (the runtime ignores SIGPIPE); the same two
            // here, not all 64 (one sigaction each in the child, on every spawn).
            PosixNative.sigaddset(sigs, 13 /* SIGPIPE */);
            PosixNative.sigaddset(sigs, 25 /* SIGXFSZ */);
            // glibc's posix_spawn sets its internal signals (32 and 33: thread cancellation, setxid) to
            // SIG_IGN in the child, and an ignored signal survives exec; sigaddset refuses them, so their
            // bits (n - 1 of the first word) are set directly: the child gets them at default, as a
            // Python child does.
            ((ulong*)sigs)[0] |= (1UL << 31) | (1UL << 32);
            Check(PosixNative.posix_spawnattr_setsigdefault(attr, sigs), "setsigdefault");
            Check(PosixNative.posix_spawnattr_setflags(attr, PosixNative.POSIX_SPAWN_SETSIGDEF | PosixNative.POSIX_SPAWN_SETSIGMASK), "setflags");

            var argv = stackalloc byte*[args.Count + 1];
            for (int i = 0; i < args.Count; i++) argv[i] = Utf8(args[i], strings);
            argv[args.Count] = null;

            var env = EnvironmentOf(options);
            var envp = (byte**)NativeMemory.Alloc((nuint)(env.Count + 1), (nuint)sizeof(nint));
            strings.Add((nint)envp);
            for (int i = 0; i < env.Count; i++) envp[i] = Utf8(env[i], strings);
            envp[env.Count] = null;

            int pid;
            int err = PosixNative.posix_spawn(&pid, Utf8(path, strings), fa, attr, argv, envp);
            if (err != 0)
            {
                if (err is PosixNative.ENOENT or 20 /* ENOTDIR */)
                    throw new SubprocessNotFoundException($"[Errno {err}] {Marshal.GetPInvokeErrorMessage(err)}: '{program}'", program, err);
                throw new SubprocessStartException($"[Errno {err}] {Marshal.GetPInvokeErrorMessage(err)}: '{program}'", err);
            }

            ok = true;
            return new Child(pid, parentEnds[0], parentEnds[1], parentEnds[2]);
        }
        finally
        {
            if (faInit) PosixNative.posix_spawn_file_actions_destroy(fa);
            if (attrInit) PosixNative.posix_spawnattr_destroy(attr);
            foreach (var p in strings) NativeMemory.Free((void*)p);
            foreach (int fd in toClose) PosixNative.close(fd);
            if (!ok)
            {
                foreach (int fd in parentEnds)
                {
                    if (fd >= 0) PosixNative.close(fd);
                }
            }
        }
    }

    private static bool Executable(string path)
    {
        var owned = new List<nint>();
        try
        {
            return PosixNative.access(Utf8(path, owned), 1 /* X_OK */) == 0;
        }
        finally
        {
            foreach (var p in owned) NativeMemory.Free((void*)p);
        }
    }

    private static void Check(int err, string what)
    {
        if (err != 0) throw new SubprocessStartException($"[Errno {err}] {Marshal.GetPInvokeErrorMessage(err)} ({what})", err);
    }

    private static byte* Utf8(string s, List<nint> owned)
    {
        int n = System.Text.Encoding.UTF8.GetByteCount(s);
        var p = (byte*)NativeMemory.Alloc((nuint)n + 1);
        owned.Add((nint)p);
        System.Text.Encoding.UTF8.GetBytes(s, new Span<byte>(p, n));
        p[n] = 0;
        return p;
    }

    private static List<string> EnvironmentOf(SubprocessOptions options)
    {
        var list = new List<string>();
        if (options.Environment is { } env)
        {
            foreach (var (k, v) in env) list.Add($"{k}={v}");
        }
        else
        {
            foreach (DictionaryEntry e in Environment.GetEnvironmentVariables()) list.Add($"{e.Key}={e.Value}");
        }

        return list;
    }

    /// <summary>
    /// The program's path: as given when it names a directory, else the first executable match on PATH
    /// (the child's PATH when an environment is given, as Python's <c>os.get_exec_path(env)</c>).
    /// </summary>
    private static string Resolve(string program, SubprocessOptions options)
    {
        if (program.Contains('/')) return program; // posix_spawn reports ENOENT itself
        string? pathVar = options.Environment is { } env
            ? (env.TryGetValue("PATH", out var p) ? p : null)
            : Environment.GetEnvironmentVariable("PATH");
        pathVar ??= "/bin:/usr/bin";
        foreach (var dir in pathVar.Split(':'))
        {
            string candidate = Path.Combine(dir.Length == 0 ? "." : dir, program);
            if (File.Exists(candidate) && Executable(candidate))
                return candidate;
        }

        throw new SubprocessNotFoundException($"[Errno 2] No such file or directory: '{program}'", program, PosixNative.ENOENT);
    }
}
