"""The socket under fuzzing: arbitrary bytes, arbitrary, deep and huge JSON, wrong types for every field,
and well-formed requests with hostile values, sent in pieces and half-closed or not, to a real
SocketServer whose handler is a real `Daemon` (with its engine, a local STS and a credentials file).

After every input: the server answers a ping; the reply was one line of JSON with `ok`, and an error
reply carries a short message without internals; no secret is in any reply but a `credentials` reply
for a real profile; and the daemon never saw a request that breaks the protocol's rules.
"""

from __future__ import annotations

import json
import logging
import re
import reprlib
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from credd import mfa, protocol
from credd.daemon import Daemon
from credd.engine import Engine
from credd.filesync import CredentialsWriter
from credd.model import AccessKey, Secret
from credd.store import Store
from tests.conftest import TEST_KEY_ID, TEST_SECRET_KEY, TEST_TOTP_SEED
from tests.fixtures_sts import SERIAL, SOURCE, MemoryKeyring, make_config
from tests.socket_helpers import RunningServer, exchange
from tests.sts_front import StsFront

SETTINGS = settings(max_examples=1500, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MAX_MESSAGE = 1000  # characters in an error reply's message
ERRORS = {"bad-request", "timeout", "busy", "failed", "unknown-profile", "unknown-source", "mfa-required"}
INTERNALS = re.compile(r"Traceback|File \"|Error\(|Exception\(|object at 0x|<class |<function ")


class Served:
    """A Daemon behind a real socket server, and what its handler was asked."""

    def __init__(self, path: Path, daemon: Daemon, front: StsFront) -> None:
        self.path = path
        self.daemon = daemon
        self.front = front
        self.handled: list[str] = []  # each request's op, as the daemon got it
        self.broken: list[str] = []  # requests that break the rules, shortened
        self.log: list[str] = []
        self.known: set[str] = {TEST_SECRET_KEY, TEST_TOTP_SEED}

    def __repr__(self) -> str:  # hypothesis prints it with every failing example
        return f"Served({self.path})"

    def secrets(self) -> set[str]:
        """Every secret the daemon has handled: the long-term key, the seed, each session and role key
        (role keys come from moto, not the front: they are collected as the daemon holds them)."""
        self.known.update(value for _, secret, token in self.front.issued for value in (secret, token))
        for name in self.daemon.config.profiles:
            credentials = self.daemon.engine.credentials(name)
            if credentials is not None:
                self.known.update((credentials.secret_access_key.reveal(), credentials.session_token.reveal()))
        return self.known


def follows_the_rules(request: object) -> bool:
    """The protocol's rules, written out again: what the daemon may be handed."""
    def name(value: object) -> bool:
        return type(value) is str and 0 < len(value) <= protocol.MAX_NAME and value.isprintable()

    if type(request) is not dict:
        return False
    op = request.get("op")
    if op in ("ping", "status"):
        return True
    if op == "credentials":
        return name(request.get("profile"))
    if op == "mfa":
        code = request.get("code")
        return name(request.get("source")) and type(code) is str and len(code) <= protocol.MAX_CODE
    if op == "refresh":
        profiles = request.get("profiles")
        return type(profiles) is list and all(name(item) for item in profiles)
    return False


class _Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(self.format(record))


@pytest.fixture(scope="module")
def served(moto_url: str, sts_clients) -> Iterator[Served]:
    """The whole request path on the real clock: socket, server, validation, Daemon, engine, local STS."""
    root = Path(tempfile.mkdtemp(prefix="credd-fz-"))  # short: sun_path holds 108 bytes
    front = StsFront(moto_url, seeds={SERIAL: TEST_TOTP_SEED}, hold=2.0).start()
    config = make_config(front.url, roles=1)
    store = Store(MemoryKeyring(), config.keyring_service)
    store.set_access_key(SOURCE, AccessKey(TEST_KEY_ID, Secret(TEST_SECRET_KEY)))
    store.set_totp_seed(SOURCE, Secret(TEST_TOTP_SEED))
    inbox = mfa.CodeInbox()
    engine = Engine(config, store=store, clients=sts_clients,
                    drivers=mfa.make_drivers(seeds=store.get_totp_seed, inbox=inbox, command_timeout=10),
                    windows=mfa.UsedWindows(mfa.state_file(str(root / "state"))))
    daemon = Daemon(config, engine, inbox, plan=lambda source, when: None,
                    write=CredentialsWriter(root / "aws" / "credentials"))
    state = Served(root / "d" / "credd.sock", daemon, front)
    lock = threading.Lock()

    def seen(request: dict) -> None:
        with lock:
            state.handled.append(reprlib.repr(request.get("op")) if isinstance(request, dict) else "?")
            if not follows_the_rules(request):
                state.broken.append(reprlib.repr(request))

    def handler(request: dict) -> dict:
        seen(request)
        return daemon.handle(request)

    def quick(request: dict) -> dict | None:  # as `credd serve` wires it: tried first, on the event loop
        seen(request)
        return daemon.quick_reply(request)

    collect = _Collect(state.log)
    logger = logging.getLogger("credd")
    logger.addHandler(collect)
    running = RunningServer(state.path, handler, read_timeout=2.0, quick=quick)
    try:
        yield state
    finally:
        running.stop()
        logger.removeHandler(collect)
        front.stop()
        shutil.rmtree(root, ignore_errors=True)


def first_line(payload: bytes) -> bytes:
    return payload.split(b"\n", 1)[0]


def check(served: Served, payload: bytes, chunks: list[int], half_close: bool) -> dict | None:
    if not half_close and b"\n" not in payload:
        payload += b"\n"  # else the server waits for the rest until its read timeout
    raw = exchange(served.path, payload, chunks, half_close)
    oversized = len(first_line(payload)) + 1 > protocol.MAX_REQUEST
    if not raw:
        assert not payload or oversized, "no reply to a request"
        reply = None
    else:
        assert raw.endswith(b"\n") and raw.count(b"\n") == 1, f"not one line: {raw[:200]!r}"
        reply = json.loads(raw)
        assert type(reply) is dict and type(reply.get("ok")) is bool, reply
        if not reply["ok"] and "profiles" not in reply:
            assert reply.get("error") in ERRORS, reply
            message = reply.get("message")
            assert type(message) is str and len(message) <= MAX_MESSAGE, len(str(message))
            assert "\n" not in message and "\r" not in message, message
            assert not INTERNALS.search(message), message
        if not (reply["ok"] and "credentials" in reply and is_credentials_request(served, payload)):
            text = raw.decode()
            for secret in served.secrets():
                assert secret not in text, "a secret in a reply that is not the profile's credentials"
    assert not served.broken, f"the daemon was handed {served.broken}"
    assert protocol.request(str(served.path), {"op": "ping"}, 10)["ok"] is True
    return reply


def is_credentials_request(served: Served, payload: bytes) -> bool:
    try:
        request = json.loads(first_line(payload))
    except ValueError:
        return False
    return (type(request) is dict and request.get("op") == "credentials"
            and request.get("profile") in served.daemon.config.profiles)


# Strategies -------------------------------------------------------------------------------------

REAL_PROFILES = ["alice-session", "role-00"]
NAMES = st.integers(0, 2).flatmap(lambda n: st.sampled_from([*REAL_PROFILES, SOURCE]) if n == 0 else st.one_of(
    st.sampled_from(["nope", "", " ", "role-00\x00", "role-00\n", "\x00", "a" * 64, "a" * 65,
                     "x" * 5000, "\ud800", "\u202eevil", "ünï", "🔑" * 64, "../../etc/passwd", "%s%n", "${HOME}",
                     "<script>", TEST_KEY_ID]),
    st.text(max_size=80),
))
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)), max_leaves=12)
HOSTILE = st.one_of(NAMES, JSON_VALUES, st.lists(NAMES, max_size=5), st.integers(-(10 ** 30), 10 ** 30))
ODD_OPS = st.one_of(st.sampled_from(["PING", "ping ", "ping\x00", "", "steal"]), JSON_VALUES)
OPS = st.integers(0, 4).flatmap(lambda n: st.sampled_from(protocol.OPS) if n else ODD_OPS)  # mostly real ones
CODES = st.one_of(st.sampled_from(["123456", " 123456 ", "١٢٣٤٥٦", "12345", "1234567", "", "0" * 17]),
                  st.text(max_size=20), JSON_VALUES)


@st.composite
def requests(draw) -> dict:
    """A request-shaped object: a real op or not, each field right, missing, or hostile, extra fields."""
    request: dict = {} if draw(st.integers(0, 9)) == 0 else {"op": draw(OPS)}
    op = request.get("op")
    if op == "credentials" or draw(st.integers(0, 4)) == 0:
        request["profile"] = draw(NAMES if draw(st.booleans()) else HOSTILE)
    if op == "mfa" or draw(st.integers(0, 4)) == 0:
        request["source"] = draw(NAMES if draw(st.booleans()) else HOSTILE)
        request["code"] = draw(CODES)
        # A valid code for the real source starts a new session, which waits for the next MFA window.
        assume(not (request["source"] == SOURCE and type(request["code"]) is str
                    and mfa.CODE.fullmatch(request["code"].strip())))
    if op == "refresh" or draw(st.integers(0, 4)) == 0:
        request["profiles"] = draw(st.one_of(st.lists(NAMES, max_size=4), HOSTILE))
    if draw(st.integers(0, 3)) == 0:
        request.update(draw(st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=3)))
    return request


def encoded(request: dict, ascii_only: bool) -> bytes:
    return json.dumps(request, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def nested(depth: int, inner: str = "") -> bytes:
    return ("[" * depth + inner + "]" * depth).encode()


PAYLOADS = st.one_of(
    st.binary(max_size=300),
    st.builds(encoded, requests(), st.booleans()),
    st.builds(lambda value: json.dumps(value).encode(), JSON_VALUES),
    st.builds(lambda depth: b'{"op": "ping", "x": ' + nested(depth) + b"}", st.integers(1, 9000)),
    st.builds(nested, st.integers(1, 20000)),
    st.builds(lambda n, op: json.dumps({"op": op, "profile": "x" * n, "source": "y", "code": "1", "profiles": []})
              .encode(), st.integers(0, 20000), st.sampled_from(["credentials", "mfa", "refresh"])),
    st.sampled_from([b"", b"\n", b"\r\n", b"{}", b"null", b"NaN", b'{"op":"ping"}\r\n', b'\xef\xbb\xbf{"op":"ping"}',
                     b'{"op":"ping"}\n{"op":"status"}\n', b'{"op":"ping","op":"credentials"}',
                     b'{"op":"credentials","profile":"role-00","profile":7}', b"1" * 5000, b"1e999999",
                     '{"op":"ping"}'.encode("utf-16"), b'{"op":"credentials","profile":"\\ud800"}']),
)


@st.composite
def framing(draw, payload: bytes) -> tuple[bytes, list[int], bool]:
    """Where the payload is cut into writes, a newline or not, and whether the client half-closes."""
    if draw(st.booleans()):
        payload += draw(st.sampled_from([b"\n", b"\r\n", b"\n\n", b"\ngarbage after the line"]))
    chunks = draw(st.lists(st.integers(1, 64), max_size=4))
    return payload, chunks, draw(st.booleans())


@SETTINGS
@given(data=st.data())
def test_the_server_survives_anything_and_answers_within_the_rules(served: Served, data: st.DataObject) -> None:
    payload, chunks, half_close = data.draw(framing(data.draw(PAYLOADS)))
    check(served, payload, chunks, half_close)


@settings(SETTINGS, max_examples=800)
@given(request=requests(), ascii_only=st.booleans())
def test_hostile_values_in_well_formed_requests(served: Served, request: dict, ascii_only: bool) -> None:
    reply = check(served, encoded(request, ascii_only) + b"\n", [], True)
    assert reply is not None
    if not follows_the_rules(json.loads(json.dumps(request))):
        assert reply == {"ok": False, "error": "bad-request", "message": reply["message"]}, reply


def test_a_real_profile_gets_its_credentials_and_no_one_else_does(served: Served) -> None:
    """The positive case the properties rely on: the secret-bearing reply exists and names a real profile."""
    reply = check(served, b'{"op": "credentials", "profile": "role-00"}\n', [3, 5], False)
    assert reply["ok"] and reply["credentials"]["SecretAccessKey"] in served.secrets()
    assert reply["credentials"]["SecretAccessKey"] != TEST_SECRET_KEY


def test_the_daemon_log_holds_no_secret(served: Served) -> None:
    check(served, b'{"op": "status"}\n', [], True)
    text = "\n".join(served.log)
    for secret in served.secrets():
        assert secret not in text, "a secret in the daemon's log"
    assert "internal error" not in text


# Plain examples of what the fuzzing found -------------------------------------------------------

@pytest.mark.parametrize("request_, error", [
    ({"op": "credentials", "profile": "x" * 10000}, "credentials needs 'profile' as a name of 1 to 64"),
    ({"op": "mfa", "source": "y" * 10000, "code": "123456"}, "mfa needs 'source' as a name of 1 to 64"),
    ({"op": "refresh", "profiles": ["ok", "z" * 65]}, "refresh needs 'profiles' as a list of names"),
    ({"op": "credentials", "profile": "role-00\x00"}, "credentials needs 'profile' as a name"),
    ({"op": "credentials", "profile": "\ud800"}, "credentials needs 'profile' as a name"),
    ({"op": "credentials", "profile": ""}, "credentials needs 'profile' as a name"),
    ({"op": "mfa", "source": SOURCE, "code": "1" * 5000}, "an MFA code has 6 digits"),
])
def test_hostile_names_are_refused_before_the_daemon_sees_them(served: Served, request_: dict, error: str) -> None:
    """A 10,000-character name used to reach the daemon, whose reply quoted it whole."""
    handled = len(served.handled)
    reply = check(served, encoded(request_, True) + b"\n", [], True)
    assert reply["error"] == "bad-request" and reply["message"].startswith(error), reply
    assert served.handled[handled:] == ["'ping'"]  # only the ping after it
    with pytest.raises(protocol.ProtocolError, match=re.escape(error)):
        protocol.decode_request(encoded(request_, True))
