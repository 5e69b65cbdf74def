/// Streams against an independent peer: CPython's asyncio streams (python3, started by the test on
/// 127.0.0.1 port 0), in both directions, payloads from 1 byte to 8 MiB, half-close included.
module Tulip.Tests.StreamInteropTests

open System
open System.Diagnostics
open System.IO
open System.Threading.Tasks
open Expecto
open Tulip
open Tulip.Tests.ShellSupport

let private sizes = [ 1; 1000; 65_536; 1_048_576; 8 * 1_048_576 ]

let private payload (n: int) = Array.init n (fun i -> byte ((i * 7 + n) % 251))

/// Runs python3 with `script`; returns the process (stdout redirected).
let private python (script: string) (args: string list) =
    let path = Path.Combine(Path.GetTempPath(), sprintf "tulip-interop-%s.py" (Guid.NewGuid().ToString("N")))
    File.WriteAllText(path, script)
    let psi = ProcessStartInfo("python3", String.Join(" ", path :: args))
    psi.RedirectStandardOutput <- true
    psi.RedirectStandardError <- true
    psi.UseShellExecute <- false
    let p = Process.Start psi
    p, path

let private stop (p: Process, path: string) =
    try
        if not p.HasExited then p.Kill true
        p.WaitForExit 5000 |> ignore
    finally
        p.Dispose()
        File.Delete path

/// An asyncio streams echo server: echoes until EOF, then half-closes back.
let private pyEchoServer =
    """
import asyncio, sys
async def handle(reader, writer):
    while True:
        data = await reader.read(65536)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    writer.write_eof()
    await writer.drain()
    writer.close()
    await writer.wait_closed()
async def main():
    server = await asyncio.start_server(handle, '127.0.0.1', 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(60)
asyncio.run(main())
"""

/// An asyncio streams client: sends n bytes, half-closes, reads the echo to EOF, checks it.
let private pyClient =
    """
import asyncio, sys
async def main(port, sizes):
    for n in sizes:
        data = bytes(((i * 7 + n) % 251) for i in range(n))
        reader, writer = await asyncio.open_connection('127.0.0.1', port)
        async def send():
            writer.write(data)
            await writer.drain()
            writer.write_eof()
        sender = asyncio.create_task(send())
        echoed = await reader.read()
        await sender
        writer.close()
        await writer.wait_closed()
        print('ok' if echoed == data else f'MISMATCH {n}: got {len(echoed)} bytes', flush=True)
asyncio.run(main(int(sys.argv[1]), [int(s) for s in sys.argv[2:]]))
"""

[<Tests>]
let tests =
    testList
        "Streams interop with CPython asyncio"
        [ testCase "Tulip's OpenConnection against asyncio's start_server: echo to EOF, 1 B to 8 MiB" (fun () ->
              let proc = python pyEchoServer []
              let p, _ = proc

              try
                  let port = int (p.StandardOutput.ReadLine())
                  use loop = new EventLoop()
                  loop.CallLater(60.0, (fun () -> loop.Stop())) |> ignore

                  let results =
                      runMain loop (fun () ->
                          task {
                              let results = Collections.Generic.List<bool>()

                              for n in sizes do
                                  let! (reader, writer) = Asyncio.OpenConnection("127.0.0.1", port)
                                  let data = payload n

                                  let sending =
                                      loop.CreateTask(fun () ->
                                          task {
                                              writer.Write(ReadOnlySpan data)
                                              do! writer.DrainAsync()
                                              writer.WriteEof()
                                          }
                                          :> Task)

                                  let! echoed = reader.ReadAsync()
                                  let! _ = sending
                                  writer.Close()
                                  do! writer.WaitClosedAsync()
                                  results.Add((echoed = data))

                              return List.ofSeq results
                          })

                  Expect.equal results (sizes |> List.map (fun _ -> true)) "every payload came back whole"
              finally
                  stop proc)

          testCase "asyncio's open_connection against Tulip's StartServer: echo to EOF, 1 B to 8 MiB" (fun () ->
              use loop = new EventLoop()
              loop.CallLater(60.0, (fun () -> loop.Stop())) |> ignore

              let lines =
                  runMain loop (fun () ->
                      task {
                          let! server =
                              Asyncio.StartServer(
                                  (fun reader writer ->
                                      task {
                                          let buffer = Array.zeroCreate<byte> 65536
                                          let mutable go = true

                                          while go do
                                              let! n = reader.ReadIntoAsync(Memory buffer)

                                              if n = 0 then
                                                  go <- false
                                              else
                                                  writer.Write(ReadOnlySpan(buffer, 0, n))
                                                  do! writer.DrainAsync()

                                          writer.WriteEof()
                                          writer.Close()
                                          do! writer.WaitClosedAsync()
                                      }
                                      :> Task),
                                  "127.0.0.1",
                                  0
                              )

                          let port = (server.Sockets[0].LocalEndPoint :?> Net.IPEndPoint).Port
                          let proc = python pyClient (string port :: (sizes |> List.map string))
                          let p, _ = proc

                          try
                              // Read the client's verdicts off the loop thread; the loop keeps serving meanwhile.
                              let! (output: string) = Task.Run<string>(Func<Task<string>>(fun () -> p.StandardOutput.ReadToEndAsync()))
                              server.Close()
                              do! server.WaitClosedAsync()
                              return output.Split('\n', StringSplitOptions.RemoveEmptyEntries) |> List.ofArray
                          finally
                              stop proc
                      })

              Expect.equal lines (sizes |> List.map (fun _ -> "ok")) "asyncio got every payload back") ]
