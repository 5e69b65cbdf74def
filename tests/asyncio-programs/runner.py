# Small API: asyncio.Runner. Several run() calls share one loop (a task left by the first keeps
# running in the second); get_loop(); close() cancels what is left (its finally blocks run) and closes
# the loop; run() after close raises RuntimeError('Runner is closed').
import asyncio

async def worker():
    i = 0
    try:
        while True:
            print("tick", i)
            i += 1
            await asyncio.sleep(1)
    except asyncio.CancelledError:
        print("worker cancelled at close")
        raise

async def first():
    asyncio.create_task(worker())
    await asyncio.sleep(1.5)
    print("first run done")
    return 1

async def second():
    await asyncio.sleep(1)
    print("second run, tasks:", len(asyncio.all_tasks()))
    return 2

with asyncio.Runner() as runner:
    print("result", runner.run(first()))
    loop = runner.get_loop()
    print("result", runner.run(second()))
    print("same loop:", runner.get_loop() is loop)
print("closed:", loop.is_closed())
try:
    runner.get_loop()
except RuntimeError as e:
    print("RuntimeError:", e)
