/// The boundary rules of DESIGN.md §2, checked on the built assemblies: the core touches no clock,
/// thread, socket, file or randomness; dependencies point one way.
module Tulip.Tests.ArchitectureTests

open System.IO
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
              Expect.isFalse (shell |> List.exists (fun r -> r.StartsWith "System.Reactive")) "no Rx in Tulip") ]
