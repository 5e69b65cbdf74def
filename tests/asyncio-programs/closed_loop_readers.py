# Item 6: on a closed loop add_reader / add_writer raise RuntimeError('Event loop is closed') and
# leave nothing behind; remove_reader / remove_writer return False (also for a reader that was
# registered before the close).
import asyncio, socket

a, b = socket.socketpair()
loop = asyncio.new_event_loop()
loop.add_reader(a, print)
loop.close()
print("remove_reader after close:", loop.remove_reader(a))

loop = asyncio.new_event_loop()
loop.close()
for name in ("add_reader", "add_writer"):
    try:
        getattr(loop, name)(a, print)
    except RuntimeError as e:
        print(name + ":", e)
print("remove_reader:", loop.remove_reader(a))
print("remove_writer:", loop.remove_writer(a))
a.close()
b.close()
