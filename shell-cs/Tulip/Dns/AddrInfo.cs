using System.Net;
using System.Net.Sockets;

namespace Tulip;

/// <summary>
/// One entry of <see cref="EventLoop.GetAddrInfoAsync(string?, int, AddressFamily, SocketType, ProtocolType, AddrInfoFlags, CancellationToken)"/>:
/// asyncio's 5-tuple <c>(family, type, proto, canonname, sockaddr)</c> as a record.
/// <see cref="CanonicalName"/> is empty unless <see cref="AddrInfoFlags.CanonName"/> was asked for (and then
/// only on the first entry, as getaddrinfo gives it). An IPv6 <see cref="Address"/> carries its scope id;
/// the flow info asyncio shows is always 0 from getaddrinfo.
/// </summary>
public sealed record AddrInfo(AddressFamily Family, SocketType Type, ProtocolType Protocol, string CanonicalName, IPEndPoint Address)
{
    private readonly string _canonicalName = CanonicalName ?? throw new ArgumentNullException(nameof(CanonicalName));
    private readonly IPEndPoint _address = Address ?? throw new ArgumentNullException(nameof(Address));

    /// <summary>The canonical name ("" unless asked for).</summary>
    public string CanonicalName
    {
        get => _canonicalName;
        init => _canonicalName = value ?? throw new ArgumentNullException(nameof(value));
    }

    /// <summary>The socket address (asyncio's sockaddr).</summary>
    public IPEndPoint Address
    {
        get => _address;
        init => _address = value ?? throw new ArgumentNullException(nameof(value));
    }

    public override string ToString() => $"({Family}, {Type}, {Protocol}, '{CanonicalName}', {Address})";
}

/// <summary>getaddrinfo's AI_* flags (the values are glibc's, passed to libc unchanged).</summary>
[Flags]
public enum AddrInfoFlags
{
    None = 0,
    /// <summary>AI_PASSIVE: a null host means the wildcard address (for bind), not the loopback.</summary>
    Passive = 0x1,
    /// <summary>AI_CANONNAME: the first entry carries the host's canonical name.</summary>
    CanonName = 0x2,
    /// <summary>AI_NUMERICHOST: the host must be a numeric address; no lookup.</summary>
    NumericHost = 0x4,
    /// <summary>AI_V4MAPPED: with InterNetworkV6 and no IPv6 address, IPv4 ones as ::ffff:a.b.c.d.</summary>
    V4Mapped = 0x8,
    /// <summary>AI_ALL: with V4Mapped, both IPv6 and mapped IPv4 addresses.</summary>
    All = 0x10,
    /// <summary>AI_ADDRCONFIG: only families the machine has a (non-loopback) address in.</summary>
    AddrConfig = 0x20,
    /// <summary>AI_NUMERICSERV: the service must be a port number; no services-database lookup.</summary>
    NumericServ = 0x400,
}

/// <summary>getnameinfo's NI_* flags (glibc's values).</summary>
[Flags]
public enum NameInfoFlags
{
    None = 0,
    /// <summary>NI_NUMERICHOST: the address as text, no reverse lookup.</summary>
    NumericHost = 0x1,
    /// <summary>NI_NUMERICSERV: the port as text, no services-database lookup.</summary>
    NumericServ = 0x2,
    /// <summary>NI_NOFQDN: only the host part of a local name.</summary>
    NoFqdn = 0x4,
    /// <summary>NI_NAMEREQD: fail (EAI_NONAME) rather than give a numeric host.</summary>
    NameRequired = 0x8,
    /// <summary>NI_DGRAM: the service is a datagram one (a few ports differ).</summary>
    Datagram = 0x10,
}

/// <summary>
/// asyncio's <c>socket.gaierror</c>: the resolver failed. <see cref="ResolverCode"/> is the EAI_* code
/// (glibc's negative numbers: -2 EAI_NONAME, -3 EAI_AGAIN, -8 EAI_SERVICE…), the message gai_strerror's
/// text; <see cref="SocketException.SocketErrorCode"/> is the nearest .NET code (HostNotFound, TryAgain…).
/// </summary>
public sealed class AddressInfoException : SocketException
{
    public AddressInfoException(int resolverCode, string message) : base((int)ToSocketError(resolverCode), message) =>
        ResolverCode = resolverCode;

    /// <summary>The EAI_* code getaddrinfo / getnameinfo returned (Python's <c>gaierror.errno</c>).</summary>
    public int ResolverCode { get; }

    public const int EAI_BADFLAGS = -1, EAI_NONAME = -2, EAI_AGAIN = -3, EAI_FAIL = -4, EAI_NODATA = -5, EAI_FAMILY = -6,
        EAI_SOCKTYPE = -7, EAI_SERVICE = -8, EAI_ADDRFAMILY = -9, EAI_MEMORY = -10, EAI_SYSTEM = -11, EAI_OVERFLOW = -12;

    private static SocketError ToSocketError(int code) => code switch
    {
        EAI_NONAME or EAI_NODATA or EAI_ADDRFAMILY => SocketError.HostNotFound,
        EAI_AGAIN => SocketError.TryAgain,
        EAI_FAIL => SocketError.NoRecovery,
        EAI_FAMILY => SocketError.AddressFamilyNotSupported,
        EAI_SOCKTYPE => SocketError.SocketNotSupported,
        EAI_SERVICE => SocketError.TypeNotFound,
        EAI_BADFLAGS => SocketError.InvalidArgument,
        _ => SocketError.SocketError,
    };
}
