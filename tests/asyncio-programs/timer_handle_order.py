# Small API: TimerHandle comparisons by when() (asyncio's __lt__/__gt__/__le__/__ge__).
import asyncio

async def main():
    loop = asyncio.get_running_loop()
    f = lambda: None
    g = lambda: None
    h1, h2, h3 = loop.call_at(10.0, f), loop.call_at(20.0, f), loop.call_at(10.0, g)
    print(h1 < h2, h2 > h1, h1 <= h2, h2 >= h1, h1 < h3, h1 <= h3, h1 <= h1, h1 >= h1)
    print([h.when() for h in sorted([h2, h1, h3])])
    for h in (h1, h2, h3):
        h.cancel()

asyncio.run(main())
