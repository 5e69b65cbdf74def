namespace Tulip.NameResolution;

/// <summary>
/// Checks a host name before any lookup (CVE-2024-24806, libuv: a long name was silently truncated
/// and the truncated name resolved instead). A bad name is an <see cref="ArgumentException"/> naming the
/// rule it breaks; nothing reaches the resolver.
/// </summary>
internal static class HostNames
{
    public const int MaxName = 253, MaxLabel = 63;

    /// <summary>
    /// The name as the resolver gets it: a non-ASCII name in its IDNA (punycode) form, as CPython's
    /// socket module encodes <c>host.encode("idna")</c> ("bücher.example" → "xn--bcher-kva.example"),
    /// then validated as <see cref="Validate"/> (the limits apply to the encoded name, as they do to the
    /// bytes a resolver sees). A name IDNA cannot encode is an <see cref="ArgumentException"/>.
    /// </summary>
    public static string ToAscii(string host, string paramName)
    {
        if (!System.Text.Ascii.IsValid(host))
        {
            CheckCharacters(host, paramName);
            try
            {
                host = new System.Globalization.IdnMapping().GetAscii(host);
            }
            catch (ArgumentException e)
            {
                throw new ArgumentException($"the host name cannot be encoded with IDNA: {e.Message}", paramName, e);
            }
        }

        Validate(host, paramName);
        return host;
    }

    private static void CheckCharacters(string host, string paramName)
    {
        foreach (char c in host)
        {
            if (c == '\0') throw new ArgumentException("the host name contains a NUL character", paramName);
            if (char.IsControl(c)) throw new ArgumentException($"the host name contains a control character (U+{(int)c:X4})", paramName);
        }
    }

    public static void Validate(string host, string paramName)
    {
        if (host.Length == 0) throw new ArgumentException("the host name is empty", paramName);
        CheckCharacters(host, paramName);

        // A numeric IPv6 address (with a %scope) is not a DNS name: its colons are not label separators.
        if (host.Contains(':')) return;
        // One trailing dot is the root (an absolute name) and does not count.
        var name = host.EndsWith('.') ? host[..^1] : host;
        if (name.Length > MaxName) throw new ArgumentException($"the host name is {name.Length} characters long (at most {MaxName})", paramName);
        int start = 0;
        while (true)
        {
            int dot = name.IndexOf('.', start);
            int end = dot < 0 ? name.Length : dot;
            int len = end - start;
            if (len == 0) throw new ArgumentException($"the host name has an empty label at offset {start}", paramName);
            if (len > MaxLabel) throw new ArgumentException($"the host name has a label of {len} characters at offset {start} (at most {MaxLabel})", paramName);
            if (dot < 0) break;
            start = dot + 1;
        }
    }
}
