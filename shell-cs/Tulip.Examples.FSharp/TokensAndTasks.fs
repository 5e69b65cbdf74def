/// Tulip from F#: loop tasks as .NET Tasks (AsTask, Task.WhenAll) and cancellation tokens (a task's
/// CancellationToken given to a .NET API, a CancellationTokenSource on the loop's clock cancelling a task).
module Tulip.Examples.FSharp.TokensAndTasks

open System
open System.IO
open System.Threading
open System.Threading.Tasks
open Tulip

/// Runs the example on a loop made with a clock from `clocks`, writing only to `out`.
let run (out: TextWriter) (clocks: Func<LoopClock>) : unit =
    let print (line: string) = out.WriteLine line
    use loop = new EventLoop(clocks.Invoke())

    /// A loop task that waits with a .NET API (Task.Delay on the loop's clock), passing the task's own
    /// token: cancelling the task cancels the delay.
    let worker (name: string) (seconds: float) : LoopTask<string> =
        loop.CreateTask(fun () ->
            task {
                let token = Asyncio.CurrentTask().CancellationToken
                do! Task.Delay(TimeSpan.FromSeconds seconds, loop.TimeProvider, token)
                print $"{name}: done after {seconds} s"
                return name
            })

    let main () : Task<unit> =
        task {
            let start = loop.Time()
            // Loop tasks as .NET Tasks: Task.WhenAll gives both results, in argument order.
            let! names = Task.WhenAll((worker "slow" 2.0).AsTask(), (worker "fast" 1.0).AsTask())
            print $"""Task.WhenAll: {String.Join(", ", names)}"""

            // A .NET CancellationTokenSource on the loop's clock cancels a task that would run an hour.
            let stuck = worker "stuck" 3600.0
            use cts = new CancellationTokenSource(TimeSpan.FromSeconds 5.0, loop.TimeProvider)
            use _registration = cts.Token.Register(fun () -> stuck.Cancel "five seconds passed" |> ignore)

            try
                let! _ = stuck.AsTask()
                ()
            with :? OperationCanceledException ->
                print $"stuck: cancelled; the Task says IsCanceled = {stuck.AsTask().IsCanceled}"

            print $"loop time: {loop.Time() - start:F0} s"
        }

    loop.RunUntilComplete(Func<Task<unit>>(main))
