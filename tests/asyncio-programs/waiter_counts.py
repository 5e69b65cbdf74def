# Small API: waiter counts on every sync primitive. asyncio has them only in the reprs
# ("waiters:N", "_getters[N]", "_putters[N]") and Barrier.n_waiting; Tulip exposes them as properties.
import asyncio, re

def count(x, pattern):
    m = re.search(pattern, repr(x))
    return int(m.group(1)) if m else 0

async def main():
    ev, cond, sem = asyncio.Event(), asyncio.Condition(), asyncio.Semaphore(0)
    empty, full, barrier = asyncio.Queue(), asyncio.Queue(1), asyncio.Barrier(3)
    full.put_nowait(0)

    async def cond_wait():
        async with cond:
            await cond.wait()

    tasks = [asyncio.create_task(ev.wait()) for _ in range(2)]
    tasks += [asyncio.create_task(cond_wait()) for _ in range(3)]
    tasks += [asyncio.create_task(sem.acquire())]
    tasks += [asyncio.create_task(empty.get()) for _ in range(2)]
    tasks += [asyncio.create_task(full.put(1)) for _ in range(4)]
    tasks += [asyncio.create_task(barrier.wait()) for _ in range(2)]
    await asyncio.sleep(0)
    for when in ("waiting", "after cancel"):
        print(when, "event", count(ev, r"waiters:(\d+)"), "condition", count(cond, r"waiters:(\d+)"),
              "semaphore", count(sem, r"waiters:(\d+)"), "getters", count(empty, r"_getters\[(\d+)\]"),
              "putters", count(full, r"_putters\[(\d+)\]"), "barrier", barrier.n_waiting)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

asyncio.run(main())
