# Small API: loop.set_task_factory / get_task_factory, so a user makes their own task type; every
# task creation goes through it (create_task, TaskGroup), and None restores the default.
import asyncio

class MyTask(asyncio.Task):
    pass

created = []

def factory(loop, coro, context=None):
    t = MyTask(coro, loop=loop, context=context)
    created.append(t)
    return t

async def child():
    return 5

async def main():
    loop = asyncio.get_running_loop()
    print("factory before:", loop.get_task_factory() is None)
    loop.set_task_factory(factory)
    print("factory set:", loop.get_task_factory() is factory)
    t = asyncio.create_task(child(), name="kid")
    print(type(t).__name__, t.get_name(), await t)
    async with asyncio.TaskGroup() as tg:
        t2 = tg.create_task(child())
    print("group:", type(t2).__name__)
    loop.set_task_factory(None)
    t3 = asyncio.create_task(child())
    await t3
    print("reset:", type(t3).__name__, "created:", len(created))

asyncio.run(main())
