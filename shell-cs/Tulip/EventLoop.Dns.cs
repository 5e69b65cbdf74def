using System.Net;
using System.Net.Sockets;
using Tulip.NameResolution;

namespace Tulip;

public sealed partial class EventLoop
{
    // ---------------------------------------------------------------------------------------------
    // Name resolution (asyncio's loop.getaddrinfo / loop.getnameinfo), through libc so flags, canonical
    // names, service names, the resolver's order and the EAI_* codes are exactly asyncio's.

    /// <summary>The blocking calls lookups make (tests put a fake or a blocked one here).</summary>
    internal IResolver Resolver { get; set; } = NativeResolver.Instance;

    /// <summary>Where lookups run: the resolver pool, never the loop's thread.</summary>
    internal ResolverPool Resolvers { get; set; } = ResolverPool.Shared;

    /// <summary>
    /// asyncio's <c>loop.getaddrinfo(host, port, family=, type=, proto=, flags=)</c>: the addresses of
    /// <paramref name="host"/> for <paramref name="port"/>, as getaddrinfo orders them. A null host is the
    /// loopback (the wildcard with <see cref="AddrInfoFlags.Passive"/>); <paramref name="type"/> and
    /// <paramref name="protocol"/> default to any (0). A numeric host with a numeric port is answered at
    /// once on the loop's thread, never reaching a resolver; a name runs on the resolver pool.
    /// A malformed host name is an <see cref="ArgumentException"/> before any lookup; a failed lookup an
    /// <see cref="AddressInfoException"/> carrying the resolver's EAI_* code. Cancelling (the token, or the
    /// awaiting task) abandons the lookup: the loop does not wait for it.
    /// </summary>
    public Task<IReadOnlyList<AddrInfo>> GetAddrInfoAsync(string? host, int port, AddressFamily family = AddressFamily.Unspecified,
        SocketType type = default, ProtocolType protocol = default, AddrInfoFlags flags = AddrInfoFlags.None,
        CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(port);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, IPEndPoint.MaxPort);
        return GetAddrInfoCore(host, port.ToString(System.Globalization.CultureInfo.InvariantCulture), true, family, type, protocol, flags, cancellationToken);
    }

    /// <summary>
    /// <see cref="GetAddrInfoAsync(string?, int, AddressFamily, SocketType, ProtocolType, AddrInfoFlags, CancellationToken)"/>
    /// with the port as a service: a number as text, a name from the services database ("http"), or null
    /// (asyncio's <c>port=None</c>: the socket addresses carry port 0).
    /// </summary>
    public Task<IReadOnlyList<AddrInfo>> GetAddrInfoAsync(string? host, string? service, AddressFamily family = AddressFamily.Unspecified,
        SocketType type = default, ProtocolType protocol = default, AddrInfoFlags flags = AddrInfoFlags.None,
        CancellationToken cancellationToken = default)
    {
        if (service is not null && service.Contains('\0')) throw new ArgumentException("the service contains a NUL character", nameof(service));
        bool numeric = service is null || (service.Length is > 0 and <= 5 && service.All(char.IsAsciiDigit));
        return GetAddrInfoCore(host, service, numeric, family, type, protocol, flags, cancellationToken);
    }

    private async Task<IReadOnlyList<AddrInfo>> GetAddrInfoCore(string? host, string? service, bool numericService, AddressFamily family,
        SocketType type, ProtocolType protocol, AddrInfoFlags flags, CancellationToken cancellationToken)
    {
        ThrowIfClosed();
        VerifyAccess();
        if (host is not null) host = HostNames.ToAscii(host, nameof(host));
        int nativeFamily = LibC.ToNativeFamily(family);
        int nativeType = type == SocketType.Unknown ? 0 : (int)type;
        int nativeProto = protocol == ProtocolType.Unknown ? 0 : (int)protocol;
        cancellationToken.ThrowIfCancellationRequested();
        if (numericService && (host is null || IsNumericHost(host)))
        {
            // asyncio's _ipaddr_info fast path: nothing to look up, so no thread and no wait. libc still
            // builds the answer (AI_NUMERICHOST / AI_NUMERICSERV: parsing only), so it is exactly its own.
            int fast = (int)flags | (host is null ? 0 : (int)AddrInfoFlags.NumericHost) | (service is null ? 0 : (int)AddrInfoFlags.NumericServ);
            try
            {
                return LibC.GetAddrInfo(host, service, nativeFamily, nativeType, nativeProto, fast);
            }
            catch (AddressInfoException e) when (e.ResolverCode == AddressInfoException.EAI_NONAME && host is not null && !host.Contains(':'))
            {
                // .NET parsed as an address what libc does not: let the resolver have it.
            }
        }

        var resolver = Resolver;
        var lookup = Resolvers.Run(this, () => resolver.GetAddrInfo(host, service, nativeFamily, nativeType, nativeProto, (int)flags));
        return await WaitResolved(lookup, cancellationToken);
    }

    /// <summary>
    /// asyncio's <c>loop.getnameinfo(sockaddr, flags)</c>: the host and service names of
    /// <paramref name="address"/> (a reverse lookup, and the services database; numeric text with the
    /// <see cref="NameInfoFlags.NumericHost"/> / <see cref="NameInfoFlags.NumericServ"/> flags, answered at
    /// once when both are given). Failures are <see cref="AddressInfoException"/>s.
    /// </summary>
    public async Task<(string Host, string Service)> GetNameInfoAsync(IPEndPoint address, NameInfoFlags flags = NameInfoFlags.None,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
            throw new ArgumentException("only IPv4 and IPv6 addresses have names", nameof(address));
        ThrowIfClosed();
        VerifyAccess();
        cancellationToken.ThrowIfCancellationRequested();
        const NameInfoFlags numeric = NameInfoFlags.NumericHost | NameInfoFlags.NumericServ;
        if ((flags & numeric) == numeric) return LibC.GetNameInfo(address, (int)flags);
        var resolver = Resolver;
        var lookup = Resolvers.Run(this, () => resolver.GetNameInfo(address, (int)flags));
        return await WaitResolved(lookup, cancellationToken);
    }

    private static async Task<T> WaitResolved<T>(Future<T> lookup, CancellationToken cancellationToken)
    {
        using var canceller = TokenCanceller.Start(lookup, cancellationToken);
        try
        {
            return await lookup;
        }
        catch (CancelledException) when (canceller is { Fired: true })
        {
            throw TokenCancellation.Cancelled(cancellationToken);
        }
    }

    private static bool IsNumericHost(string host) =>
        IPAddress.TryParse(host.AsSpan(0, host.IndexOf('%') is var pct and >= 0 ? pct : host.Length), out _);
}
