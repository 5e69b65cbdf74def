/// Name resolution (issue 16): GetAddrInfoAsync / GetNameInfoAsync against CPython 3.11's
/// socket.getaddrinfo / getnameinfo on the same machine (asyncio's loop.getaddrinfo calls exactly those
/// in its executor), the fast path for numeric hosts, host-name validation, cancellation, and the
/// resolver pool keeping slow lookups off the loop. No test needs a network: localhost comes from
/// /etc/hosts, the rest is numeric or a fake resolver.
module Tulip.Tests.DnsTests

open System
open System.Diagnostics
open System.Net
open System.Net.Sockets
open System.Text.Json
open System.Threading
open System.Threading.Tasks
open Expecto
open Tulip
open Tulip.NameResolution
open Tulip.Transports
open Tulip.Tests.NetSupport

/// Runs `body` as the main task of a new real-clock loop, cancelled if it takes over `seconds`.
let realLoop (seconds: float) (body: EventLoop -> Task<'T>) : 'T =
    use loop = new EventLoop()
    let main = loop.CreateTask(Func<Task<'T>>(fun () -> body loop), "test main")
    let guard = loop.CallLater(seconds, fun () -> main.Cancel "the test's time limit passed" |> ignore)

    try
        loop.RunUntilComplete(main)
    finally
        guard.Cancel()

/// A resolver a test controls: counts calls, may block until released, answers with a fixed entry.
type FakeResolver(block: bool) =
    let release = new ManualResetEventSlim(not block)
    let entered = new SemaphoreSlim(0)
    let mutable calls = 0
    let mutable active = 0
    let mutable maxActive = 0
    let hosts = Collections.Concurrent.ConcurrentQueue<string>()
    member _.Calls = Volatile.Read(&calls)
    member _.MaxActive = Volatile.Read(&maxActive)
    member _.Hosts = List.ofSeq hosts
    member _.Release() = release.Set()
    /// Waits (blocking, bounded) until `n` lookups have entered the resolver.
    member _.WaitEntered(n: int) =
        for _ in 1..n do
            if not (entered.Wait(TimeSpan.FromSeconds 10.0)) then failtest "the lookup never reached the resolver"

    interface IResolver with
        member _.GetAddrInfo(host, _service, _family, _type, _proto, _flags) =
            Interlocked.Increment(&calls) |> ignore
            let now = Interlocked.Increment(&active)
            lock hosts (fun () -> maxActive <- max maxActive now)
            hosts.Enqueue host
            entered.Release() |> ignore
            release.Wait(TimeSpan.FromSeconds 20.0) |> ignore
            Interlocked.Decrement(&active) |> ignore
            Collections.Generic.List [ AddrInfo(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp, "", IPEndPoint(IPAddress.Loopback, 1)) ]

        member _.GetNameInfo(_endPoint, _flags) =
            Interlocked.Increment(&calls) |> ignore
            entered.Release() |> ignore
            release.Wait(TimeSpan.FromSeconds 20.0) |> ignore
            struct ("fake", "fake")

let private nativeFamily (f: AddressFamily) =
    match f with
    | AddressFamily.InterNetwork -> 2
    | AddressFamily.InterNetworkV6 -> 10
    | _ -> 0

/// One entry as text both sides agree on: family type proto 'canon' host port.
let private entryText (e: AddrInfo) =
    $"{nativeFamily e.Family} {int e.Type} {int e.Protocol} '{e.CanonicalName}' {e.Address.Address} {e.Address.Port}"

/// CPython's answers for a list of queries, each "host|service|family|type|flags" (host and service
/// may be "None"), one JSON value per line: a list of entry texts or ["ERR", code].
let private pythonAnswers (queries: string list) =
    let script =
        """
import json, socket, sys
for line in sys.stdin.read().splitlines():
    host, serv, fam, typ, flags = line.split('|')
    host = None if host == 'None' else host
    serv = None if serv == 'None' else (int(serv) if serv.isdigit() else serv)
    try:
        r = socket.getaddrinfo(host, serv, int(fam), int(typ), 0, int(flags))
        print(json.dumps(["%d %d %d '%s' %s %d" % (f, t, p, c, a[0], a[1]) for f, t, p, c, a in r]))
    except socket.gaierror as e:
        print(json.dumps(["ERR", str(e.errno)]))
"""

    let psi = ProcessStartInfo("python3", [ "-c"; script ])
    psi.RedirectStandardInput <- true
    psi.RedirectStandardOutput <- true
    use p = Process.Start psi
    p.StandardInput.Write(String.Join("\n", queries))
    p.StandardInput.Close()
    let out = p.StandardOutput.ReadToEnd()
    p.WaitForExit()
    out.Split('\n', StringSplitOptions.RemoveEmptyEntries) |> Array.map (fun l -> JsonSerializer.Deserialize<string[]> l)

let private families = [ AddressFamily.Unspecified; AddressFamily.InterNetwork; AddressFamily.InterNetworkV6 ]
let private types = [ enum<SocketType> 0; SocketType.Stream; SocketType.Dgram ]

let private flagSets =
    [ AddrInfoFlags.None; AddrInfoFlags.Passive; AddrInfoFlags.CanonName; AddrInfoFlags.NumericHost; AddrInfoFlags.AddrConfig ]

/// Tulip's answer as the same JSON-ish array.
let private ours (loop: EventLoop) (host: string) (service: string) fam typ flags =
    task {
        try
            let! r = loop.GetAddrInfoAsync(host, service, fam, typ, ProtocolType.Unspecified, flags)
            return [| for e in r -> entryText e |]
        with :? AddressInfoException as e ->
            return [| "ERR"; string e.ResolverCode |]
    }

let private compareWithPython (hosts: string list) (services: string list) =
    let queries =
        [ for h in hosts do
              for s in services do
                  for f in families do
                      for t in types do
                          for fl in flagSets -> h, s, f, t, fl ]

    let expected =
        pythonAnswers [ for h, s, f, t, fl in queries -> $"""{if isNull h then "None" else h}|{if isNull s then "None" else s}|{nativeFamily f}|{int t}|{int fl}""" ]

    Expect.equal expected.Length queries.Length "CPython answered every query"

    realLoop 30.0 (fun loop ->
        task {
            for (h, s, f, t, fl), want in List.zip queries (List.ofArray expected) do
                let! got = ours loop h s f t fl
                Expect.sequenceEqual got want $"getaddrinfo({h}, {s}, {f}, {t}, flags={fl}) as CPython's, in its order"
        })

[<Tests>]
let tests =
    testSequenced
    <| testList
        "Dns"
        [ testCase "numeric hosts in every family/type/flag combination equal CPython's getaddrinfo, in its order"
          <| fun () -> compareWithPython [ "127.0.0.1"; "::1"; null; "0.0.0.0"; "::" ] [ "80"; null ]

          testCase "localhost in every family/type/flag combination equals CPython's getaddrinfo (canonname too)"
          <| fun () -> compareWithPython [ "localhost" ] [ "80"; "0" ]

          testCase "service names and numbers: 'http', '80', 80 and None, as CPython; an unknown service is EAI_SERVICE"
          <| fun () ->
              // (localhost with port None is left out: this machine's /etc/hosts has no ::1 line, so its
              // IPv6 + canonname query goes to DNS and waits out the resolver's 5 s timeout, in CPython too.)
              compareWithPython [ "localhost"; "127.0.0.1" ] [ "http"; "ssh"; "80"; "no-such-service" ]

          testCase "port None (no service): numeric hosts as CPython, socket addresses with port 0"
          <| fun () -> compareWithPython [ "127.0.0.1"; "::1" ] [ null ]

          testCase "an int port gives the same answer as its text; a port out of range is refused before any lookup"
          <| fun () ->
              realLoop 10.0 (fun loop ->
                  task {
                      let! a = loop.GetAddrInfoAsync("localhost", 8080)
                      let! b = loop.GetAddrInfoAsync("localhost", "8080")
                      Expect.sequenceEqual (Seq.map entryText a) (Seq.map entryText b) "int and text ports"
                      Expect.throws (fun () -> loop.GetAddrInfoAsync("localhost", 65536) |> ignore) "port 65536"
                      Expect.throws (fun () -> loop.GetAddrInfoAsync("localhost", -1) |> ignore) "port -1"
                  })

          testCase "resolution failures are AddressInfoException with the resolver's code and gai_strerror's text (gaierror)"
          <| fun () ->
              realLoop 10.0 (fun loop ->
                  task {
                      // python3: socket.getaddrinfo('::1', 80, socket.AF_INET) -> gaierror(-9, 'Address family for hostname not supported')
                      try
                          let! _ = loop.GetAddrInfoAsync("::1", 80, AddressFamily.InterNetwork)
                          failtest "expected a gaierror"
                      with :? AddressInfoException as e ->
                          Expect.equal e.ResolverCode -9 "EAI_ADDRFAMILY"
                          Expect.equal e.Message "Address family for hostname not supported" "gai_strerror"
                          Expect.equal e.SocketErrorCode SocketError.HostNotFound "the nearest SocketError"
                      // python3: socket.getaddrinfo('localhost', 'nosuch') -> gaierror(-8, 'Servname not supported for ai_socktype')
                      try
                          let! _ = loop.GetAddrInfoAsync("localhost", "nosuch")
                          failtest "expected a gaierror"
                      with :? AddressInfoException as e ->
                          Expect.equal e.ResolverCode -8 "EAI_SERVICE"
                          Expect.equal e.Message "Servname not supported for ai_socktype" "gai_strerror"
                  })

          testCase "a numeric host (and None) with a numeric port never reaches the resolver; a name does"
          <| fun () ->
              realLoop 10.0 (fun loop ->
                  task {
                      let fake = FakeResolver(false)
                      let pool = ResolverPool(2)
                      loop.Resolver <- fake
                      loop.Resolvers <- pool

                      for host in [ "127.0.0.1"; "::1"; "fe80::1%1"; null; "10.1.2.3" ] do
                          let! r = loop.GetAddrInfoAsync(host, 443)
                          Expect.isNonEmpty r $"{host} answered"

                      let! _ = loop.GetNameInfoAsync(IPEndPoint(IPAddress.Loopback, 80), NameInfoFlags.NumericHost ||| NameInfoFlags.NumericServ)
                      Expect.equal fake.Calls 0 "no call reached the resolver"
                      Expect.equal pool.Started 0L "nothing went to the resolver pool"
                      let! r = loop.GetAddrInfoAsync("example.test", 443)
                      Expect.equal fake.Calls 1 "a name is looked up"
                      Expect.equal (entryText r[0]) "2 1 6 '' 127.0.0.1 1" "the resolver's answer comes back"
                  })

          testCase "host names are validated before any lookup: empty, too long, empty or long labels, NUL and control characters"
          <| fun () ->
              realLoop 10.0 (fun loop ->
                  task {
                      let fake = FakeResolver(false)
                      loop.Resolver <- fake
                      let label63 = String('a', 63)
                      let name253 = String.Join(".", [ label63; label63; label63; String('b', 61) ])
                      Expect.equal name253.Length 253 "the longest legal name"

                      let bad =
                          [ "", "empty"
                            name253 + "c", "254 characters"
                            "a..b", "empty label"
                            ".a", "empty first label"
                            String('a', 64) + ".com", "64-character label"
                            "exa\u0000mple.com", "NUL"
                            "exa\nmple.com", "control character"
                            "exa\u007fmple.com", "DEL" ]

                      for host, why in bad do
                          try
                              let! _ = loop.GetAddrInfoAsync(host, 80)
                              failtestf "%s: accepted" why
                          with :? ArgumentException as e ->
                              Expect.equal e.ParamName "host" $"{why}: the error names the host"

                      Expect.equal fake.Calls 0 "no bad name reached the resolver"
                      // The longest legal name (and one with a root dot) reaches the resolver whole: never truncated.
                      let! _ = loop.GetAddrInfoAsync(name253, 80)
                      let! _ = loop.GetAddrInfoAsync(name253 + ".", 80)
                      Expect.sequenceEqual fake.Hosts [ name253; name253 + "." ] "the names the resolver saw, whole"
                  })

          testCase "a cancelled lookup no longer holds a virtual clock: time jumps while its getaddrinfo is still blocked"
          <| fun () ->
              let clock = Tulip.Testing.VirtualClock()
              clock.IdleLimit <- TimeSpan.FromSeconds 5.0
              use loop = new EventLoop(clock)
              let fake = FakeResolver(true)
              loop.Resolver <- fake
              let sw = Stopwatch.StartNew()

              try
                  loop.RunUntilComplete(fun () ->
                      task {
                          use cts = new CancellationTokenSource()
                          let lookup = loop.GetAddrInfoAsync("blocked.test", 80, cancellationToken = cts.Token)
                          do! Task.Run(fun () -> fake.WaitEntered 1)
                          cts.Cancel()

                          try
                              let! _ = lookup
                              failtest "the lookup completed"
                          with :? OperationCanceledException ->
                              ()

                          // An hour of loop time: a jump, since nothing outside the loop is awaited any more.
                          do! Asyncio.Sleep 3600.0
                      }
                      :> Task)

                  Expect.isLessThan sw.Elapsed.TotalSeconds 4.0 "the clock jumped (it did not wait for the blocked resolver)"
              finally
                  fake.Release()

          testCase "a non-ASCII host name reaches the resolver IDNA-encoded (CPython: host.encode('idna')); the limits apply to the encoded name"
          <| fun () ->
              realLoop 10.0 (fun loop ->
                  task {
                      let fake = FakeResolver(false)
                      loop.Resolver <- fake
                      // python3: 'bücher.example'.encode('idna') == b'xn--bcher-kva.example'
                      let! _ = loop.GetAddrInfoAsync("bücher.example", 80)
                      Expect.sequenceEqual fake.Hosts [ "xn--bcher-kva.example" ] "the resolver saw the IDNA form"
                      // 60 characters plus 'ü' fit in a label as text (61) but not once encoded (xn--...: over 63).
                      try
                          let! _ = loop.GetAddrInfoAsync(String('a', 60) + "ü.example", 80)
                          failtest "accepted"
                      with :? ArgumentException as e ->
                          Expect.equal e.ParamName "host" "the error names the host"
                      Expect.equal fake.Calls 1 "the over-long encoded name never reached the resolver"
                  })

          testCase "a lookup in flight is cancelled by its token and by cancelling its task; the loop goes on; the late answer is dropped"
          <| fun () ->
              realLoop 10.0 (fun loop ->
                  task {
                      let fake = FakeResolver(true)
                      loop.Resolver <- fake
                      let errors = ShellSupport.collectErrors loop
                      use cts = new CancellationTokenSource()
                      let lookup = loop.GetAddrInfoAsync("slow.test", 80, cancellationToken = cts.Token)
                      do! Task.Run(fun () -> fake.WaitEntered 1)
                      cts.Cancel()

                      try
                          let! _ = lookup
                          failtest "the lookup completed"
                      with :? OperationCanceledException as e ->
                          Expect.equal e.CancellationToken cts.Token "the cancellation carries the token"

                      let t = loop.CreateTask(fun () -> loop.GetNameInfoAsync(IPEndPoint(IPAddress.Loopback, 80)))
                      do! Task.Run(fun () -> fake.WaitEntered 1)
                      t.Cancel() |> ignore

                      try
                          let! _ = t
                          failtest "the reverse lookup completed"
                      with :? OperationCanceledException ->
                          ()

                      Expect.isTrue t.Cancelled "the task is cancelled"
                      fake.Release()
                      // Let the abandoned answers arrive: nothing is reported, nothing completes twice.
                      do! Asyncio.Sleep 0.05
                      Expect.isEmpty errors "no error reached the exception handler"
                      // A token already cancelled: no lookup at all.
                      let before = fake.Calls

                      try
                          let! _ = loop.GetAddrInfoAsync("slow.test", 80, cancellationToken = cts.Token)
                          failtest "ran"
                      with :? OperationCanceledException ->
                          ()

                      Expect.equal fake.Calls before "a cancelled token starts no lookup"
                  })

          testCase "reverse lookups of 127.0.0.1 and ::1, named and numeric, equal CPython's getnameinfo"
          <| fun () ->
              let cases =
                  [ for a in [ "127.0.0.1"; "::1" ] do
                        for port in [ 80; 22; 12345 ] do
                            for flags in [ 0; 1; 2; 3; 4; 16 ] -> a, port, flags ]

              let script =
                  """
import socket, sys
for line in sys.stdin.read().splitlines():
    a, port, flags = line.split('|')
    try:
        print('%s %s' % socket.getnameinfo((a, int(port)), int(flags)))
    except socket.gaierror as e:
        print('ERR %d' % e.errno)
"""

              let psi = ProcessStartInfo("python3", [ "-c"; script ])
              psi.RedirectStandardInput <- true
              psi.RedirectStandardOutput <- true
              use p = Process.Start psi
              p.StandardInput.Write(String.Join("\n", [ for a, port, f in cases -> $"{a}|{port}|{f}" ]))
              p.StandardInput.Close()
              let expected = p.StandardOutput.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries)
              p.WaitForExit()
              Expect.equal expected.Length cases.Length "CPython answered"

              realLoop 20.0 (fun loop ->
                  task {
                      for (a, port, flags), want in List.zip cases (List.ofArray expected) do
                          let! got =
                              task {
                                  try
                                      let! struct (h, s) = loop.GetNameInfoAsync(IPEndPoint(IPAddress.Parse a, port), enum<NameInfoFlags> flags)
                                      return $"{h} {s}"
                                  with :? AddressInfoException as e ->
                                      return $"ERR {e.ResolverCode}"
                              }

                          Expect.equal got want $"getnameinfo(({a}, {port}), {flags})"
                  })

          testCase "slow lookups run off the loop: timers keep their pace while lookups are blocked, and the pool bounds them"
          <| fun () ->
              realLoop 10.0 (fun loop ->
                  task {
                      let fake = FakeResolver(true)
                      let pool = ResolverPool(2)
                      loop.Resolver <- fake
                      loop.Resolvers <- pool
                      let lookups = [ for i in 1..5 -> loop.GetAddrInfoAsync($"slow{i}.test", 80) ]
                      do! Task.Run(fun () -> fake.WaitEntered 2)
                      // Twenty 5 ms ticks of loop work while every lookup is stuck in the resolver.
                      let sw = Stopwatch.StartNew()

                      for _ in 1..20 do
                          do! Asyncio.Sleep 0.005

                      sw.Stop()
                      Expect.isLessThan sw.Elapsed.TotalSeconds 2.0 "loop work was not delayed behind the lookups"
                      Expect.isFalse (lookups |> List.exists (fun t -> t.IsCompleted)) "the lookups are still blocked"
                      Expect.equal fake.Calls 2 "only MaxConcurrency lookups run at once; the others queue"
                      fake.Release()
                      let! results = Task.WhenAll lookups
                      Expect.equal results.Length 5 "all answered once released"
                      Expect.equal fake.MaxActive 2 "never more than two at once"
                  })

          testCase "interleave orders addresses as asyncio's _interleave_addrinfos (first family count 1 and 2)"
          <| fun () ->
              let e (fam: AddressFamily) (n: int) =
                  let a = if fam = AddressFamily.InterNetwork then IPAddress.Parse $"10.0.0.{n}" else IPAddress.Parse $"fe80::{n}"
                  AddrInfo(fam, SocketType.Stream, ProtocolType.Tcp, "", IPEndPoint(a, 1))

              let v6 = AddressFamily.InterNetworkV6
              let v4 = AddressFamily.InterNetwork
              let infos = [| e v6 1; e v6 2; e v6 3; e v4 1; e v4 2 |]
              let names (l: Collections.Generic.List<AddrInfo>) = [ for i in l -> string i.Address.Address ]
              // python3: _interleave_addrinfos(infos, 1) / (infos, 2) with the same five entries
              Expect.equal (names (HappyEyeballs.Interleave(infos, 1))) [ "fe80::1"; "10.0.0.1"; "fe80::2"; "10.0.0.2"; "fe80::3" ] "count 1"
              Expect.equal (names (HappyEyeballs.Interleave(infos, 2))) [ "fe80::1"; "fe80::2"; "10.0.0.1"; "fe80::3"; "10.0.0.2" ] "count 2"

          testCase "CreateConnection resolves through GetAddrInfo and tries each address: ::1 refused, then 127.0.0.1 (in order and raced)"
          <| fun () ->
              realLoop 10.0 (fun loop ->
                  task {
                      let signal = Signal(loop)
                      let! server = loop.CreateServerAsync((fun () -> Recorder(signal, "server") :> BaseProtocol), "127.0.0.1", 0)
                      let port = portOf server

                      try
                          // getaddrinfo(None, port, type=SOCK_STREAM): ::1 first, then 127.0.0.1; only the second listens.
                          // The delay (3 s) is far above the bound (1.5 s), so a busy CI machine cannot blur them.
                          for delay, inter in [ Nullable(), Nullable(); Nullable 3.0, Nullable(); Nullable 3.0, Nullable 2; Nullable(), Nullable 1 ] do
                              let sw = Stopwatch.StartNew()
                              let! struct (t, _) = loop.CreateConnectionAsync((fun () -> Recorder(signal, "client")), null, port, null, delay, inter)
                              Expect.equal (t.GetExtraInfo "peername" :?> IPEndPoint).Address IPAddress.Loopback $"delay {delay}, interleave {inter}: connected to 127.0.0.1"
                              // A refusal starts the next attempt at once: the race does not wait out its delay.
                              Expect.isLessThan sw.Elapsed.TotalSeconds 1.5 "no wait for the delay after a refusal"
                              t.Close()
                      finally
                          server.Close()

                      do! server.WaitClosedAsync()
                  })

          testCase "CreateConnection when every address fails: one error as itself, several as 'Multiple exceptions: ...' holding each"
          <| fun () ->
              realLoop 10.0 (fun loop ->
                  task {
                      // A port nobody listens on (bound, then closed).
                      let port =
                          use s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)
                          s.Bind(IPEndPoint(IPAddress.Loopback, 0))
                          (s.LocalEndPoint :?> IPEndPoint).Port

                      try
                          let! _ = loop.CreateConnectionAsync((fun () -> Recorder(Signal(loop), "c")), "127.0.0.1", port)
                          failtest "connected"
                      with
                      | :? ConnectionAttemptsException -> failtest "one address: its own error"
                      | :? SocketException as e -> Expect.equal e.SocketErrorCode SocketError.ConnectionRefused "refused"

                      for delay in [ Nullable(); Nullable 0.25 ] do
                          try
                              let! _ = loop.CreateConnectionAsync((fun () -> Recorder(Signal(loop), "c")), null, port, null, delay, Nullable())
                              failtest "connected"
                          with :? ConnectionAttemptsException as e ->
                              // python3: OSError('Multiple exceptions: [Errno 111] Connect call failed ('::1', 1, 0, 0), [Errno 111] ...')
                              Expect.stringStarts e.Message "Multiple exceptions: [Errno 111] Connect call failed ([::1]:" "asyncio's message"
                              Expect.equal [ for struct (a, _) in e.Attempts -> (a :?> IPEndPoint).Address ] [ IPAddress.IPv6Loopback; IPAddress.Loopback ] "both attempts, in order"
                              Expect.equal e.SocketErrorCode SocketError.ConnectionRefused "the first error's code"
                  })

          testCase "a staggered race: the first address hangs (a full accept queue), the second starts after the delay and wins"
          <| fun () ->
              realLoop 10.0 (fun loop ->
                  task {
                      // A listener with backlog 0 that never accepts: one connection fills its queue, and
                      // the next connect's SYN is dropped (the kernel retries after 1 s): it hangs.
                      use full = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)
                      full.Bind(IPEndPoint(IPAddress.Loopback, 0))
                      full.Listen 0
                      use filler = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)
                      filler.Connect(full.LocalEndPoint)
                      let signal = Signal(loop)
                      let! server = loop.CreateServerAsync((fun () -> Recorder(signal, "server") :> BaseProtocol), "127.0.0.1", 0)
                      let hang = full.LocalEndPoint :?> IPEndPoint
                      let good = IPEndPoint(IPAddress.Loopback, portOf server)

                      loop.Resolver <-
                          { new IResolver with
                              member _.GetAddrInfo(_, _, _, _, _, _) =
                                  Collections.Generic.List
                                      [ AddrInfo(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp, "", hang)
                                        AddrInfo(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp, "", good) ]
                              member _.GetNameInfo(_, _) = struct ("", "") }

                      let sw = Stopwatch.StartNew()
                      let! struct (t, _) = loop.CreateConnectionAsync((fun () -> Recorder(signal, "client")), "race.test", 1, null, Nullable 0.1, Nullable())
                      let elapsed = sw.Elapsed.TotalSeconds
                      Expect.equal (t.GetExtraInfo "peername" :?> IPEndPoint) good "the second address won"
                      Expect.isGreaterThanOrEqual elapsed 0.09 "the second attempt started after the delay"
                      Expect.isLessThan elapsed 0.9 "and did not wait for the first attempt"
                      t.Close()
                      server.Close()
                      do! server.WaitClosedAsync()
                  }) ]
