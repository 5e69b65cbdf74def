namespace Tulip.Diagnostics;

/// <summary>Readable names of callbacks for reprs and log lines.</summary>
internal static class Naming
{
    public static string Of(Delegate d)
    {
        var m = d.Method;
        var type = m.DeclaringType?.Name ?? "?";
        // Lambdas compile to <Outer>b__N_M in a closure class: show the outer method's name instead.
        var name = m.Name;
        if (name.StartsWith('<'))
        {
            int end = name.IndexOf('>');
            name = end > 1 ? name[1..end] + "(lambda)" : name;
        }

        if (type.StartsWith('<') && m.DeclaringType?.DeclaringType is { } outer)
        {
            type = outer.Name;
        }

        return $"{type}.{name}()";
    }
}
