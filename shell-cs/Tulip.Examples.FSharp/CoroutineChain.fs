/// The chapter's coroutine_chain, written in F#: Tulip's coroutines are plain `task { }` computation
/// expressions, and `let!` awaits Tulip futures, tasks and Asyncio.Sleep directly.
module Tulip.Examples.FSharp.CoroutineChain

open System
open System.IO
open System.Threading.Tasks
open Tulip

/// Runs the example on a loop made with a clock from `clocks`, writing only to `out`.
let run (out: TextWriter) (clocks: Func<LoopClock>) : unit =
    let print (line: string) = out.WriteLine line

    let phase1 () : Task<string> =
        task {
            print "in phase1"
            do! Asyncio.Sleep 0.0
            return "result1"
        }

    let phase2 (arg: string) : Task<string> =
        task {
            print "in phase2"
            do! Asyncio.Sleep 0.0
            return $"result2 derived from {arg}"
        }

    let outer () : Task<string * string> =
        task {
            print "in outer"
            print "waiting for result1"
            // Run as tasks of the loop, so `let!` awaits Tulip tasks (loop futures) as well as the
            // nested coroutine's .NET Task.
            let! result1 = Asyncio.CreateTask(Func<_>(phase1))
            print "waiting for result2"
            let! result2 = phase2 result1
            return result1, result2
        }

    use loop = new EventLoop(clocks.Invoke())
    let (result1, result2) = loop.RunUntilComplete(Func<_>(outer))
    print $"return value: ('{result1}', '{result2}')"

    if result2 <> "result2 derived from result1" then
        failwith $"the example did not show what it should: the chain's results were combined (got '{result2}')"
