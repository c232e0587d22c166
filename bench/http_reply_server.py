"""The endpoint benchmark's baseline: a minimal asyncio HTTP server on loopback that answers one canned reply.

    python bench/http_reply_server.py REPLY_FILE

credd's container endpoint without credd: the same `asyncio.start_server` on
127.0.0.1, a bounded read of the request head (to its blank line), write,
drain and close; no parsing, Host check, token lookup or daemon. Prints
"ready PORT" once listening (the kernel picks the port); stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys


async def serve(reply: bytes) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            writer.write(reply)
            await asyncio.wait_for(writer.drain(), 5)
        except (ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, limit=8 * 1024)  # the default backlog, as credd
    print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    with open(sys.argv[1], "rb") as handle:
        reply = handle.read()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    asyncio.run(serve(reply))


if __name__ == "__main__":
    main()
