# Item 11: asyncio's ValueError for a future of another loop (run_until_complete, gather), and
# Queue.task_done() called too often. Tulip: ArgumentException with asyncio's message (.NET appends
# " (Parameter 'name')", which the test strips), and InvalidOperationException for task_done (a
# call invalid in the queue's state, not a bad argument).
import asyncio

a = asyncio.new_event_loop()
b = asyncio.new_event_loop()
fa = a.create_future()
fb = b.create_future()
try:
    b.run_until_complete(fa)
except ValueError as e:
    print("run_until_complete: ValueError:", e)

async def gathering():
    return asyncio.gather(fb, fa)

try:
    b.run_until_complete(gathering())
except ValueError as e:
    print("gather: ValueError:", e)

q = asyncio.Queue()
try:
    q.task_done()
except ValueError as e:
    print("task_done: ValueError:", e)
a.close()
b.close()
