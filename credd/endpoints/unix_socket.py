"""The Unix socket endpoint: one request per connection, bounded in size, time and number.

What is the socket's own lives here: the directory and the lock that make
this daemon the only one on its path, the framing (one line of JSON each
way, `protocol`), the peer check, the client cap and the deadlines. What the
daemon answers comes through `Answers` (`credd.endpoints`).

A client of another user id is refused (peer credentials). A client that is
slow, half-closed, oversized or speaks garbage costs one connection slot for
at most `read_timeout` seconds; one that sends nothing, for at most
`first_byte_timeout` (1 s). Over `max_clients`, a connection is closed as soon
as it is accepted, unread (credd's clients try again until their deadline): a
flood of idle connections then delays everyone else by about a second, instead
of turning them away for as long as it lasts. The
request handler is ordinary blocking code (it may wait on STS) and runs in a
thread pool, so the event loop only ever moves bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import socket
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from credd import privatedir, protocol
from credd.commandline import credd_command
from credd.endpoints import Answers
from credd.endpoints.limits import ClientLimits, Deadline
from credd.errors import CreddError

log = logging.getLogger("credd.server")  # the name its log lines have always had
SETTING = "socket:"  # the config key that puts the socket, and so its directory, elsewhere

Handler = Callable[[dict], dict]
QuickHandler = Callable[[dict], "dict | None"]  # must not block: it runs on the event loop


class SocketInUse(CreddError):
    """Another daemon serves this socket."""


def prepare_directory(directory: Path, uid: int) -> None:
    """Create the socket's directory 0700, or check that an existing one is ours and private.

    The check uses lstat, so a symlink planted in place of the directory (say in
    a shared /tmp) is refused rather than followed to a place of someone else's choosing.
    """
    try:
        directory.mkdir(mode=0o700, parents=True)
        os.chmod(directory, 0o700)
    except FileExistsError:
        pass
    _check_directory(directory, os.lstat(directory), uid)


def _check_directory(directory: Path, info: os.stat_result, uid: int) -> None:
    refusal = privatedir.problem(directory, info, uid, privatedir.PRIVATE, setting=SETTING)
    if refusal is not None:
        raise CreddError(refusal)


class Listener:
    """The bound socket plus the lock that makes this daemon the only one on it.

    Once checked, the socket's directory is used through an open handle, never
    by its name again: if the name is swapped later (the directory renamed, a
    symlink put in its place), the lock, the removal of a stale socket and the
    clean-up at exit still act in the directory that was checked, and remove
    nothing in a place of someone else's choosing.
    """

    def __init__(self, path: Path, uid: int, hint_config: str | None = None) -> None:
        self.path = path
        self.hint_config = hint_config  # the daemon's --config, for the command a refusal names
        prepare_directory(path.parent, uid)
        self._dir = _open_directory(path.parent, uid)
        self._lock = -1
        self._inode: tuple[int, int] | None = None
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._lock = self._take_lock(path.name + ".lock")
            # We hold the lock, so whatever socket file is there belongs to a dead daemon; anything else is not ours.
            self._remove_stale_socket()
            self.sock.bind(str(path))  # bind() takes no directory handle: check where the name landed
            self._inode = self._bound_here()
            os.chmod(path.name, 0o600, dir_fd=self._dir)
            self.sock.listen(128)
            self.sock.setblocking(False)
        except BaseException:
            self.close()
            raise

    def _remove_stale_socket(self) -> None:
        try:
            info = os.stat(self.path.name, dir_fd=self._dir, follow_symlinks=False)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "a file that is not a socket"
            raise CreddError(f"{self.path} is {kind}, which credd does not remove; set `socket:` (or $CREDD_SOCKET) "
                             "to a path where the socket can go")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path.name, dir_fd=self._dir)

    def _take_lock(self, name: str) -> int:
        fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=self._dir)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise SocketInUse(f"another `credd serve` (pid {holder}) is already serving {self.path}; "
                              f"stop it first (`{credd_command(self.hint_config, 'service', 'status')}`), or give "
                              "this one another socket") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        return fd

    def _bound_here(self) -> tuple[int, int]:
        """The socket file's identity, once it is sure the bind put it in the checked directory."""
        try:
            info = os.stat(self.path.name, dir_fd=self._dir, follow_symlinks=False)
        except FileNotFoundError:
            info = None
        if info is None or not stat.S_ISSOCK(info.st_mode):
            raise CreddError(f"{self.path.parent} was replaced while credd was starting; check who else writes to "
                             f"{self.path.parent.parent}, or set `socket:` elsewhere")
        return info.st_dev, info.st_ino

    def close(self) -> None:
        """Remove the socket file, then give up the lock (in that order: no window for a stale file).

        Only the file this listener bound is removed, and only in its own directory.
        """
        self.sock.close()
        if self._inode is not None:
            with contextlib.suppress(FileNotFoundError):
                info = os.stat(self.path.name, dir_fd=self._dir, follow_symlinks=False)
                if (info.st_dev, info.st_ino) == self._inode:
                    os.unlink(self.path.name, dir_fd=self._dir)
            self._inode = None
        for fd in (self._lock, self._dir):
            if fd >= 0:
                os.close(fd)
        self._lock = self._dir = -1


def _open_directory(directory: Path, uid: int) -> int:
    """A handle on the directory prepare_directory checked, checked again through the handle itself."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:  # ELOOP, ENOTDIR: swapped for a symlink or a file since the check
        raise CreddError(privatedir.not_a_directory(directory, SETTING)) from None
    try:
        _check_directory(directory, os.fstat(fd), uid)
    except BaseException:
        os.close(fd)
        raise
    return fd


class SocketServer:
    """Answers each request with `handler` in a thread pool (it may wait on STS or the keyring).

    `quick`, if given, is tried first on the event loop itself: it answers what
    it can from memory without blocking (fresh credentials, a ping) and returns
    None for the rest. The hop to the pool costs about half the throughput of
    the requests the hook makes all day.
    """

    def __init__(self, listener: Listener, handler: Handler, uid: int, *, read_timeout: float = 5.0,
                 first_byte_timeout: float = 1.0, max_clients: int = 256, workers: int = 16,
                 quick: QuickHandler | None = None) -> None:
        self.listener = listener
        self.handler = handler
        self.quick = quick
        self.uid = uid
        self.limits = ClientLimits(read_timeout=read_timeout, first_byte_timeout=first_byte_timeout,
                                   max_clients=max_clients)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="credd-request")
        self._server: asyncio.AbstractServer | None = None

    @classmethod
    def answering(cls, listener: Listener, answers: Callable[[], Answers], uid: int,
                  **options: Any) -> SocketServer:
        """The server over the daemon's answers; `answers()` gives the current ones at each request, as a
        reload replaces the daemon whole. Fresh credentials and pings are answered on the event loop."""
        return cls(listener, lambda request: answers().handle(request), uid,
                   quick=lambda request: answers().quick_reply(request), **options)

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve_client, sock=self.listener.sock,
                                                       limit=protocol.MAX_REQUEST + 1)

    async def close(self) -> None:
        """Stop taking connections; requests already being handled finish first."""
        if self._server is not None:
            self._server.close()
        await asyncio.get_running_loop().run_in_executor(None, self.pool.shutdown, True)
        self.listener.close()

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.limits.serve(reader, writer, self._respond)

    async def _respond(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes | None:
        reply = await self._reply_for(reader, writer)
        return None if reply is None else protocol.encode(reply)

    async def _reply_for(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> dict | None:
        # Read the (bounded) request before anything else, refusals included: closing a Unix
        # socket with unread data resets it, and the client would never see the refusal.
        try:
            line = await self.limits.read_request(reader, lambda first: _rest_of_line(reader, first))
        except Deadline as e:
            return protocol.error_reply("timeout", str(e))
        except (ValueError, asyncio.LimitOverrunError):
            return protocol.error_reply("bad-request", f"request longer than {protocol.MAX_REQUEST} bytes")
        uid = protocol.peer_uid(writer.get_extra_info("socket"))
        if uid != self.uid:
            log.warning("refused a client of uid %s", uid)
            return protocol.error_reply("forbidden", "this credd serves another user")
        if not line:
            return None  # connected and closed without a word
        try:
            request = protocol.decode_request(line)
        except protocol.ProtocolError as e:
            return protocol.error_reply("bad-request", str(e))
        if self.quick is not None:
            reply = self._handle(request, self.quick)
            if reply is not None:
                return reply
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, self._handle, request, self.handler)

    def _handle(self, request: dict, handler: Callable[[dict], dict | None]) -> dict | None:
        try:
            return handler(request)
        except CreddError as e:
            return protocol.error_reply("failed", str(e))
        except Exception as e:  # noqa: BLE001  a bug: log its type, never its message (it may hold a value)
            log.error("request %s failed: internal error %s", request.get("op"), type(e).__name__)
            return protocol.error_reply("internal", f"internal error ({type(e).__name__}); see the daemon's log")


async def _rest_of_line(reader: asyncio.StreamReader, first: bytes) -> bytes:
    """The request line after its first byte (nothing after a bare newline: an empty request)."""
    return b"" if first == b"\n" else await reader.readline()
