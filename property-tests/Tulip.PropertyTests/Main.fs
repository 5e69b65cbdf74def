module Tulip.PropertyTests.Main

open Expecto

[<Tests>]
let tests =
    testList "Tulip.PropertyTests" [
        testCase "smoke" (fun () -> Expect.equal 1 1 "")
    ]

[<EntryPoint>]
let main argv = Tests.runTestsInAssemblyWithCLIArgs [] argv
