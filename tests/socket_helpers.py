"""A socket server on its own event loop in a thread, and short socket paths, for tests."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
from collections.abc import Sequence
from pathlib import Path

from credd.endpoints.unix_socket import Listener, SocketServer


class RunningServer:
    """A SocketServer on its own event loop in a thread, as the daemon runs it."""

    def __init__(self, path: Path, handler, **options) -> None:
        self.loop = asyncio.new_event_loop()
        self.listener = Listener(path, os.getuid())
        self.server = SocketServer(self.listener, handler, os.getuid(), **options)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(5)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def exchange(path: Path | str, payload: bytes, chunks: Sequence[int] = (), half_close: bool = True,
             timeout: float = 10) -> bytes:
    """Send `payload` as any program could (in pieces of the given sizes, then the rest), maybe half-close,
    and read to the end: none of credd's client-side checks (who listens, sizes, a reply's shape)."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(timeout)
    client.connect(str(path))
    data = b""
    try:
        try:
            sent = 0
            for size in [*chunks, len(payload)]:
                if sent < len(payload):
                    client.sendall(payload[sent:sent + size])
                    sent += size
            if half_close:
                client.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered the first line (or refused an oversized one) and closed: read its reply
        try:
            while chunk := client.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass  # closed with bytes of ours unread; what it sent before comes first
    finally:
        client.close()
    return data


def raw_request(path: Path | str, message: dict, timeout: float = 10) -> dict:
    """One request sent as any program could send it, and its reply."""
    return json.loads(exchange(path, json.dumps(message).encode() + b"\n", timeout=timeout))


def as_user(uid: int, action) -> dict:
    """`action()` in a forked child that has become `uid`; its JSON-able result (or its error) comes back."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            reply = json.dumps(action())
        except BaseException as e:  # noqa: BLE001 - whatever happened goes back to the test
            reply = json.dumps({"child-error": repr(e)})
        os.write(write_end, reply.encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end) as pipe:
        return json.loads(pipe.read())
