/// The boundary rules of DESIGN.md §2, checked on the built assemblies: the core touches no clock,
/// thread, socket, file or randomness; dependencies point one way, arrow by arrow:
///   Tulip.Core -> FSharp.Core (and the runtime) only
///   Tulip -> Tulip.Core (and FSharp.Core, the runtime)
///   Tulip.Reactive -> Tulip's public API (and System.Reactive); Tulip.Testing -> Tulip's public API
///   (no shipped assembly grants InternalsVisibleTo to another shipped one: only the test suites are friends)
///   nothing shipped -> Tulip.Examples, Tulip.Examples.FSharp or Tulip.Bench
module Tulip.Tests.ArchitectureTests

open System
open System.IO
open System.Reflection
open System.Runtime.CompilerServices
open System.Runtime.InteropServices
open System.Reflection.Metadata
open System.Reflection.PortableExecutable
open Expecto

/// Every type the assembly refers to in another assembly, as "Namespace.Name".
let private referencedTypes (assemblyPath: string) =
    use stream = File.OpenRead assemblyPath
    use pe = new PEReader(stream)
    let md = pe.GetMetadataReader()

    [ for h in md.TypeReferences do
          let t = md.GetTypeReference h
          let ns = md.GetString t.Namespace
          let name = md.GetString t.Name
          if ns <> "" then yield ns + "." + name ]

let private referencedAssemblies (assemblyPath: string) =
    use stream = File.OpenRead assemblyPath
    use pe = new PEReader(stream)
    let md = pe.GetMetadataReader()
    [ for h in md.AssemblyReferences -> md.GetString((md.GetAssemblyReference h).Name) ]

let private pathOf (t: System.Type) = t.Assembly.Location

/// Part of the shared framework (System.*, netstandard, Microsoft.Win32.*): its file sits in the
/// runtime's directory. System.Reactive and FSharp.Core do not.
let private isRuntime (name: string) =
    File.Exists(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), name + ".dll"))

/// The assemblies users get (the packages), by a type of each.
let private shipped =
    [ "Tulip.Core", typeof<Tulip.Core.LoopState>.Assembly
      "Tulip", typeof<Tulip.EventLoop>.Assembly
      "Tulip.Reactive", typeof<Tulip.Reactive.LoopScheduler>.Assembly
      "Tulip.Testing", typeof<Tulip.Testing.VirtualClock>.Assembly ]

/// What each assembly may reference besides the runtime.
let private arrows =
    [ "Tulip.Core", set [ "FSharp.Core" ]
      // FSharp.Core: the core's own runtime, which its face hands over (no F# type on Tulip's surface).
      "Tulip", set [ "Tulip.Core"; "FSharp.Core" ]
      "Tulip.Reactive", set [ "Tulip"; "System.Reactive" ]
      "Tulip.Testing", set [ "Tulip" ]
      // Core-only benchmarks read Tulip.Core's public face directly.
      "Tulip.Bench", set [ "Tulip"; "Tulip.Core"; "BenchmarkDotNet"; "BenchmarkDotNet.Annotations" ]
      "Tulip.Examples", set [ "Tulip"; "Tulip.Reactive"; "Tulip.Testing"; "Tulip.Examples.FSharp"; "System.Reactive" ]
      "Tulip.Examples.FSharp", set [ "Tulip"; "FSharp.Core" ] ]

/// Where an assembly of the solution was built: the test's output holds the shipped ones and the
/// examples; the benchmarks are found from the repository root (None if not built).
let private builtPath (name: string) =
    let here = Path.Combine(AppContext.BaseDirectory, name + ".dll")
    if File.Exists here then
        Some here
    else
        let rec root (d: DirectoryInfo) =
            if isNull d then None
            elif File.Exists(Path.Combine(d.FullName, "Async.sln")) then Some d.FullName
            else root d.Parent

        let output = DirectoryInfo(Path.TrimEndingDirectorySeparator AppContext.BaseDirectory) // bin/<config>/<tfm>

        root output
        |> Option.bind (fun r ->
            let tfm = output.Name
            let config = output.Parent.Name
            let p = Path.Combine(r, "bench", name, "bin", config, tfm, name + ".dll")
            if File.Exists p then Some p else None)

let private friendsOf (a: Assembly) =
    a.GetCustomAttributes<InternalsVisibleToAttribute>()
    |> Seq.map (fun a -> (a.AssemblyName.Split(',')[0]).Trim())
    |> List.ofSeq

[<Tests>]
let tests =
    testList
        "Architecture"
        [ testCase "Tulip.Core uses no clock, thread, socket, file or random type" (fun () ->
              let forbidden =
                  referencedTypes (pathOf typeof<Tulip.Core.LoopState>)
                  |> List.filter (fun t ->
                      t.StartsWith "System.Net."
                      || t.StartsWith "System.IO."
                      || t.StartsWith "System.Threading."
                      || t = "System.Diagnostics.Stopwatch"
                      || t = "System.DateTime"
                      || t = "System.DateTimeOffset"
                      || t = "System.Environment"
                      || t = "System.Random"
                      || t = "System.TimeProvider")
                  |> List.distinct

              Expect.isEmpty forbidden "the pure core stays pure"
              // The check itself sees such types where they are used: the shell uses threads and sockets.
              let shell = referencedTypes (pathOf typeof<Tulip.EventLoop>)
              Expect.contains shell "System.Threading.SynchronizationContext" "the checker can see a forbidden type"
              Expect.contains shell "System.Net.Sockets.Socket" "and this one")

          testCase "Tulip.Core depends on FSharp.Core and the runtime only" (fun () ->
              let refs = referencedAssemblies (pathOf typeof<Tulip.Core.LoopState>) |> List.sort
              let allowed = set [ "FSharp.Core"; "System.Runtime"; "netstandard"; "System.Private.CoreLib"; "System.Collections"; "System.Linq"; "System.Runtime.InteropServices" ]
              Expect.isEmpty (refs |> List.filter (fun r -> not (allowed.Contains r))) (sprintf "references: %A" refs))

          testCase "the shell depends on the core, never the other way; Tulip does not reference Rx" (fun () ->
              let core = referencedAssemblies (pathOf typeof<Tulip.Core.LoopState>)
              let shell = referencedAssemblies (pathOf typeof<Tulip.EventLoop>)
              Expect.isFalse (List.contains "Tulip" core) "core -> shell"
              Expect.contains shell "Tulip.Core" "shell -> core"
              Expect.isFalse (shell |> List.exists (fun r -> r.StartsWith "System.Reactive")) "no Rx in Tulip")

          testCase "every arrow of the layering: each assembly references only what its arrow allows" (fun () ->
              Expect.isFalse (isRuntime "System.Reactive") "the runtime check tells the BCL from a package"
              Expect.isTrue (isRuntime "System.Net.Sockets") "and sees the BCL"

              for name, allowed in arrows do
                  match builtPath name with
                  | None -> failtest $"{name}.dll was not found (./test.sh builds the whole solution)"
                  | Some path ->
                      let stray =
                          referencedAssemblies path
                          |> List.filter (fun r -> not (allowed.Contains r) && not (isRuntime r))

                      Expect.isEmpty stray $"{name} references %A{stray}, which its arrow does not allow")

          testCase "nothing shipped references the examples or the benchmarks" (fun () ->
              for name, a in shipped do
                  let refs = referencedAssemblies a.Location

                  for r in refs do
                      Expect.isFalse
                          (r.StartsWith "Tulip.Examples" || r = "Tulip.Bench")
                          $"{name} references {r}")

          testCase "no friends: shipped assemblies grant InternalsVisibleTo only to the test suites" (fun () ->
              let tests = set [ "Tulip.Tests"; "Tulip.PropertyTests" ]
              // The reader sees the attribute where it is (Tulip lets its tests in).
              Expect.contains (friendsOf typeof<Tulip.EventLoop>.Assembly) "Tulip.Tests" "the check can see a friend"

              for name, a in shipped do
                  let friends = friendsOf a |> List.filter (fun f -> not (tests.Contains f))
                  Expect.isEmpty friends $"{name} lets other assemblies see its internals: Reactive and Testing use Tulip's public API only") ]
