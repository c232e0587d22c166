"""A strict STS front: an HTTP server on loopback that checks what AWS checks and moto does not.

It sits before moto's server and forwards what it accepts. On the way it
  - checks `TokenCode` against the device's TOTP seed for the front's clock
    (the current window, or the one before for a code that arrived just after
    its window ended) and refuses a code used before, with the real
    AWS error (`AccessDenied`, "MultiFactorAuthentication failed with invalid
    MFA one time pass code. ");
  - gives every session its own `ASIA…` key (moto hands out one fixed example
    key for every GetSessionToken) and refuses it once expired (`ExpiredToken`)
    or revoked, and refuses GetSessionToken signed with a session;
  - refuses revoked long-term keys (`InvalidClientTokenId`,
    `SignatureDoesNotMatch`), denied roles (`AccessDenied`) and role chaining
    beyond one hour (`ValidationError`), as AWS does;
  - counts requests per Action and keeps them for assertions, and how many
    were in flight at once (`peak`);
  - can add a fixed latency to every reply, as a real STS's round trip;
  - injects faults on request: throttling, 500s, timeouts, dropped
    connections before or after moto handled the call, replies cut short
    after their headers, rewritten replies;
  - keeps its own clock `clock_offset` seconds ahead of the test's (behind
    when negative), as a real STS's clock differs from a machine's: the
    `Date` header and every `Expiration` follow it, and a request signed more
    than 15 minutes off it is refused as AWS refuses it (SigV4);
  - can leave out the `Date` header, or send one that does not parse;
  - can refuse a request with an error that quotes it back, its MFA code,
    key id and session token included (`echo`), as some services' errors do.

The clock is an argument (`now`), so a test that walks a frozen clock and
the front agree on which 30-second window a code belongs to.
"""

from __future__ import annotations

import http.client
import re
import secrets
import string
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit
from xml.sax.saxutils import escape

import pyotp

from tests import fault_tally

MFA_FAILED = "MultiFactorAuthentication failed with invalid MFA one time pass code. "
FAULTS = ("throttle", "server_error", "timeout", "drop", "drop_after", "truncate", "rewrite", "echo")
SIGNATURE_WINDOW = 15 * 60  # seconds: STS refuses a SigV4 request whose X-Amz-Date is further off its clock
ERRORS = {  # code -> (HTTP status, AWS's message)
    "InvalidClientTokenId": (403, "The security token included in the request is invalid."),
    "SignatureDoesNotMatch": (403, "The request signature we calculated does not match the signature you "
                                   "provided. Check your AWS Secret Access Key and signing method. Consult the "
                                   "service documentation for details."),
    "ExpiredToken": (400, "The security token included in the request is expired"),
    "Throttling": (400, "Rate exceeded"),
    "InternalFailure": (500, "An internal error occurred."),
}


@dataclass(frozen=True)
class Request:
    action: str
    key_id: str | None
    params: dict[str, str]
    signed_at: str | None = None  # X-Amz-Date, as botocore signed it (the machine's clock)


@dataclass
class Fault:
    kind: str
    action: str | None
    times: float
    rewrite: Callable[[bytes], bytes] | None = None


class StsFront:
    def __init__(self, upstream: str, *, now: Callable[[], float] = time.time,
                 seeds: Mapping[str, str] | None = None, hold: float = 5.0, latency: float = 0.0) -> None:
        self.upstream = urlsplit(upstream)
        self.now = now
        self.seeds = dict(seeds or {})
        self.hold = hold  # how long a "timeout" keeps the client waiting
        self.latency = latency  # added to every reply, as a round trip to a real STS is
        self.clock_offset = 0.0  # seconds STS's clock is ahead of `now` (Date, Expiration, SigV4 window)
        self.date_header: str | None = "auto"  # "auto": STS's time; None: no Date header; else sent as is
        self.signature_window: float | None = SIGNATURE_WINDOW  # None: take requests signed at any time
        self.calls: Counter[str] = Counter()
        self.requests: list[Request] = []
        self.accepted_codes: list[tuple[str, int, str]] = []  # (serial, window, code)
        self.issued: list[tuple[str, str, str]] = []  # (key id, secret, token) of sessions handed out
        self.sessions: dict[str, datetime] = {}  # session key id -> expiration
        self.revoked: dict[str, str] = {}  # key id -> error code
        self.denied_roles: set[str] = set()
        self._used: set[tuple[str, int]] = set()
        self._faults: deque[Fault] = deque()
        self._flights: list[tuple[bool, Request]] = []  # (arrived, else answered; the request), in order
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    # Control --------------------------------------------------------------------

    def start(self) -> StsFront:
        front = self

        class Handler(_Handler):
            pass

        Handler.front = front
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> StsFront:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def inject(self, kind: str, action: str | None = None, times: float = 1,
               rewrite: Callable[[bytes], bytes] | None = None) -> None:
        """Apply fault `kind` to the next `times` requests (of `action`, or any); float('inf') for ever."""
        assert kind in FAULTS, kind
        with self._lock:
            self._faults.append(Fault(kind, action, times, rewrite))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def revoke(self, key_id: str, code: str = "InvalidClientTokenId") -> None:
        self.revoked[key_id] = code

    def burn(self, serial: str, timestamp: float) -> None:
        """Mark the code of `timestamp`'s window as used, as if another tool had sent it."""
        with self._lock:
            self._used.add((serial, int(timestamp // 30)))

    def sts_now(self) -> float:
        """STS's clock: the test's, moved by `clock_offset`."""
        return self.now() + self.clock_offset

    def count(self, action: str) -> int:
        with self._lock:
            return self.calls[action]

    def of(self, action: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.action == action]

    def peak(self, which: Callable[[Request], bool]) -> int:
        """The most requests `which` takes that were in flight at once (arrived, not yet answered)."""
        with self._lock:
            flights = list(self._flights)
        now = most = 0
        for arrived, request in flights:
            if which(request):
                now += 1 if arrived else -1
                most = max(most, now)
        return most

    def _fly(self, arrived: bool, request: Request) -> None:
        with self._lock:
            self._flights.append((arrived, request))

    # Decisions (called by the handler threads) ----------------------------------

    def _record(self, request: Request) -> Fault | None:
        with self._lock:
            self.calls[request.action] += 1
            self.requests.append(request)
            for fault in self._faults:
                if fault.action in (None, request.action) and fault.times > 0:
                    fault.times -= 1
                    fault_tally.count(f"sts:{fault.kind}")
                    return fault
        return None

    def _refusal(self, request: Request) -> tuple[str, str] | None:
        """(error code, message) when AWS would refuse this request."""
        key_id, params = request.key_id or "", request.params
        stale = self._stale_signature(request.signed_at)
        if stale is not None:
            return "SignatureDoesNotMatch", stale
        if key_id in self.revoked:
            code = self.revoked[key_id]
            return code, ERRORS[code][1]
        if key_id in self.sessions:
            if self.now() >= self.sessions[key_id].timestamp():
                return "ExpiredToken", ERRORS["ExpiredToken"][1]
            if request.action == "GetSessionToken":
                return "AccessDenied", "Cannot call GetSessionToken with session credentials"
            if request.action == "AssumeRole" and int(params.get("DurationSeconds", "3600")) > 3600:
                return "ValidationError", ("The requested DurationSeconds exceeds the 1 hour session limit for "
                                           "roles assumed by role chaining.")
        if (request.action == "GetSessionToken" and ("SerialNumber" in params or "TokenCode" in params)
                and not self._accept_code(params.get("SerialNumber", ""), params.get("TokenCode", ""))):
            return "AccessDenied", MFA_FAILED
        if request.action == "AssumeRole" and params.get("RoleArn") in self.denied_roles:
            return "AccessDenied", (f"User: arn:aws:iam::111111111111:user/test is not authorized to perform: "
                                    f"sts:AssumeRole on resource: {params.get('RoleArn')}")
        return None

    def _stale_signature(self, signed_at: str | None) -> str | None:
        """AWS's message when the request was signed more than 15 minutes off STS's clock, else None."""
        if signed_at is None or self.signature_window is None:
            return None
        try:
            signed = datetime.strptime(signed_at, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            return None
        sts_now = datetime.fromtimestamp(self.sts_now(), timezone.utc)
        window = timedelta(seconds=self.signature_window)
        stamp = "%Y%m%dT%H%M%SZ"
        if signed < sts_now - window:
            return (f"Signature expired: {signed:{stamp}} is now earlier than {sts_now - window:{stamp}} "
                    f"({sts_now:{stamp}} - 15 min.)")
        if signed > sts_now + window:
            return (f"Signature not yet current: {signed:{stamp}} is still later than {sts_now + window:{stamp}} "
                    f"({sts_now:{stamp}} + 15 min.)")
        return None

    def _accept_code(self, serial: str, code: str) -> bool:
        now = self.now()
        seed = self.seeds.get(serial)
        if seed is None:
            return False
        # The current window, or the one before for a code that was made just before a window ended and arrived
        # in the next: RFC 6238 (5.2) allows one step back for transmission delay, and AWS takes such a code.
        # A busy machine's request can take seconds to arrive; refusing it would be stricter than AWS.
        current = int(now // 30)
        with self._lock:
            for window in (current, current - 1):
                if code == pyotp.TOTP(seed).at(window * 30) and (serial, window) not in self._used:
                    self._used.add((serial, window))
                    self.accepted_codes.append((serial, window, code))
                    return True
        return False

    def _issue_session(self, body: bytes) -> bytes:
        """Give the session moto made its own key, secret and token, and remember when it expires."""
        text = body.decode()
        expiration = re.search(r"<Expiration>([^<]+)</Expiration>", text)
        key_id = "ASIA" + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(16))
        secret = secrets.token_urlsafe(30).replace("-", "+").replace("_", "/")[:40]
        token = "FwoG" + secrets.token_urlsafe(150).replace("-", "+").replace("_", "/")
        if expiration is None:
            return body
        # Every stream the suite captures is scanned for these (tests/fixtures_secrets.py).
        from tests import known_secrets

        known_secrets.remember(secret, "a session secret key issued by the STS front")
        known_secrets.remember(token, "a session token issued by the STS front")
        with self._lock:
            self.sessions[key_id] = datetime.fromisoformat(expiration.group(1).replace("Z", "+00:00"))
            self.issued.append((key_id, secret, token))
        for tag, value in (("AccessKeyId", key_id), ("SecretAccessKey", secret), ("SessionToken", token)):
            text = re.sub(f"<{tag}>[^<]*</{tag}>", f"<{tag}>{value}</{tag}>", text)
        return text.encode()

    def _forward(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, str, bytes]:
        connection = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=10)
        try:
            forwarded = {k: v for k, v in headers.items() if k.lower() not in ("connection", "keep-alive")}
            connection.request("POST", "/", body=body, headers=forwarded)
            response = connection.getresponse()
            return response.status, response.getheader("Content-Type", "text/xml"), response.read()
        finally:
            connection.close()


def error_body(code: str, message: str) -> bytes:
    kind = "Receiver" if ERRORS.get(code, (400,))[0] >= 500 else "Sender"
    return (f'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>{kind}</Type>'
            f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
            f"<RequestId>{secrets.token_hex(16)}</RequestId></ErrorResponse>").encode()


def echo_message(request: Request, token: str | None) -> str:
    """An error message that quotes the request back: what credd must never show as it is."""
    return (f"1 validation error detected: Value '{request.params.get('TokenCode', '')}' at 'tokenCode' failed to "
            f"satisfy constraint; request {request.action} by {request.key_id} with token {token or '-'}")


def rewrite_expiration(change: Callable[[datetime], datetime]) -> Callable[[bytes], bytes]:
    """A `rewrite` that replaces the reply's Expiration `e` with `change(e)` (both aware, UTC)."""

    def rewrite(body: bytes) -> bytes:
        def one(match: re.Match[str]) -> str:
            old = datetime.fromisoformat(match.group(1).replace("Z", "+00:00"))
            return f"<Expiration>{change(old).astimezone(timezone.utc):%Y-%m-%dT%H:%M:%SZ}</Expiration>"

        return re.sub(r"<Expiration>([^<]+)</Expiration>", one, body.decode()).encode()

    return rewrite


def status_of(code: str) -> int:
    if code in ERRORS:
        return ERRORS[code][0]
    return 403 if code == "AccessDenied" else 400


class _Handler(BaseHTTPRequestHandler):
    front: StsFront
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without this, Nagle's algorithm and the
    # client's delayed ACK stall every reply by 40 ms, and the figures measure that.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:  # quiet: tests read the front's counters
        pass

    def do_POST(self) -> None:
        front = self.front
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        params = dict(parse_qsl(body.decode(), keep_blank_values=True))
        credential = re.search(r"Credential=([A-Z0-9]+)/", self.headers.get("Authorization", ""))
        request = Request(params.get("Action", "?"), credential.group(1) if credential else None, params,
                          self.headers.get("X-Amz-Date"))
        self._request: Request | None = request
        front._fly(True, request)
        try:
            self._answer(request, body)
        finally:
            self._landed()

    def _landed(self) -> None:
        """Count the request as answered before its reply goes out, so a call the reply lets the client make
        next is never counted as in flight beside it."""
        if self._request is not None:
            self.front._fly(False, self._request)
            self._request = None

    def _answer(self, request: Request, body: bytes) -> None:
        front = self.front
        fault = front._record(request)
        kind = fault.kind if fault else None
        if front.latency:
            time.sleep(front.latency)
        if kind == "drop":
            return self._drop()
        if kind == "timeout":
            front._released.wait(front.hold)
            return self._drop()
        if kind == "throttle":
            return self._error("Throttling", ERRORS["Throttling"][1])
        if kind == "server_error":
            return self._error("InternalFailure", ERRORS["InternalFailure"][1])
        if kind == "echo":
            return self._error("ValidationError", echo_message(request, self.headers.get("X-Amz-Security-Token")))
        refusal = front._refusal(request)
        if refusal is not None:
            return self._error(*refusal)
        status, content_type, reply = front._forward(body, dict(self.headers))
        if status == 200 and request.action == "GetSessionToken":
            reply = front._issue_session(reply)
        if status == 200 and front.clock_offset:
            reply = rewrite_expiration(lambda e: e + timedelta(seconds=front.clock_offset))(reply)
        if kind == "drop_after":
            return self._drop()
        if kind == "truncate":
            return self._reply(status, content_type, reply, cut=len(reply) // 2)
        if kind == "rewrite" and fault is not None and fault.rewrite is not None:
            reply = fault.rewrite(reply)
        self._reply(status, content_type, reply)

    def _error(self, code: str, message: str) -> None:
        self._reply(status_of(code), "text/xml", error_body(code, message))

    def _reply(self, status: int, content_type: str, body: bytes, cut: int | None = None) -> None:
        """The reply; with `cut`, only its first `cut` bytes (under the full Content-Length), then a close."""
        self._landed()
        self.send_response_only(status)
        self.send_header("Server", "sts-front")
        date = self.front.date_header
        if date is not None:
            self.send_header("Date", formatdate(self.front.sts_now(), usegmt=True) if date == "auto" else date)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body if cut is None else body[:cut])
        if cut is not None:
            self.close_connection = True

    def _drop(self) -> None:
        """Close without a byte of reply, as a dead link or a crashed proxy does."""
        self._landed()
        self.close_connection = True

