"""asyncio's (and uvloop's) twin of Tulip's executor rows in bench/Tulip.Bench/Micro.cs, same names and N:
  executor_thread           one task awaits N loop.run_in_executor(ThreadPoolExecutor(1), square, 3) in turn
  executor_process          the same through ProcessPoolExecutor(1) (started before timing)
  run_coroutine_threadsafe  a foreign thread calls run_coroutine_threadsafe(coro(), loop).result() N times
Prints one "name <ops/s> ops/s n=N" line each.
  python3 bench/executors.py [--loop asyncio|uvloop] [--scale F] [NAME...]"""
import asyncio, concurrent.futures as cf, sys, threading, time

def square(x):
    return x * x

def round_trips(new_loop, executor, n):
    async def run():
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(executor, square, 3)  # the worker started
        t0 = time.perf_counter()
        total = 0
        for _ in range(n):
            total += await loop.run_in_executor(executor, square, 3)
        dt = time.perf_counter() - t0
        assert total == 9 * n
        return dt
    loop = new_loop()
    try:
        return loop.run_until_complete(run())
    finally:
        loop.close()

def executor_thread(new_loop, n):
    with cf.ThreadPoolExecutor(1) as ex:
        return round_trips(new_loop, ex, n)

def executor_process(new_loop, n):
    with cf.ProcessPoolExecutor(1) as ex:
        return round_trips(new_loop, ex, n)

def run_coroutine_threadsafe(new_loop, n):
    loop = new_loop()
    t = threading.Thread(target=loop.run_forever)
    t.start()
    async def one():
        return 1
    t0 = time.perf_counter()
    total = 0
    for _ in range(n):
        total += asyncio.run_coroutine_threadsafe(one(), loop).result()
    dt = time.perf_counter() - t0
    loop.call_soon_threadsafe(loop.stop)
    t.join()
    loop.close()
    assert total == n
    return dt

BENCHES = [("executor_thread", 20_000, executor_thread),
           ("executor_process", 5_000, executor_process),
           ("run_coroutine_threadsafe", 20_000, run_coroutine_threadsafe)]

def main(argv):
    loop_kind, scale, only = "asyncio", 1.0, set()
    it = iter(argv)
    for a in it:
        if a == "--loop": loop_kind = next(it)
        elif a == "--scale": scale = float(next(it))
        else: only.add(a)
    if loop_kind == "uvloop":
        import uvloop
        new_loop = uvloop.new_event_loop
    else:
        new_loop = asyncio.new_event_loop
    for name, n0, bench in BENCHES:
        if only and name not in only: continue
        n = max(1, int(n0 * scale))
        dt = bench(new_loop, n)
        print(f"{name:<26} {n / dt:16,.0f} ops/s  n={n:,} in {dt:.3f}s  ({loop_kind})")

if __name__ == "__main__":
    main(sys.argv[1:])
