namespace Tulip;

/// <summary>asyncio.QueueFull: <c>PutNowait</c> on a full queue.</summary>
public sealed class QueueFullException : InvalidOperationException
{
    public QueueFullException() : base("Queue is full.") { }
}

/// <summary>asyncio.QueueEmpty: <c>GetNowait</c> on an empty queue.</summary>
public sealed class QueueEmptyException : InvalidOperationException
{
    public QueueEmptyException() : base("Queue is empty.") { }
}

/// <summary>asyncio.QueueShutDown (3.13): putting on a shut-down queue, or getting from one that is also empty.</summary>
public sealed class QueueShutDownException : InvalidOperationException
{
    public QueueShutDownException() : base("Queue is shut down.") { }
}
