using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Tulip.NameResolution;

/// <summary>
/// Every libc declaration the DNS and signal code uses, in one place. libc's <c>getaddrinfo</c> /
/// <c>getnameinfo</c> give asyncio's exact semantics (its flags, canonname, service names from the
/// services database, the resolver's order, the EAI_* codes), which .NET's Dns class does not expose.
/// The structures are blittable and laid out for Linux (glibc: <c>ai_addr</c> before
/// <c>ai_canonname</c>); every list getaddrinfo returns is freed in a <c>finally</c>.
/// </summary>
internal static unsafe partial class LibC
{
    private const string Lib = "libc";

    [StructLayout(LayoutKind.Sequential)]
    internal struct AddrInfoNative
    {
        public int Flags;
        public int Family;
        public int SockType;
        public int Protocol;
        public uint AddrLen;
        public byte* Addr;
        public byte* CanonName;
        public AddrInfoNative* Next;
    }

    [LibraryImport(Lib, EntryPoint = "getaddrinfo", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int getaddrinfo(string? node, string? service, AddrInfoNative* hints, AddrInfoNative** result);

    [LibraryImport(Lib, EntryPoint = "freeaddrinfo")]
    private static partial void freeaddrinfo(AddrInfoNative* list);

    [LibraryImport(Lib, EntryPoint = "gai_strerror")]
    private static partial byte* gai_strerror(int code);

    [LibraryImport(Lib, EntryPoint = "getnameinfo")]
    private static partial int getnameinfo(byte* addr, uint addrLen, byte* host, uint hostLen, byte* serv, uint servLen, int flags);

    [LibraryImport(Lib, EntryPoint = "kill", SetLastError = true)]
    internal static partial int kill(int pid, int signal);

    [LibraryImport(Lib, EntryPoint = "getpid")]
    internal static partial int getpid();

    [LibraryImport(Lib, EntryPoint = "sigaction", SetLastError = true)]
    private static partial int sigaction(int signal, byte* action, byte* oldAction);

    // glibc's struct sigaction on Linux x64 / arm64: the handler (8 bytes), a 128-byte sigset_t, int
    // flags (+4 padding), the restorer (8): 152 bytes; twice that is room enough.
    private const int SigactionSize = 304;

    /// <summary>
    /// A signal this process inherited as ignored (SIG_IGN: started in the background by a shell, under
    /// nohup…) is reset to the default before a loop handles it: the runtime never forwards a signal whose
    /// disposition was SIG_IGN when it installed its own handler, while asyncio's add_signal_handler
    /// replaces SIG_IGN as signal.signal does. Only SIG_IGN is touched; a handler already installed
    /// (the runtime's, anyone's) is left alone.
    /// </summary>
    internal static void UnignoreSignal(int signal)
    {
        if (!IsIgnored(signal)) return;
        byte* dfl = stackalloc byte[SigactionSize];
        new Span<byte>(dfl, SigactionSize).Clear(); // SIG_DFL, empty mask, no flags
        sigaction(signal, dfl, null);
    }

    /// <summary>Whether <paramref name="signal"/>'s disposition is SIG_IGN now.</summary>
    internal static bool IsIgnored(int signal)
    {
        if (!OperatingSystem.IsLinux()) return false;
        byte* old = stackalloc byte[SigactionSize];
        new Span<byte>(old, SigactionSize).Clear();
        return sigaction(signal, null, old) == 0 && *(nint*)old == 1; // SIG_IGN is 1
    }

    internal const int AF_UNSPEC = 0, AF_INET = 2, AF_INET6 = 10;
    internal const int EAI_SYSTEM = -11;
    private const int NI_MAXHOST = 1025, NI_MAXSERV = 32;

    /// <summary>The blocking libc call; throws <see cref="AddressInfoException"/> with the resolver's code.</summary>
    internal static List<AddrInfo> GetAddrInfo(string? host, string? service, int family, int type, int proto, int flags)
    {
        RequireLinux();
        AddrInfoNative hints = default;
        hints.Family = family;
        hints.SockType = type;
        hints.Protocol = proto;
        hints.Flags = flags;
        AddrInfoNative* list = null;
        int rc = getaddrinfo(host, service, &hints, &list);
        if (rc != 0) throw Error(rc, Marshal.GetLastPInvokeError());
        try
        {
            var result = new List<AddrInfo>();
            for (var p = list; p != null; p = p->Next)
            {
                var endPoint = ToEndPoint(p->Addr, p->AddrLen);
                if (endPoint is null) continue; // a family Tulip does not speak (none with AF_INET/AF_INET6 hints)
                result.Add(new AddrInfo(FromNativeFamily(p->Family), (SocketType)p->SockType, (ProtocolType)p->Protocol,
                    p->CanonName == null ? "" : Marshal.PtrToStringUTF8((nint)p->CanonName) ?? "", endPoint));
            }

            return result;
        }
        finally
        {
            freeaddrinfo(list);
        }
    }

    /// <summary>The blocking libc getnameinfo of <paramref name="endPoint"/>.</summary>
    internal static (string Host, string Service) GetNameInfo(IPEndPoint endPoint, int flags)
    {
        RequireLinux();
        byte* sa = stackalloc byte[28];
        uint len = WriteSockAddr(endPoint, sa);
        byte* host = stackalloc byte[NI_MAXHOST];
        byte* serv = stackalloc byte[NI_MAXSERV];
        int rc = getnameinfo(sa, len, host, NI_MAXHOST, serv, NI_MAXSERV, flags);
        if (rc != 0) throw Error(rc, Marshal.GetLastPInvokeError());
        return (Marshal.PtrToStringUTF8((nint)host) ?? "", Marshal.PtrToStringUTF8((nint)serv) ?? "");
    }

    internal static string StrError(int code) => Marshal.PtrToStringUTF8((nint)gai_strerror(code)) ?? $"resolver error {code}";

    private static AddressInfoException Error(int code, int errno) =>
        code == EAI_SYSTEM
            ? new AddressInfoException(code, $"{StrError(code)}: {Marshal.GetPInvokeErrorMessage(errno)}")
            : new AddressInfoException(code, StrError(code));

    internal static int ToNativeFamily(AddressFamily family) => family switch
    {
        AddressFamily.Unspecified => AF_UNSPEC,
        AddressFamily.InterNetwork => AF_INET,
        AddressFamily.InterNetworkV6 => AF_INET6,
        _ => throw new ArgumentOutOfRangeException(nameof(family), family, "only Unspecified, InterNetwork and InterNetworkV6 are resolved"),
    };

    private static AddressFamily FromNativeFamily(int family) =>
        family == AF_INET6 ? AddressFamily.InterNetworkV6 : AddressFamily.InterNetwork;

    private static IPEndPoint? ToEndPoint(byte* sa, uint len)
    {
        if (sa == null) return null;
        int family = *(ushort*)sa;
        int port = (sa[2] << 8) | sa[3];
        if (family == AF_INET && len >= 16) return new IPEndPoint(new IPAddress(new ReadOnlySpan<byte>(sa + 4, 4)), port);
        if (family == AF_INET6 && len >= 28)
            return new IPEndPoint(new IPAddress(new ReadOnlySpan<byte>(sa + 8, 16), *(uint*)(sa + 24)), port);
        return null;
    }

    private static uint WriteSockAddr(IPEndPoint endPoint, byte* sa)
    {
        new Span<byte>(sa, 28).Clear();
        sa[2] = (byte)(endPoint.Port >> 8);
        sa[3] = (byte)endPoint.Port;
        if (endPoint.AddressFamily == AddressFamily.InterNetwork)
        {
            *(ushort*)sa = AF_INET;
            endPoint.Address.TryWriteBytes(new Span<byte>(sa + 4, 4), out _);
            return 16;
        }

        *(ushort*)sa = AF_INET6;
        endPoint.Address.TryWriteBytes(new Span<byte>(sa + 8, 16), out _);
        *(uint*)(sa + 24) = (uint)endPoint.Address.ScopeId;
        return 28;
    }

    private static void RequireLinux()
    {
        // The structure layouts above are glibc's; elsewhere the resolver is not wired up (yet).
        if (!OperatingSystem.IsLinux()) throw new PlatformNotSupportedException("Tulip's resolver binds libc on Linux only");
    }
}
