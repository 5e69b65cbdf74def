namespace Tulip.Reactive;

/// <summary>
/// What disposing a subscription does to the work behind it, where both answers make sense: a
/// future other code also awaits, a server whose open connections may outlive the subscription.
/// </summary>
public enum OnDispose
{
    /// <summary>Cancel the work behind the subscription (the task, the server and its connections).</summary>
    Cancel,

    /// <summary>Only stop listening: no more callbacks, the work goes on (the server stops accepting,
    /// connections already handed out stay open).</summary>
    StopListening,
}
