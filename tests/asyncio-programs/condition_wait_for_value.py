# Item 10: Condition.wait_for returns the predicate's last value (not just True).
import asyncio

async def main():
    cond = asyncio.Condition()
    items = []

    async def consumer():
        async with cond:
            got = await cond.wait_for(lambda: items[0] if items else None)
            print("wait_for returned:", got)

    t = asyncio.create_task(consumer())
    await asyncio.sleep(0)
    async with cond:
        items.append("first")
        cond.notify_all()
    await t
    async with cond:
        print("already true:", await cond.wait_for(lambda: 42))

asyncio.run(main())
