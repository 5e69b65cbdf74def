# Item 12: StreamWriter.drain() after the connection is gone raises ConnectionResetError: its own
# ConnectionResetError('Connection lost') once the transport closed without an error, the reader's
# ConnectionResetError after the peer reset. Tulip: ConnectionResetException (an IOException whose
# SocketErrorCode is ConnectionReset), for reads and drains alike.
import asyncio, socket, struct

async def main():
    async def handler(r, w):
        if await r.read(1) == b"R":
            # Linger 0: closing sends RST instead of FIN.
            w.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            w.transport.abort()
        else:
            await r.read()
            w.close()

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"C")
    w.close()
    try:
        await w.drain()
        print("drain after close: no error")
    except ConnectionResetError as e:
        print("drain after close: ConnectionResetError:", e)

    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"R")
    try:
        await r.read(100)
        print("read after peer reset: no error")
    except ConnectionResetError:
        print("read after peer reset: ConnectionResetError")
    try:
        await w.drain()
        print("drain after peer reset: no error")
    except ConnectionResetError:
        print("drain after peer reset: ConnectionResetError")
    w.close()
    server.close()
    await server.wait_closed()

asyncio.run(main())
