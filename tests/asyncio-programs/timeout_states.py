# Item 3: asyncio.Timeout's states and repr (created, active with when=round(when, 3), expiring,
# expired, finished), created before it is entered, and its errors (entering twice, rescheduling
# before entry or after exit).
import asyncio

async def main():
    t = asyncio.timeout_at(1000012.3456)
    print(repr(t))
    try:
        t.reschedule(5)
    except RuntimeError as e:
        print("RuntimeError:", e)
    async with t:
        print(repr(t))
        try:
            async with t:
                pass
        except RuntimeError as e:
            print("RuntimeError:", e)
        t.reschedule(None)
        print(repr(t))
        t.reschedule(2000000.25)
        print(repr(t))
    print(repr(t))
    try:
        t.reschedule(1)
    except RuntimeError as e:
        print("RuntimeError:", e)

    t2 = asyncio.timeout(0)
    try:
        async with t2:
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                print("inside:", repr(t2))
                raise
    except TimeoutError:
        print("TimeoutError:", repr(t2), t2.expired())
    try:
        t2.reschedule(1)
    except RuntimeError as e:
        print("RuntimeError:", e)

asyncio.run(main())
