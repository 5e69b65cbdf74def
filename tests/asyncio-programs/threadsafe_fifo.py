# Item 7: call_soon_threadsafe appends to the same ready queue as call_soon: one FIFO, from the loop
# thread while it runs and from another thread before the loop runs.
import asyncio, threading

async def main():
    loop = asyncio.get_running_loop()
    loop.call_soon_threadsafe(print, "a: threadsafe from the loop thread")
    loop.call_soon(print, "b: call_soon")
    await asyncio.sleep(0)
    await asyncio.sleep(0)

asyncio.run(main())

loop = asyncio.new_event_loop()
th = threading.Thread(target=lambda: loop.call_soon_threadsafe(print, "c: threadsafe from another thread"))
th.start()
th.join()
loop.call_soon(print, "d: call_soon")
loop.call_soon(loop.stop)
loop.run_forever()
loop.close()
