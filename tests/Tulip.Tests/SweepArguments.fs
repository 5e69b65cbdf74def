/// What the surface sweep calls with (SurfaceSweepTests.fs): a valid value for every parameter type of
/// the surface, the extreme values of numbers, generic instantiations, and the targets — a factory per
/// public type that gives an instance to call its members on.
module Tulip.Tests.SweepArguments

open System
open System.Collections.Generic
open System.Net
open System.Net.Sockets
open System.Reflection
open System.Threading
open System.Threading.Tasks
open Tulip
open Tulip.Reactive
open Tulip.Testing
open Tulip.Tests.SweepWorld

// -------------------------------------------------------------------------------------------------
// Arguments: a valid value for every parameter of the surface, and the variants

let extremes (t: Type) : (string * obj) list =
    let t = Option.ofObj (Nullable.GetUnderlyingType t) |> Option.defaultValue t

    if t = typeof<int> then
        [ "-1", box -1; "0", box 0; "int.MaxValue", box Int32.MaxValue; "int.MinValue", box Int32.MinValue ]
    elif t = typeof<int64> then
        [ "-1L", box -1L; "0L", box 0L; "long.MaxValue", box Int64.MaxValue; "long.MinValue", box Int64.MinValue ]
    elif t = typeof<float> then
        [ "-1.0", box -1.0
          "0.0", box 0.0
          "NaN", box Double.NaN
          "+Infinity", box Double.PositiveInfinity
          "-Infinity", box Double.NegativeInfinity
          "double.MaxValue", box Double.MaxValue ]
    elif t = typeof<TimeSpan> then
        [ "-1 s", box (TimeSpan.FromSeconds -1.0)
          "TimeSpan.Zero", box TimeSpan.Zero
          "TimeSpan.MaxValue", box TimeSpan.MaxValue
          "TimeSpan.MinValue", box TimeSpan.MinValue ]
    elif t = typeof<DateTimeOffset> then
        [ "DateTimeOffset.MinValue", box DateTimeOffset.MinValue; "DateTimeOffset.MaxValue", box DateTimeOffset.MaxValue ]
    else
        []

let isGenericTypeOf (def: Type) (t: Type) = t.IsGenericType && t.GetGenericTypeDefinition() = def

/// The element type of a sequence parameter (IEnumerable<X>, X[]), if it is one.
let elementOf (t: Type) =
    if t.IsArray then Some(t.GetElementType())
    elif isGenericTypeOf typedefof<IEnumerable<_>> t then Some(t.GetGenericArguments()[0])
    else None

let observableReturn (x: Type) (v: obj) =
    typeof<System.Reactive.Linq.Observable>.GetMethods()
    |> Array.find (fun m -> m.Name = "Return" && m.GetParameters().Length = 1)
    |> fun m -> m.MakeGenericMethod([| x |]).Invoke(null, [| v |])

/// A parameter of a given type and name (for the items of a sequence parameter).
type SyntheticParameter(t: Type, name: string, m: MethodBase) =
    inherit ParameterInfo()
    override _.ParameterType = t
    override _.Name = name
    override _.Member = m :> MemberInfo
    override _.HasDefaultValue = false
    override _.DefaultValue = null

let rec valueFor (w: World) (m: MethodBase) (p: ParameterInfo) : Task<obj> =
    task {
        let t = p.ParameterType
        let name = p.Name
        let under = Nullable.GetUnderlyingType t
        let loop = w.Loop
        let serverish = m.Name.Contains "Server" || m.Name = "Connections"

        if not (isNull under) then
            // Nullable<X>: a sensible X for the name.
            match name with
            | "timeout" when under = typeof<TimeSpan> -> return box (TimeSpan.FromSeconds 1.0)
            | "timeout" -> return box 1.0
            | "delay" -> return box 100.0
            | "when" -> return box (loop.Time() + 100.0)
            | "high" -> return box 65536
            | "low" -> return box 16384
            | "expected" -> return box 2
            | _ -> return defaultOf under
        elif p.HasDefaultValue && not (isNull p.DefaultValue) && (t.IsPrimitive || t.IsEnum || t = typeof<string>) && name <> "host" then
            return p.DefaultValue
        elif t = typeof<EventLoop> then
            return box loop
        elif t = typeof<int> then
            match name with
            | "port" ->
                if serverish then return box 0
                else
                    let! port = w.Port()
                    return box port
            | "parties" -> return box 2
            // Signal 0 (kill's existence check): the sweep must never send itself a real signal.
            | "signal" -> return box 0
            | "maxSize" -> return box 0
            | "limit" -> return box (64 * 1024)
            | "backlog" -> return box 100
            | "sizeHint" -> return box -1
            | "offset" -> return box 0
            | "count"
            | "maxBytes"
            | "chunkSize" -> return box 16
            | _ -> return box 1
        elif t = typeof<int64> then
            return box 0L
        elif t = typeof<float> then
            return box 1.0
        elif t = typeof<bool> then
            return box false
        elif t = typeof<TimeSpan> then
            return box (TimeSpan.FromSeconds 1.0)
        elif t = typeof<DateTimeOffset> then
            return box (loop.TimeProvider.GetUtcNow() + TimeSpan.FromSeconds 1.0)
        elif t = typeof<CancellationToken> then
            return box CancellationToken.None
        elif t = typeof<ExecutionContext> then
            return box (ExecutionContext.Capture())
        elif typeof<Executor>.IsAssignableFrom t && not (t = typeof<ProcessPoolExecutor>) then
            // A small thread pool the world shuts down at its end (Dispose: shutdown, waiting).
            let e = new ThreadPoolExecutor(2)
            w.Own(OwnDisposable e)
            return box e
        elif t = typeof<ITaskFactory> then
            return box (SweepTaskFactory())
        elif t = typeof<TimerHandle> then
            return box (loop.CallLater(100.0, (fun () -> ())))
        elif t = typeof<string> then
            match name with
            | "host" -> return box "127.0.0.1"
            | "program"
            | "command" -> return box "true"
            | "path" ->
                if serverish then return box (w.UnixPath())
                else
                    let! p = w.UnixServerPath()
                    return box p
            | _ -> return box "sweep"
        elif t.IsEnum then
            return Enum.GetValues(t).GetValue(0)
        elif t = typeof<obj> then
            return box "sweep"
        elif t = typeof<Socket> then
            match m.Name, name with
            | _, "listener" -> return box (w.RawListener())
            | "CreateServerAsync", _ -> return box (w.NewBound())
            | "CreateConnectionAsync", _ -> return box (w.NewConnected())
            | "SockConnectAsync", _ -> return box (w.NewUnconnected())
            | _ -> return box (w.Connected())
        elif t = typeof<AddrInfo> then
            return box (AddrInfo(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp, "", IPEndPoint(IPAddress.Loopback, 80)))
        elif t = typeof<IReadOnlyList<struct (EndPoint * exn)>> then
            return box [| struct (IPEndPoint(IPAddress.Loopback, 1) :> EndPoint, InvalidOperationException() :> exn) |]
        elif t = typeof<IPEndPoint> then
            return box (IPEndPoint(IPAddress.Loopback, 80))
        elif t = typeof<EndPoint> then
            match name with
            | "address" ->
                let! port = w.Port()
                return box (IPEndPoint(IPAddress.Loopback, port))
            | "to" -> return box (w.DatagramPeer().LocalEndPoint)
            | "remoteAddress" -> return null
            | _ -> return box (IPEndPoint(IPAddress.Loopback, 0))
        elif t = typeof<LoopTask> then
            return box (loop.CreateTask(Func<Task>(fun () -> Task.CompletedTask)))
        elif typeof<Future>.IsAssignableFrom t then
            if t = typeof<Future> then return box (w.Future())
            elif isGenericTypeOf typedefof<Future<_>> t then return w.FutureOf(t.GetGenericArguments()[0])
            else return box (w.Future())
        elif t = typeof<ITransport> || t = typeof<ITransportBase> then
            let! tr = w.Transport()
            return box tr
        elif t = typeof<LoopStreamReader> then
            let! (r, _, _) = w.Streams()
            return box r
        elif t = typeof<LoopStreamWriter> then
            let! (_, wr, _) = w.Streams()
            return box wr
        elif t = typeof<StreamReaderProtocol> then
            let! (_, _, p) = w.Streams()
            return box p
        elif t = typeof<AsyncLock> then
            let! lk = w.Lock false
            return box lk
        elif t = typeof<AsyncSemaphore> then
            let! s = w.Semaphore false
            return box s
        elif isGenericTypeOf typedefof<AsyncQueue<_>> t then
            let x = t.GetGenericArguments()[0]
            if x = typeof<int> then
                let! q = w.Queue "fifo"
                return box q
            else
                return Activator.CreateInstance(t, [| box 0 |])
        elif t = typeof<LoopConnection> then
            let! (r, wr, _) = w.Streams()
            return box (LoopConnection(r, wr))
        elif t = typeof<AsyncConcurrency> then
            return box AsyncConcurrency.Sequential
        elif t = typeof<Handle> then
            return box (loop.CallSoon(fun () -> ()))
        elif t = typeof<ExceptionContext> then
            return box (ExceptionContext("sweep"))
        elif t = typeof<SubprocessOptions> then
            return box quietSubprocess
        elif t = typeof<SubprocessRedirect> then
            return box SubprocessRedirect.DevNull
        elif t = typeof<Runtime.InteropServices.SafeHandle> then
            return box (w.PipeEnd(m.Name.Contains "Write"))
        elif t = typeof<IO.FileStream> then
            return box (w.PipeStream(m.Name.Contains "Write" || m.Name = "FromFile"))
        elif typeof<Exception>.IsAssignableFrom t then
            return box (InvalidOperationException("sweep"))
        elif t = typeof<LoopClock> then
            return box (VirtualClock())
        elif typeof<BaseProtocol>.IsAssignableFrom t then
            return Activator.CreateInstance(concreteProtocol t)
        elif t = typeof<Type> then
            return box typeof<System.Reactive.Concurrency.ISchedulerPeriodic>
        elif t = typeof<Text.Encoding> then
            return box Text.Encoding.UTF8
        elif t = typeof<byte[]> then
            return box (Array.zeroCreate<byte> 16)
        elif t = typeof<Memory<byte>> then
            return box (Memory<byte>(Array.zeroCreate 16))
        elif t = typeof<ReadOnlyMemory<byte>> then
            return box (ReadOnlyMemory<byte>("x\n"B))
        elif t.IsByRefLike then
            return box "x\n"B
        elif t = typeof<IReadOnlyDictionary<string, obj>> then
            return box (Dictionary<string, obj>())
        elif t = typeof<IReadOnlyDictionary<string, string>> then
            return box (Dictionary<string, string>(dict [ "PATH", "/usr/bin:/bin" ]))
        elif isGenericTypeOf typedefof<IComparer<_>> t then
            return typedefof<Comparer<_>>.MakeGenericType(t.GetGenericArguments()).GetProperty("Default").GetValue(null)
        elif t = typeof<Task> then
            return box Task.CompletedTask
        elif isGenericTypeOf typedefof<Task<_>> t then
            let x = t.GetGenericArguments()[0]
            return taskFromResult x (defaultOf x)
        elif isGenericTypeOf typedefof<IAsyncEnumerable<_>> t then
            return Activator.CreateInstance(typedefof<OneItem<_>>.MakeGenericType(t.GetGenericArguments()))
        elif isGenericTypeOf typedefof<IObservable<_>> t then
            let x = t.GetGenericArguments()[0]
            return observableReturn x (defaultOf x)
        elif typeof<Delegate>.IsAssignableFrom t then
            if m.DeclaringType = typeof<Diagnostics.LoopLog> then
                return box Diagnostics.LoopLog.Sink // the process-wide sink stays as it is
            else
                return box (makeDelegate t)
        elif t.IsByRef then
            return null
        else
            match elementOf t with
            | Some e ->
                let one =
                    if e = typeof<string> && name = "hosts" then box "127.0.0.1"
                    elif e = typeof<ReadOnlyMemory<byte>> then box (ReadOnlyMemory<byte>("\n"B))
                    else null

                let! item =
                    if isNull one then valueFor w m (SyntheticParameter(e, name, m) :> ParameterInfo) else Task.FromResult one

                let arr = Array.CreateInstance(e, 1)
                arr.SetValue(item, 0)
                return box arr
            | None ->
                if t.IsGenericParameter then return null
                elif t.IsValueType then return Activator.CreateInstance t
                else return failwithf "the sweep has no value for %s %s of %s.%s" t.Name name m.DeclaringType.Name m.Name
    }


// Generic type arguments: int, string, obj as the constraints allow; protocol and future types
// where a constraint asks for one.
let typeCandidates = [ typeof<int>; typeof<string>; typeof<obj> ]
let specialCandidates = [ typeof<SweepProtocol>; typeof<SweepDatagramProtocol>; typeof<SweepSubprocessProtocol>; typeof<Future<int>> ]

let instantiations (m: MethodInfo) : MethodInfo list =
    if not m.IsGenericMethodDefinition then
        [ m ]
    else
        let n = m.GetGenericArguments().Length

        let tryMake (c: Type) =
            try
                Some(m.MakeGenericMethod(Array.create n c))
            with :? ArgumentException ->
                None

        match List.choose tryMake typeCandidates with
        | [] -> specialCandidates |> List.tryPick tryMake |> Option.toList
        | ms -> ms

// -------------------------------------------------------------------------------------------------
// The targets: public types with an instance to call on

/// How the sweep gets an instance: bound instances belong to the world's loop (their members are
/// loop-bound); plain ones (exceptions, data, protocol base classes) are not.
type Target =
    { Label: string
      Type: Type
      Bound: bool
      Make: World -> Task<obj> }

let target label (t: Type) bound (make: World -> Task<obj>) =
    { Label = label; Type = t; Bound = bound; Make = make }

let ret (o: obj) = Task.FromResult o

let ofTask (t: Task<'T>) : Task<obj> =
    task {
        let! v = t
        return box v
    }

let targets: Target list =
    [ target "EventLoop" typeof<EventLoop> true (fun w -> ret w.Loop)
      target "Future" typeof<Future> true (fun w -> ret (w.Future()))
      target "Future (done)" typeof<Future> true (fun w -> ret (w.DoneFuture()))
      target "Future<int>" typeof<Future<int>> true (fun w -> ret (w.Future()))
      target "Future<int> (done)" typeof<Future<int>> true (fun w -> ret (w.DoneFuture()))
      target "LoopTask<int>" typeof<LoopTask<int>> true (fun w -> ret (w.Task()))
      target "LoopTask<int> (done)" typeof<LoopTask<int>> true (fun w -> ofTask (w.DoneTask()))
      target "ILoopTask" typeof<ILoopTask> true (fun w -> ret (w.Task()))
      target "GatheringFuture" typeof<GatheringFuture<int[]>> true (fun w -> ret (Asyncio.Gather([| w.Future() |])))
      target "Handle" typeof<Handle> true (fun w -> ret (w.Loop.CallSoon(fun () -> ())))
      target "Handle (timer)" typeof<Handle> true (fun w -> ret (w.Loop.CallLater(100.0, (fun () -> ()))))
      target "TimerHandle" typeof<TimerHandle> true (fun w -> ret (w.Loop.CallLater(100.0, (fun () -> ()))))
      target "FutureAwaiter" typeof<FutureAwaiter> true (fun w -> ret (FutureAwaiting.GetAwaiter(w.Future() :> Future)))
      target "FutureAwaiter<int>" typeof<FutureAwaiter<int>> true (fun w -> ret (w.Future().GetAwaiter()))
      target "SleepAwaitable" typeof<SleepAwaitable> true (fun _ -> ret (Asyncio.Sleep 100.0))
      target "SleepAwaiter" typeof<SleepAwaiter> true (fun _ -> ret ((Asyncio.Sleep 100.0).GetAwaiter()))
      target "SleepAwaitable<int>" typeof<SleepAwaitable<int>> true (fun _ -> ret (Asyncio.Sleep(100.0, 1)))
      target "SleepAwaiter<int>" typeof<SleepAwaiter<int>> true (fun _ -> ret (Asyncio.Sleep(100.0, 1).GetAwaiter()))
      target "TaskGroup" typeof<TaskGroup> true (fun _ -> ret (new TaskGroup()))
      target "TimeoutScope" typeof<TimeoutScope> true (fun _ -> ret (Asyncio.Timeout(Nullable 100.0)))
      target "AsyncEvent" typeof<AsyncEvent> true (fun w -> ofTask (w.Event()))
      target "AsyncLock" typeof<AsyncLock> true (fun w -> ofTask (w.Lock true))
      target "LockReleaser" typeof<LockReleaser> true (fun w ->
          task {
              let! lk = w.Lock false
              let! r = lk.LockAsync()
              return box r
          })
      target "AsyncSemaphore" typeof<AsyncSemaphore> true (fun w -> ofTask (w.Semaphore false))
      target "AsyncSemaphore (bounded)" typeof<AsyncSemaphore> true (fun w -> ofTask (w.Semaphore true))
      target "SemaphoreReleaser" typeof<SemaphoreReleaser> true (fun w ->
          task {
              let! s = w.Semaphore false
              let! r = s.LockAsync()
              return box r
          })
      target "Condition" typeof<Condition> true (fun w -> ofTask (w.Condition()))
      target "AsyncBarrier" typeof<AsyncBarrier> true (fun w -> ofTask (w.Barrier()))
      target "AsyncQueue<int>" typeof<AsyncQueue<int>> true (fun w -> ofTask (w.Queue "fifo"))
      target "AsyncQueue<int> (priority)" typeof<AsyncQueue<int>> true (fun w -> ofTask (w.Queue "priority"))
      target "AsyncQueue<int> (LIFO)" typeof<AsyncQueue<int>> true (fun w -> ofTask (w.Queue "lifo"))
      target "Server" typeof<Server> true (fun w -> ofTask (w.Server()))
      target "ITransportBase (stream)" typeof<ITransportBase> true (fun w -> ofTask (w.Transport()))
      target "ITransport" typeof<ITransport> true (fun w -> ofTask (w.Transport()))
      target "ITransportBase (datagram)" typeof<ITransportBase> true (fun w -> ofTask (w.Datagram()))
      target "IDatagramTransport" typeof<IDatagramTransport> true (fun w -> ofTask (w.Datagram()))
      target "LoopStreamReader" typeof<LoopStreamReader> true (fun w ->
          task {
              let! (r, _, _) = w.Streams()
              return box r
          })
      target "LoopStreamWriter" typeof<LoopStreamWriter> true (fun w ->
          task {
              let! (_, wr, _) = w.Streams()
              return box wr
          })
      target "StreamReaderProtocol" typeof<StreamReaderProtocol> true (fun w ->
          task {
              let! (_, _, p) = w.Streams()
              return box p
          })
      target "LoopDuplexStream" typeof<LoopDuplexStream> true (fun w ->
          task {
              let! (r, wr, _) = w.Streams()
              return box (new LoopDuplexStream(r, wr))
          })
      target "LoopConnection" typeof<LoopConnection> true (fun w ->
          task {
              let! (r, wr, _) = w.Streams()
              return box (LoopConnection(r, wr))
          })
      target "LoopPipe" typeof<LoopPipe> true (fun w ->
          task {
              let! (r, wr, _) = w.Streams()
              return box (new LoopPipe(r, wr))
          })
      target "LoopProcess" typeof<LoopProcess> true (fun w -> ofTask (w.Process()))
      target "ISubprocessTransport" typeof<ISubprocessTransport> true (fun w -> ofTask (w.Subprocess()))
      target "LoopScheduler" typeof<LoopScheduler> true (fun w -> ret (LoopScheduler(w.Loop)))
      target "QueueObserver<int>" typeof<QueueObserver<int>> true (fun w ->
          task {
              let! q = w.Queue "fifo"
              return box (q.AsObserver(w.Loop, OverflowStrategy.Wait))
          })
      target "NextCompleted<int>" typeof<NextCompleted<int>> true (fun w ->
          ret (Asyncio.AsCompleted([ w.Future() ]) |> Seq.head))
      // Not bound to a loop: data, errors, and the protocol base classes users derive from.
      target "LoopIteration" typeof<LoopIteration> false (fun _ -> ret (LoopIteration(Nullable(TimeSpan.Zero), 1)))
      target "ConnectionResetException" typeof<ConnectionResetException> false (fun _ -> ret (ConnectionResetException("sweep", null)))
      target "ITaskFactory" typeof<ITaskFactory> false (fun _ -> ret (SweepTaskFactory()))
      // A runner owns a loop of its own, idle between runs: any one thread may drive it.
      target "Runner" typeof<Runner> false (fun _ -> ret (new Runner(false, VirtualClock())))
      target "AsyncConcurrency" typeof<AsyncConcurrency> false (fun _ -> ret (AsyncConcurrency.Parallel 2))
      target "ExceptionContext" typeof<ExceptionContext> false (fun _ -> ret (ExceptionContext("sweep", InvalidOperationException())))
      target "CancelledException" typeof<CancelledException> false (fun _ -> ret (CancelledException "sweep"))
      target "KeyboardInterruptException" typeof<KeyboardInterruptException> false (fun _ -> ret (KeyboardInterruptException()))
      target "SignalIgnoredException" typeof<SignalIgnoredException> false (fun _ -> ret (SignalIgnoredException 2))
      target "AddressInfoException" typeof<AddressInfoException> false (fun _ -> ret (AddressInfoException(-2, "Name or service not known")))
      target "ConnectionAttemptsException" typeof<ConnectionAttemptsException> false (fun _ ->
          ret (ConnectionAttemptsException("Multiple exceptions: sweep", [| struct (IPEndPoint(IPAddress.Loopback, 1) :> EndPoint, InvalidOperationException() :> exn) |])))
      target "AddrInfo" typeof<AddrInfo> false (fun _ ->
          ret (AddrInfo(Net.Sockets.AddressFamily.InterNetwork, Net.Sockets.SocketType.Stream, Net.Sockets.ProtocolType.Tcp, "", Net.IPEndPoint(Net.IPAddress.Loopback, 80))))
      target "IncompleteReadException" typeof<IncompleteReadException> false (fun _ -> ret (IncompleteReadException("ab"B, Nullable 3)))
      target "LimitOverrunException" typeof<LimitOverrunException> false (fun _ -> ret (LimitOverrunException("sweep", 1)))
      target "BaseProtocol" typeof<BaseProtocol> false (fun _ -> ret (SweepProtocol()))
      target "Protocol" typeof<Protocol> false (fun _ -> ret (SweepProtocol()))
      target "BufferedProtocol" typeof<BufferedProtocol> false (fun _ -> ret (SweepBufferedProtocol()))
      target "DatagramProtocol" typeof<DatagramProtocol> false (fun _ -> ret (SweepDatagramProtocol()))
      target "SubprocessProtocol" typeof<SubprocessProtocol> false (fun _ -> ret (SweepSubprocessProtocol()))
      target "SubprocessOptions" typeof<SubprocessOptions> false (fun _ -> ret (SubprocessOptions()))
      target "SubprocessRedirect" typeof<SubprocessRedirect> false (fun _ -> ret SubprocessRedirect.Pipe)
      target "SubprocessNotFoundException" typeof<SubprocessNotFoundException> false (fun _ -> ret (SubprocessNotFoundException("sweep", "sweep", 2)))
      target "SubprocessStartException" typeof<SubprocessStartException> false (fun _ -> ret (SubprocessStartException("sweep", 13)))
      target "LoopClock" typeof<LoopClock> false (fun _ -> ret (MonotonicClock()))
      target "MonotonicClock" typeof<MonotonicClock> false (fun _ -> ret (MonotonicClock()))
      // Executors are thread-safe (not loop-bound); each world shuts its own down at its end. The process
      // pool's submits of the sweep's delegates (compiled lambdas, not static methods) are refused before
      // any worker process starts.
      target "ThreadPoolExecutor" typeof<ThreadPoolExecutor> false (fun w ->
          let e = new ThreadPoolExecutor(2)
          w.Own(OwnDisposable e)
          ret e)
      target "Executor" typeof<Executor> false (fun w ->
          let e = new ThreadPoolExecutor(2)
          w.Own(OwnDisposable e)
          ret e)
      target "ProcessPoolExecutor" typeof<ProcessPoolExecutor> false (fun w ->
          let e = new ProcessPoolExecutor(1)
          w.Own(OwnDisposable e)
          ret e)
      target "RemoteWorkerException" typeof<RemoteWorkerException> false (fun _ -> ret (RemoteWorkerException("System.Exception", "sweep", "  at sweep"))) ]

let targetsOf (t: Type) =
    targets
    |> List.filter (fun x ->
        x.Type = t || (t.IsGenericTypeDefinition && x.Type.IsGenericType && x.Type.GetGenericTypeDefinition() = t))

/// A parameter whose type belongs to a loop: a static member or constructor taking one is loop-bound.
let rec isLoopBoundType (t: Type) =
    match elementOf t with
    | Some e -> isLoopBoundType e
    | None ->
        t = typeof<EventLoop>
        || typeof<Future>.IsAssignableFrom t
        || typeof<ILoopTask>.IsAssignableFrom t
        || typeof<ITransportBase>.IsAssignableFrom t
        || typeof<Handle>.IsAssignableFrom t
        || (targets |> List.exists (fun x -> x.Bound && x.Type = t))
        || (t.IsGenericType && targets |> List.exists (fun x -> x.Bound && x.Type.IsGenericType && x.Type.GetGenericTypeDefinition() = t.GetGenericTypeDefinition()))
