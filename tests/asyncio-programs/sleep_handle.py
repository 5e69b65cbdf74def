# Small API: the TimerHandle behind a sleep, for introspection (asyncio: loop._scheduled; Tulip:
# SleepAwaitable.Timer); cancelling the sleeping task cancels it.
import asyncio

async def main():
    loop = asyncio.get_running_loop()
    t = asyncio.create_task(asyncio.sleep(5))
    await asyncio.sleep(0)
    h = loop._scheduled[0]
    print("due in:", round(h.when() - loop.time(), 1), "cancelled:", h.cancelled())
    t.cancel()
    await asyncio.sleep(0)
    print("after cancel:", h.cancelled(), t.cancelled())

asyncio.run(main())
