# Small APIs: the buffered bytes of a StreamReader without consuming them (asyncio's reader._buffer;
# Tulip's Buffered / Peek), readable after an exception was set; and closing a transport with an
# error (asyncio's transport._force_close(exc); Tulip's ITransport.Abort(exception)): stream users
# see that exception.
import asyncio

class Custom(Exception):
    pass

async def main():
    r = asyncio.StreamReader()
    r.feed_data(b"hello world")
    print("peek:", bytes(r._buffer[:5]), len(r._buffer))
    print("read:", await r.readexactly(6))
    r.set_exception(Custom("boom"))
    print("after exception:", bytes(r._buffer))
    try:
        await r.read(1)
    except Custom as e:
        print("read raises:", e)
    print("still buffered:", bytes(r._buffer))

    async def handler(reader, writer):
        await reader.read()
        writer.close()
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.transport._force_close(Custom("forced"))
    try:
        await reader.read(10)
    except Custom as e:
        print("read after abort(exc):", e)
    try:
        await writer.wait_closed()
    except Custom as e:
        print("wait_closed after abort(exc):", e)
    server.close()
    await server.wait_closed()

asyncio.run(main())
