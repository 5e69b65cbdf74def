# Item 2 (CPython 3.11.7 / 3.12 rule): a timeout scope records the task's cancelling() count at entry
# and turns its own expiry into TimeoutError when uncancel() brings the count back to that value.
# 3.11.2 compares with 0, so a scope entered while a cancel request is pending lets the
# cancellation escape; 3.11.7 (python3 on PATH) raises TimeoutError. Tulip follows 3.11.7.
import asyncio

async def main():
    task = asyncio.current_task()
    task.cancel()
    try:
        await asyncio.sleep(1)
    except asyncio.CancelledError:
        print("caught cancel, cancelling =", task.cancelling())
    # no uncancel(): one request is still pending
    try:
        async with asyncio.timeout(0.1):
            await asyncio.sleep(1)
    except TimeoutError:
        print("TimeoutError, cancelling =", task.cancelling())
    except asyncio.CancelledError:
        print("CancelledError escaped, cancelling =", task.cancelling())

asyncio.run(main())
