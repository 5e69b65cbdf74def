"""asyncio's twin of Tulip's lock_handoff micro benchmark (bench/Tulip.Bench/Micro.cs): two tasks take
turns on one asyncio.Lock (async with lock: await asyncio.sleep(0)), N acquisitions in all.
Prints "lock_handoff <ops/s> ops/s n=N"."""
import asyncio, sys, time

def main(n=1_000_000):
    async def run():
        lock = asyncio.Lock()
        count = 0
        async def worker():
            nonlocal count
            while count < n:
                async with lock:
                    count += 1
                    await asyncio.sleep(0)
        await asyncio.gather(worker(), worker())
        return count
    t0 = time.perf_counter()
    count = asyncio.run(run())
    dt = time.perf_counter() - t0
    print(f"lock_handoff {count / dt:16,.0f} ops/s  n={count:,} in {dt:.3f}s")

if __name__ == "__main__":
    main(int(float(sys.argv[1])) if len(sys.argv) > 1 else 1_000_000)
