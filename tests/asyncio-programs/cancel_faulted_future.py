# Item 4: cancelling a future that holds an exception marks it retrieved (Future.cancel clears
# __log_traceback before checking the state), so collecting it reports nothing.
import asyncio, gc

async def main():
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda l, ctx: print("handler:", ctx["message"]))
    for cancel in (False, True):
        f = loop.create_future()
        f.set_exception(ValueError("boom"))
        if cancel:
            print("cancel:", f.cancel())
        del f
        gc.collect()
        await asyncio.sleep(0)
    print("done")

asyncio.run(main())
