/// Tulip.Reactive's lifetime law (issue 8): a subscription's lifetime equals the lifetime of the work
/// behind it. Random schedules of subscriptions (one-shot scheduler work, periodic work, Rx Interval,
/// a task as an observable), each subscribed at a generated time and disposed (or not) at another —
/// down to the tick — run on a virtual-time loop. Laws: nothing is delivered after disposal; until its
/// disposal a subscription gets exactly the deliveries its work makes; and once every subscription is
/// disposed no loop handle is left queued or parked (the loop's live handles are back to where they were).
module Tulip.PropertyTests.ReactiveProperties

open System
open System.Collections.Generic
open System.Reactive.Linq
open System.Threading.Tasks
open Expecto
open FsCheck
open FsCheck.FSharp
open Tulip
open Tulip.Reactive
open Tulip.Testing
open Tulip.PropertyTests.LoopProperties

/// Times are in units of 10 ms of loop time.
type Work =
    | OneShot of due: int
    | Periodic of period: int
    | Interval of period: int
    | TaskValue of duration: int

type Sub = { Work: Work; At: int; DisposeAfter: (int * int) option }

let private unitMs = 10
let private endUnits = 150

let private subs =
    let work =
        Gen.oneof
            [ Gen.map OneShot (Gen.choose (0, 30))
              Gen.map Periodic (Gen.choose (1, 20))
              Gen.map Interval (Gen.choose (1, 20))
              Gen.map TaskValue (Gen.choose (0, 30)) ]

    let sub =
        gen {
            let! w = work
            let! at = Gen.choose (0, 50)
            let! d = Gen.optionOf (Gen.zip (Gen.choose (0, 60)) (Gen.choose (0, 2)))
            return { Work = w; At = at; DisposeAfter = d }
        }

    gen {
        let! n = Gen.choose (1, 6)
        return! Gen.listOfLength n sub
    }

/// Deliveries the work makes when nobody disposes it (ms), up to the end of the run.
let private expected (s: Sub) =
    let at = s.At * unitMs
    match s.Work with
    | OneShot due -> [ at + due * unitMs ]
    | TaskValue d -> [ at + d * unitMs ]
    | Periodic p
    | Interval p -> [ for k in 1..1000 do if at + k * p * unitMs <= endUnits * unitMs then at + k * p * unitMs ]

type private Run =
    { Events: List<int>
      mutable Disposed: bool
      mutable DisposedAt: int
      mutable Late: int
      mutable Sub: IDisposable
      mutable Task: LoopTask<int> option }

let lifetimeLaw =
    testPropertyWithConfig config "a subscription's lifetime is its work's: nothing after disposal, everything before it, no handle left"
    <| Prop.forAll (Arb.fromGen subs) (fun schedule ->
        use loop = TestLoop.Create()
        let sch = LoopScheduler(loop)
        let nowMs () = int (loop.Now.Ticks / TimeSpan.TicksPerMillisecond)

        let runs =
            schedule
            |> List.map (fun _ -> { Events = List(); Disposed = false; DisposedAt = 0; Late = 0; Sub = null; Task = None })

        let record (r: Run) () =
            if r.Disposed then r.Late <- r.Late + 1 else r.Events.Add(nowMs ())

        let observer (r: Run) =
            { new IObserver<'T> with
                member _.OnNext _ = record r ()
                member _.OnError _ = r.Late <- r.Late + 1000
                member _.OnCompleted() = () }

        let dispose (r: Run) =
            if not r.Disposed then
                r.Disposed <- true
                r.DisposedAt <- nowMs ()
                r.Sub.Dispose()

        let subscribe (s: Sub) (r: Run) =
            r.Sub <-
                match s.Work with
                | OneShot due ->
                    (sch :> System.Reactive.Concurrency.IScheduler)
                        .Schedule((), TimeSpan.FromMilliseconds(float (due * unitMs)), Func<_, unit, IDisposable>(fun _ () ->
                            record r ()
                            System.Reactive.Disposables.Disposable.Empty))
                | Periodic p -> sch.SchedulePeriodic(0, TimeSpan.FromMilliseconds(float (p * unitMs)), Func<int, int>(fun n -> record r (); n + 1))
                | Interval p -> Observable.Interval(TimeSpan.FromMilliseconds(float (p * unitMs)), sch).Subscribe(observer r)
                | TaskValue d ->
                    let t =
                        loop.CreateTask(Func<Task<int>>(fun () ->
                            task {
                                do! Asyncio.Sleep(float (d * unitMs) / 1000.0)
                                return 1
                            }))
                    r.Task <- Some t
                    t.ToObservable().Subscribe(observer r)

            match s.DisposeAfter with
            | Some(0, 0) -> dispose r
            | Some(after, ticks) ->
                loop.CallLater(float (after * unitMs) / 1000.0, fun () ->
                    let rec later n = if n = 0 then dispose r else loop.CallSoon(fun () -> later (n - 1)) |> ignore
                    later ticks) |> ignore
            | None -> ()

        let baseline, final =
            loop.RunUntilComplete(Func<Task<int * int>>(fun () ->
                task {
                    let baseline = loop.LiveHandles
                    for s, r in List.zip schedule runs do
                        loop.CallLater(float (s.At * unitMs) / 1000.0, fun () -> subscribe s r) |> ignore
                    do! Asyncio.Sleep(float (endUnits * unitMs + 5) / 1000.0)
                    for r in runs do
                        dispose r
                    // Let cancelled tasks finish their last step.
                    do! Asyncio.Sleep 0.0
                    do! Asyncio.Sleep 0.0
                    return baseline, loop.LiveHandles
                }))

        let info () =
            List.zip schedule runs
            |> List.mapi (fun i (s, r) -> sprintf "  %d: %A events=%A disposedAt=%d late=%d" i s (List.ofSeq r.Events) r.DisposedAt r.Late)
            |> String.concat "\n"

        for s, r in List.zip schedule runs do
            if r.Late > 0 then failtestf "delivered after disposal\n%s" (info ())
            let wanted = expected s
            let events = List.ofSeq r.Events
            let explicitlyDisposed = s.DisposeAfter.IsSome
            if not explicitlyDisposed then
                if events <> wanted then failtestf "an undisposed subscription missed or gained deliveries\n%s" (info ())
            else
                let d = r.DisposedAt
                if events |> List.exists (fun e -> e > d) then failtestf "a delivery after the disposal time\n%s" (info ())
                let before xs = xs |> List.filter (fun e -> e < d)
                if before events <> before wanted then failtestf "a delivery before disposal is missing\n%s" (info ())
                match r.Task with
                | Some t when d < List.head wanted && not t.Cancelled -> failtestf "disposal did not cancel the task\n%s" (info ())
                | _ -> ()

        if final <> baseline then failtestf "live handles %d after disposing everything, %d before\n%s" final baseline (info ()))

[<Tests>]
let tests = testList "Reactive lifetime" [ lifetimeLaw ]
