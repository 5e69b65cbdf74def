"""asyncio's (and uvloop's) twin of Tulip's getaddrinfo_numeric / getaddrinfo_localhost micro benchmarks
(bench/Tulip.Bench/Micro.cs): N sequential `await loop.getaddrinfo(host, 80, type=SOCK_STREAM)` round
trips. asyncio sends every call, numeric or not, to the default executor; uvloop answers numeric hosts
itself and sends names to libuv's thread pool.
Usage: python3 bench/getaddrinfo.py [--loop asyncio|uvloop] [--only getaddrinfo_numeric,getaddrinfo_localhost] [--scale F]
Prints "name <ops/s> ops/s n=N in Ts" per benchmark."""
import argparse, asyncio, socket, time

BENCHES = {"getaddrinfo_numeric": ("127.0.0.1", 100_000), "getaddrinfo_localhost": ("localhost", 10_000)}

def bench(name, host, n):
    async def run():
        loop = asyncio.get_running_loop()
        for _ in range(n):
            await loop.getaddrinfo(host, 80, type=socket.SOCK_STREAM)
    asyncio.run(run())  # warm-up (executor threads started)
    t0 = time.perf_counter()
    asyncio.run(run())
    dt = time.perf_counter() - t0
    print(f"{name:<22} {n / dt:16,.0f} ops/s  n={n:,} in {dt:.3f}s")

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loop", default="asyncio", choices=["asyncio", "uvloop"])
    ap.add_argument("--only", default=",".join(BENCHES))
    ap.add_argument("--scale", type=float, default=1.0)
    a = ap.parse_args()
    if a.loop == "uvloop":
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    for name in a.only.split(","):
        host, n = BENCHES[name]
        bench(name, host, max(1, int(n * a.scale)))

if __name__ == "__main__":
    main()
