# Small API: per-iteration instrumentation (what CPython's tests read from a custom selector): each
# iteration's poll timeout (None: wait without limit) and how many callbacks it ran. asyncio has no
# hook; a recording selector counts iterations and the callbacks log the iteration they ran in.
# Tulip: EventLoop.IterationHook gets a LoopIteration per tick.
import asyncio, selectors

iterations = []
now = 0.0  # a virtual clock, as Tulip's tests use: select jumps it by the timeout

class Recording(selectors.DefaultSelector):
    def select(self, timeout=None):
        global now
        iterations.append([None if timeout is None else round(timeout, 3), 0])
        if timeout:
            now += timeout
        return super().select(0)

def cb():
    iterations[-1][1] += 1

loop = asyncio.SelectorEventLoop(Recording())
loop.time = lambda: now
loop.call_soon(cb)
loop.call_soon(cb)
loop.call_later(0.1, cb)
loop.call_later(0.25, cb)
loop.call_later(0.25, lambda: (cb(), loop.stop()))
loop.run_forever()
loop.close()
for i, (timeout, ran) in enumerate(iterations, 1):
    print(f"iteration {i}: timeout={timeout} callbacks={ran}")
