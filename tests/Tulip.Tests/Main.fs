module Tulip.Tests.Main

open Expecto

[<EntryPoint>]
let main argv =
    match List.ofArray argv with
    // A scenario that changes the whole process runs in a child of the test (FaultChild.fs).
    | "--child" :: scenario -> FaultChild.run scenario
    | _ -> Tests.runTestsInAssemblyWithCLIArgs [] argv
