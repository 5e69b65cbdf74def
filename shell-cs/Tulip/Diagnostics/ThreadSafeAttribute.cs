namespace Tulip;

/// <summary>
/// The member may be called from any thread, also while its loop runs on another one. Everything else
/// bound to a loop — its futures, tasks, handles, transports, servers, streams, and the sync
/// primitives once a wait has bound them — raises <see cref="EventLoopException"/> when called from a
/// thread other than the running loop's (asyncio leaves such calls undefined; here they would corrupt
/// the loop's state, so they are refused). While no thread runs the loop, any thread may use it, one at
/// a time (the loop's gate serialises such calls with a run's start). On a type, the mark covers all its members. The surface
/// sweep (tests/Tulip.Tests/SurfaceSweepTests.fs) holds every public member to this rule.
/// </summary>
[AttributeUsage(AttributeTargets.Method | AttributeTargets.Property | AttributeTargets.Constructor | AttributeTargets.Class)]
public sealed class ThreadSafeAttribute : Attribute
{
}
