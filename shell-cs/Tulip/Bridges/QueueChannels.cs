using System.Threading.Channels;

namespace Tulip;

/// <summary>
/// <see cref="AsyncQueue{T}"/> ⇄ System.Threading.Channels (issue 14.5): thread-pool producers feeding
/// a loop consumer, and a loop producer feeding thread-pool consumers, bounded end to end.
/// <para>Each bridge is a BCL bounded channel (the thread-safe side: every member of the
/// <see cref="ChannelWriter{T}"/> / <see cref="ChannelReader{T}"/> you get may be called from any thread,
/// takes a <see cref="CancellationToken"/> where it waits, and serves waiting writers and readers first
/// come first served) joined to the queue by a pump: a loop task that moves one item at a time and awaits
/// the queue's <c>PutAsync</c> (or the channel's <c>WriteAsync</c>) before taking the next. So a slow
/// consumer makes the producers wait (back-pressure), nothing is dropped and the order is kept: at most
/// <c>capacity</c> items wait in the channel, one in the pump, and <see cref="AsyncQueue{T}.MaxSize"/> in
/// the queue. On the loop side the queue is the usual one: its getters (or putters) are served in FIFO
/// order together with any other task using it.</para>
/// <para>Make a bridge on the loop's thread (or while the loop is idle): the pump is a task of that loop.</para>
/// </summary>
public static class QueueChannels
{
    /// <summary>
    /// A thread-safe writer whose items the pump puts into <paramref name="queue"/> on <paramref name="loop"/>,
    /// in the order they were written. <c>Complete()</c> ends the stream: the pump puts what is left, then
    /// shuts the queue down (asyncio 3.13's <c>shutdown()</c>, so the loop consumer's <c>await foreach</c>
    /// ends once the queue is empty). <c>Complete(exception)</c> also shuts it down, and the exception goes
    /// to the loop's exception handler at once (an error with no caller: the queue has no error state).
    /// If the queue is shut down by someone else, later writes fail with <see cref="ChannelClosedException"/>.
    /// </summary>
    /// <param name="queue">The queue the loop consumes.</param>
    /// <param name="loop">The queue's loop; the pump runs there.</param>
    /// <param name="capacity">How many written items may wait in front of the queue (at least 1).</param>
    public static ChannelWriter<T> AsChannelWriter<T>(this AsyncQueue<T> queue, EventLoop loop, int capacity = 1)
    {
        ArgumentNullException.ThrowIfNull(queue);
        ArgumentNullException.ThrowIfNull(loop);
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        var front = Channel.CreateBounded<T>(new BoundedChannelOptions(capacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = true,
            AllowSynchronousContinuations = false, // a producer's continuation never runs on the loop thread
        });
        loop.CreateTask(() => PumpIntoQueue(front, queue), "channel to queue");
        return front.Writer;
    }

    /// <summary>
    /// A thread-safe reader of the items put into <paramref name="queue"/> on <paramref name="loop"/>, in
    /// queue order. The pump takes an item only when the channel has room, so loop producers wait in
    /// <c>PutAsync</c> while the readers lag; it calls <see cref="AsyncQueue{T}.TaskDone"/> for each item
    /// handed over. When the queue is shut down and empty the channel completes (its
    /// <see cref="ChannelReader{T}.Completion"/>, <c>ReadAllAsync</c> ends); an error of the pump (a
    /// cancelled loop, say) completes it with that error.
    /// </summary>
    /// <param name="queue">The queue the loop produces into.</param>
    /// <param name="loop">The queue's loop; the pump runs there.</param>
    /// <param name="capacity">How many items may wait in the channel for the readers (at least 1).</param>
    public static ChannelReader<T> AsChannelReader<T>(this AsyncQueue<T> queue, EventLoop loop, int capacity = 1)
    {
        ArgumentNullException.ThrowIfNull(queue);
        ArgumentNullException.ThrowIfNull(loop);
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        var back = Channel.CreateBounded<T>(new BoundedChannelOptions(capacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleWriter = true,
            AllowSynchronousContinuations = false, // a reader's continuation never runs on the loop thread
        });
        loop.CreateTask(() => PumpOutOfQueue(queue, back), "queue to channel");
        return back.Reader;
    }

    private static async Task PumpIntoQueue<T>(Channel<T> front, AsyncQueue<T> queue)
    {
        var reader = front.Reader;
        try
        {
            // Awaited inside a loop task: the BCL channel's continuations come back to the loop thread.
            while (await reader.WaitToReadAsync())
            {
                while (reader.TryRead(out var item)) await queue.PutAsync(item);
            }
        }
        catch (QueueShutDownException e)
        {
            // Shut down from the loop side: the producers learn it at their next write.
            front.Writer.TryComplete(new ChannelClosedException("the queue was shut down", e));
            return;
        }
        catch (OperationCanceledException e)
        {
            // The pump itself was cancelled (the loop is closing): the producers and the consumer both learn it.
            front.Writer.TryComplete(e);
            ShutdownQuietly(queue);
            throw;
        }
        catch (Exception e)
        {
            // A producer completed the writer with an error: an error with no caller on the loop side
            // (the queue has no error state), so it goes to the loop's exception handler, at once.
            ShutdownQuietly(queue);
            EventLoop.GetRunningLoop().CallExceptionHandler(
                new ExceptionContext("A ChannelWriter feeding an AsyncQueue was completed with an error", e));
            return;
        }

        ShutdownQuietly(queue);
    }

    private static void ShutdownQuietly<T>(AsyncQueue<T> queue)
    {
        if (!queue.IsShutdown) queue.Shutdown();
    }

    private static async Task PumpOutOfQueue<T>(AsyncQueue<T> queue, Channel<T> back)
    {
        var writer = back.Writer;
        try
        {
            while (true)
            {
                T item;
                try
                {
                    item = await queue.GetAsync();
                }
                catch (QueueShutDownException)
                {
                    break;
                }

                // The channel serves its readers on the thread pool; a full channel holds the pump here.
                if (!writer.TryWrite(item)) await writer.WriteAsync(item);
                queue.TaskDone();
            }

            writer.TryComplete();
        }
        catch (Exception e)
        {
            writer.TryComplete(e);
        }
    }
}
