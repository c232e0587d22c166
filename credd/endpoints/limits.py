"""The limits every endpoint keeps on its clients: a cap on how many at once, a deadline for the first byte and one for
the whole request.

One piece for the Unix socket, the container endpoint and IMDS, so a hostile client costs the same everywhere: one
slot for at most `read_timeout` seconds, or `first_byte_timeout` if it sends nothing. Over `max_clients`, a
connection is closed as soon as it is accepted, unread: waiting to read it would let idle connections hold every
slot, while closing at once delays a flood's victims by about a second (clients try again) instead of for as long as
the flood lasts.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

# What an endpoint does with one accepted connection: the bytes of its reply, or None to close without one.
Respond = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable["bytes | None"]]


class Deadline(Exception):
    """A client missed a deadline; `seconds` is the one it missed (first byte or whole request)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no request within {seconds:g} s")
        self.seconds = seconds


class ClientLimits:
    """The cap and the deadlines of one listener; `serve` wraps each connection in them."""

    def __init__(self, *, read_timeout: float, first_byte_timeout: float, max_clients: int) -> None:
        self.read_timeout = read_timeout
        # Every client of credd's endpoints sends its request the moment it connects: one that sends nothing for
        # this long is idle, and its slot goes to someone else.
        self.first_byte_timeout = min(first_byte_timeout, read_timeout)
        self.max_clients = max_clients
        self.clients = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, respond: Respond) -> None:
        """Admit the connection or abort it at once (over the cap), let `respond` read and answer, write, close."""
        if self.clients >= self.max_clients:
            writer.transport.abort()
            return
        self.clients += 1
        try:
            reply = await respond(reader, writer)
            if reply is not None:
                writer.write(reply)
                if writer.transport.get_write_buffer_size():  # a reply the socket took whole needs no wait
                    await within(writer.drain(), self.read_timeout)
        except (ConnectionError, asyncio.TimeoutError):
            pass  # the client went away or would not read its reply: nothing to tell it
        finally:
            self.clients -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def read_request(self, reader: asyncio.StreamReader,
                           rest: Callable[[bytes], Awaitable[bytes]]) -> bytes:
        """The first byte within `first_byte_timeout`, then `rest(first)` within what is left of `read_timeout`.

        b"" for a client that closed without a word; `Deadline` for one too slow. The limits on size are the
        stream's own (`rest` raises what its reader raises).
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            first = await within(reader.read(1), self.first_byte_timeout)
        except asyncio.TimeoutError:
            raise Deadline(self.first_byte_timeout) from None
        if not first:
            return b""
        left = max(self.read_timeout - (loop.time() - started), 0.0)
        try:
            return first + await within(rest(first), left)
        except asyncio.TimeoutError:
            raise Deadline(self.read_timeout) from None


async def within(awaitable: Awaitable[T], seconds: float) -> T:
    """`asyncio.wait_for` without its extra Task per call where Python has `asyncio.timeout` (3.11+)."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)
