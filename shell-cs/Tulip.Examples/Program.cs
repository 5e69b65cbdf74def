using Tulip;
using Tulip.Examples;

// ./run.sh             the whole tour, in the chapter's order
// ./run.sh list        the examples' names
// ./run.sh NAME...     only those
var all = Catalog.All;
if (args.Length == 1 && args[0] is "list" or "--list")
{
    foreach (var e in all) Console.WriteLine($"{e.Name,-28} {e.Section}: {e.Shows}");
    return 0;
}

var chosen = new List<Example>();
foreach (var name in args)
{
    var e = all.FirstOrDefault(x => x.Name == name);
    if (e is null)
    {
        Console.Error.WriteLine($"no example named '{name}' (./run.sh list shows them)");
        return 2;
    }

    chosen.Add(e);
}

if (chosen.Count == 0) chosen.AddRange(all);
Tulip.Diagnostics.LoopLog.Sink = line => Console.Error.WriteLine(line);
int failed = 0;
foreach (var e in chosen)
{
    Console.WriteLine($"=== {e.Name} — {e.Section}: {e.Shows}");
    try
    {
        e.Body(new ExampleContext(Console.Out, () => new MonotonicClock()));
    }
    catch (Exception ex)
    {
        failed++;
        Console.Error.WriteLine($"example {e.Name} failed: {ex}");
    }

    Console.WriteLine();
}

Console.WriteLine(failed == 0 ? $"{chosen.Count} example(s) ran." : $"{failed} of {chosen.Count} example(s) failed.");
return failed == 0 ? 0 : 1;
