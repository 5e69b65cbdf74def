namespace Tulip;

/// <summary>
/// Makes the loop's tasks (asyncio's task factory, <c>loop.set_task_factory</c>): return a
/// <see cref="LoopTask{T}"/> or <see cref="LoopTask"/> — typically of a subclass — made with the given
/// loop, coroutine and name. The loop applies an explicit <c>ExecutionContext</c> itself.
/// </summary>
public interface ITaskFactory
{
    LoopTask<T> CreateTask<T>(EventLoop loop, Func<Task<T>> coroutine, string? name);

    LoopTask CreateTask(EventLoop loop, Func<Task> coroutine, string? name);
}
