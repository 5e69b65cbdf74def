# Item 9: a task runs in a copy of its creator's context (contextvars; .NET: ExecutionContext and
# AsyncLocal<T>): it sees the values set before create_task, and its own changes do not leak back.
# create_task(..., context=ctx) and TaskGroup.create_task(..., context=ctx) run it in a given context.
# (asyncio runs the task in ctx itself, so the task's changes show in ctx afterwards; a .NET
# ExecutionContext is immutable, so Tulip's task runs in it without changing it: each explicit task
# here gets a context of its own, where both agree.)
import asyncio, contextvars

var = contextvars.ContextVar("var", default="unset")

async def child(tag):
    print(tag, "sees:", var.get())
    var.set("child")
    await asyncio.sleep(0)
    print(tag, "after await:", var.get())

async def main():
    var.set("parent")
    await asyncio.create_task(child("task"))
    print("parent after child:", var.get())
    ctx = contextvars.copy_context()
    ctx.run(var.set, "explicit")
    await asyncio.create_task(child("explicit"), context=ctx)
    async with asyncio.TaskGroup() as tg:
        ctx2 = contextvars.copy_context()
        ctx2.run(var.set, "group context")
        tg.create_task(child("group"), context=ctx2)
    print("parent still:", var.get())

asyncio.run(main())
