"""The container credentials endpoint: HTTP on loopback, for SDKs started with no profile and no keys.

An SDK given `AWS_CONTAINER_CREDENTIALS_FULL_URI` and
`AWS_CONTAINER_AUTHORIZATION_TOKEN` sends `GET <uri>` with the token as its
`Authorization` header and reads `AccessKeyId`, `SecretAccessKey`, `Token`,
`Expiration` and, where credd knows it (`Config.account_of`), `AccountId` from
the JSON reply. The path names the profile
(`/v1/credentials/PROFILE`); the token must grant it.

The HTTP, its limits and the Host-header check are `http`'s, shared with IMDS.
Answers come from memory (`Answers.quick_reply`): a profile without fresh
credentials gets 503 and a message at once, never a wait on STS; botocore gives
this endpoint 2 s.

Hostile clients: a request head over `http.MAX_HEAD` bytes is refused (431), one
that sends nothing within `first_byte_timeout` or not all of its head within
`read_timeout` is closed, over `max_clients` a connection is closed as soon as
it is accepted, and a request that is not HTTP gets 400. A Host header that is
not a loopback name is refused (403): a web page's script, through DNS
rebinding, would name its own host. A missing, wrong, expired or revoked
token gets 401 and nothing else; a token that does not grant the profile, 403.
Tokens are never logged: their ids are.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from credd.endpoints import Answers
from credd.endpoints.http import HttpEndpoint, Refused, Response, json_response, loopback_request, refusal
from credd.timefmt import utc_text

log = logging.getLogger("credd.container")

PATH_PREFIX = "/v1/credentials/"
DEFAULT_TTL = timedelta(hours=12)  # `credd exec --server`'s tokens: a working day, then they expire on their own
MAX_TTL = timedelta(days=7)


ROTATION_GRACE = timedelta(seconds=60)  # a rotated-out value still works this long: a read in flight is not refused


@dataclass(frozen=True)
class Token:
    id: str  # short and not secret: what logs and `status` show
    value: str
    profiles: frozenset[str]
    expires: datetime
    file: str | None = None  # where credd keeps the value for the client (`AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`)
    rotate_every: timedelta | None = None  # the daemon gives it a new value this often (it needs a `file`)
    rotated_at: datetime | None = None  # when it got its current value (issue or rotation)
    previous: str | None = field(default=None, repr=False)  # the value before the last rotation ...
    previous_until: datetime | None = None  # ... still honoured until then (ROTATION_GRACE)

    def __repr__(self) -> str:  # never the value: a Token in a log or a traceback shows its id only
        return f"Token(id={self.id!r}, profiles={sorted(self.profiles)}, expires={utc_text(self.expires)})"

    def rotation_due(self, now: datetime) -> bool:
        return (self.rotate_every is not None and self.rotated_at is not None
                and now >= self.rotated_at + self.rotate_every)


class Tokens:
    """The live tokens: issued, checked in constant time, rotated, revoked, expired. Thread-safe (socket ops run in a
    pool)."""

    def __init__(self) -> None:
        self._tokens: dict[str, Token] = {}
        self._lock = threading.Lock()
        self._dropped: list[Token] = []  # expired since `take_dropped` was last called: their files go

    def issue(self, profiles: list[str], ttl: timedelta, now: datetime, *, file: str | None = None,
              rotate_every: timedelta | None = None) -> Token:
        token = Token(id=secrets.token_hex(4), value=new_value(), profiles=frozenset(profiles),
                      expires=now + ttl, file=file, rotate_every=rotate_every, rotated_at=now)
        with self._lock:
            self._drop_expired(now)
            self._tokens[token.id] = token
        return token

    def rotate(self, token_id: str, now: datetime, grace: timedelta = ROTATION_GRACE) -> tuple[Token, Token] | None:
        """Give a live token a new value; the old one still works for `grace`, then never. (new, old), or None."""
        with self._lock:
            self._drop_expired(now)
            old = self._tokens.get(token_id)
            if old is None:
                return None
            new = replace(old, value=new_value(), rotated_at=now, previous=old.value,
                          previous_until=min(now + grace, old.expires))
            self._tokens[token_id] = new
        return new, old

    def restore(self, token: Token) -> None:
        """Put back a token as it was before a rotation whose file could not be written (if it is still live)."""
        with self._lock:
            if token.id in self._tokens:
                self._tokens[token.id] = token

    def revoke(self, token_id: str) -> Token | None:
        """The revoked token (its file is the caller's to remove), or None if no live token has that id."""
        with self._lock:
            return self._tokens.pop(token_id, None)

    def find(self, value: str, now: datetime) -> Token | None:
        """The live token with this value (or its previous one, within the grace); every candidate compared in
        constant time, so timing tells nothing."""
        found = None
        given = value.encode(errors="replace")
        with self._lock:
            self._drop_expired(now)
            for token in self._tokens.values():
                if hmac.compare_digest(token.value.encode(), given):
                    found = token
                in_grace = token.previous_until is not None and now < token.previous_until
                if hmac.compare_digest((token.previous or "").encode(), given) and in_grace and token.previous:
                    found = token
        return found

    def live(self, now: datetime) -> list[dict]:
        """Ids, profiles, expiry, file and rotation of the live tokens, as `status` shows them; never a value."""
        with self._lock:
            self._drop_expired(now)
            return [{"id": t.id, "profiles": sorted(t.profiles), "expires": utc_text(t.expires), "file": t.file,
                     "rotate_every": int(t.rotate_every.total_seconds()) if t.rotate_every else None,
                     "rotated_at": utc_text(t.rotated_at) if t.rotated_at else None}
                    for t in self._tokens.values()]

    def due(self, now: datetime) -> list[Token]:
        """The live tokens whose value is due for rotation."""
        with self._lock:
            self._drop_expired(now)
            return [t for t in self._tokens.values() if t.rotation_due(now)]

    def take_dropped(self, now: datetime) -> list[Token]:
        """The tokens that expired since the last call (their files are left to remove), once each."""
        with self._lock:
            self._drop_expired(now)
            dropped, self._dropped = self._dropped, []
        return dropped

    def all(self) -> list[Token]:
        with self._lock:
            return list(self._tokens.values())

    def _drop_expired(self, now: datetime) -> None:
        for token_id in [t.id for t in self._tokens.values() if t.expires <= now]:
            self._dropped.append(self._tokens.pop(token_id))


def new_value() -> str:
    """A token's value: 256 random bits, URL-safe (a header value with no CR or LF, as the SDKs require)."""
    return secrets.token_urlsafe(32)


def answer(head: bytes, tokens: Tokens, answers: Answers, now: datetime) -> tuple[Response, str]:
    """The response to one request head, and what the log says of it (no token value, no credential). Pure but
    for `answers`, which reads the daemon's memory and never blocks."""
    try:
        request = loopback_request(head)
    except Refused as e:
        return e.response, e.said
    if request.method != "GET":
        return refusal(405, "only GET is served"), f"refused method {request.method[:16]!r}"
    path = request.path
    if not path.startswith(PATH_PREFIX) or not path[len(PATH_PREFIX):]:
        return refusal(404, f"ask for {PATH_PREFIX}PROFILE"), "refused an unknown path"
    profile = path[len(PATH_PREFIX):]
    token = tokens.find(request.headers.get("authorization", ""), now)
    if token is None:
        return refusal(401, "unauthorized"), "refused a request without a valid token"
    if profile not in token.profiles:
        return refusal(403, "forbidden"), f"token {token.id}: refused, it does not grant the profile asked for"
    reply = answers.quick_reply({"op": "credentials", "profile": profile})
    if reply is None or not reply.get("ok"):
        return (refusal(503, answers.not_fresh(profile)),
                f"token {token.id}: profile {profile} has no fresh credentials")
    creds = reply["credentials"]
    body = {"AccessKeyId": creds["AccessKeyId"], "SecretAccessKey": creds["SecretAccessKey"],
            "Token": creds["SessionToken"], "Expiration": creds["Expiration"]}
    account = answers.account_id(profile)  # botocore and the JS SDK read it where given; None: not known here
    if account is not None:
        body["AccountId"] = account
    return json_response(200, body), f"token {token.id}: served profile {profile}"


class ContainerServer(HttpEndpoint):
    """The container endpoint on a loopback address, answering from `answers()` (the current daemon) with `tokens`."""

    name = "container endpoint"
    log = log

    def __init__(self, host: str, port: int, answers: Callable[[], Answers], tokens: Tokens,
                 clock: Callable[[], datetime], **options: Any) -> None:
        self.tokens = tokens
        super().__init__(host, port, answers, clock, **options)

    def describe(self) -> dict:
        """Its kind, URL, the profiles its live tokens grant, and those tokens (ids, never values)."""
        live = self.tokens.live(self.clock())
        return {"kind": "container", "address": self.address, "url": f"http://{self.address}{PATH_PREFIX}",
                "profiles": sorted({name for token in live for name in token["profiles"]}), "tokens": live}

    def _answer(self, head: bytes) -> tuple[Response, str]:
        return answer(head, self.tokens, self.answers(), self.clock())
