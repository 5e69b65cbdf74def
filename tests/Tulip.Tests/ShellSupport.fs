/// Small helpers for driving the C# shell from F# tests.
module Tulip.Tests.ShellSupport

open System
open System.Collections.Generic
open System.Threading.Tasks
open Tulip
open Tulip.Testing

/// A loop on a fresh virtual clock: tests never sleep.
let newLoop () = TestLoop.Create()

let runMain (loop: EventLoop) (main: unit -> Task<'T>) : 'T = loop.RunUntilComplete(Func<Task<'T>>(main))

let runMainUnit (loop: EventLoop) (main: unit -> Task) : unit = loop.RunUntilComplete(Func<Task>(main))

/// One tick's yield inside a coroutine (asyncio.sleep(0)).
let yieldTick () = task { do! Asyncio.Sleep 0.0 }

let sleep (seconds: float) = task { do! Asyncio.Sleep seconds }

let createTask (loop: EventLoop) (f: unit -> Task<'T>) = loop.CreateTask(Func<Task<'T>>(f))

let createTaskUnit (loop: EventLoop) (f: unit -> Task) = loop.CreateTask(Func<Task>(f))

/// A log that tests append to and compare.
type Log() =
    let items = List<string>()
    member _.Add(s: string) = lock items (fun () -> items.Add s)
    member _.Items = lock items (fun () -> List.ofSeq items)

/// Collects what reaches the loop's exception handler.
let collectErrors (loop: EventLoop) =
    let errors = List<ExceptionContext>()
    loop.SetExceptionHandler(ExceptionHandler(fun _ ctx -> errors.Add ctx))
    errors

/// Expects `f` to throw an exception of type 'E; returns it.
let throws<'E when 'E :> exn> (f: unit -> unit) : 'E =
    try
        f ()
        failwithf "expected %s, nothing was thrown" typeof<'E>.Name
    with
    | :? 'E as e -> e
    | :? AggregateException as ae when (ae.InnerException :? 'E) -> ae.InnerException :?> 'E
