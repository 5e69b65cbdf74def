using System.Reflection;
using System.Text.Json;

using Tulip.Executors.Protocol;

namespace Tulip;

/// <summary>
/// concurrent.futures' <c>ProcessPoolExecutor</c>: up to <see cref="Executor.MaxWorkers"/> worker processes,
/// each the same .NET host as the caller running Tulip.Worker (<see cref="WorkerHostPath"/>), run static
/// methods named by the caller. Submit a method group of a static method (<c>pool.Submit(Work.Fib, 30)</c>,
/// <c>loop.RunInExecutor(pool, Work.Fib, 30)</c>): its assembly is loaded by path in the worker, its argument
/// and result cross as System.Text.Json. Workers start on demand and are reused.
/// <para><b>Refused before anything is sent</b> (<see cref="ArgumentException"/>): a lambda or an instance
/// method (only a static method can be named in another process), a generic method, a method of an
/// in-memory assembly, an argument or result type System.Text.Json cannot (de)serialise.</para>
/// <para><b>Errors.</b> An exception in the worker comes back as a <see cref="RemoteWorkerException"/> (its
/// type name, message and stack there). A worker that dies fails the work running and pending with
/// <see cref="BrokenProcessPoolException"/> at once (the other workers are stopped), and the pool refuses
/// new work; an idle worker's death is noticed at once too (its exit is watched).</para>
/// </summary>
public sealed class ProcessPoolExecutor : Executor
{
    private readonly List<WorkerProcess> _workers = new();
    private readonly int _maxWorkers;
    private readonly string _hostPath;
    private bool _broken;
    private long _nextId;

    /// <summary>A pool of at most <paramref name="maxWorkers"/> processes (default: the processor count, as
    /// CPython). <paramref name="workerHostPath"/>: Tulip.Worker.dll (default <see cref="WorkerHostPath"/>).</summary>
    [ThreadSafe]
    public ProcessPoolExecutor(int? maxWorkers = null, string? workerHostPath = null)
    {
        if (maxWorkers is <= 0) throw new ArgumentOutOfRangeException(nameof(maxWorkers), "max_workers must be greater than 0");
        _maxWorkers = maxWorkers ?? Environment.ProcessorCount;
        _hostPath = workerHostPath ?? WorkerHostPath;
    }

    /// <summary>Where the worker host is looked for by default: <c>TULIP_WORKER</c> if set, else
    /// Tulip.Worker.dll beside the application (a project that references Tulip.Worker has it there).</summary>
    [ThreadSafe]
    public static string WorkerHostPath =>
        Environment.GetEnvironmentVariable("TULIP_WORKER") is { Length: > 0 } p ? p : Path.Combine(AppContext.BaseDirectory, "Tulip.Worker.dll");

    /// <inheritdoc/>
    [ThreadSafe]
    public override int MaxWorkers => _maxWorkers;

    /// <summary>The process ids of the workers running now.</summary>
    [ThreadSafe]
    public IReadOnlyList<int> WorkerProcessIds
    {
        get
        {
            lock (_lock) return _workers.Select(w => w.ProcessId).Where(id => id > 0).ToArray();
        }
    }

    /// <summary>Whether every worker process started has exited (tests' hygiene check).</summary>
    [ThreadSafe]
    public bool AllWorkersExited
    {
        get
        {
            lock (_lock) return _workers.All(w => w.Exited);
        }
    }

    /// <summary>Whether a worker died and the pool refuses work (tests).</summary>
    internal bool Broken
    {
        get
        {
            lock (_lock) return _broken;
        }
    }

    // The request is built (and the argument serialised) once, by whichever comes first.
    internal override void Validate(WorkItem item) => item.Tag ??= Describe(item);

    internal override void Enqueue(WorkItem item)
    {
        var call = item.Tag as RemoteCall ?? Describe(item);
        WorkerProcess? start = null;
        lock (_lock)
        {
            if (_broken) throw new BrokenProcessPoolException(BrokenProcessPoolException.NotUsableMessage);
            if (_shutdown) throw new InvalidOperationException("cannot schedule new futures after shutdown");
            item.Tag = call;
            _queue.Enqueue(item);
            if (_idle > 0)
            {
                _idle--;
                Monitor.Pulse(_lock);
            }
            else if (_workers.Count < _maxWorkers)
            {
                start = new WorkerProcess(this, _workers.Count);
                _workers.Add(start);
            }
            start?.Start(); // inside the lock: a shutdown that sees the worker can join it
        }
    }

    /// <summary>The request's fixed part and the argument as JSON, or a clear refusal.</summary>
    private static RemoteCall Describe(WorkItem item)
    {
        var fn = item.Function;
        var m = fn.Method;
        string what = $"{m.DeclaringType?.FullName}.{m.Name}";
        if (fn.Target is not null || !m.IsStatic)
            throw new ArgumentException(
                $"ProcessPoolExecutor runs a static method named by the caller: {what} is not a static method (a lambda or an instance method cannot be named in another process); pass a static method group, e.g. Work.Fib", "fn");
        if (m.IsGenericMethod || m.DeclaringType is { ContainsGenericParameters: true } || m.DeclaringType is { IsGenericType: true })
            throw new ArgumentException($"ProcessPoolExecutor cannot name the generic method {what} in a worker", "fn");
        var asm = m.Module.Assembly;
        if (asm.IsDynamic || string.IsNullOrEmpty(asm.Location))
            throw new ArgumentException($"ProcessPoolExecutor needs {what}'s assembly on disk (it is loaded by path in the worker)", "fn");
        var ps = m.GetParameters();
        if (ps.Length != (item.HasArgument ? 1 : 0))
            throw new ArgumentException($"{what} takes {ps.Length} parameters", "fn");
        CheckSerialisable(item.ResultType == typeof(ValueTuple) && m.ReturnType == typeof(void) ? null : m.ReturnType, what, "result");
        byte[]? arg = null;
        if (item.HasArgument)
        {
            CheckSerialisable(ps[0].ParameterType, what, "argument");
            try
            {
                arg = JsonSerializer.SerializeToUtf8Bytes(item.Argument, ps[0].ParameterType);
            }
            catch (Exception e) when (e is NotSupportedException or InvalidOperationException or JsonException)
            {
                throw new ArgumentException($"the argument of {what} cannot be serialised with System.Text.Json: {e.Message}", "arg", e);
            }
        }

        return new RemoteCall(asm.Location, m.MetadataToken, arg, what);
    }

    private static void CheckSerialisable(Type? t, string what, string role)
    {
        if (t is null) return;
        if (t.IsPointer || t.IsByRef || t.IsByRefLike || typeof(Delegate).IsAssignableFrom(t) || typeof(Task).IsAssignableFrom(t)
            || typeof(MemberInfo).IsAssignableFrom(t) || t == typeof(IntPtr) || t == typeof(UIntPtr)
            || (t.IsGenericType && t.GetGenericTypeDefinition() == typeof(ValueTask<>)) || t == typeof(ValueTask))
            throw new ArgumentException($"the {role} type {t} of {what} cannot be serialised with System.Text.Json", role == "result" ? "fn" : "arg");
        try
        {
            _ = JsonSerializerOptions.Default.GetTypeInfo(t);
        }
        catch (Exception e) when (e is NotSupportedException or InvalidOperationException)
        {
            throw new ArgumentException($"the {role} type {t} of {what} cannot be serialised with System.Text.Json: {e.Message}", role == "result" ? "fn" : "arg", e);
        }
    }

    /// <summary>A worker's next item (blocking); null when the pool is shut down or broken and nothing is left.</summary>
    private WorkItem? Take()
    {
        lock (_lock)
        {
            while (_queue.Count == 0 || _broken)
            {
                if (_shutdown || _broken) return null;
                _idle++;
                Monitor.Wait(_lock);
            }

            return _queue.Dequeue();
        }
    }

    private long NextId() => Interlocked.Increment(ref _nextId);

    /// <summary>A worker died (or could not start): fail everything pending, stop the other workers
    /// (their work fails too).</summary>
    private void Break(Exception cause, string message = BrokenProcessPoolException.TerminatedMessage)
    {
        List<WorkItem> pending;
        WorkerProcess[] workers;
        lock (_lock)
        {
            if (_broken) return;
            _broken = true;
            pending = new List<WorkItem>(_queue);
            _queue.Clear();
            _idle = 0;
            Monitor.PulseAll(_lock);
            workers = _workers.ToArray();
        }

        foreach (var item in pending) item.TryFailPending(new BrokenProcessPoolException(message, cause));
        foreach (var w in workers) w.Kill();
    }

    private protected override Action WorkersToJoin()
    {
        var workers = _workers.ToArray();
        return () =>
        {
            foreach (var w in workers) w.Join();
        };
    }

    internal sealed record RemoteCall(string AssemblyPath, int Token, byte[]? Argument, string Name);

    /// <summary>One worker process and the thread that feeds it one request at a time.</summary>
    private sealed class WorkerProcess(ProcessPoolExecutor pool, int index)
    {
        private readonly Thread _thread = new(static s => ((WorkerProcess)s!).Run()) { IsBackground = true, Name = $"ProcessPoolExecutor worker {index}" };
        private System.Diagnostics.Process? _process;
        private volatile bool _exited;
        private volatile bool _stopping; // the pool ends this worker: its exit is expected, not a death

        public int ProcessId { get; private set; }

        public bool Exited => _exited || _process is null;

        public void Start() => _thread.Start(this);

        public void Join()
        {
            if (Thread.CurrentThread != _thread && _thread.ThreadState != ThreadState.Unstarted) _thread.Join();
        }

        public void Kill()
        {
            try
            {
                _process?.Kill(entireProcessTree: true);
            }
            catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception)
            {
                // Already gone.
            }
        }

        private void Run()
        {
            WorkItem? current = null;
            try
            {
                _process = Launch(pool._hostPath);
            }
            catch (Exception e)
            {
                // Not a worker that died: say what went wrong (the host not found, dotnet not startable).
                pool.Break(e, $"the process pool could not start a worker process: {e.Message}");
                _exited = true;
                return;
            }

            try
            {
                ProcessId = _process.Id;
                // A worker killed while idle is noticed at once, not when work is next sent to it
                // (CPython's executor manager thread watches every worker's sentinel).
                _process.Exited += (_, _) =>
                {
                    if (!_stopping) pool.Break(new EndOfStreamException($"the worker process {ProcessId} exited"));
                };
                _process.EnableRaisingEvents = true;
                var input = _process.StandardInput.BaseStream;
                var output = _process.StandardOutput.BaseStream;
                while ((current = pool.Take()) is not null)
                {
                    if (!current.TryStart())
                    {
                        current = null;
                        continue;
                    }

                    var call = (RemoteCall)current.Tag!;
                    long id = pool.NextId();
                    WorkerFrames.Write(input, WorkerFrames.Json(w =>
                    {
                        w.WriteStartObject();
                        w.WriteNumber("id", id);
                        w.WriteString("assembly", call.AssemblyPath);
                        w.WriteNumber("token", call.Token);
                        w.WriteStartArray("args");
                        if (call.Argument is { } a) w.WriteRawValue(a, skipInputValidation: true);
                        w.WriteEndArray();
                        w.WriteEndObject();
                    }));
                    var response = WorkerFrames.Read(output) ?? throw new EndOfStreamException("the worker process closed its output");
                    var item = current;
                    current = null;
                    Deliver(item, response);
                }

                // Shut down (or broken): closing stdin ends the worker; give it a moment, then make sure.
                _stopping = true;
                input.Close();
                if (!_process.WaitForExit(5000)) Kill();
            }
            catch (Exception e)
            {
                var error = new BrokenProcessPoolException(BrokenProcessPoolException.TerminatedMessage, e);
                current?.Complete(null, error);
                pool.Break(e);
                Kill();
            }
            finally
            {
                _stopping = true;
                if (_process is { } p)
                {
                    p.WaitForExit(5000);
                    p.Dispose();
                }

                _exited = true;
            }
        }

        private static void Deliver(WorkItem item, byte[] response)
        {
            object? result = null;
            Exception? error = null;
            try
            {
                using var doc = JsonDocument.Parse(response);
                var root = doc.RootElement;
                if (root.GetProperty("ok").GetBoolean())
                {
                    if (item.ResultType != typeof(ValueTuple)) result = root.GetProperty("result").Deserialize(item.ResultType);
                }
                else
                {
                    error = new RemoteWorkerException(
                        root.GetProperty("type").GetString() ?? "?",
                        root.GetProperty("message").GetString() ?? "",
                        root.GetProperty("stack").GetString() ?? "",
                        root.GetProperty("text").GetString());
                }
            }
            catch (Exception e) when (e is JsonException or NotSupportedException or KeyNotFoundException or InvalidOperationException)
            {
                error = e; // the result did not deserialise: this item's error, the worker is fine
            }

            if (item.ResultType == typeof(ValueTuple) && error is null) result = default(ValueTuple);
            item.Complete(result, error);
        }

        private static System.Diagnostics.Process Launch(string hostPath)
        {
            if (!File.Exists(hostPath))
                throw new FileNotFoundException($"the process pool's worker host was not found at {hostPath} (reference the Tulip.Worker project, or set TULIP_WORKER)", hostPath);
            var psi = new System.Diagnostics.ProcessStartInfo(DotnetHost())
            {
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = false,
                UseShellExecute = false,
            };
            psi.ArgumentList.Add("exec");
            psi.ArgumentList.Add(hostPath);
            return System.Diagnostics.Process.Start(psi) ?? throw new InvalidOperationException("the worker process did not start");
        }

        /// <summary>The caller's own .NET host: the running dotnet executable, or the one at the root of the
        /// runtime this process runs on (an app started through its apphost).</summary>
        private static string DotnetHost()
        {
            string exe = OperatingSystem.IsWindows() ? "dotnet.exe" : "dotnet";
            if (Environment.ProcessPath is { } p && Path.GetFileName(p) == exe) return p;
            // <root>/shared/Microsoft.NETCore.App/<version>/System.Private.CoreLib.dll
            var runtimeDir = Path.GetDirectoryName(typeof(object).Assembly.Location);
            var root = runtimeDir is null ? null : Path.GetFullPath(Path.Combine(runtimeDir, "..", "..", ".."));
            if (root is not null && File.Exists(Path.Combine(root, exe))) return Path.Combine(root, exe);
            return exe; // from PATH
        }
    }
}
