module Tulip.Tests.ExampleTests

open System
open System.IO
open System.Text.RegularExpressions
open Expecto
open Tulip
open Tulip.Examples
open Tulip.Testing

/// One expected line of an example's output: exactly this text, or (for lines with times, task names
/// and other run-dependent values) a line matching this regex.
type Line =
    | Is of string
    | Like of pattern: string

/// What each example prints, in order: the lines of PyMOTW-3's Python original (run with python3),
/// with Tulip's own repr where Python prints an object's repr. task_group and timeout have no PyMOTW
/// original: their Python 3.11 twins (asyncio.TaskGroup, asyncio.timeout, wait_for) printed these lines.
/// The rx_ examples have no Python original: their lines are Tulip.Reactive's (rx_timed's times are
/// virtual, hence exact).
let expected: (string * Line list) list =
    let chain =
        [ Is "in outer"
          Is "waiting for result1"
          Is "in phase1"
          Is "waiting for result2"
          Is "in phase2"
          Is "return value: ('result1', 'result2 derived from result1')" ]

    let float = @"\d+\.\d+(E[-+]?\d+)?"

    // PyMOTW's asyncio_echo_*_coroutine, as the Python pair prints them (ports vary).
    let echoLines (who: string) =
        let all = "b'This is the message. It will be sent in parts.'"

        [ Like(sprintf @"^main: starting up on 127\.0\.0\.1 port \d+ \(%s\)$" who)
          Like @"^echo_client: connecting to 127\.0\.0\.1 port \d+$"
          Like @"^echo_127\.0\.0\.1_\d+: connection accepted$"
          Is "echo_client: sending b'This is the message. '"
          Is "echo_client: sending b'It will be sent '"
          Is "echo_client: sending b'in parts.'"
          Is "echo_client: waiting for response"
          Like(@"^echo_127\.0\.0\.1_\d+: received " + Regex.Escape all + "$")
          Like(@"^echo_127\.0\.0\.1_\d+: sent " + Regex.Escape all + "$")
          Like @"^echo_127\.0\.0\.1_\d+: closing$"
          Is("echo_client: received " + all)
          Is "echo_client: closing"
          Is "main: closing server"
          Is "main: closing event loop" ]

    // PyMOTW's asyncio_echo_server_protocol.py and asyncio_echo_client_protocol.py: each example prints
    // its script's log (ports vary) and runs the other side quietly.
    let protocolEcho = Regex.Escape "b'This is the message. It will be sent in parts.'"
    let echoServer = @"^EchoServer_127\.0\.0\.1_\d+: "

    [ "coroutine", [ Is "starting coroutine"; Is "entering event loop"; Is "in coroutine"; Is "closing event loop" ]
      "coroutine_return", [ Is "in coroutine"; Is "it returned: 'result'" ]
      "coroutine_chain", chain
      "generator", chain
      "coroutine_chain_fs", chain
      "call_soon",
      [ Is "entering event loop"
        Is "registering callbacks"
        Is "callback invoked with 1 and default"
        Is "callback invoked with 2 and not default"
        Is "closing event loop" ]
      "call_later",
      [ Is "entering event loop"
        Is "registering callbacks"
        Is "callback 3 invoked"
        Is "callback 2 invoked"
        Is "callback 1 invoked"
        Is "closing event loop" ]
      "call_at",
      [ Is "entering event loop"
        Like $"^clock time: {float}$"
        Like $"^loop  time: {float}$"
        Is "registering callbacks"
        Like $"^callback 3 invoked at {float}$"
        Like $"^callback 2 invoked at {float}$"
        Like $"^callback 1 invoked at {float}$"
        Is "closing event loop" ]
      "future_event_loop",
      [ Is "scheduling mark_done"
        Is "entering event loop"
        Is "setting future result to 'the result'"
        Is "returned result: 'the result'"
        Is "closing event loop"
        Is "future result: 'the result'" ]
      "future_await",
      [ Is "scheduling mark_done"
        Is "setting future result to 'the result'"
        Is "returned result: 'the result'" ]
      "future_callback",
      [ Is "registering callbacks on future"
        Is "setting result of future"
        Is "1: future done: the result"
        Is "2: future done: the result" ]
      "create_task",
      [ Is "creating task"
        Like @"^waiting for <LoopTask pending name='Task-\d+'>$"
        Is "in task_func"
        Like @"^task completed <LoopTask finished name='Task-\d+' result='the result'>$"
        Is "return value: 'the result'" ]
      "cancel_task",
      [ Is "creating task"
        Is "canceling task"
        // Python: <Task cancelling name='Task-2' coro=...>; Tulip's repr says pending until the task is done.
        Like @"^canceled task <LoopTask cancelling name='Task-\d+'>$"
        Is "caught error from canceled task" ]
      "cancel_task2",
      [ Is "creating task"
        Is "in task_func, sleeping"
        Is "in task_canceller"
        Is "canceled the task"
        Is "task_func was canceled"
        Is "main() also sees task as canceled" ]
      "ensure_future",
      [ Is "entering event loop"
        Is "starter: creating task"
        Is "starter: waiting for inner"
        Is "inner: starting"
        Like @"^inner: waiting for <LoopTask pending name='Task-\d+'>$"
        Is "wrapped"
        Is "inner: task returned 'result'"
        Is "starter: inner returned" ]
      "wait",
      [ Is "starting main"
        Is "waiting for phases to complete"
        Is "in phase 0"
        Is "in phase 1"
        Is "in phase 2"
        Is "done with phase 0"
        Is "done with phase 1"
        Is "done with phase 2"
        Is "results: ['phase 0 result', 'phase 1 result', 'phase 2 result']" ]
      "wait_timeout",
      [ Is "starting main"
        Is "waiting 0.1 for phases to complete"
        Is "in phase 0"
        Is "in phase 1"
        Is "in phase 2"
        Is "done with phase 0"
        Is "1 completed and 2 pending"
        Is "canceling tasks"
        Is "exiting main"
        Is "phase 1 canceled"
        Is "phase 2 canceled" ]
      "gather",
      [ Is "starting main"
        Is "waiting for phases to complete"
        Is "in phase1"
        Is "in phase2"
        Is "done with phase2"
        Is "done with phase1"
        Is "results: ['phase1 result', 'phase2 result']" ]
      "as_completed",
      [ Is "starting main"
        Is "waiting for phases to complete"
        Is "in phase 0"
        Is "in phase 1"
        Is "in phase 2"
        Is "done with phase 2"
        Is "received answer 'phase 2 result'"
        Is "done with phase 1"
        Is "received answer 'phase 1 result'"
        Is "done with phase 0"
        Is "received answer 'phase 0 result'"
        Is "results: ['phase 2 result', 'phase 1 result', 'phase 0 result']" ]
      "task_group",
      [ Is "tasks created"
        Is "fetch a: starting"
        Is "fetch b: starting"
        Is "fetch b: done"
        Is "fetch a: done"
        Is "results: ['a data', 'b data']"
        Is "fetch slow: starting"
        Is "group failed: ['broken after 0.1']"
        Is "slow cancelled: True" ]
      "timeout",
      [ Is "sleeping 1s inside a 0.1s timeout"
        Is "timed out; expired: True"
        Is "deadline moved 1s ahead"
        Is "finished in time; expired: False"
        Is "wait_for timed out" ]
      "lock",
      [ Is "acquiring the lock before starting coroutines"
        Is "lock acquired: True"
        Is "waiting for coroutines"
        Is "coro1 waiting for the lock"
        Is "coro2 waiting for the lock"
        Is "callback releasing lock"
        Is "coro1 acquired lock"
        Is "coro1 released lock"
        Is "coro2 acquired lock"
        Is "coro2 released lock" ]
      "event",
      [ Is "event start state: False"
        Is "coro1 waiting for event"
        Is "coro2 waiting for event"
        Is "setting event in callback"
        Is "coro1 triggered"
        Is "coro2 triggered"
        Is "event end state: True" ]
      "condition",
      [ Is "starting manipulate_condition"
        Is "consumer 0 is waiting"
        Is "consumer 1 is waiting"
        Is "consumer 2 is waiting"
        Is "consumer 3 is waiting"
        Is "consumer 4 is waiting"
        Is "notifying 1 consumers"
        Is "consumer 0 triggered"
        Is "ending consumer 0"
        Is "notifying 2 consumers"
        Is "consumer 1 triggered"
        Is "ending consumer 1"
        Is "consumer 2 triggered"
        Is "ending consumer 2"
        Is "notifying remaining consumers"
        Is "ending manipulate_condition"
        Is "consumer 3 triggered"
        Is "ending consumer 3"
        Is "consumer 4 triggered"
        Is "ending consumer 4" ]
      "queue",
      [ Is "consumer 0: starting"
        Is "consumer 0: waiting for item"
        Is "consumer 1: starting"
        Is "consumer 1: waiting for item"
        Is "producer: starting"
        Is "producer: added task 0 to the queue"
        Is "producer: added task 1 to the queue"
        Is "consumer 0: has item 0"
        Is "consumer 1: has item 1"
        Is "producer: added task 2 to the queue"
        Is "producer: added task 3 to the queue"
        Is "consumer 0: waiting for item"
        Is "consumer 0: has item 2"
        Is "producer: added task 4 to the queue"
        Is "consumer 1: waiting for item"
        Is "consumer 1: has item 3"
        Is "producer: added task 5 to the queue"
        Is "producer: adding stop signals to the queue"
        Is "consumer 0: waiting for item"
        Is "consumer 0: has item 4"
        Is "consumer 1: waiting for item"
        Is "consumer 1: has item 5"
        Is "producer: waiting for queue to empty"
        Is "consumer 0: waiting for item"
        Is "consumer 0: has item None"
        Is "consumer 0: ending"
        Is "consumer 1: waiting for item"
        Is "consumer 1: has item None"
        Is "consumer 1: ending"
        Is "producer: ending" ]
      "echo_server_protocol",
      [ Like @"^main: starting up on 127\.0\.0\.1 port \d+ \(the demo starts its own client\)$"
        Like(echoServer + "connection accepted$")
        Like(echoServer + "received " + protocolEcho + "$")
        Like(echoServer + "sent " + protocolEcho + "$")
        Like(echoServer + "received EOF$")
        Like(echoServer + "closing$")
        Is "main: closing server"
        Is "main: closing event loop" ]
      "echo_client_protocol",
      [ Is "main: waiting for client to complete"
        Like @"^EchoClient: connecting to 127\.0\.0\.1 port \d+$"
        Is "EchoClient: sending b'This is the message. '"
        Is "EchoClient: sending b'It will be sent '"
        Is "EchoClient: sending b'in parts.'"
        Like("^EchoClient: received " + protocolEcho + "$")
        Is "EchoClient: received EOF"
        Is "EchoClient: server closed connection"
        Is "main: closing event loop" ]
      // The Python docs' UDP echo server and client, run together.
      "udp_echo",
      [ Is "Starting UDP server"
        Is "Send: Hello World!"
        Like @"^Received 'Hello World!' from \('127\.0\.0\.1', \d+\)$"
        Like @"^Send 'Hello World!' to \('127\.0\.0\.1', \d+\)$"
        Is "Received: Hello World!"
        Is "Close the socket"
        Is "Connection closed" ]
      "echo_server_coroutine", echoLines "the demo starts its own client"
      "echo_client_coroutine", echoLines "the demo starts its own server"
      "log_tail",
      [ for i in 1..5 -> Is(sprintf "tail: t=%.1f event %d" (0.2 * double i) i) ] @ [ Is "tail: end of log" ]
      // Issue 16: PyMOTW's asyncio_getaddrinfo / getnameinfo / signal, on names that need no network.
      "getaddrinfo",
      [ Is "localhost/https : InterNetwork Stream Tcp 'localhost' 127.0.0.1:443"
        Is "127.0.0.1/http  : InterNetwork Stream Tcp '127.0.0.1' 127.0.0.1:80"
        Is "::1/ssh         : InterNetworkV6 Stream Tcp '::1' [::1]:22"
        Like @"^this machine    : (\d+ IPv4 address\(es\), first [0-9.]+|not resolved: \[Errno -\d+\] .+)$"
        Is "refused         : the host name has a label of 64 characters at offset 0 (at most 63)" ]
      "getnameinfo",
      [ Is "127.0.0.1:80   (None): localhost http"
        Is "127.0.0.1:22   (None): localhost ssh"
        Is "127.0.0.1:443  (NumericHost, NumericServ): 127.0.0.1 443"
        // ::1's name depends on the machine's /etc/hosts (none here; ip6-localhost on Debian).
        Like @"^::1:443        \(NumericHost\): ::1 https$" ]
      "signal",
      // A test process started with SIGINT ignored (a background job) cannot handle it: the example says so.
      [ let ignored = Tulip.NameResolution.LibC.IsIgnored UnixSignal.SIGINT
        if ignored then
            Is $"not handling SIGINT: sig 2 is ignored in this process (SIG_IGN inherited from its parent); the .NET runtime does not deliver it"
        Is "starting send_signals for this process"
        for name in [ "SIGHUP"; "SIGHUP"; "SIGUSR1" ] @ (if ignored then [] else [ "SIGINT" ]) do
            Is $"sending {name}"
            Is "yielding control"
            Is $"signal_handler('{name}')" ]
      // PyMOTW's asyncio_subprocess_* with ls -1 of a fresh directory instead of df -hl (machine-dependent).
      "subprocess_protocol",
      [ Is "in run_ls"
        Is "launching process"
        Is "process started"
        Is "launched process"
        Is "read 29 bytes from stdout"
        Is "exited w/ return code 0"
        Is "return code 0"
        Is "parsing results"
        Is "alpha.txt"
        Is "beta.txt"
        Is "gamma.txt" ]
      "subprocess_coroutine",
      [ Is "in run_ls"
        Is "launching process"
        Is "process started"
        Is "read 'alpha.txt\\n'"
        Is "read 'beta.txt\\n'"
        Is "read 'gamma.txt\\n'"
        Is "read ''"
        Is "no more output from command"
        Is "waiting for process to complete"
        Is "return code 0"
        Is "parsing results"
        Is "return code: 0"
        Is "alpha.txt"
        Is "beta.txt"
        Is "gamma.txt" ]
      "subprocess_protocol_write",
      [ Is "launching process"
        Is "process started"
        Is "writing input"
        Is "waiting for process to complete"
        Is "read 29 bytes from stdout"
        Is "process exited"
        Is "return code 0"
        Is "return code: 0"
        Is "results:"
        Is "LINE ONE"
        Is "LINE TWO"
        Is "LINE THREE" ]
      "subprocess_coroutine_write",
      [ Is "in to_upper"
        Is "launching process"
        Like @"^pid \d+$"
        Is "communicating with process"
        Is "waiting for process to complete"
        Is "return code 0"
        Is "return code: 0"
        Is "results:"
        Is "LINE ONE"
        Is "LINE TWO"
        Is "LINE THREE" ]
      "rx_echo",
      [ Is "server: new connection"
        Is "server: echo 'hello'"
        Is "client: 'hello' -> 'HELLO'"
        Is "server: echo 'rx'"
        Is "client: 'rx' -> 'RX'"
        Is "server: echo 'tulip'"
        Is "client: 'tulip' -> 'TULIP'"
        Is "client: closed" ]
      "rx_timed",
      [ Is "[    0.9 s] query 'tulip'"
        Is "[    1.5 s] query 'tulips'"
        Is "[    1.5 s] search for 'tulip' cancelled: a newer query came"
        Is "[    2.5 s] 6 results for 'tulips'"
        Is "[  605.0 s] 600 readings, mean 299.5"
        Is "[ 1205.0 s] 600 readings, mean 899.5"
        Is "[ 1805.0 s] 600 readings, mean 1499.5"
        Is "[ 2405.0 s] 600 readings, mean 2099.5"
        Is "[ 3005.0 s] 600 readings, mean 2699.5"
        Is "[ 3604.5 s] 600 readings, mean 3299.5"
        Is "loop time 3604.5 s; real time under a second: True" ]
      // Issue 14's bridges: no Python original; the lines are Tulip's.
      "channel_bridge",
      [ for i in 1..5 -> Is $"loop consumer: job {i}" ]
      @ [ Is "thread-pool producer: done"; Is "thread-pool consumer: 10 squares, sum 385" ]
      "pipe_bridge",
      [ Is "server: parsed 'GET /index'"
        Is "server: parsed 'Host: tulip'"
        Is "client: got 'GET /INDEX'"
        Is "client: got 'HOST: TULIP'" ]
      "tokens_astask_fs",
      [ Is "fast: done after 1 s"
        Is "slow: done after 2 s"
        Is "Task.WhenAll: slow, fast"
        Is "stuck: cancelled; the Task says IsCanceled = True"
        Is "loop time: 7 s" ]
      // PyMOTW's asyncio_executor_thread.py: the workers' lines and the loop's "waiting" interleave as
      // the threads run; then the results and (Tulip's addition) debug mode refusing an async lambda.
      "executor_thread",
      [ Is "MainThread run_blocking_tasks: starting"
        Is "MainThread run_blocking_tasks: creating executor tasks" ]
      @ [ for _ in 1..13 ->
              Like @"^(MainThread run_blocking_tasks: waiting for executor tasks|ThreadPoolExecutor-\d+_[0-2] +blocks\([0-5]\): (running|done))$" ]
      @ [ Is "MainThread run_blocking_tasks: results: [0, 1, 4, 9, 16, 25]"
          Is "MainThread run_blocking_tasks: coroutines cannot be used with CallSoon()"
          Is "MainThread run_blocking_tasks: exiting" ]
      // PyMOTW's asyncio_executor_process.py: the work runs in worker processes (their ids differ).
      "executor_process",
      [ Like @"^PID +\d+ run_blocking_tasks: starting$"
        Like @"^PID +\d+ run_blocking_tasks: creating executor tasks$"
        Like @"^PID +\d+ run_blocking_tasks: waiting for executor tasks$" ]
      @ [ for _ in 1..6 -> Like @"^PID +\d+ +blocks\([0-5]\): ran in a worker process, result \d+$" ]
      @ [ Like @"^PID +\d+ run_blocking_tasks: results: \[0, 1, 4, 9, 16, 25\]$"
          Like @"^PID +\d+ run_blocking_tasks: [1-3] worker process\(es\), none of them this one: True$"
          Like @"^PID +\d+ run_blocking_tasks: exiting$" ] ]

/// Runs an example on virtual clocks (it never sleeps) and returns its output lines and its clocks.
let run (example: Example) =
    use out = new StringWriter()
    out.NewLine <- "\n"
    let clocks = ResizeArray<VirtualClock>()

    let ctx =
        ExampleContext(
            out,
            fun () ->
                let c = VirtualClock()
                clocks.Add c
                c :> LoopClock
        )

    example.Body.Invoke ctx
    let text = out.ToString()
    let lines = text.Split('\n') |> Array.toList
    // Every line ends with a newline: drop the empty piece after the last one.
    let lines = if List.isEmpty lines || List.last lines <> "" then lines else List.take (lines.Length - 1) lines
    lines, List.ofSeq clocks

let private describe =
    function
    | Is s -> sprintf "%A" s
    | Like p -> sprintf "a line matching /%s/" p

let private check (name: string) (actual: string list) (wanted: Line list) =
    let show (ls: string list) = ls |> List.map (sprintf "    %s") |> String.concat "\n"

    let context () =
        $"\n  {name} printed:\n{show actual}\n  expected:\n{wanted |> List.map describe |> show}"

    List.zip (List.truncate wanted.Length actual) (List.truncate actual.Length wanted)
    |> List.iteri (fun i (line, want) ->
        match want with
        | Is s -> Expect.equal line s $"{name}, line {i + 1}{context ()}"
        | Like p -> Expect.isMatch line p $"{name}, line {i + 1}{context ()}")

    Expect.equal actual.Length wanted.Length $"{name}: number of lines{context ()}"

let private exampleCase (example: Example) =
    testCase example.Name
    <| fun () ->
        let wanted =
            match List.tryFind (fun (n, _) -> n = example.Name) expected with
            | Some(_, lines) -> lines
            | None -> failtest $"no expected output is written down for example '{example.Name}'"

        let lines, clocks = run example
        check example.Name lines wanted
        Expect.isNonEmpty clocks $"{example.Name} made its loops with the context's clock factory"

[<Tests>]
let tests =
    testList
        "Examples"
        [ testCase "the catalog holds exactly the chapter's examples, in its order"
          <| fun () ->
              let names = Catalog.All |> Seq.map (fun e -> e.Name) |> List.ofSeq
              Expect.sequenceEqual names (List.map fst expected) "Catalog.All's names"

          testCase "names are unique and every example says what section it is in and what it shows"
          <| fun () ->
              let all = List.ofSeq Catalog.All
              Expect.equal (all |> List.distinctBy (fun e -> e.Name) |> List.length) all.Length "unique names"

              for e in all do
                  Expect.isNotEmpty e.Section $"{e.Name}'s section"
                  Expect.isNotEmpty e.Shows $"{e.Name}'s description"

          testCase "call_at on a virtual clock: the callbacks see loop time now, now+0.1 and now+0.2"
          <| fun () ->
              let example = Catalog.All |> Seq.find (fun e -> e.Name = "call_at")
              let lines, _ = run example

              let at n =
                  let prefix = $"callback {n} invoked at "
                  let line = lines |> List.find (fun l -> l.StartsWith prefix)
                  Double.Parse(line.Substring prefix.Length, Globalization.CultureInfo.InvariantCulture)

              let now =
                  let line = lines |> List.find (fun l -> l.StartsWith "loop  time: ")
                  Double.Parse(line.Substring 12, Globalization.CultureInfo.InvariantCulture)

              Expect.floatClose Accuracy.high (at 3) now "call_soon: at once"
              Expect.floatClose Accuracy.high (at 2) (now + 0.1) "call_at now+0.1"
              Expect.floatClose Accuracy.high (at 1) (now + 0.2) "call_at now+0.2"

          testList "output matches the Python original" [ for e in Catalog.All -> exampleCase e ] ]
