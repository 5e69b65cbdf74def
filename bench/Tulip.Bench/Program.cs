// Tulip.Bench: `--bdn [filter]` runs the BenchmarkDotNet suite; anything else is the quick mode
// (bench/micro.sh), whose output matches ../shared/bench/micro/py_micro.py.
if (args.Length > 0 && args[0] == "--bdn")
{
    BenchmarkDotNet.Running.BenchmarkSwitcher.FromAssembly(typeof(Tulip.Bench.Micro).Assembly).Run(args[1..]);
    return 0;
}

if (args.Length > 0 && args[0] == "--echo-server") return Tulip.Bench.EchoServer.Run(args[1..]);

return Tulip.Bench.Micro.Run(args);
