namespace Tulip;

/// <summary>
/// Generator-based coroutines, the style before <c>async</c>/<c>await</c> (PEP 380's <c>yield from</c>):
/// an iterator that yields what it waits for. Yield a <see cref="Future"/> to wait for it (read its
/// result afterwards with <c>Result()</c>; if it failed, the generator ends with that error), null to
/// give up one tick, another generator to run it in place (<c>yield from</c>), and
/// <see cref="Return{T}(T)"/> to end with a value.
/// </summary>
public static class Generator
{
    /// <summary>The coroutine function that drives <paramref name="generator"/>, for <c>CreateTask</c>.</summary>
    public static Func<Task<T>> Coroutine<T>(Func<IEnumerable<object?>> generator)
    {
        ArgumentNullException.ThrowIfNull(generator);
        return async () =>
        {
            var result = await Drive(generator());
            return result is ReturnValue<T> r ? r.Value : default!;
        };
    }

    /// <summary>Ends the generator with <paramref name="value"/> (Python's <c>return value</c>).</summary>
    public static object Return<T>(T value) => new ReturnValue<T>(value);

    private sealed record ReturnValue<T>(T Value);

    private static async Task<object?> Drive(IEnumerable<object?> generator)
    {
        foreach (var item in generator)
        {
            switch (item)
            {
                case null:
                    await Asyncio.Sleep(0);
                    break;
                case Future f:
                    await f;
                    break;
                case IEnumerable<object?> inner:
                    // yield from: the inner generator runs in place; its return value ends only it.
                    await Drive(inner);
                    break;
                default:
                    if (item.GetType().IsGenericType && item.GetType().GetGenericTypeDefinition() == typeof(ReturnValue<>)) return item;
                    throw new InvalidOperationException($"a generator coroutine yielded {item.GetType().Name}: yield a Future, null, a generator or Generator.Return(value)");
            }
        }

        return null;
    }
}
