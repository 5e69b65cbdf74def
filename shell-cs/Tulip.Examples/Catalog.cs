namespace Tulip.Examples;

/// <summary>Every example, in the order of the chapter (../shared/seed/README.md).</summary>
public static class Catalog
{
    public static IReadOnlyList<Example> All { get; } =
    [
        .. Coroutines.Examples,
        // coroutine_chain again, written in F# (shell-cs/Tulip.Examples.FSharp): task { } with let!.
        new("coroutine_chain_fs", "Coroutines", "coroutine_chain in F#: task { } awaiting Tulip tasks with let!",
            ctx => Tulip.Examples.FSharp.CoroutineChain.run(ctx.Out, ctx.NewClock)),
        .. Scheduling.Examples,
        .. Futures.Examples,
        .. Tasks.Examples,
        .. Composition.Examples,
        .. Synchronization.Examples,
        .. Protocols.Examples,
        .. Streams.Examples,
        .. NamesAndSignals.Examples,
        .. Subprocesses.Examples,
        .. Reactive.Examples,
        .. Bridges.Examples,
        // Loop tasks as .NET Tasks and cancellation tokens, from F# (shell-cs/Tulip.Examples.FSharp).
        new("tokens_astask_fs", "From .NET", "F#: loop tasks as .NET Tasks (AsTask, Task.WhenAll) and CancellationTokens on the loop's clock",
            ctx => Tulip.Examples.FSharp.TokensAndTasks.run(ctx.Out, ctx.NewClock)),
        .. Executors.Examples,
    ];
}
