/// Issue 14: the .NET conventions, checked on the built assemblies. Every public member that returns
/// an awaitable and may wait takes a CancellationToken (in one of its overloads); every awaitable
/// instance method is named ...Async. The exceptions are listed here, each with its reason, and
/// reviewed: a new member that breaks a rule fails this test until it follows the rule or joins a
/// list with a reason.
module Tulip.Tests.ConventionTests

open System
open System.Collections.Generic
open System.Reflection
open System.Threading
open System.Threading.Tasks
open Expecto

let private shipped =
    [ typeof<Tulip.EventLoop>.Assembly
      typeof<Tulip.Reactive.LoopScheduler>.Assembly
      typeof<Tulip.Testing.VirtualClock>.Assembly ]

/// Task, ValueTask, anything with a GetAwaiter() (Future<T>, LoopTask<T>, Tulip's awaitables), or an
/// IAsyncEnumerable<T>.
let private isAwaitable (t: Type) =
    typeof<Task>.IsAssignableFrom t
    || t = typeof<ValueTask>
    || (t.IsGenericType && t.GetGenericTypeDefinition() = typedefof<ValueTask<_>>)
    || not (isNull (t.GetMethod("GetAwaiter", Type.EmptyTypes)))
    || (t.IsGenericType && t.GetGenericTypeDefinition() = typedefof<IAsyncEnumerable<_>>)

/// The awaitable-returning public methods, as "Type.Method" with the method.
let awaitableMembers () =
    [ for asm in shipped do
          for t in asm.GetExportedTypes() do
              for m in
                  t.GetMethods(
                      BindingFlags.Public
                      ||| BindingFlags.Instance
                      ||| BindingFlags.Static
                      ||| BindingFlags.DeclaredOnly
                  ) do
                  if not m.IsSpecialName
                     && isAwaitable m.ReturnType
                     // The language's own patterns: awaiting, async enumeration, async disposal.
                     && m.Name <> "GetAwaiter"
                     && m.Name <> "GetAsyncEnumerator"
                     && m.Name <> "DisposeAsync" then
                      let typeName = t.Name.Split('`')[0]
                      yield sprintf "%s.%s" typeName m.Name, m ]

/// Members that return an awaitable but do not wait: they make or convert one, and whoever awaits it
/// stops waiting by cancelling that (a future's Cancel, a task's Cancel) or by passing a token to
/// the await that wraps it. Reviewed: each has its reason.
let neverWaits: Map<string, string> =
    Map.ofList
        [ "EventLoop.CreateFuture", "makes a pending future"
          "NextCompleted.AsFuture", "converts the next completion to a future"
          "FutureTasks.AsTask", "converts: the Task completes with the future (cancel the future to stop it)"
          "Asyncio.EnsureFuture", "wraps an awaitable as a future"
          "Asyncio.WrapTask", "wraps a .NET Task as a future"
          "Asyncio.WrapFuture", "wraps a .NET Task as a future (asyncio.wrap_future; WrapTask's conversion)"
          "ITaskFactory.CreateTask", "the hook the loop's CreateTask calls; CreateTask's token is applied by the loop to the task the hook returns"
          "FutureObservables.ToListFuture", "returns a future the observable completes; cancel it, or await it through WaitFor/Shield with a token"
          "FutureObservables.FirstToFuture", "returns a future the observable completes (as ToListFuture)"
          "FutureObservables.LastToFuture", "returns a future the observable completes (as ToListFuture)" ]

/// Awaitable instance methods whose names are not ...Async, each with its reason.
let nameExempt: Map<string, string> =
    Map.ofList
        [ "EventLoop.CreateFuture", "a factory: it makes a future, it performs no operation"
          "EventLoop.CreateTask", "a factory (asyncio's create_task); the task runs on its own"
          "TaskGroup.CreateTask", "a factory (asyncio's TaskGroup.create_task)"
          "ITaskFactory.CreateTask", "a factory (asyncio's task factory)"
          "NextCompleted.AsFuture", "a conversion"
          "EventLoop.RunInExecutor", "asyncio's run_in_executor: starts work and returns its future at once (as CreateTask); it takes a token"
          "Executor.Submit", "concurrent.futures' submit: starts work and returns its Task at once (as Task.Run); it takes a token" ]

let private hasToken (m: MethodInfo) =
    m.GetParameters() |> Array.exists (fun p -> p.ParameterType = typeof<CancellationToken>)

[<Tests>]
let tests =
    testList
        "Conventions"
        [ testCase "every public awaitable member that may wait has an overload taking a CancellationToken" (fun () ->
              let members = awaitableMembers ()
              Expect.isGreaterThan members.Length 60 "the walk finds the awaitable surface"

              let missing =
                  members
                  |> List.groupBy fst
                  |> List.filter (fun (name, overloads) ->
                      not (neverWaits.ContainsKey name)
                      && not (overloads |> List.exists (snd >> hasToken)))
                  |> List.map fst
                  |> List.sort

              if not missing.IsEmpty then printfn "missing a token: %A" missing
              Expect.isEmpty missing "awaitable members without a CancellationToken overload (add one, or list the member in neverWaits with its reason)")

          testCase "every awaitable instance method is named ...Async" (fun () ->
              let wrong =
                  awaitableMembers ()
                  |> List.filter (fun (name, m) ->
                      not m.IsStatic && not (m.Name.EndsWith "Async") && not (nameExempt.ContainsKey name))
                  |> List.map fst
                  |> List.distinct
                  |> List.sort

              if not wrong.IsEmpty then printfn "not ...Async: %A" wrong
              Expect.isEmpty wrong "awaitable instance methods not named ...Async (rename, or list them in nameExempt with the reason)")

          testCase "the exception lists name only members that exist (no stale entries)" (fun () ->
              let names = awaitableMembers () |> List.map fst |> set

              let stale =
                  [ for KeyValue (k, _) in neverWaits do
                        if not (names.Contains k) then yield k
                    for KeyValue (k, _) in nameExempt do
                        if not (names.Contains k) then yield k ]

              if not stale.IsEmpty then printfn "stale: %A" stale
              Expect.isEmpty stale "entries of neverWaits / nameExempt that match no member") ]
