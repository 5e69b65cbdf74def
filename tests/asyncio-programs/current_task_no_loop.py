# Item 8: asyncio.current_task() with no running loop raises RuntimeError('no running event loop').
import asyncio

try:
    asyncio.current_task()
    print("no error")
except RuntimeError as e:
    print("RuntimeError:", e)
