# Item 5: Handle.cancel drops the callback and its arguments (_callback = None, _args = None): a
# cancelled handle that is still held does not keep the argument alive.
import asyncio, gc, weakref

class Arg:
    pass

async def main():
    loop = asyncio.get_running_loop()
    arg = Arg()
    ref = weakref.ref(arg)
    h = loop.call_soon(print, arg)
    t = loop.call_later(10, print, Arg())
    tref = weakref.ref(t._args[0])
    del arg
    gc.collect()
    print("alive before cancel:", ref() is not None, tref() is not None)
    h.cancel()
    t.cancel()
    gc.collect()
    print("alive after cancel:", ref() is not None, tref() is not None)
    print("handle still held:", h.cancelled(), t.cancelled())

asyncio.run(main())
