# Item 3: a TaskGroup created before it is entered, and asyncio's errors for creating tasks in a
# group not entered or already finished, and for entering it twice.
import asyncio

async def work():
    await asyncio.sleep(0)
    return 1

async def main():
    tg = asyncio.TaskGroup()
    print(repr(tg))
    c = work()
    try:
        tg.create_task(c)
    except RuntimeError as e:
        print("RuntimeError:", e)
        c.close()
    async with tg:
        print(repr(tg))
        try:
            async with tg:
                pass
        except RuntimeError as e:
            print("RuntimeError:", e)
        t = tg.create_task(work())
        print(repr(tg))
    print(repr(tg), t.result())
    c = work()
    try:
        tg.create_task(c)
    except RuntimeError as e:
        print("RuntimeError:", e)
        c.close()

asyncio.run(main())
