"""asyncio's and uvloop's twin of Tulip's subprocess micro benchmarks (bench/Tulip.Bench/Micro.cs):
  subprocess_spawn_communicate  N spawn + communicate(b"hello tulip\\n") round trips of `cat`, ops/s
  subprocess_cat_throughput     N MiB through one `cat` child (256 KiB writes with drain, 256 KiB
                                reads by a concurrent task), MiB/s
  subprocess_cat_throughput_1m  the same with 1 MiB pipes (Popen's pipesize)
Prints one "name <ops/s> ops/s n=N in Xs" line per benchmark, the median of --runs runs.
    python3 bench/subprocess_bench.py [--loop asyncio|uvloop] [--only a,b] [--runs 3] [--scale F]"""
import argparse, asyncio, statistics, sys, time

PIPE, DEVNULL = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL


async def spawn_communicate(n):
    data = b"hello tulip\n"
    for _ in range(n):
        p = await asyncio.create_subprocess_exec("cat", stdin=PIPE, stdout=PIPE, stderr=DEVNULL)
        out, _ = await p.communicate(data)
        assert out == data


async def cat_throughput(n, **kw):
    chunk = bytes(256 * 1024)
    total = n * 1024 * 1024
    p = await asyncio.create_subprocess_exec("cat", stdin=PIPE, stdout=PIPE, stderr=DEVNULL, **kw)

    async def reader():
        got = 0
        while True:
            data = await p.stdout.read(256 * 1024)
            if not data:
                return got
            got += len(data)

    r = asyncio.ensure_future(reader())
    sent = 0
    while sent < total:
        p.stdin.write(chunk)
        await p.stdin.drain()
        sent += len(chunk)
    p.stdin.close()
    got = await r
    assert got == total, (got, total)
    await p.wait()


async def cat_throughput_1m(n):
    await cat_throughput(n, pipesize=1 << 20)


BENCHES = [
    ("subprocess_spawn_communicate", 200, spawn_communicate),
    ("subprocess_cat_throughput", 256, cat_throughput),
    ("subprocess_cat_throughput_1m", 256, cat_throughput_1m),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loop", default="asyncio", choices=["asyncio", "uvloop"])
    ap.add_argument("--only", default="")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0)
    a = ap.parse_args()
    if a.loop == "uvloop":
        import uvloop
        new_loop = uvloop.new_event_loop
    else:
        new_loop = asyncio.new_event_loop
    only = set(filter(None, a.only.split(",")))
    for name, n0, fn in BENCHES:
        if only and name not in only:
            continue
        n = max(1, int(n0 * a.scale))
        figures = []
        for _ in range(a.runs + 1):  # the first run warms up
            loop = new_loop()
            try:
                t0 = time.perf_counter()
                loop.run_until_complete(fn(n))
                dt = time.perf_counter() - t0
            except TypeError as e:  # uvloop 0.17's subprocess_exec takes no pipesize
                print(f"{name:<30} not supported by this loop ({e})")
                break
            finally:
                loop.close()
            figures.append((n / dt, dt))
        if len(figures) < 2:
            continue
        ops, dt = sorted(figures[1:])[len(figures[1:]) // 2]
        print(f"{name:<30} {ops:16,.1f} ops/s  n={n:,} in {dt:.3f}s")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
