# Item 1: each awaitable that as_completed yields gives the next result to complete *when it is
# awaited*: awaiting the enumerated items out of order still gets results in completion order.
import asyncio

async def work(name, delay):
    await asyncio.sleep(delay)
    return name

async def main():
    its = list(asyncio.as_completed([work("slow", 0.3), work("fast", 0.1), work("mid", 0.2)]))
    # await the last enumerated item first
    print("third awaited first:", await its[2])
    print("first:", await its[0])
    print("second:", await its[1])

asyncio.run(main())
