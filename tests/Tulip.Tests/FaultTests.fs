/// Faults on loopback, against both reactors: connection refused, a peer reset mid-write, writes after
/// close, a cancelled connect, accept out of file descriptors (in a child process under ulimit -n).
module Tulip.Tests.FaultTests

open System
open System.Net
open System.Net.Sockets
open System.Threading.Tasks
open Expecto
open Tulip
open Tulip.Diagnostics
open Tulip.Io
open Tulip.Tests.ShellSupport
open Tulip.Tests.NetSupport

let private closeServer (server: Server) =
    task {
        server.Close()
        do! server.WaitClosedAsync()
    }

let cases: NetCase list =
    [ // python3: ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', port)").
      netCase "connection refused is a SocketException with SocketErrorCode ConnectionRefused"
      <| fun net ->
          task {
              let port =
                  use s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)
                  s.Bind(IPEndPoint(IPAddress.Loopback, 0))
                  (s.LocalEndPoint :?> IPEndPoint).Port

              let mutable made = 0

              try
                  let! _ = net.Connect(port, fun _ -> made <- made + 1)
                  failtest "refused"
              with :? SocketException as e ->
                  Expect.equal e.SocketErrorCode SocketError.ConnectionRefused "typed"

              Expect.equal made 0 "no protocol was made"
              Expect.equal net.ReactorCount 0 "nothing registered"
          }

      netCase "a peer reset mid-write ends in ConnectionLost with the error (not reported to the handler)"
      <| fun net ->
          task {
              let! server, accepted = net.Serve(fun r -> r.PauseReadingOnMade <- true)
              let! client = net.Connect(portOf server, ignore)
              do! waitFor net.Signal (fun () -> accepted.Count = 1 && accepted[0].IsMade)
              let chunk = payload 0 (64 * KiB)

              while client.Transport.GetWriteBufferSize() = 0 do
                  write client.Transport chunk

              // Linger 0: closing sends RST instead of FIN.
              let side = accepted[0].Transport
              (side.GetExtraInfo "socket" :?> Socket).LingerState <- LingerOption(true, 0)
              side.Abort()
              let mutable writes = 0

              while not client.IsLost do
                  writes <- writes + 1

                  if writes > 100_000 then
                      failtest "never lost"

                  if not client.Transport.IsClosing then
                      write client.Transport chunk

                  do! Asyncio.Sleep 0.001

              match client.LostWith with
              | :? SocketException as e ->
                  Expect.contains
                      [ SocketError.ConnectionReset; SocketError.Shutdown; SocketError.ConnectionAborted ]
                      e.SocketErrorCode
                      "a reset (or a broken pipe)"
              | e -> failtestf "expected ConnectionLost with a SocketException, got %O" e

              Expect.isTrue client.Transport.IsClosing "closed"
              do! waitFor net.Signal (fun () -> accepted[0].IsLost)
              do! closeServer server
          }

      netCase "a cancelled CreateConnection leaves no socket registered and makes no protocol"
      <| fun net ->
          task {
              // A listener that never accepts, with a backlog of 1: once its queue is full the kernel
              // drops further SYNs, and a connect waits (retrying) until it is given up.
              let listener = net.Own(new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
              listener.Bind(IPEndPoint(IPAddress.Loopback, 0))
              listener.Listen 1
              let port = (listener.LocalEndPoint :?> IPEndPoint).Port

              let fillers = ResizeArray<Socket>()

              for _ in 1..4 do
                  let filler = net.Own(new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
                  fillers.Add filler
                  filler.Blocking <- false

                  try
                      filler.Connect(IPEndPoint(IPAddress.Loopback, port))
                  with :? SocketException ->
                      ()

              do! Asyncio.Sleep 0.05 // let the handshakes that can complete, complete
              let mutable made = 0

              let connecting =
                  createTask net.Loop (fun () ->
                      task {
                          let! r = net.Connect(port, fun _ -> made <- made + 1)
                          return r.Transport
                      })

              do! poll (fun () -> net.ReactorCount = 1 || connecting.Done)
              Expect.isFalse connecting.Done "the connect is pending (the listener's queue is full)"
              do! Asyncio.Sleep 0.05
              Expect.isFalse connecting.Done "still pending"
              connecting.Cancel() |> ignore

              try
                  let! _ = connecting
                  failtest "cancelled"
              with :? OperationCanceledException ->
                  ()

              Expect.isTrue connecting.Cancelled "the task ends cancelled"
              Expect.equal net.ReactorCount 0 "the socket was unregistered"
              Expect.equal made 0 "no protocol was made"

              for s in fillers do
                  s.Dispose()

              listener.Dispose()
          } ]

// python3: after close() with nothing buffered, seven writes log 'socket.send() raised exception.'
// three times (the fifth write and every one after it).
let writesAfterClose: NetCase =
    netCase "writes after close are dropped; from the fifth on each is logged"
    <| fun net ->
        task {
            let logged = ResizeArray<string>()
            let thread = Environment.CurrentManagedThreadId
            let previous = LoopLog.Sink

            LoopLog.Sink <-
                Action<string>(fun m ->
                    if Environment.CurrentManagedThreadId = thread then
                        lock logged (fun () -> logged.Add m)
                    else
                        previous.Invoke m)

            try
                let! server, accepted = net.Serve ignore
                let! client = net.Connect(portOf server, ignore)
                client.Transport.Close()

                for _ in 1..7 do
                    write client.Transport [| 1uy |]

                Expect.equal (List.ofSeq logged) (List.replicate 3 "socket.send() raised exception.") "asyncio's warning, from the fifth write"
                do! waitFor net.Signal (fun () -> client.IsLost && accepted.Count = 1 && accepted[0].IsLost)
                Expect.equal accepted[0].ReceivedCount 0 "nothing was sent"
                do! closeServer server
            finally
                LoopLog.Sink <- previous
        }

/// Out of file descriptors: in a child process under `ulimit -n 512` (the test process is never
/// starved); the child reports what its exception handler heard and when (loop time).
let acceptOutOfDescriptors (kind: ReactorKind) =
    testCase "accept out of file descriptors backs off 1 s and reports once per try, then accepts"
    <| fun () ->
        use child = selfChild "ulimit -n 512" [ "accept-emfile"; string kind ]
        let line = child.ReadLine 30.0
        Expect.stringStarts line "PORT " $"the child's first line (stderr: {child.Stderr})"
        let port = int (line.Substring 5)
        Expect.stringStarts (child.ReadLine 30.0) "FULL " "the child took every descriptor"
        use s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)
        s.ReceiveTimeout <- 30_000
        s.SendTimeout <- 30_000
        s.Connect(IPEndPoint(IPAddress.Loopback, port)) // the kernel completes it; the child cannot accept
        s.Send("ping"B) |> ignore
        let answer = Array.zeroCreate<byte> 4
        let mutable got = 0

        while got < 4 do
            let n = s.Receive(answer, got, 4 - got, SocketFlags.None)
            Expect.isGreaterThan n 0 "no EOF before the echo"
            got <- got + n

        Expect.equal answer "ping"B "echoed once the descriptors came back"
        s.Shutdown SocketShutdown.Send
        Expect.equal (s.Receive(answer)) 0 "then EOF"
        let lines = ResizeArray<string>()
        let mutable l = child.ReadLine 30.0

        while l <> "DONE" do
            lines.Add l
            l <- child.ReadLine 30.0

        Expect.equal (child.WaitExit 30.0) 0 "the child ended well"
        let reports = lines |> Seq.filter (fun l -> l.StartsWith "REPORT ") |> List.ofSeq
        Expect.isGreaterThanOrEqual reports.Length 2 $"reported, then reported again after the delay: {lines}"
        Expect.isLessThanOrEqual reports.Length 4 $"once per retry, not a spin: {lines}"

        let times =
            reports
            |> List.map (fun r -> Double.Parse(r.Split(' ')[1], Globalization.CultureInfo.InvariantCulture))

        for a, b in List.pairwise times do
            Expect.isGreaterThanOrEqual (b - a) 0.999 $"at least 1 s between tries: {lines}"

        for r in reports do
            Expect.stringEnds r "TooManyOpenSockets socket.accept() out of system resource" "asyncio's message, EMFILE"

        Expect.contains lines "ECHOED ping" "the child echoed the connection"
        Expect.contains lines "REACTOR 0" "and left nothing registered"

[<Tests>]
let tests =
    perReactor "Faults" (cases @ [ fun kind -> acceptOutOfDescriptors kind ])

// LoopLog.Sink is global: these run alone.
[<Tests>]
let alone =
    testSequenced (
        testList "Faults (alone)" [ for kind in reactors -> testList (string kind) [ writesAfterClose kind ] ]
    )
