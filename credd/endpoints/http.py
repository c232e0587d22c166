"""The little HTTP the container endpoint and IMDS speak: one request head in, one response out, then close.

Standard library only (asyncio streams on the daemon's own event loop, as the Unix socket): each endpoint answers one
small request with no body, and owning these lines of parsing lets every limit be credd's own (no dependency decides
how long an idle client may hold a slot). What the request means is the endpoint's `answer`, a function of the head's
bytes: pure, so tests and the fuzzer drive it directly.

Hostile clients: a request head over MAX_HEAD bytes is refused (431), one that sends nothing within the first-byte
deadline or not all of its head within the read deadline is closed (`limits`), over the cap a connection is closed as
soon as it is accepted, and a request that is not HTTP/1.x gets 400. A client on a loopback port of another user of
this machine is refused (403) where the kernel says whose it is (`peer`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from credd.endpoints import Answers, peer
from credd.endpoints.limits import ClientLimits, Deadline

MAX_HEAD = 8 * 1024  # request line and headers; an SDK sends a few hundred bytes
HOST_NAMES = ("127.0.0.1", "localhost", "[::1]")  # what a loopback Host header may name (a port may follow)
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 431: "Request Header Fields Too Large", 503: "Service Unavailable"}


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without its query
    headers: dict[str, str] = field(default_factory=dict)  # names lower-cased


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"

    def encode(self) -> bytes:
        head = (f"HTTP/1.1 {self.status} {REASONS[self.status]}\r\nContent-Type: {self.content_type}\r\n"
                f"Content-Length: {len(self.body)}\r\nConnection: close\r\n\r\n")
        return head.encode() + self.body


def json_response(status: int, body: dict) -> Response:
    return Response(status, json.dumps(body).encode())


def text_response(status: int, text: str) -> Response:
    return Response(status, text.encode(), "text/plain")


def refusal(status: int, message: str) -> Response:
    """A refusal in the shape the SDKs read: `{"Code": "Unauthorized", "Message": ...}`, capitalized as IMDS
    writes its replies; the JavaScript SDK attaches these two to its error (botocore logs the whole body)."""
    return json_response(status, {"Code": REASONS[status].replace(" ", ""), "Message": message})


def parse_head(head: bytes) -> Request:
    """The request an HTTP/1.x head (request line and headers) makes; ValueError if it is not one, or carries a body."""
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError("the request head is not ASCII") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
        raise ValueError("not an HTTP/1.x request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip() or not name.isprintable():
            raise ValueError("a malformed header line")
        if name.lower() in headers:
            raise ValueError(f"header {name[:40]!r} given twice")
        headers[name.lower()] = value.strip()
    if headers.get("content-length", "0") != "0" or "transfer-encoding" in headers:
        raise ValueError("a request here carries no body")
    return Request(parts[0], parts[1].split("?", 1)[0], headers)


class Refused(Exception):
    """A request refused before its endpoint reads it: the response, and what the log says of it."""

    def __init__(self, response: Response, said: str) -> None:
        super().__init__(said)
        self.response, self.said = response, said


def loopback_request(head: bytes) -> Request:
    """The request, parsed, if it is HTTP/1.x and names a loopback Host; `Refused` (400 or 403) if not."""
    try:
        request = parse_head(head)
    except ValueError as e:
        raise Refused(refusal(400, str(e)), f"malformed request: {e}") from None
    if not loopback_host(request):
        raise Refused(refusal(403, "the Host header must name a loopback address"),
                      "refused a non-loopback Host header")
    return request


def loopback_host(request: Request) -> bool:
    """Whether the Host header names a loopback address. A web page's script, through DNS rebinding, would reach a
    loopback port under its own host name: a request naming any other host is refused."""
    return _host_name(request.headers.get("host", "")) in HOST_NAMES


def _host_name(host: str) -> str:
    """The Host header without its port: `[::1]:8080` -> `[::1]`, `localhost:80` -> `localhost`."""
    if host.startswith("["):
        return host[:host.find("]") + 1] if "]" in host else host
    return host.partition(":")[0]


def authority(host: str, port: int) -> str:
    """An address as a URL's authority: `127.0.0.1:PORT` or `[::1]:PORT`."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


Answer = Callable[[bytes], "tuple[Response, str]"]  # a head -> the response, and what the log says of it


class HttpListener:
    """An endpoint's HTTP on a loopback address: `answer` gives the response to each head, within `limits`."""

    def __init__(self, host: str, port: int, answer: Answer, limits: ClientLimits, log: logging.Logger,
                 name: str, uid: int) -> None:
        self.host, self.port = host, port
        self.answer = answer
        self.limits = limits
        self.log = log
        self.name = name  # what its log lines start with
        self.uid = uid  # the daemon's user: the only one (with root) served
        self._server: asyncio.AbstractServer | None = None

    @property
    def address(self) -> str:
        return authority(self.host, self.port)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve_client, self.host, self.port, limit=MAX_HEAD)
        self.port = self._server.sockets[0].getsockname()[1]  # the one the kernel chose for port 0

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.limits.serve(reader, writer, self._respond)

    async def _respond(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes | None:
        response = await self._response(reader, writer)
        return None if response is None else response.encode()

    async def _response(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Response | None:
        try:
            head = await self.limits.read_request(reader, lambda first: reader.readuntil(b"\r\n\r\n"))
        except Deadline:
            self.log.warning("%s: closed a connection that sent no complete request in time", self.name)
            return None
        except asyncio.LimitOverrunError:
            self.log.warning("%s: refused a request head over %d bytes", self.name, MAX_HEAD)
            return refusal(431, f"the request head is over {MAX_HEAD} bytes")
        except asyncio.IncompleteReadError:
            return refusal(400, "the request head ended early")
        if not head:
            return None
        if not peer.allowed(writer.get_extra_info("socket"), self.uid):
            self.log.warning("%s: refused a client on a loopback port of another user of this machine", self.name)
            return refusal(403, "forbidden")
        try:
            response, said = self.answer(head)
        except Exception as e:  # noqa: BLE001  a bug: its type only, never its message (it may hold a value)
            self.log.error("%s: internal error %s", self.name, type(e).__name__)
            return json_response(503, {"Code": "InternalError", "Message": "internal error; see credd's log"})
        said_at = self.log.debug if response.status == 200 else self.log.warning
        said_at("%s: %s (%d)", self.name, said, response.status)
        return response


class HttpEndpoint:
    """What the container endpoint and IMDS share: an `HttpListener` on loopback whose `_answer` reads the current
    daemon's answers (`answers()`: a reload replaces the daemon whole) at the daemon's time (`clock`)."""

    name = ""  # what its log lines start with, before the address
    log = logging.getLogger("credd.endpoints")

    def __init__(self, host: str, port: int, answers: Callable[[], Answers], clock: Callable[[], datetime], *,
                 uid: int, read_timeout: float = 5.0, first_byte_timeout: float = 1.0, max_clients: int = 64) -> None:
        self.answers = answers
        self.clock = clock
        limits = ClientLimits(read_timeout=read_timeout, first_byte_timeout=first_byte_timeout,
                              max_clients=max_clients)
        self.http = HttpListener(host, port, self._answer, limits, self.log, self.name, uid)

    @property
    def address(self) -> str:
        """Where it listens, as a URL's authority: `127.0.0.1:PORT` or `[::1]:PORT`."""
        return self.http.address

    def describe(self) -> dict:
        """What `status` and `doctor` show of it: `kind`, `address`, `url`, `profiles` (and what is the kind's own)."""
        raise NotImplementedError

    async def start(self) -> None:
        await self.http.start()
        self.http.name = f"{self.name} {self.address}"  # with the port the kernel chose

    async def close(self) -> None:
        await self.http.close()

    def _answer(self, head: bytes) -> tuple[Response, str]:
        raise NotImplementedError
