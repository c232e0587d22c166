"""A socket server on its own event loop in a thread, and short socket paths, for tests."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

from credd.server import Listener, SocketServer


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
