namespace Tulip;

/// <summary>
/// Marks a member that any thread may call, whether or not the loop runs. Every other member of a
/// loop-bound object is for the thread running the loop (or any one thread while the loop is idle) and
/// raises <see cref="EventLoopException"/> from a foreign thread.
/// </summary>
[AttributeUsage(AttributeTargets.Method | AttributeTargets.Property | AttributeTargets.Constructor | AttributeTargets.Class,
    Inherited = true)]
public sealed class ThreadSafeAttribute : Attribute;
