/// The public seams a satellite (Tulip.Testing, Tulip.Reactive, a user's own adapter) is written
/// against, used as a user would: a clock of one's own over a TimeProvider, and the loop's thread
/// access (IsOnLoopThread, CheckAccess, VerifyAccess, InvokeOnLoop).
module Tulip.Tests.ClockSeamTests

open System
open System.Threading
open System.Threading.Tasks
open Expecto
open Tulip
open Tulip.Tests.ShellSupport

/// A TimeProvider whose time moves only by hand (FakeTimeProvider's shape).
type private ManualTimeProvider() =
    inherit TimeProvider()
    let mutable ticks = 0L
    member _.Advance(by: TimeSpan) = Interlocked.Add(&ticks, by.Ticks) |> ignore
    override _.TimestampFrequency = TimeSpan.TicksPerSecond
    override _.GetTimestamp() = Volatile.Read(&ticks)

/// A loop clock over a TimeProvider that advances it instead of waiting (how a user adapts a
/// FakeTimeProvider): the whole seam in a dozen lines.
type private TimeProviderClock(provider: ManualTimeProvider) =
    inherit LoopClock()
    let origin = provider.GetTimestamp()
    let mutable waits = 0
    member _.Waits = waits
    override _.Now = provider.GetElapsedTime(origin).Ticks
    override _.Wait(timeout, _externalWorkPending) =
        waits <- waits + 1
        if timeout > TimeSpan.Zero then provider.Advance timeout
    override _.Wake() = ()

[<Tests>]
let tests =
    testList
        "Public seams"
        [ testCase "a clock of one's own over a TimeProvider: an hour of sleep advances the provider, not the wall" (fun () ->
              let provider = ManualTimeProvider()
              let clock = TimeProviderClock(provider)
              use loop = new EventLoop(clock)
              let started = Diagnostics.Stopwatch.StartNew()

              let t =
                  runMain loop (fun () ->
                      task {
                          do! Asyncio.Sleep 3600.0
                          return loop.Time()
                      })

              Expect.floatClose Accuracy.medium t 3600.0 "loop time is the provider's"
              Expect.equal (provider.GetTimestamp()) (TimeSpan.FromHours(1.0).Ticks) "the provider moved an hour"
              Expect.isGreaterThan clock.Waits 0 "the loop waited through the clock"
              Expect.isLessThan started.Elapsed.TotalSeconds 10.0 "without sleeping")

          testCase "thread access: on the loop thread, from another thread while it runs, and while idle" (fun () ->
              use loop = newLoop ()
              let onIdle = (loop.IsOnLoopThread, loop.CheckAccess())
              loop.VerifyAccess() // idle: any thread may use the loop
              let ranIdle = ref false
              loop.InvokeOnLoop(fun () -> ranIdle.Value <- true)
              Expect.equal onIdle (false, true) "idle: no loop thread, access for any thread"
              Expect.isTrue ranIdle.Value "idle: InvokeOnLoop runs at once"

              let result =
                  runMain loop (fun () ->
                      task {
                          let here = (loop.IsOnLoopThread, loop.CheckAccess())
                          let inline' = ref false
                          loop.InvokeOnLoop((fun (r: bool ref) -> r.Value <- true), inline')

                          let foreign =
                              Task.Run(fun () ->
                                  let seen = (loop.IsOnLoopThread, loop.CheckAccess())
                                  let refused =
                                      try
                                          loop.VerifyAccess()
                                          false
                                      with :? EventLoopException -> true

                                  let posted = TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously)
                                  loop.InvokeOnLoop(fun () -> posted.SetResult loop.IsOnLoopThread)
                                  (seen, refused, posted.Task))

                          let! seen, refused, posted = foreign
                          let! ranOnLoop = posted
                          return here, inline'.Value, seen, refused, ranOnLoop
                      })

              let here, ranInline, seen, refused, ranOnLoop = result
              Expect.equal here (true, true) "on the loop thread"
              Expect.isTrue ranInline "on the loop thread InvokeOnLoop runs at once"
              Expect.equal seen (false, false) "another thread while the loop runs"
              Expect.isTrue refused "VerifyAccess raises EventLoopException there"
              Expect.isTrue ranOnLoop "InvokeOnLoop from there posts to the loop thread"
              Expect.throwsT<ArgumentNullException> (fun () -> loop.InvokeOnLoop(null: Action)) "null action") ]
