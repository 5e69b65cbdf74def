/// Subprocesses and pipe transports against CPython 3.11's asyncio (the orders and messages below were
/// printed by python3 running the same case). Boundary sizes come from real bug reports: 65,535 /
/// 65,536 / 65,537 bytes (one pipe buffer), 8,192 / 8,193 and 219,263 / 219,264 bytes written to stdin
/// (cpython#72694-style communicate hangs and the 3.8 writer's drain bug), 1,000,000 bytes of output.
/// Every test ends with a hygiene gate: the children it started are reaped (no process, no zombie),
/// their pipes' descriptors are closed, no pidfd is left, nothing reached the exception handler.
/// The list is sequenced: the pidfd count is only meaningful while one of these tests runs.
module Tulip.Tests.SubprocessTests

#nowarn "9" "51" // a nativeptr for waitpid's status

open System
open System.Collections.Generic
open System.Diagnostics
open System.IO
open System.Text
open System.Threading
open System.Threading.Tasks
open Expecto
open Microsoft.Win32.SafeHandles
open Tulip
open Tulip.Tests.ShellSupport

let private ascii (s: string) = Encoding.ASCII.GetBytes s
let private str (b: byte[]) = Encoding.ASCII.GetString b
let private pattern (n: int) = Array.init n (fun i -> byte (i % 251))
let private selfPid = Environment.ProcessId

let private linkOf (fd: int) =
    try
        FileInfo(sprintf "/proc/self/fd/%d" fd).LinkTarget
    with _ ->
        null

let private openLinks () =
    Directory.GetFiles "/proc/self/fd"
    |> Array.choose (fun p ->
        try
            Option.ofObj (FileInfo(p).LinkTarget)
        with _ ->
            None)

/// A process is gone when /proc has no entry for it, or the pid now belongs to someone else's child.
let private alive (pid: int) =
    try
        let stat = File.ReadAllText(sprintf "/proc/%d/stat" pid)
        // "pid (comm) state ppid ...": after the last ')'.
        let fields = stat.Substring(stat.LastIndexOf(')') + 2).Split(' ')
        int fields[1] = selfPid
    with _ ->
        false

/// A blocking waitpid from the test itself: the child is then unknown to the loop (ECHILD).
let private reapBehindTheLoop (pid: int) =
    let mutable status = 0
    Tulip.Subprocess.PosixNative.waitpid (pid, &&status, 0)

let private pidfdCount () =
    openLinks () |> Array.filter (fun l -> l = "anon_inode:[pidfd]") |> Array.length

/// Everything every test of this list started, for the suite's closing check.
let private allPids = System.Collections.Concurrent.ConcurrentBag<int>()
let private allPipes' = System.Collections.Concurrent.ConcurrentBag<string>()

/// What a test started: pids and the pipe links of the parent's ends ("pipe:[inode]").
type Track() =
    let pids = List<int>()
    let pipes = List<string>()

    member _.Pid(pid: int) =
        pids.Add pid
        allPids.Add pid

    member _.Transport(t: ISubprocessTransport) =
        pids.Add(t.GetPid())
        allPids.Add(t.GetPid())

        for fd in 0..2 do
            match t.GetPipeTransport fd with
            | :? Tulip.Transports.PipeTransport as p ->
                match linkOf p.FileDescriptor with
                | null -> ()
                | l ->
                    pipes.Add l
                    allPipes'.Add l
            | _ -> ()

    member this.Add(p: LoopProcess) = this.Transport(p.Transport)

    member _.Pids = List.ofSeq pids

    member _.Check() =
        for pid in pids do
            Expect.isFalse (alive pid) (sprintf "child %d is reaped (no process, no zombie)" pid)

        let links = openLinks () |> Set.ofArray

        for l in pipes do
            Expect.isFalse (links.Contains l) (sprintf "the pipe %s is closed" l)

        Expect.equal (pidfdCount ()) 0 "no pidfd left"

/// Runs `body` on a real-clock loop under a time limit, then the hygiene gate.
let private run (timeout: float) (body: EventLoop -> Track -> Task<unit>) =
    let loop = new EventLoop()
    let errors = collectErrors loop
    let track = Track()

    try
        let main = loop.CreateTask(Func<Task<unit>>(fun () -> body loop track), "test main")
        let mutable timedOut = false

        let guard =
            loop.CallLater(
                timeout,
                fun () ->
                    timedOut <- true
                    main.Cancel "time limit" |> ignore
            )

        try
            loop.RunUntilComplete(main)
        with e when timedOut ->
            failtestf "timed out after %g s (%s)" timeout e.Message

        guard.Cancel()
        Expect.equal loop.Subprocesses.Count 0 "every child was reaped on the loop"
    finally
        loop.Close()

    track.Check()
    Expect.isEmpty (errors |> Seq.map (fun c -> c.Message) |> List.ofSeq) "nothing reached the exception handler"

let private options (stdin: SubprocessRedirect) (stdout: SubprocessRedirect) (stderr: SubprocessRedirect) =
    SubprocessOptions(Stdin = stdin, Stdout = stdout, Stderr = stderr)

let private allPipes = options SubprocessRedirect.Pipe SubprocessRedirect.Pipe SubprocessRedirect.Pipe

let private exec (track: Track) (program: string) (args: string list) (opts: SubprocessOptions) =
    task {
        let! p = Asyncio.CreateSubprocessExec(program, args, opts, CancellationToken.None)
        track.Add p
        return p
    }

let private shell (track: Track) (command: string) (opts: SubprocessOptions) =
    task {
        let! p = Asyncio.CreateSubprocessShell(command, opts, CancellationToken.None)
        track.Add p
        return p
    }

/// Records a subprocess protocol's calls (the per-chunk data calls as one "data fd" entry per fd).
type private Recorder(loop: EventLoop) =
    inherit SubprocessProtocol()
    let events = List<string>()
    let data = Dictionary<int, MemoryStream>()
    let lost = loop.CreateFuture<unit>()
    member _.Events = List.ofSeq events
    member _.Lost = lost
    member _.Data(fd: int) = match data.TryGetValue fd with | true, m -> m.ToArray() | _ -> [||]

    override _.ConnectionMade(_) = events.Add "connection_made"

    override _.PipeDataReceived(fd: int, bytes: ReadOnlySpan<byte>) =
        if not (data.ContainsKey fd) then
            data[fd] <- new MemoryStream()
            events.Add(sprintf "data %d" fd)

        data[fd].Write(bytes)

    override _.PipeConnectionLost(fd, e) = events.Add(sprintf "pipe_connection_lost %d %s" fd (if isNull e then "None" else e.GetType().Name))
    override _.ProcessExited() = events.Add "process_exited"

    override _.ConnectionLost(e) =
        events.Add "connection_lost"
        lost.SetResult(())

let private protocolTests =
    [ testCase "protocol: calls in asyncio 3.11's order, return code, the pipes' data" (fun () ->
          // python3: connection_made, pipe_data_received 1, pipe_data_received 2, pipe_connection_lost
          // 2/1/0 (readiness order), process_exited, connection_lost; returncode 3.
          run 10.0 (fun loop track ->
              task {
                  let mutable r = Unchecked.defaultof<Recorder>
                  let! (t, p) = loop.SubprocessShellAsync((fun () -> r <- Recorder(loop); r), "echo hi; echo err >&2; exit 3")
                  track.Transport t
                  Expect.equal (p.Events |> List.head) "connection_made" "ConnectionMade came before the call returned"
                  do! p.Lost
                  let ev = p.Events
                  Expect.equal (List.last ev) "connection_lost" "ConnectionLost is last"
                  Expect.equal (ev |> List.filter (fun e -> e.StartsWith "pipe_connection_lost") |> List.sort)
                      [ "pipe_connection_lost 0 None"; "pipe_connection_lost 1 None"; "pipe_connection_lost 2 None" ] "each pipe lost once"
                  Expect.contains ev "process_exited" "exit reported"
                  Expect.isLessThan (List.findIndex ((=) "data 1") ev) (List.findIndex ((=) "pipe_connection_lost 1 None") ev) "data before its pipe's end"
                  Expect.equal (str (p.Data 1)) "hi\n" "stdout"
                  Expect.equal (str (p.Data 2)) "err\n" "stderr"
                  Expect.equal (t.GetReturnCode() |> Option.ofNullable) (Some 3) "return code"
                  t.Close()
                  Expect.throwsT<ProcessLookupException> (fun () -> t.SendSignal 15) "after ConnectionLost there is no process to signal"
              }))

      testCase "protocol: a child that exits at once still gets ConnectionMade first and ConnectionLost last" (fun () ->
          // The exit may be seen before the protocol is connected: asyncio's _pending_calls keep the order.
          run 10.0 (fun loop track ->
              task {
                  for _ in 1..10 do
                      let mutable r = Unchecked.defaultof<Recorder>
                      let! (t, p) = loop.SubprocessExecAsync((fun () -> r <- Recorder(loop); r), "true")
                      track.Transport t
                      do! p.Lost
                      Expect.equal (List.head p.Events) "connection_made" "first"
                      Expect.equal (List.last p.Events) "connection_lost" "last"
                      Expect.equal (p.Events.Length) 6 "made, three pipes lost, exited, lost"
                      t.Close()
              }))

      testCase "protocol: stdin Close flushes everything written before the pipe closes" (fun () ->
          run 20.0 (fun loop track ->
              task {
                  let data = pattern 1_000_000
                  let mutable r = Unchecked.defaultof<Recorder>
                  let! (t, p) = loop.SubprocessExecAsync((fun () -> r <- Recorder(loop); r), "cat")
                  track.Transport t
                  let stdin = t.GetPipeTransport 0
                  stdin.Write(ReadOnlySpan data)
                  Expect.isGreaterThan (stdin.GetWriteBufferSize()) 0 "a megabyte does not fit a pipe: buffered"
                  stdin.Close()
                  Expect.throwsT<NotSupportedException> (fun () -> stdin.PauseReading()) "a write pipe does not read"
                  do! p.Lost
                  Expect.equal (p.Data 1) data "every byte reached cat and came back"
                  Expect.equal (t.GetReturnCode() |> Option.ofNullable) (Some 0) "cat exited 0"
                  t.Close()
              }))

      testCase "protocol: Close kills a running child, which is reaped" (fun () ->
          run 10.0 (fun loop track ->
              task {
                  let mutable r = Unchecked.defaultof<Recorder>
                  let! (t, p) = loop.SubprocessExecAsync((fun () -> r <- Recorder(loop); r), "sleep", [ "30" ])
                  track.Transport t
                  t.Close()
                  do! p.Lost
                  Expect.equal (t.GetReturnCode() |> Option.ofNullable) (Some -9) "killed by SIGKILL (-9)"
              })) ]

let private communicateSize (n: int) =
    testCase (sprintf "CommunicateAsync reads %d bytes of output" n) (fun () ->
        run 20.0 (fun _ track ->
            task {
                let! p = exec track "head" [ "-c"; string n; "/dev/zero" ] allPipes
                let! (out, err) = p.CommunicateAsync()
                Expect.equal out.Length n "every byte"
                Expect.isTrue (out |> Array.forall ((=) 0uy)) "the bytes"
                Expect.equal err.Length 0 "no stderr"
                Expect.equal p.ReturnCode (Nullable 0) "exit 0"
            }))

let private stdinSize (n: int) =
    testCase (sprintf "CommunicateAsync writes %d bytes to stdin and reads them back through cat" n) (fun () ->
        run 20.0 (fun _ track ->
            task {
                let data = pattern n
                let! p = exec track "cat" [] allPipes
                let! (out, _) = p.CommunicateAsync(data)
                Expect.equal out data "round trip"
                Expect.equal p.ReturnCode (Nullable 0) "exit 0"
            }))

let private streamTests =
    [ for n in [ 65_535; 65_536; 65_537; 1_000_000 ] -> communicateSize n ]
    @ [ for n in [ 8_192; 8_193; 219_263; 219_264 ] -> stdinSize n ]
    @ [ testCase "both pipes full at once: stdout and stderr are drained together" (fun () ->
            run 20.0 (fun _ track ->
                task {
                    // Each stream gets 1 MB, interleaved: reading one to its end first would deadlock.
                    let! p =
                        shell track "i=0; while [ $i -lt 16 ]; do head -c 65536 /dev/zero; head -c 65536 /dev/zero >&2; i=$((i+1)); done" allPipes
                    let! (out, err) = p.CommunicateAsync()
                    Expect.equal out.Length (16 * 65536) "stdout"
                    Expect.equal err.Length (16 * 65536) "stderr"
                }))

        testCase "a child that exits without reading its stdin: no error, its exit code" (fun () ->
            run 20.0 (fun _ track ->
                task {
                    let! p = shell track "exit 4" allPipes
                    let! (out, _) = p.CommunicateAsync(pattern 1_000_000)
                    Expect.equal out.Length 0 "no output"
                    Expect.equal p.ReturnCode (Nullable 4) "its exit code"
                }))

        testCase "exit codes, Terminate, Kill and a signal are reported as asyncio's (minus the signal)" (fun () ->
            run 20.0 (fun _ track ->
                task {
                    let! p = shell track "exit 5" (SubprocessOptions())
                    let! rc = p.WaitAsync()
                    Expect.equal rc 5 "exit 5"
                    let! p = exec track "sleep" [ "30" ] (SubprocessOptions())
                    p.Terminate()
                    let! rc = p.WaitAsync()
                    Expect.equal rc -15 "SIGTERM"
                    let! p = exec track "sleep" [ "30" ] (SubprocessOptions())
                    p.Kill()
                    let! rc = p.WaitAsync()
                    Expect.equal rc -9 "SIGKILL"
                    let! p = exec track "sleep" [ "30" ] (SubprocessOptions())
                    p.SendSignal 10
                    let! rc = p.WaitAsync()
                    Expect.equal rc -10 "SIGUSR1"
                    Expect.equal p.ReturnCode (Nullable -10) "ReturnCode"
                    // python3: after wait() (no pipes: the transport is closed), kill() raises ProcessLookupError.
                    Expect.throwsT<ProcessLookupException> (fun () -> p.Kill()) "no process to signal"
                    do! p.DisposeAsync()
                }))

        testCase "WaitAsync returns at the exit while a grandchild still holds stdout (cpython#119710)" (fun () ->
            run 20.0 (fun _ track ->
                task {
                    let! p = shell track "sleep 20 & echo $!; exit 0" (options SubprocessRedirect.DevNull SubprocessRedirect.Pipe SubprocessRedirect.Inherit)
                    let! line = p.Stdout.ReadLineAsync()
                    let grandchild = int line
                    let sw = Stopwatch.StartNew()
                    let! rc = p.WaitAsync()
                    Expect.equal rc 0 "the child's exit"
                    Expect.isLessThan sw.Elapsed.TotalSeconds 10.0 "not held up by the grandchild"
                    Expect.isFalse p.Stdout.AtEof "the grandchild still holds stdout"
                    Process.GetProcessById(grandchild).Kill()
                    let! rest = p.Stdout.ReadAsync()
                    Expect.equal rest.Length 0 "EOF once the grandchild is gone"
                    do! p.DisposeAsync()
                }))

        testCase "a spawn cancelled mid-way leaves no process and no pipe behind" (fun () ->
            run 10.0 (fun loop track ->
                task {
                    use cts = new CancellationTokenSource()
                    // Runs in the tick after the spawn, before the pipes are connected.
                    loop.CallSoon(fun () -> cts.Cancel()) |> ignore
                    let before = Set.ofArray (openLinks ())

                    try
                        let! _ = Asyncio.CreateSubprocessExec("sleep", [ "30" ], allPipes, cts.Token)
                        failtest "expected a cancellation"
                    with :? OperationCanceledException as e ->
                        Expect.equal e.CancellationToken cts.Token "the token's cancellation"

                    let after = Set.ofArray (openLinks ())
                    Expect.isEmpty (Set.difference after before |> Set.filter (fun l -> l.StartsWith "pipe:" || l.Contains "pidfd")) "no pipe or pidfd left"
                    Expect.equal loop.Subprocesses.Count 0 "the child was reaped"
                }))

        testCase "the select reactor refuses subprocesses up front (pipes need epoll): nothing started" (fun () ->
            use loop = new EventLoop()
            loop.Reactor <- Tulip.Io.ReactorKind.Select
            let before = Set.ofArray (openLinks ())

            let e =
                throws<NotSupportedException> (fun () ->
                    loop.RunUntilComplete(Func<Task<LoopProcess>>(fun () -> Asyncio.CreateSubprocessExec("true", [], allPipes, CancellationToken.None))) |> ignore)

            Expect.stringContains e.Message "epoll" "says why"
            Expect.equal loop.Subprocesses.Count 0 "no child"
            loop.Close()
            Expect.isEmpty (Set.difference (Set.ofArray (openLinks ())) before |> Set.filter (fun l -> l.StartsWith "pipe:")) "no pipe")

        testCase "an already-cancelled token starts nothing" (fun () ->
            run 10.0 (fun _ _ ->
                task {
                    use cts = new CancellationTokenSource()
                    cts.Cancel()

                    try
                        let! _ = Asyncio.CreateSubprocessExec("sleep", [ "30" ], allPipes, cts.Token)
                        failtest "expected a cancellation"
                    with :? OperationCanceledException ->
                        ()
                }))

        testCase "a cancelled CommunicateAsync kills and reaps the child, closes its pipes" (fun () ->
            run 10.0 (fun _ track ->
                task {
                    let! p = exec track "cat" [] allPipes
                    use cts = new CancellationTokenSource(TimeSpan.FromMilliseconds 100.0)

                    try
                        let! _ = p.CommunicateAsync(null, cts.Token)
                        failtest "cat waits for stdin's EOF: expected a cancellation"
                    with :? OperationCanceledException ->
                        ()

                    Expect.equal p.ReturnCode (Nullable -9) "killed and reaped"
                }))

        testCase "a missing program is SubprocessNotFoundException with errno 2 (FileNotFoundError)" (fun () ->
            run 10.0 (fun _ _ ->
                task {
                    // python3: FileNotFoundError 2 [Errno 2] No such file or directory: '/nonexistent/x'
                    let before = Set.ofArray (openLinks ())

                    for program in [ "/nonexistent/x"; "no-such-program-tulip" ] do
                        try
                            let! _ = Asyncio.CreateSubprocessExec(program, [], allPipes, CancellationToken.None)
                            failtest "expected not found"
                        with :? SubprocessNotFoundException as e ->
                            Expect.equal e.Errno 2 "ENOENT"
                            Expect.equal e.FileName program "the program"
                            Expect.stringContains e.Message "No such file or directory" "Python's message"

                    let after = Set.ofArray (openLinks ())
                    Expect.isEmpty (Set.difference after before) "no descriptor left by the failed spawns"
                }))

        testCase "arguments asyncio refuses are refused at the call, with its messages" (fun () ->
            run 10.0 (fun _ _ ->
                task {
                    // python3: text must be False / encoding must be None / bufsize must be 0 /
                    // shell must be False / universal_newlines must be False / shell must be True
                    let refused (opts: SubprocessOptions) (shellForm: bool) (message: string) =
                        task {
                            try
                                if shellForm then
                                    let! _ = Asyncio.CreateSubprocessShell("true", opts)
                                    ()
                                else
                                    let! _ = Asyncio.CreateSubprocessExec("true", [], opts)
                                    ()

                                failtest "expected a refusal"
                            with :? ArgumentException as e ->
                                Expect.stringStarts e.Message message message
                        }

                    do! refused (SubprocessOptions(Text = true)) false "text must be False"
                    do! refused (SubprocessOptions(Encoding = Encoding.UTF8)) false "encoding must be None"
                    do! refused (SubprocessOptions(BufferSize = 1)) false "bufsize must be 0"
                    do! refused (SubprocessOptions(Shell = Nullable true)) false "shell must be False"
                    do! refused (SubprocessOptions(UniversalNewlines = true)) false "universal_newlines must be False"
                    do! refused (SubprocessOptions(Shell = Nullable false)) true "shell must be True"
                }))

        testCase "PipeSize (Popen's pipesize): a 1 MiB pipe takes a child's 1,000,000 bytes before anyone reads" (fun () ->
            run 20.0 (fun _ track ->
                task {
                    // python3: create_subprocess_exec(..., pipesize=1 << 20) gives pipes of 1048576 bytes
                    // (F_GETPIPE_SZ). The child writes everything and exits while nobody reads: with the
                    // default 64 KiB pipe it would block in its write until the parent read.
                    let opts =
                        SubprocessOptions(Stdin = SubprocessRedirect.DevNull, Stdout = SubprocessRedirect.Pipe, Stderr = SubprocessRedirect.DevNull, PipeSize = (1 <<< 20))

                    let! p = exec track "head" [ "-c"; "1000000"; "/dev/zero" ] opts
                    let! rc = p.WaitAsync().WaitAsync(TimeSpan.FromSeconds 10.0)
                    Expect.equal rc 0 "the child exited before anything was read"
                    let! out = p.Stdout.ReadAsync(-1)
                    Expect.equal out.Length 1_000_000 "every byte, from the pipe"
                }))

        testCase "PipeSize the kernel refuses fails the spawn with its errno (Popen's OSError): nothing started, no pipe left" (fun () ->
            run 10.0 (fun _ _ ->
                task {
                    // python3: pipesize=1 << 30 -> PermissionError [Errno 1] (past /proc/sys/fs/pipe-max-size).
                    try
                        let! _ = Asyncio.CreateSubprocessExec("cat", [], SubprocessOptions(Stdin = SubprocessRedirect.Pipe, PipeSize = (1 <<< 30)))
                        failtest "expected a refusal"
                    with :? IOException as e ->
                        Expect.equal e.HResult 1 "EPERM"
                        Expect.stringContains e.Message "F_SETPIPE_SZ" "says which call"
                }))

        testCase "redirections: DEVNULL, STDOUT (stderr into stdout), a file, an inherited handle" (fun () ->
            run 20.0 (fun _ track ->
                task {
                    let! p = shell track "echo out; echo err >&2" (options SubprocessRedirect.DevNull SubprocessRedirect.Pipe SubprocessRedirect.Stdout)
                    Expect.isNull p.Stdin "stdin is not a pipe"
                    Expect.isNull p.Stderr "stderr is not a pipe"
                    let! (out, err) = p.CommunicateAsync()
                    Expect.equal (str out) "out\nerr\n" "stderr went into stdout"
                    Expect.isNull err "no stderr stream"
                    let! p = shell track "echo gone; cat" (options SubprocessRedirect.DevNull SubprocessRedirect.DevNull SubprocessRedirect.Pipe)
                    let! (out, err) = p.CommunicateAsync()
                    Expect.isNull out "stdout to /dev/null"
                    Expect.equal err.Length 0 "nothing on stderr; cat read EOF from /dev/null"
                    do! p.DisposeAsync()
                }))

        testCase "a redirect to one of the parent's fds 0-2 is not clobbered by the child's earlier dup2s" (fun () ->
            run 10.0 (fun _ track ->
                task {
                    // stdin is a pipe (dup2'd onto 0 first), stdout the parent's fd 0: the child's fd 1 must be
                    // what the parent's 0 is, not the stdin pipe.
                    let parent0 = linkOf 0
                    let! p = shell track "x=$(readlink /proc/$$/fd/1); echo \"$x\" >&2" (options SubprocessRedirect.Pipe (SubprocessRedirect.FromFileDescriptor 0) SubprocessRedirect.Pipe)
                    let! (_, err) = p.CommunicateAsync()
                    Expect.equal ((str err).Trim()) parent0 "the child's stdout is the parent's fd 0"
                }))

        testCase "a file as stdout, a handle as stdin" (fun () ->
            run 20.0 (fun _ track ->
                task {
                    let path = Path.GetTempFileName()

                    try
                        File.WriteAllText(path, "line one\nline two\n")
                        let outPath = path + ".out"
                        use input = new FileStream(path, FileMode.Open, FileAccess.Read)
                        use output = new FileStream(outPath, FileMode.Create, FileAccess.Write)
                        output.Write(ascii "parent first\n")

                        let! p =
                            exec track "cat" [] (options (SubprocessRedirect.FromHandle input.SafeFileHandle) (SubprocessRedirect.FromFile output) SubprocessRedirect.Inherit)

                        let! rc = p.WaitAsync()
                        Expect.equal rc 0 "cat exit"
                        output.Dispose()
                        Expect.equal (File.ReadAllText outPath) "parent first\nline one\nline two\n" "the child wrote after the parent"
                        do! p.DisposeAsync()
                        File.Delete outPath
                    finally
                        File.Delete path
                }))

        testCase "the readers' limit pauses the pipe past 2 x limit (asyncio's StreamReader)" (fun () ->
            run 20.0 (fun _ track ->
                task {
                    let! p = exec track "head" [ "-c"; "1000000"; "/dev/zero" ] (SubprocessOptions(Stdout = SubprocessRedirect.Pipe, Limit = 1024))
                    do! Asyncio.Sleep 0.3
                    Expect.isLessThanOrEqual p.Stdout.BufferedCount (2 * 1024 + 65536) "reading paused past 2 x limit"
                    Expect.equal p.ReturnCode (Nullable()) "the child is held back (its pipe is full)"
                    let! all = p.Stdout.ReadAsync()
                    Expect.equal all.Length 1_000_000 "everything once read"
                    let! rc = p.WaitAsync()
                    Expect.equal rc 0 "exit"
                    do! p.DisposeAsync()
                }))

        testCase "stdin writer: DrainAsync follows the pipe's flow control; stdout lines" (fun () ->
            run 20.0 (fun _ track ->
                task {
                    let! p = exec track "tr" [ "a-z"; "A-Z" ] allPipes
                    for i in 1..1000 do
                        p.Stdin.Write(ReadOnlySpan(ascii (sprintf "line %d\n" i)))
                        do! p.Stdin.DrainAsync()

                    p.Stdin.Close()
                    let mutable n = 0
                    let mutable last = ""
                    let mutable go = true

                    while go do
                        let! l = p.Stdout.ReadLineAsync()
                        if isNull l || l = "" then go <- false
                        else
                            n <- n + 1
                            last <- l

                    Expect.equal n 1000 "every line"
                    Expect.equal last "LINE 1000" "transformed"
                    let! rc = p.WaitAsync()
                    Expect.equal rc 0 "exit"
                    do! p.DisposeAsync()
                }))

        testCase "the child starts with no signal blocked and none ignored (the runtime ignores SIGPIPE: restore_signals)" (fun () ->
            run 10.0 (fun _ track ->
                task {
                    let! p = exec track "grep" [ "-E"; "^Sig(Blk|Ign)"; "/proc/self/status" ] (SubprocessOptions(Stdout = SubprocessRedirect.Pipe))
                    let! (out, _) = p.CommunicateAsync()
                    Expect.equal (str out) "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n" "empty mask, no ignored signal"
                }))

        testCase "Environment and WorkingDirectory; a missing working directory is 'not found' (errno 2)" (fun () ->
            run 10.0 (fun _ track ->
                task {
                    let env = dict [ "FOO", "bar baz"; "PATH", "/usr/bin:/bin" ] |> Dictionary
                    let dir = Path.GetTempPath().TrimEnd('/')
                    let opts = SubprocessOptions(Stdout = SubprocessRedirect.Pipe, Environment = env, WorkingDirectory = dir)
                    let! p = shell track "echo \"$FOO\"; pwd; env | wc -l" opts
                    let! (out, _) = p.CommunicateAsync()
                    let lines = (str out).Split('\n')
                    Expect.equal lines[0] "bar baz" "the given environment"
                    Expect.equal (Path.GetFullPath lines[1]) (Path.GetFullPath dir) "the given directory"
                    Expect.isLessThanOrEqual (int (lines[2].Trim())) 4 "only the given variables (and what sh adds: PWD, SHLVL)"

                    try
                        let! _ = Asyncio.CreateSubprocessExec("true", [], SubprocessOptions(WorkingDirectory = "/nonexistent-tulip"), CancellationToken.None)
                        failtest "expected not found"
                    with :? SubprocessNotFoundException as e ->
                        Expect.equal e.Errno 2 "ENOENT"
                        Expect.equal e.FileName "/nonexistent-tulip" "the directory"
                }))

        testCase "a token on WaitAsync cancels the wait only: the child runs on" (fun () ->
            run 10.0 (fun _ track ->
                task {
                    let! p = exec track "sleep" [ "30" ] (SubprocessOptions())
                    use cts = new CancellationTokenSource(TimeSpan.FromMilliseconds 50.0)

                    try
                        let! _ = p.WaitAsync(cts.Token)
                        failtest "expected a cancellation"
                    with :? OperationCanceledException as e ->
                        Expect.equal e.CancellationToken cts.Token "carries the token"

                    Expect.equal p.ReturnCode (Nullable()) "still running"
                    p.Terminate()
                    let! rc = p.WaitAsync()
                    Expect.equal rc -15 "then terminated"
                    do! p.DisposeAsync()
                }))

        testCase "coexistence with System.Diagnostics.Process and the runtime's child reaping" (fun () ->
            run 20.0 (fun _ track ->
                task {
                    let! mine = shell track "sleep 0.2; exit 3" (SubprocessOptions())
                    use theirs = Process.Start(ProcessStartInfo("/bin/sh", "-c \"sleep 0.1; exit 7\"", UseShellExecute = false))
                    track.Pid theirs.Id
                    let! rc = mine.WaitAsync()
                    Expect.equal rc 3 "ours: its code (the runtime's SIGCHLD handler did not reap it)"
                    do! theirs.WaitForExitAsync()
                    Expect.equal theirs.ExitCode 7 "theirs: its code (we never waitpid(-1))"
                    let! again = exec track "sh" [ "-c"; "exit 9" ] (SubprocessOptions())
                    let! rc = again.WaitAsync()
                    Expect.equal rc 9 "ours after a Process ran"
                }))

        testCase "the loop's Close kills and reaps a child still running" (fun () ->
            let loop = new EventLoop()
            let track = Track()

            let p =
                loop.RunUntilComplete(Func<Task<LoopProcess>>(fun () -> exec track "sleep" [ "30" ] (SubprocessOptions())))

            Expect.equal loop.Subprocesses.Count 1 "running"
            loop.Close()
            ignore p
            track.Check()) ]

let private pipeTests =
    [ testCase "ConnectWritePipe / ConnectReadPipe: a megabyte through a pipe, flow control, pause and resume" (fun () ->
          run 20.0 (fun loop _ ->
              task {
                  let struct (r, w) = Tulip.Subprocess.PosixNative.Pipe()
                  let reader = new SafeFileHandle(nativeint r, true)
                  let writer = new SafeFileHandle(nativeint w, true)
                  let received = new MemoryStream()
                  let eof = loop.CreateFuture<unit>()
                  let mutable paused = 0
                  let mutable resumed = 0

                  let readProto =
                      { new Protocol() with
                          member _.DataReceived(d) = received.Write(d)
                          member _.ConnectionLost(_) = eof.SetResult(()) }

                  let writeProto =
                      { new Protocol() with
                          member _.PauseWriting() = paused <- paused + 1
                          member _.ResumeWriting() = resumed <- resumed + 1 }

                  let! (wt, _) = loop.ConnectWritePipeAsync((fun () -> writeProto), writer)
                  let! (rt, _) = loop.ConnectReadPipeAsync((fun () -> readProto), reader)
                  Expect.isTrue rt.IsReading "reading"
                  rt.PauseReading()
                  Expect.isFalse rt.IsReading "paused"
                  let data = pattern 1_000_000
                  wt.Write(ReadOnlySpan data)
                  Expect.isGreaterThan paused 0 "PauseWriting above the high-water mark"
                  do! Asyncio.Sleep 0.05
                  Expect.equal received.Length 0L "nothing read while paused"
                  rt.ResumeReading()
                  wt.Close()
                  do! eof
                  Expect.equal (received.ToArray()) data "every byte, in order; Close flushed first"
                  Expect.equal (paused, resumed) (1, 1) "one PauseWriting, one ResumeWriting once drained"
                  Expect.isTrue reader.IsClosed "the transport owns and closed the read handle"
                  Expect.isTrue writer.IsClosed "and the write handle"
              }))

      testCase "ConnectReadPipe refuses a regular file" (fun () ->
          run 10.0 (fun loop _ ->
              task {
                  let path = Path.GetTempFileName()

                  try
                      use f = new FileStream(path, FileMode.Open)

                      try
                          let! _ = loop.ConnectReadPipeAsync((fun () -> { new Protocol() with member _.DataReceived(_) = () }), f)
                          failtest "expected a refusal"
                      with :? ArgumentException as e ->
                          Expect.stringContains e.Message "Pipe transport is for pipes/sockets only." "asyncio's message"
                  finally
                      File.Delete path
              })) ]

/// Observes an observable on the loop: items, and how it ended.
type private Seen() =
    member val Items = List<string>()
    member val Ended: Future<exn option> = null with get, set

let private observe (loop: EventLoop) (o: IObservable<string>) =
    let seen = Seen(Ended = loop.CreateFuture<exn option>())
    let d =
        o.Subscribe(
            { new IObserver<string> with
                member _.OnNext x = seen.Items.Add x
                member _.OnError e = if not seen.Ended.Done then seen.Ended.SetResult(Some e)
                member _.OnCompleted() = if not seen.Ended.Done then seen.Ended.SetResult None }
        )
    seen, d

let private onlyTransport (loop: EventLoop) =
    loop.Subprocesses |> Seq.exactlyOne

let private rxTests =
    [ testCase "Rx: a child's stdout lines, then its exit code and completion; stderr merged on request" (fun () ->
          run 10.0 (fun loop _ ->
              task {
                  let mutable code = -1
                  let seen, d = observe loop (Tulip.Reactive.SubprocessObservables.Lines(loop, "printf", [ "a\nb\nc\n" ], exited = (fun c -> code <- c)))
                  let! ended = seen.Ended
                  d.Dispose()
                  Expect.isNone ended "completed"
                  Expect.sequenceEqual seen.Items [ "a"; "b"; "c" ] "lines"
                  Expect.equal code 0 "exit code"
                  let seen, d = observe loop (Tulip.Reactive.SubprocessObservables.Lines(loop, "sh", [ "-c"; "echo out; echo err >&2; exit 2" ], mergeStderr = true, exited = (fun c -> code <- c)))
                  let! _ = seen.Ended
                  d.Dispose()
                  Expect.sequenceEqual seen.Items [ "out"; "err" ] "stderr into stdout"
                  Expect.equal code 2 "exit code 2"
                  let seen, d = observe loop (Tulip.Reactive.SubprocessObservables.Lines(loop, "no-such-program-tulip"))
                  let! ended = seen.Ended
                  d.Dispose()
                  Expect.isTrue (match ended with Some(:? SubprocessNotFoundException) -> true | _ -> false) "OnError: not found"
              }))

      testCase "Rx: disposing kills and reaps the child (Cancel) or detaches it (StopListening)" (fun () ->
          run 10.0 (fun loop track ->
              task {
                  let seen, d = observe loop (Tulip.Reactive.SubprocessObservables.Lines(loop, "sh", [ "-c"; "echo first; exec sleep 30" ]))
                  while seen.Items.Count = 0 do do! Asyncio.Sleep 0.01
                  let t = onlyTransport loop
                  track.Transport t
                  d.Dispose()
                  let! rc = t.ExitFuture()
                  Expect.equal rc -9 "killed"
                  let seen, d = observe loop (Tulip.Reactive.SubprocessObservables.Lines(loop, "sh", [ "-c"; "echo first; exec sleep 0.3" ], onDispose = Tulip.Reactive.OnDispose.StopListening))
                  while seen.Items.Count = 0 do do! Asyncio.Sleep 0.01
                  let t = onlyTransport loop
                  track.Transport t
                  d.Dispose()
                  let! rc = t.ExitFuture()
                  Expect.equal rc 0 "detached: it ran to its own end, and was reaped"
                  while loop.Subprocesses.Count > 0 do do! Asyncio.Sleep 0.01
              })) ]

let private closingTests =
    [ testCase "the pidfd-less fallback: a thread waits for the child and posts its exit to the loop" (fun () ->
          let before = Tulip.Subprocess.ChildWatch.UsePidfd
          Tulip.Subprocess.ChildWatch.UsePidfd <- false

          try
              run 10.0 (fun _ track ->
                  task {
                      let! p = exec track "cat" [] allPipes
                      Expect.equal (pidfdCount ()) 0 "no pidfd: the thread watches"
                      let! (out, _) = p.CommunicateAsync(ascii "through the thread")
                      Expect.equal (str out) "through the thread" "output"
                      Expect.equal p.ReturnCode (Nullable 0) "exit reported through CallSoonThreadsafe"
                  })
          finally
              Tulip.Subprocess.ChildWatch.UsePidfd <- before)

      testCase "a pipe transport failing after the spawn: the child is killed and reaped at once, no pipe left" (fun () ->
          run 10.0 (fun loop track ->
              task {
                  let before = Set.ofArray (openLinks ())
                  // stdin's transport is made, then stdout's fails: both cleanup branches run.
                  Tulip.Subprocess.SubprocessTransport.PipeFaultForTests <-
                      Action<int, int>(fun pid fd ->
                          if fd = 0 then track.Pid pid
                          if fd = 1 then raise (IOException "injected"))

                  try
                      try
                          let! _ = Asyncio.CreateSubprocessExec("sleep", [ "30" ], allPipes, CancellationToken.None)
                          failtest "expected the injected failure"
                      with :? IOException as e ->
                          Expect.equal e.Message "injected" "the transport's error"
                  finally
                      Tulip.Subprocess.SubprocessTransport.PipeFaultForTests <- null

                  Expect.equal track.Pids.Length 1 "a child was spawned"
                  Expect.isFalse (alive track.Pids.Head) "reaped before the call ended (no process, no zombie)"
                  do! Asyncio.Sleep 0.05 // stdin's scheduled ConnectionMade runs on a closed pipe: nothing
                  let after = Set.ofArray (openLinks ())
                  Expect.isEmpty (Set.difference after before |> Set.filter (fun l -> l.StartsWith "pipe:" || l.Contains "pidfd")) "no pipe or pidfd left"
                  Expect.equal loop.Subprocesses.Count 0 "nothing registered"
              }))

      // asyncio's PidfdChildWatcher / ThreadedChildWatcher: waitpid's ECHILD logs "Unknown child process
      // pid %d, will report returncode 255" (a warning) and reports 255.
      testCase "a child reaped behind the loop's back (ECHILD) reports 255 with asyncio's warning" (fun () ->
          let lines = System.Collections.Concurrent.ConcurrentQueue<string>()
          let old = Tulip.Diagnostics.LoopLog.Sink
          Tulip.Diagnostics.LoopLog.Sink <- Action<string>(fun s -> lines.Enqueue s)

          try
              run 10.0 (fun _ track ->
                  task {
                      let! p = exec track "sh" [ "-c"; "sleep 0.3; exit 3" ] (SubprocessOptions())
                      Expect.equal (pidfdCount ()) 1 "the pidfd watches (its readiness is handled at a later tick)"
                      let r = reapBehindTheLoop p.Pid
                      Expect.equal r p.Pid "the test reaped it first"
                      let! rc = p.WaitAsync()
                      Expect.equal rc 255 "asyncio's returncode for an unknown child"
                  })
          finally
              Tulip.Diagnostics.LoopLog.Sink <- old

          Expect.exists lines (fun l -> l.Contains "Unknown child process pid" && l.EndsWith "will report returncode 255") "the warning")

      testCase "the pidfd-less fallback: once its thread reaped the child, Kill/Terminate/SendSignal send nothing before the exit is posted" (fun () ->
          let before = Tulip.Subprocess.ChildWatch.UsePidfd
          Tulip.Subprocess.ChildWatch.UsePidfd <- false

          try
              run 10.0 (fun _ track ->
                  task {
                      // Alive when the spawn returns (its exit cannot have been posted yet), gone soon after.
                      let! p = exec track "sleep" [ "0.5" ] (SubprocessOptions())
                      let t = p.Transport :?> Tulip.Subprocess.SubprocessTransport
                      // The loop thread is held here, so the thread's post cannot run: the window is open.
                      let sw = Stopwatch.StartNew()

                      while not t.Watch.Reaped && sw.Elapsed < TimeSpan.FromSeconds 5.0 do
                          Thread.Sleep 1

                      Expect.isTrue t.Watch.Reaped "the waiting thread reaped it"
                      Expect.isFalse p.ReturnCode.HasValue "its exit has not reached the loop yet"
                      p.Kill()
                      p.Terminate()
                      p.SendSignal 10
                      Expect.equal t.SignalsSent 0 "no kill(2) on a pid that may be recycled (Popen.send_signal: nothing once reaped)"
                      let! rc = p.WaitAsync()
                      Expect.equal rc 0 "then the exit arrives"
                  })
          finally
              Tulip.Subprocess.ChildWatch.UsePidfd <- before)

      testCase "the loop's Close hands a child that SIGKILL has not ended yet to a reaping thread: Close returns, the child is reaped soon" (fun () ->
          let budget = Tulip.Subprocess.ChildWatch.ReapPollBudget
          // No polling at all: the hand-over path, as for a child in uninterruptible sleep after the ~1 s.
          Tulip.Subprocess.ChildWatch.ReapPollBudget <- TimeSpan.Zero
          let track = Track()

          try
              let loop = new EventLoop()

              loop.RunUntilComplete(Func<Task<LoopProcess>>(fun () -> exec track "sleep" [ "30" ] (SubprocessOptions())))
              |> ignore

              let sw = Stopwatch.StartNew()
              loop.Close()
              Expect.isLessThan sw.Elapsed (TimeSpan.FromSeconds 1.0) "Close did not wait"
          finally
              Tulip.Subprocess.ChildWatch.ReapPollBudget <- budget

          let pid = track.Pids.Head
          let sw = Stopwatch.StartNew()

          while alive pid && sw.Elapsed < TimeSpan.FromSeconds 5.0 do
              Thread.Sleep 5

          track.Check())

      // Last in this sequenced list: whatever the tests above started is gone.
      testCase "after the suite: no child process, zombie or pipe descriptor of it remains" (fun () ->
          let pids = List.ofSeq allPids
          Expect.isGreaterThan pids.Length 20 "the suite started children"

          for pid in pids do
              Expect.isFalse (alive pid) (sprintf "child %d is gone (not running, not a zombie)" pid)

          let zombies =
              Directory.GetDirectories "/proc"
              |> Array.choose (fun d ->
                  match Int32.TryParse(Path.GetFileName d) with
                  | true, pid ->
                      try
                          let stat = File.ReadAllText(Path.Combine(d, "stat"))
                          let fields = stat.Substring(stat.LastIndexOf(')') + 2).Split(' ')
                          if fields[0] = "Z" && int fields[1] = selfPid && List.contains pid pids then Some pid else None
                      with _ ->
                          None
                  | _ -> None)

          Expect.isEmpty zombies "no zombie child"
          let links = openLinks () |> Set.ofArray

          for l in allPipes' do
              Expect.isFalse (links.Contains l) (sprintf "pipe %s closed" l)

          Expect.equal (pidfdCount ()) 0 "no pidfd") ]

[<Tests>]
let tests =
    testSequenced <| testList "Subprocess" (protocolTests @ streamTests @ pipeTests @ rxTests @ closingTests)
