/// The public surface, member by member ("engine correctness"): every public method, constructor and
/// property accessor of Tulip and Tulip.Reactive (generic methods instantiated with int, string and
/// obj as their constraints allow) is called
///   (i)   with null for each reference parameter in turn,
///   (ii)  with extreme numbers (negative, 0, NaN, ±Infinity, MaxValue…) for each numeric, TimeSpan
///         or DateTimeOffset parameter,
///   (iii) on its loop's thread while the loop runs, and on a closed loop,
///   (iv)  from a foreign thread while the loop runs on its own thread,
/// and the sweep asserts: no NullReferenceException, IndexOutOfRangeException, InvalidCastException,
/// OverflowException or OutOfMemoryException escapes (thrown, faulting a returned awaitable, or
/// reaching the loop's exception handler); no call hangs; a non-nullable reference parameter refuses
/// null with ArgumentNullException naming it; and every loop-bound member either refuses a foreign
/// thread with EventLoopException or carries [ThreadSafe].
///
/// Each call gets a world: a loop on a virtual clock running RunForever on a dedicated thread, and
/// the instances and arguments the call needs, made on that thread (sync primitives are bound to the
/// loop first by making a task wait on them; network objects live on 127.0.0.1 port 0). The test
/// thread is the watchdog; closed-loop and foreign-thread calls come from a thread the sweep keeps for
/// them. The cases the sweep was written for are pinned one by one in EngineCorrectnessTests.fs.
/// TULIP_SWEEP_ONLY=<text> sweeps only the members whose description contains it; TULIP_SWEEP_VERBOSE=1
/// lists the members that met the thread rule only because they refuse the call on any thread.
module Tulip.Tests.SurfaceSweepTests

open System
open System.Collections
open System.Collections.Concurrent
open System.Collections.Generic
open System.IO
open System.Reflection
open System.Threading
open System.Threading.Tasks
open Expecto
open Tulip
open Tulip.Reactive
open Tulip.Tests.SweepWorld
open Tulip.Tests.SweepArguments

// -------------------------------------------------------------------------------------------------
// The surface

let private surfaceAssemblies = [ typeof<EventLoop>.Assembly; typeof<LoopScheduler>.Assembly ]

let private declared = BindingFlags.Public ||| BindingFlags.Instance ||| BindingFlags.Static ||| BindingFlags.DeclaredOnly

let private publicTypes =
    [ for a in surfaceAssemblies do
          for t in a.GetExportedTypes() do
              if not (typeof<Delegate>.IsAssignableFrom t) && not t.IsEnum then yield t ]

let private close (t: Type) =
    if t.IsGenericTypeDefinition then t.MakeGenericType(Array.create (t.GetGenericArguments().Length) typeof<int>) else t

/// The public members a type declares (generic methods instantiated), and its constructors.
let private membersOf (t: Type) : MethodBase list =
    [ for m in t.GetMethods declared do
          yield! instantiations m |> List.map (fun m -> m :> MethodBase)
      if not t.IsAbstract then
          for c in t.GetConstructors(BindingFlags.Public ||| BindingFlags.Instance) do
              yield c :> MethodBase ]

let private describe (m: MethodBase) =
    let t = m.DeclaringType
    let tn = if t.IsGenericType then t.Name.Split('`')[0] + "<" + (t.GetGenericArguments() |> Array.map (fun a -> a.Name) |> String.concat ",") + ">" else t.Name
    let gn =
        match m with
        | :? MethodInfo as mi when mi.IsGenericMethod -> "<" + (mi.GetGenericArguments() |> Array.map (fun a -> a.Name) |> String.concat ",") + ">"
        | _ -> ""

    let ps = m.GetParameters() |> Array.map (fun p -> p.ParameterType.Name) |> String.concat ", "
    $"{tn}.{m.Name}{gn}({ps})"

let private threadSafeAttribute = "Tulip.ThreadSafeAttribute"

let private carries (m: MemberInfo) =
    not (isNull m) && m.GetCustomAttributes(true) |> Array.exists (fun a -> a.GetType().FullName = threadSafeAttribute)

let private propertyOf (m: MethodBase) =
    m.DeclaringType.GetProperties declared
    |> Array.tryFind (fun p -> p.GetMethod = (m :?> MethodInfo) || p.SetMethod = (m :?> MethodInfo))

/// [ThreadSafe] on the member, its property, or its type (generic members: on their definition).
let private isThreadSafe (m: MethodBase) =
    let open' = m.Module.ResolveMethod m.MetadataToken

    carries m
    || carries open'
    || carries m.DeclaringType
    || (match m with
        | :? MethodInfo as mi when mi.IsSpecialName -> propertyOf m |> Option.exists carries
        | _ -> false)

/// Object's own members: debuggers and loggers call them from any thread, so instead of the thread rule
/// they are held to a stricter one: from a foreign thread they give a snapshot and never raise.
let private objectMembers = set [ "ToString"; "Equals"; "GetHashCode" ]

/// The reviewed exceptions to the thread rule, with why.
let private threadAllowList: (string * string) list = []

// -------------------------------------------------------------------------------------------------
// One call, observed

type private Call =
    { Sync: Result<obj, exn>
      /// Awaitables to look at after a few ticks: the result, the first step of a returned sequence.
      Awaitables: obj list
      /// What the follow-ups raised (the first MoveNext of a sequence, a subscription).
      FollowUp: exn list
      ObserverErrors: ConcurrentQueue<exn> }

let private subscribe (w: World) (o: obj) (errors: ConcurrentQueue<exn>) =
    let it =
        o.GetType().GetInterfaces()
        |> Array.tryFind (isGenericTypeOf typedefof<IObservable<_>>)

    match it with
    | Some it ->
        let x = it.GetGenericArguments()[0]
        let observer = Activator.CreateInstance(typedefof<SweepObserver<_>>.MakeGenericType [| x |], [| box errors |])
        let sub = it.GetMethod("Subscribe").Invoke(o, [| observer |]) :?> IDisposable
        w.Adopt sub
    | None -> ()

/// Calls the member and takes the first step of what it returned, in the caller's context.
let private callNow (w: World) (m: MethodBase) (target: obj) (args: obj[]) : Call =
    let errors = ConcurrentQueue<exn>()

    match (try Ok(invoke m target args) with e -> Error e) with
    | Error e -> { Sync = Error e; Awaitables = []; FollowUp = []; ObserverErrors = errors }
    | Ok result ->
        let followUp = ResizeArray<exn>()
        let awaitables = ResizeArray<obj>([ result ])

        try
            match result with
            | null
            | :? string
            | :? Array
            | :? Stream -> ()
            | _ ->
                let ae =
                    result.GetType().GetInterfaces() |> Array.tryFind (isGenericTypeOf typedefof<IAsyncEnumerable<_>>)

                let aen =
                    result.GetType().GetInterfaces() |> Array.tryFind (isGenericTypeOf typedefof<IAsyncEnumerator<_>>)

                match ae, aen with
                | Some ae, _ ->
                    let en = ae.GetMethod("GetAsyncEnumerator").Invoke(result, [| box CancellationToken.None |])
                    let ei = typedefof<IAsyncEnumerator<_>>.MakeGenericType(ae.GetGenericArguments())
                    awaitables.Add(ei.GetMethod("MoveNextAsync").Invoke(en, [||]))
                | None, Some ei -> awaitables.Add(ei.GetMethod("MoveNextAsync").Invoke(result, [||]))
                | None, None ->
                    match result with
                    | :? IEnumerable as s when not (result :? Future) ->
                        let en = s.GetEnumerator()
                        if en.MoveNext() then awaitables.Add en.Current
                    | _ -> subscribe w result errors
        with
        | :? TargetInvocationException as e -> followUp.Add e.InnerException
        | e -> followUp.Add e

        { Sync = Ok result; Awaitables = List.ofSeq awaitables; FollowUp = List.ofSeq followUp; ObserverErrors = errors }

/// What an awaitable ended with, if it is done and failed; a pending awaitable is fine.
let rec private faultOf (w: World) (o: obj) : exn list =
    match o with
    | null -> []
    | :? Task as t ->
        if t.IsFaulted then
            [ t.Exception :> exn ]
        elif t.IsCompletedSuccessfully then
            let rt = t.GetType()
            let rp = rt.GetProperty "Result"
            if not (isNull rp) then w.Adopt(rp.GetValue t)
            []
        else
            []
    | :? Future as f ->
        if f.Done && not f.Cancelled then
            match f.Exception() with
            | null -> []
            | e -> [ e ]
        else
            []
    | _ ->
        let t = o.GetType()

        if t = typeof<ValueTask> || isGenericTypeOf typedefof<ValueTask<_>> t then
            faultOf w (t.GetMethod("AsTask").Invoke(o, [||]))
        else
            match t.GetProperty "Future" with
            | null -> []
            | p when typeof<Future>.IsAssignableFrom p.PropertyType -> faultOf w (p.GetValue o)
            | _ -> []

/// Everything the call raised besides its synchronous exception: its follow-ups, and — after a few
/// ticks, looked at on the loop's thread — its awaitables and the observer of its observable.
let private observe (w: World) (call: Call) =
    let look () = call.FollowUp @ (call.Awaitables |> List.collect (faultOf w)) @ List.ofSeq call.ObserverErrors

    if w.Loop.IsClosed then
        look ()
    else
        for _ in 1..4 do
            w.Tick() |> ignore

        match w.OnLoop(fun () -> Task.FromResult(look ())) with
        | Some(Ok fs) -> fs
        | _ -> call.FollowUp

/// What reached the world's exception handler since the last look.
let private handlerErrors (w: World) =
    [ let mutable c = Unchecked.defaultof<ExceptionContext>

      while w.Errors.TryDequeue(&c) do
          if not (isNull c.Exception) then yield c.Exception ]

// -------------------------------------------------------------------------------------------------
// The sweep

type private Finding = { Rule: string; Member: string; Detail: string }

type private Report =
    { Findings: Finding list
      Called: Set<string>
      Worlds: int
      Elapsed: TimeSpan }

let private strictNullability = NullabilityInfoContext()

/// Whether null is refused by contract: declared non-nullable, and not a generic parameter (whose
/// instantiation decides).
let private nonNullable (m: MethodBase) (i: int) =
    let openM = m.Module.ResolveMethod m.MetadataToken
    let p = openM.GetParameters()[i]

    not p.ParameterType.IsGenericParameter
    && not p.ParameterType.IsValueType
    && not p.ParameterType.IsByRef
    && (lock strictNullability (fun () -> strictNullability.Create(p).WriteState)) = NullabilityState.NotNull

/// TULIP_SWEEP_ONLY=<substring> sweeps only the members whose description contains it (to debug).
let private selected (m: MethodBase) =
    match Environment.GetEnvironmentVariable "TULIP_SWEEP_ONLY" with
    | null
    | "" -> true
    | only -> (describe m).Contains only

/// Exempt from the null rule: object's members and operators (null is a valid operand), exception
/// constructors (a BCL exception takes a null message), and the protocol base classes users derive
/// from (their no-op virtuals are called by transports, never with null).
let private nullExempt (m: MethodBase) =
    objectMembers.Contains m.Name
    || m.Name.StartsWith "op_"
    || typeof<Exception>.IsAssignableFrom m.DeclaringType
    || m.DeclaringType = typeof<BaseProtocol>
    || m.DeclaringType = typeof<Protocol>
    || m.DeclaringType = typeof<BufferedProtocol>
    || m.DeclaringType = typeof<DatagramProtocol>

let private runSweep () : Report =
    let sw = Diagnostics.Stopwatch.StartNew()
    let findings = ConcurrentQueue<Finding>()
    let called = HashSet<string>()
    let mutable worlds = 0
    let mutable caller = Caller()
    let previousSink = Diagnostics.LoopLog.Sink
    Diagnostics.LoopLog.Sink <- Action<string>(ignore)

    let add rule (m: MethodBase) detail =
        findings.Enqueue { Rule = rule; Member = describe m; Detail = detail }

    let checkForbidden (m: MethodBase) (where: string) (variant: string) (excs: exn list) =
        for e in excs do
            match forbiddenIn e with
            | Some f -> add "typed errors" m $"{where}, {variant}: {f.GetType().Name} escaped ({f.Message})"
            | None -> ()

    let world () =
        worlds <- worlds + 1
        let w = World()
        w.Start()
        w

    let dispose (w: World) =
        try
            w.Dispose()
        with _ ->
            ()

    /// The variants of a member's arguments: valid, then null for each reference parameter, then
    /// the extremes of each numeric one. Values are made on the loop thread.
    let variants (m: MethodBase) : (string * (World -> Task<obj[]>) * int option) list =
        let ps = m.GetParameters()

        let valid (w: World) =
            task {
                let args = Array.zeroCreate ps.Length

                for i in 0 .. ps.Length - 1 do
                    let! v = valueFor w m ps[i]
                    args[i] <- v

                return args
            }

        let withArg i (v: obj) (w: World) =
            task {
                let! args = valid w
                args[i] <- v
                return args
            }

        [ yield "valid arguments", valid, None
          for i in 0 .. ps.Length - 1 do
              let t = ps[i].ParameterType

              if not t.IsValueType && not t.IsByRef && not t.IsByRefLike
                 && not (m.DeclaringType = typeof<Diagnostics.LoopLog> && m.Name = "set_Sink") then
                  yield $"null {ps[i].Name}", withArg i null, Some i
          for i in 0 .. ps.Length - 1 do
              for label, v in extremes ps[i].ParameterType do
                  yield $"{ps[i].Name} = {label}", withArg i v, None ]

    let prepare (w: World) (make: (World -> Task<obj>) option) (args: World -> Task<obj[]>) =
        w.OnLoop(fun () ->
            task {
                let! target =
                    match make with
                    | Some f -> f w
                    | None -> Task.FromResult null

                let! a = args w
                return target, a
            })

    let sweepMember (tgt: Target option) (m: MethodBase) =
        let name = describe m
        lock called (fun () -> called.Add name |> ignore)
        let make = tgt |> Option.map (fun t -> t.Make)
        let vs = variants m
        let mutable baseline: exn option = None

        // (i)-(iii): on the loop thread, in a task, every variant on one world.
        let w = world ()

        try
            for label, args, nullIndex in vs do
                if not w.Stuck then
                    match prepare w make args with
                    | Some(Ok(target, a)) ->
                        match w.OnLoop(fun () -> Task.FromResult(callNow w m target a)) with
                        | None -> add "no hang" m $"on the loop thread, {label}: the call did not return within {callLimit.TotalSeconds} s"
                        | Some(Error e) -> add "sweep setup" m $"{label}: the sweep failed to call it: {e}"
                        | Some(Ok call) ->
                            let faults = observe w call
                            let sync = match call.Sync with Error e -> [ e ] | Ok _ -> []
                            checkForbidden m "on the loop thread" label (sync @ faults @ handlerErrors w)

                            if w.Stuck then
                                add "no hang" m $"on the loop thread, {label}: the loop stopped answering after the call"

                            if nullIndex.IsNone && label = "valid arguments" then
                                baseline <- (match call.Sync with Error e -> Some e | Ok _ -> None)

                            let refusedAnyway =
                                // Refused whatever the argument (a task's SetException, a sync Read): not "accepted".
                                match sync, baseline with
                                | [ e ], Some b -> e.GetType() = b.GetType()
                                | _ -> false

                            match nullIndex with
                            | Some i when nonNullable m i && not refusedAnyway && not (nullExempt m) ->
                                let p = (m.GetParameters()[i]).Name

                                let refused =
                                    (sync @ faults)
                                    |> List.collect chain
                                    |> List.exists (fun e ->
                                        match e with
                                        | :? ArgumentNullException as a -> a.ParamName = p
                                        | _ -> false)

                                if not refused then
                                    let got =
                                        match sync @ faults with
                                        | e :: _ -> $"{e.GetType().Name}: {e.Message}"
                                        | [] -> "accepted"

                                    add "null refused" m $"null {p}: wanted ArgumentNullException({p}), got {got}"
                            | _ -> ()
                    | Some(Error e) -> add "sweep setup" m $"{label}: {e.InnerException |> Option.ofObj |> Option.defaultValue e}"
                    | None -> add "no hang" m $"{label}: making the instance and arguments did not finish"
        finally
            dispose w

        let validArgs = vs |> List.head |> fun (_, a, _) -> a

        // (iii): on a closed loop, valid arguments, called from another thread (the loop's is gone).
        let w = world ()

        try
            match prepare w make validArgs with
            | Some(Ok(target, a)) ->
                w.CloseLoop()

                match caller.Call(fun () -> callNow w m target a) with
                | None ->
                    add "no hang" m "on a closed loop: the call did not return"
                    caller <- Caller()
                | Some call ->
                    let faults = observe w call
                    let sync = match call.Sync with Error e -> [ e ] | Ok _ -> []
                    checkForbidden m "on a closed loop" "valid arguments" (sync @ faults @ handlerErrors w)
            | Some(Error e) -> add "sweep setup" m $"closed loop: {e}"
            | None -> add "no hang" m "closed loop: making the instance and arguments did not finish"
        finally
            dispose w

        // (iv): from a foreign thread while the loop runs on its own.
        let loopBound =
            match tgt with
            | Some t -> t.Bound
            | None -> m.GetParameters() |> Array.exists (fun p -> isLoopBoundType p.ParameterType)

        if loopBound then
            let w = world ()

            try
                match prepare w make validArgs with
                | Some(Ok(target, a)) ->
                    match caller.Call(fun () -> callNow w m target a) with
                    | None ->
                        add "no hang" m "from a foreign thread: the call did not return"
                        caller <- Caller()
                    | Some call ->
                        let faults = observe w call
                        let sync = match call.Sync with Error e -> [ e ] | Ok _ -> []
                        checkForbidden m "from a foreign thread" "valid arguments" (sync @ faults @ handlerErrors w)

                        let refused = (sync @ faults) |> List.collect chain |> List.exists (fun e -> e :? EventLoopException)

                        let sameAsOnLoop =
                            match sync, baseline with
                            | [ e ], Some b -> e.GetType() = b.GetType()
                            | _ -> false

                        if objectMembers.Contains m.Name then
                            match sync with
                            | e :: _ -> add "foreign thread" m $"object's {m.Name} raised {e.GetType().Name} ({e.Message}): it must give a snapshot from any thread"
                            | [] -> ()
                        elif refused || isThreadSafe m || threadAllowList |> List.exists (fun (k, _) -> k = describe m) then
                            ()
                        elif sameAsOnLoop then
                            if not (isNull (Environment.GetEnvironmentVariable "TULIP_SWEEP_VERBOSE")) then
                                printfn "sweep: %s is refused on any thread (%s)" (describe m) (sync.Head.GetType().Name)
                        else
                            let what =
                                match sync with
                                | e :: _ -> $"raised {e.GetType().Name} ({e.Message}), not EventLoopException"
                                | [] -> "ran"

                            add "foreign thread" m $"{what}; not [ThreadSafe]"
                | Some(Error e) -> add "sweep setup" m $"foreign thread: {e}"
                | None -> add "no hang" m "foreign thread: making the instance and arguments did not finish"
            finally
                dispose w

    try
        for t in publicTypes do
            let closed = close t
            let ms = membersOf closed

            for m in ms do
                if (m.IsStatic || m :? ConstructorInfo) && selected m then
                    sweepMember None m

            // Instance members: on every target of this type (an interface's members on its
            // implementations, a base class's on a derived instance, a generic type's on the
            // instantiation its factory makes).
            for tgt in targetsOf t do
                for m in membersOf tgt.Type do
                    if not m.IsStatic && not (m :? ConstructorInfo) && selected m then
                        sweepMember (Some tgt) m
    finally
        Diagnostics.LoopLog.Sink <- previousSink

    { Findings = List.ofSeq findings
      Called = set called
      Worlds = worlds
      Elapsed = sw.Elapsed }

let private report = lazy (runSweep ())

let private show (fs: Finding list) =
    fs
    |> List.groupBy (fun f -> f.Member)
    |> List.map (fun (m, xs) -> m + "\n" + (xs |> List.map (fun x -> "    " + x.Detail) |> List.distinct |> String.concat "\n"))
    |> String.concat "\n"

let private expectNone (rule: string) (what: string) =
    let fs = report.Value.Findings |> List.filter (fun f -> f.Rule = rule)
    if not (List.isEmpty fs) then failtestf "%s (%d members):\n%s" what (fs |> List.map (fun f -> f.Member) |> List.distinct |> List.length) (show fs)

[<Tests>]
let sweep =
    // Alone: it changes LoopLog.Sink (process-wide) and runs thousands of short-lived loops.
    testSequenced (
        testList
            "Surface sweep"
            [ testCase "every public type with instance members has an instance to call them on" (fun () ->
                  let missing =
                      [ for t in publicTypes do
                            let closed = close t

                            let instanceMembers =
                                closed.GetMethods declared |> Array.filter (fun m -> not m.IsStatic)

                            if instanceMembers.Length > 0 && List.isEmpty (targetsOf t) then
                                yield closed.Name ]

                  Expect.isEmpty missing $"each needs a factory in SweepArguments.targets: %A{missing}")

              testCase "the sweep reaches every member and runs well under a minute" (fun () ->
                  let r = report.Value
                  printfn "surface sweep: %d members, %d worlds, %.1f s" r.Called.Count r.Worlds r.Elapsed.TotalSeconds
                  let setup = r.Findings |> List.filter (fun f -> f.Rule = "sweep setup")
                  Expect.isEmpty setup $"the sweep could call everything:\n{show setup}"
                  Expect.isGreaterThan r.Called.Count 400 "hundreds of members"
                  Expect.isLessThan r.Elapsed (TimeSpan.FromSeconds 45.0) $"{r.Worlds} worlds in {r.Elapsed}")

              testCase "no NullReference, IndexOutOfRange, InvalidCast, Overflow or OutOfMemory exception escapes" (fun () ->
                  expectNone "typed errors" "bad input must get a typed error (ArgumentNullException, ArgumentOutOfRangeException, asyncio's)")

              testCase "no call hangs (each bounded at 2 s; a pending awaitable is fine)" (fun () ->
                  expectNone "no hang" "calls that did not return")

              testCase "a non-nullable reference parameter refuses null with ArgumentNullException naming it" (fun () ->
                  expectNone "null refused" "null accepted, or refused without naming the parameter")

              testCase "from a foreign thread every loop-bound member raises EventLoopException unless [ThreadSafe]" (fun () ->
                  expectNone "foreign thread" "loop-bound members that ran from a foreign thread") ]
    )
