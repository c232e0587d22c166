"""IMDSv2 emulation: the instance metadata an SDK asks for its credentials, from loopback, one profile per listener.

An SDK given `AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:PORT/` (or a container on the host's network) does
what it does on EC2: `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds`, then, with the token in
`X-aws-ec2-metadata-token`, `GET /latest/meta-data/iam/security-credentials/` (the role's name: here the profile's)
and `GET .../security-credentials/NAME` (the keys, with `Code`, `LastUpdated`, `Type` and `Expiration`). Also
`security-credentials-extended/` (with `AccountId` where the config says it) and `placement/region` and
`placement/availability-zone` (the profile's region; the zone is the region plus `a`, from which SDKs take the
region: credd runs on no zone).

No IMDSv1: a GET without a valid session token gets 401, whatever it asks for. A PUT that carries
`X-Forwarded-For` is refused (403), as real IMDS refuses it: a proxy in front (a server-side request forgery) must
not get a token. The rest of the hostile-client handling, the Host-header check against DNS rebinding included, is
`http`'s and `limits`' (shared with the container endpoint). Answers come from memory (`Answers.quick_reply`): a
profile without fresh credentials gets 503 with the reason at once, never a wait; botocore gives IMDS 1 s and one
attempt.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from credd.endpoints import Answers
from credd.endpoints.http import (
    HttpEndpoint,
    Refused,
    Request,
    Response,
    json_response,
    loopback_request,
    refusal,
    text_response,
)
from credd.timefmt import utc_text

log = logging.getLogger("credd.imds")

TOKEN_PATH = "/latest/api/token"
TTL_HEADER = "x-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "x-aws-ec2-metadata-token"
MAX_TTL = 21600  # seconds, as real IMDS: 6 hours
MAX_SESSIONS = 4096  # live session tokens kept; past it the soonest to expire goes (a PUT flood costs memory once)
ROLE_PATHS = ("/latest/meta-data/iam/security-credentials/", "/latest/meta-data/iam/security-credentials-extended/")
REGION_PATH = "/latest/meta-data/placement/region"
ZONE_PATH = "/latest/meta-data/placement/availability-zone"


class Sessions:
    """IMDSv2 session tokens: random (256 bits), kept only as their SHA-256 (a lookup by digest tells nothing of a
    guess by its timing), expired by the clock. Thread-safe."""

    def __init__(self, limit: int = MAX_SESSIONS) -> None:
        self._expiry: dict[bytes, datetime] = {}
        self._limit = limit
        self._lock = threading.Lock()

    def issue(self, ttl: int, now: datetime) -> str:
        value = secrets.token_urlsafe(32)
        with self._lock:
            self._drop_expired(now)
            if len(self._expiry) >= self._limit:
                del self._expiry[min(self._expiry, key=self._expiry.__getitem__)]
            self._expiry[_digest(value)] = now + timedelta(seconds=ttl)
        return value

    def valid(self, value: str, now: datetime) -> bool:
        with self._lock:
            expires = self._expiry.get(_digest(value))
        return expires is not None and now < expires

    def _drop_expired(self, now: datetime) -> None:
        for digest in [d for d, expires in self._expiry.items() if expires <= now]:
            del self._expiry[digest]


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode(errors="replace")).digest()


def answer(head: bytes, profile: str, sessions: Sessions, answers: Answers, now: datetime) -> tuple[Response, str]:
    """The response to one request head for the listener of `profile`, and what the log says of it (no token, no
    credential). Pure but for `sessions` (it issues tokens) and `answers`, which reads the daemon's memory."""
    try:
        request = loopback_request(head)
    except Refused as e:
        return e.response, e.said
    if request.method == "PUT":
        return _put(request, sessions, now)
    if request.method != "GET":
        return refusal(405, "only GET and PUT are served"), f"refused method {request.method[:16]!r}"
    if not sessions.valid(request.headers.get(TOKEN_HEADER, ""), now):
        return refusal(401, "unauthorized"), "refused a GET without a valid session token (no IMDSv1)"
    path = request.path
    if path.rstrip("/") in (REGION_PATH, ZONE_PATH):  # botocore asks for `availability-zone/`
        region = answers.region(profile)
        if region is None:
            return refusal(404, "not found"), f"profile {profile} is gone from the config"
        zone = path.rstrip("/") == ZONE_PATH
        return text_response(200, f"{region}a" if zone else region), f"served the {'zone' if zone else 'region'}"
    for prefix in ROLE_PATHS:
        if path in (prefix, prefix[:-1]):
            return text_response(200, profile), "served the role name"
        if path == prefix + profile:
            return _credentials(profile, answers, now, extended=prefix != ROLE_PATHS[0])
    return refusal(404, "not found"), f"refused an unknown path ({len(path)} characters)"


def _put(request: Request, sessions: Sessions, now: datetime) -> tuple[Response, str]:
    if request.path != TOKEN_PATH:
        return refusal(404, f"PUT is for {TOKEN_PATH} only"), "refused a PUT to another path"
    if "x-forwarded-for" in request.headers:
        return refusal(403, "forbidden"), "refused a token PUT that came through a proxy (X-Forwarded-For)"
    ttl = request.headers.get(TTL_HEADER, "")
    if not (ttl.isascii() and ttl.isdigit() and 1 <= int(ttl) <= MAX_TTL):
        return (refusal(400, f"{TTL_HEADER} must be a number of seconds from 1 to {MAX_TTL}"),
                "refused a token PUT without a valid TTL")
    return text_response(200, sessions.issue(int(ttl), now)), f"issued a session token for {int(ttl)} s"


def _credentials(profile: str, answers: Answers, now: datetime, *, extended: bool) -> tuple[Response, str]:
    reply = answers.quick_reply({"op": "credentials", "profile": profile})
    if reply is None or not reply.get("ok"):
        return (json_response(503, {"Code": "CredentialsUnavailable", "Message": answers.not_fresh(profile),
                                    "LastUpdated": utc_text(now)}),
                f"profile {profile} has no fresh credentials")
    creds = reply["credentials"]
    # When credd got them, as EC2 says when it rotated the role's. Unknown only in the moment between the engine
    # taking new credentials and the daemon noting when: then they were got just now.
    updated = answers.last_updated(profile, creds["AccessKeyId"]) or now
    body = {"Code": "Success", "LastUpdated": utc_text(updated), "Type": "AWS-HMAC",
            "AccessKeyId": creds["AccessKeyId"],
            "SecretAccessKey": creds["SecretAccessKey"], "Token": creds["SessionToken"],
            "Expiration": creds["Expiration"]}
    account = answers.account_id(profile) if extended else None
    if account is not None:
        body["AccountId"] = account
    return json_response(200, body), f"served profile {profile}"


class ImdsServer(HttpEndpoint):
    """IMDSv2 on a loopback address for one profile, answering from `answers()` (the current daemon)."""

    name = "imds"
    log = log

    def __init__(self, host: str, port: int, profile: str, answers: Callable[[], Answers],
                 clock: Callable[[], datetime], **options: Any) -> None:
        self.profile = profile
        self.sessions = Sessions()
        super().__init__(host, port, answers, clock, **options)

    def describe(self) -> dict:
        """Its kind, URL and the profile it serves."""
        return {"kind": "imds", "address": self.address, "url": f"http://{self.address}/", "profiles": [self.profile]}

    def _answer(self, head: bytes) -> tuple[Response, str]:
        return answer(head, self.profile, self.sessions, self.answers(), self.clock())
