namespace Tulip.Examples;

/// <summary>Every example, in the order of the chapter (../shared/seed/README.md).</summary>
public static class Catalog
{
    public static IReadOnlyList<Example> All { get; } =
    [
        .. Coroutines.Examples,
    ];
}
