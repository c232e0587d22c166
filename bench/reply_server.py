"""The socket benchmark's baselines: Unix-socket servers that answer every request with one canned reply.

    python bench/reply_server.py asyncio|asyncio-pool|blocking SOCKET REPLY_FILE

`asyncio` is credd's server without credd: the same `asyncio.start_unix_server`,
bounded `readline`, write, drain and close, but no peer check, no JSON, no
thread-pool hop and no handler. `asyncio-pool` adds only the hop credd makes
for every request: the reply comes back from `run_in_executor` on a pool of 16
threads (what that hop costs, apart from credd's own code). `blocking` is the
floor of Python itself: one thread, accept, recv to the newline, sendall, close. Both read the request
before replying (as credd does, so a close never resets the reply away).
Prints "ready" once listening; stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from concurrent.futures import ThreadPoolExecutor


def serve_blocking(path: str, reply: bytes) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(128)
    print("ready", flush=True)
    while True:
        client, _ = server.accept()
        with client:
            data = b""
            while not data.endswith(b"\n"):
                chunk = client.recv(65536)
                if not chunk:
                    break
                data += chunk
            client.sendall(reply)


async def serve_asyncio(path: str, reply: bytes, hop: bool) -> None:
    pool = ThreadPoolExecutor(max_workers=16) if hop else None

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(reader.readline(), 5)
            if pool is not None:
                await asyncio.get_running_loop().run_in_executor(pool, bytes, reply)
            writer.write(reply)
            await asyncio.wait_for(writer.drain(), 5)
        except (ConnectionError, asyncio.TimeoutError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_unix_server(answer, path=path, limit=16 * 1024 + 1, backlog=128)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    mode, path, reply_file = sys.argv[1:4]
    with open(reply_file, "rb") as handle:
        reply = handle.read()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if mode == "blocking":
        serve_blocking(path, reply)
    else:
        asyncio.run(serve_asyncio(path, reply, hop=mode == "asyncio-pool"))


if __name__ == "__main__":
    main()
