"""The container credentials endpoint: HTTP on loopback, for SDKs started with no profile and no keys.

An SDK given `AWS_CONTAINER_CREDENTIALS_FULL_URI` and
`AWS_CONTAINER_AUTHORIZATION_TOKEN` sends `GET <uri>` with the token as its
`Authorization` header and reads `AccessKeyId`, `SecretAccessKey`, `Token` and
`Expiration` from the JSON reply. The path names the profile
(`/v1/credentials/PROFILE`); the token must grant it.

Standard library only (asyncio streams on the daemon's own event loop, as the
Unix socket): the endpoint answers one small GET, and owning those ~100 lines
of parsing lets every limit be credd's own (no dependency decides how long an
idle client may hold a slot). Answers come from memory (`Answers.quick_reply`):
a profile without fresh credentials gets 503 and a message at once, never a
wait on STS; botocore gives this endpoint 2 s.

Hostile clients: a request head over MAX_HEAD bytes is refused (431), one
that sends nothing within `first_byte_timeout` or not all of its head within
`read_timeout` is closed, over `max_clients` a connection is closed as soon as
it is accepted, and a request that is not HTTP gets 400. A Host header that is
not a loopback name is refused (403): a web page's script, through DNS
rebinding, would name its own host. A missing, wrong, expired or revoked
token gets 401 and nothing else; a token that does not grant the profile, 403.
Tokens are never logged: their ids are.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from credd.endpoints import Answers
from credd.timefmt import utc_text

log = logging.getLogger("credd.container")

LOOPBACK_HOSTS = ("127.0.0.1", "::1")
HOST_NAMES = ("127.0.0.1", "localhost", "[::1]")  # what a loopback Host header may name (a port may follow)
PATH_PREFIX = "/v1/credentials/"
MAX_HEAD = 8 * 1024  # request line and headers; an SDK sends a few hundred bytes
DEFAULT_TTL = timedelta(hours=12)  # `credd exec --server`'s tokens: a working day, then they expire on their own
MAX_TTL = timedelta(days=7)
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 431: "Request Header Fields Too Large", 503: "Service Unavailable"}


@dataclass(frozen=True)
class Token:
    id: str  # short and not secret: what logs and `status` show
    value: str
    profiles: frozenset[str]
    expires: datetime


class Tokens:
    """The live tokens: issued, checked in constant time, revoked, expired. Thread-safe (socket ops run in a pool)."""

    def __init__(self) -> None:
        self._tokens: dict[str, Token] = {}
        self._lock = threading.Lock()

    def issue(self, profiles: list[str], ttl: timedelta, now: datetime) -> Token:
        token = Token(id=secrets.token_hex(4), value=secrets.token_urlsafe(32), profiles=frozenset(profiles),
                      expires=now + ttl)
        with self._lock:
            self._drop_expired(now)
            self._tokens[token.id] = token
        return token

    def revoke(self, token_id: str) -> bool:
        with self._lock:
            return self._tokens.pop(token_id, None) is not None

    def find(self, value: str, now: datetime) -> Token | None:
        """The live token with this value; every candidate compared in constant time, so timing tells nothing."""
        found = None
        with self._lock:
            self._drop_expired(now)
            for token in self._tokens.values():
                if hmac.compare_digest(token.value.encode(), value.encode(errors="replace")):
                    found = token
        return found

    def live(self, now: datetime) -> list[dict]:
        """Ids, profiles and expiry of the live tokens, as `status` shows them; never a value."""
        with self._lock:
            self._drop_expired(now)
            return [{"id": t.id, "profiles": sorted(t.profiles), "expires": utc_text(t.expires)}
                    for t in self._tokens.values()]

    def _drop_expired(self, now: datetime) -> None:
        for token_id in [t.id for t in self._tokens.values() if t.expires <= now]:
            del self._tokens[token_id]


@dataclass(frozen=True)
class Response:
    status: int
    body: dict

    def encode(self) -> bytes:
        payload = json.dumps(self.body).encode()
        head = (f"HTTP/1.1 {self.status} {REASONS[self.status]}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n")
        return head.encode() + payload


def refusal(status: int, message: str) -> Response:
    """An error reply; `Code` and `Message` capitalized, as the JavaScript SDK reads them (botocore shows the body)."""
    return Response(status, {"Code": REASONS[status].replace(" ", ""), "Message": message})


def answer(head: bytes, tokens: Tokens, answers: Answers, now: datetime) -> tuple[Response, str]:
    """The response to one request head, and what the log says of it (no token value, no credential). Pure but
    for `answers`, which reads the daemon's memory and never blocks."""
    try:
        method, path, headers = parse_head(head)
    except ValueError as e:
        return refusal(400, str(e)), f"malformed request: {e}"
    host = headers.get("host", "")
    if _host_name(host) not in HOST_NAMES:
        return refusal(403, "the Host header must name a loopback address"), "refused a non-loopback Host header"
    if method != "GET":
        return refusal(405, "only GET is served"), f"refused method {method[:16]!r}"
    if not path.startswith(PATH_PREFIX) or not path[len(PATH_PREFIX):]:
        return refusal(404, f"ask for {PATH_PREFIX}PROFILE"), "refused an unknown path"
    profile = path[len(PATH_PREFIX):]
    token = tokens.find(headers.get("authorization", ""), now)
    if token is None:
        return refusal(401, "unauthorized"), "refused a request without a valid token"
    if profile not in token.profiles:
        return refusal(403, "forbidden"), f"token {token.id}: refused, it does not grant the profile asked for"
    reply = answers.quick_reply({"op": "credentials", "profile": profile})
    if reply is None or not reply.get("ok"):
        return (refusal(503, f"credd holds no fresh credentials for profile {profile} right now; run "
                             "`credd status` to see why (it renews them on its own schedule)"),
                f"token {token.id}: profile {profile} has no fresh credentials")
    creds = reply["credentials"]
    body = {"AccessKeyId": creds["AccessKeyId"], "SecretAccessKey": creds["SecretAccessKey"],
            "Token": creds["SessionToken"], "Expiration": creds["Expiration"]}
    return Response(200, body), f"token {token.id}: served profile {profile}"


def parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    """Method, path and headers (names lower-cased) of an HTTP/1.x request head; ValueError if it is not one."""
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
        raise ValueError("a GET carries no body")
    return parts[0], parts[1].split("?", 1)[0], headers


def _host_name(host: str) -> str:
    """The Host header without its port: `[::1]:8080` -> `[::1]`, `localhost:80` -> `localhost`."""
    if host.startswith("["):
        return host[:host.find("]") + 1] if "]" in host else host
    return host.partition(":")[0]


class ContainerServer:
    """HTTP on a loopback address, answering from `answers()` (the current daemon) with `tokens`."""

    def __init__(self, host: str, port: int, answers: Callable[[], Answers], tokens: Tokens,
                 clock: Callable[[], datetime], *, read_timeout: float = 5.0, first_byte_timeout: float = 1.0,
                 max_clients: int = 64) -> None:
        self.host, self.port = host, port
        self.answers = answers
        self.tokens = tokens
        self.clock = clock
        self.read_timeout = read_timeout
        self.first_byte_timeout = min(first_byte_timeout, read_timeout)
        self.max_clients = max_clients
        self._clients = 0
        self._server: asyncio.AbstractServer | None = None

    @property
    def address(self) -> str:
        """Where it listens, as a URL's authority: `127.0.0.1:PORT` or `[::1]:PORT`."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve_client, self.host, self.port, limit=MAX_HEAD)
        self.port = self._server.sockets[0].getsockname()[1]  # the one the kernel chose for port 0

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._clients >= self.max_clients:
            writer.transport.abort()  # refused at accept: idle connections must not hold every slot
            return
        self._clients += 1
        try:
            response = await self._response(reader)
            if response is not None:
                writer.write(response.encode())
                await asyncio.wait_for(writer.drain(), self.read_timeout)
        except (ConnectionError, asyncio.TimeoutError):
            pass  # the client went away or would not read its reply
        finally:
            self._clients -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _response(self, reader: asyncio.StreamReader) -> Response | None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            first = await asyncio.wait_for(reader.read(1), self.first_byte_timeout)
            if not first:
                return None
            left = max(self.read_timeout - (loop.time() - started), 0.0)
            head = first + await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), left)
        except asyncio.TimeoutError:
            log.warning("closed a connection that sent no complete request in time")
            return None
        except asyncio.LimitOverrunError:
            log.warning("refused a request head over %d bytes", MAX_HEAD)
            return refusal(431, f"the request head is over {MAX_HEAD} bytes")
        except asyncio.IncompleteReadError:
            return refusal(400, "the request head ended early")
        try:
            response, said = answer(head, self.tokens, self.answers(), self.clock())
        except Exception as e:  # noqa: BLE001  a bug: its type only, never its message (it may hold a value)
            log.error("container endpoint: internal error %s", type(e).__name__)
            return Response(503, {"Code": "InternalError", "Message": "internal error; see credd's log"})
        (log.debug if response.status == 200 else log.warning)("container endpoint: %s (%d)", said, response.status)
        return response
