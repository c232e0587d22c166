"""The socket's wire format, shared by the daemon and its clients (the hook, the CLI).

One JSON object per line each way, then the daemon closes the connection.
Standard library only, and `json` imported only when a message is encoded or
decoded: the hook's fast path (`quickhook`) uses `exchange` on every AWS CLI
call and reads the common reply without json.

Requests:  {"op": "credentials", "profile": NAME}
           {"op": "status"} | {"op": "refresh", "profiles": [NAME, ...]}
           {"op": "mfa", "source": NAME, "code": "123456"} | {"op": "ping"}
           {"op": "token-issue", "profiles": [NAME, ...], "ttl": SECONDS[, "file": true | PATH, "rotate": SECONDS]}
           {"op": "token-rotate", "id": ID} | {"op": "token-revoke", "id": ID}
Replies:   {"ok": true, ...} or {"ok": false, "error": KIND, "message": TEXT}

Since protocol 2, a successful credentials reply is written in one exact form
(`encode`): `{"ok":true,"credentials":` + the credential_process document
as `json.dumps` writes it (the hook's own output, byte for byte) + `}`. It is
still the same JSON, so clients of protocol 1 read it as before.
"""

# The C module, not `socket`: socket.py pulls in enum and selectors, a few milliseconds
# of start-up on every AWS CLI call for classes the client never uses.
import _socket
import posix  # not os: the hook's fast path runs under `python -S`, where os is not loaded (quickhook says why)
import sys
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the hook's path
if TYPE_CHECKING:
    from collections.abc import Mapping

# 1: the first; 2: credentials replies in their exact form (READY_PREFIX). See docs/versioning.md.
PROTOCOL_VERSION = 3
READY_PREFIX = b'{"ok":true,"credentials":'  # a protocol-2 credentials reply: this, the document, b"}\n"
CLIENT_TIMEOUT = 45.0  # long enough for an MFA command (a YubiKey touch) and STS; short enough not to hang a script
MAX_REQUEST = 16 * 1024  # bytes in one request line; anything longer is hostile
MAX_REPLY = 4 * 1024 * 1024  # a status reply for many profiles stays far below this
OPS = ("credentials", "status", "refresh", "mfa", "ping", "token-issue", "token-rotate", "token-revoke")
MAX_NAME = 64  # a profile or source name; the config allows no longer ones
MAX_CODE = 16  # an MFA code (6 digits; some room for spaces around it)
# Each op's fields and their types; every name must also pass `_is_name`, so replies that quote one stay short.
FIELDS: dict[str, dict[str, type]] = {
    "credentials": {"profile": str}, "mfa": {"source": str, "code": str}, "refresh": {"profiles": list},
    "token-issue": {"profiles": list, "ttl": int}, "token-rotate": {"id": str}, "token-revoke": {"id": str},
}
NAME_FIELDS = {"credentials": "profile", "mfa": "source", "token-rotate": "id", "token-revoke": "id"}


class ProtocolError(Exception):
    """A message that is not valid in this protocol; the text is safe to show and log."""


class DaemonUnreachable(Exception):
    """No daemon answers at the socket path."""


def peer_uid(sock: _socket.socket) -> int | None:
    """The user id of the process at the other end of a Unix socket, from the kernel (not from anything it says)."""
    if hasattr(_socket, "SO_PEERCRED"):  # Linux: struct ucred {pid_t pid; uid_t uid; gid_t gid;}
        raw = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
        return int.from_bytes(raw[4:8], sys.byteorder)
    if sys.platform == "darwin":  # LOCAL_PEERCRED at SOL_LOCAL: struct xucred {u_int version; uid_t uid; ...}
        raw = sock.getsockopt(0, 0x001, 76)
        return int.from_bytes(raw[4:8], sys.byteorder)
    return None


def encode(message: dict) -> bytes:
    """One line of JSON; a successful credentials reply in its exact form, ready for the hook to print."""
    import json

    if list(message) == ["ok", "credentials"] and message["ok"] is True:
        return READY_PREFIX + json.dumps(message["credentials"]).encode() + b"}\n"
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode_request(line: bytes) -> dict:
    """Parse and validate one request line; raise ProtocolError with a short, secret-free reason."""
    import json

    if len(line) > MAX_REQUEST:
        raise ProtocolError(f"request longer than {MAX_REQUEST} bytes")
    try:
        message = json.loads(line)
    except (ValueError, RecursionError):
        raise ProtocolError("request is not JSON") from None
    if not isinstance(message, dict):
        raise ProtocolError("request is not a JSON object")
    op = message.get("op")
    if op not in OPS:
        raise ProtocolError(f"unknown op; expected one of {', '.join(OPS)}")
    for name, kind in FIELDS.get(op, {}).items():
        if not isinstance(message.get(name), kind):
            raise ProtocolError(f"{op} needs {name!r} ({kind.__name__})")
    if op in NAME_FIELDS and not _is_name(message[NAME_FIELDS[op]]):
        raise ProtocolError(f"{op} needs {NAME_FIELDS[op]!r} as a name of 1 to {MAX_NAME} printable characters")
    if op in ("refresh", "token-issue") and not all(_is_name(p) for p in message["profiles"]):
        raise ProtocolError(f"{op} needs 'profiles' as a list of names (1 to {MAX_NAME} printable characters)")
    if op == "token-issue" and (not message["profiles"] or isinstance(message["ttl"], bool) or message["ttl"] <= 0):
        raise ProtocolError("token-issue needs at least one profile and a ttl of at least 1 second")
    if op == "mfa" and len(message["code"]) > MAX_CODE:
        raise ProtocolError("an MFA code has 6 digits")
    return message


def _is_name(value: object) -> bool:
    """A name a request may carry: no control, format or lone surrogate characters, and short."""
    return isinstance(value, str) and 0 < len(value) <= MAX_NAME and value.isprintable()


def client_timeout(env: "Mapping[str, str]") -> float:
    """How long a client waits for the daemon: `$CREDD_PROCESS_TIMEOUT` seconds (at least 1), else CLIENT_TIMEOUT."""
    try:
        return max(1.0, float(env.get("CREDD_PROCESS_TIMEOUT", CLIENT_TIMEOUT)))
    except ValueError:
        return CLIENT_TIMEOUT


def error_reply(kind: str, message: str) -> dict:
    return {"ok": False, "error": kind, "message": message}


RETRY_PAUSE = 0.05  # seconds between tries while the daemon turns connections away (too many clients)


def request(path: str, message: dict, timeout: float) -> dict:
    """Send one request and return the reply; the whole exchange is bounded by `timeout` seconds.

    Raises DaemonUnreachable when nothing listens at `path`, TimeoutError when
    the daemon does not answer in time, ProtocolError on a reply that is not ours.
    """
    return decode_reply(exchange(path, encode(message), timeout))


def exchange(path: str, payload: bytes, timeout: float) -> bytes:
    """Send one request line as it is and return the reply's bytes, unparsed; raises as `request` does.

    A daemon with all its client slots taken closes a new connection before it
    reads a byte: that request was never seen, so it is sent again until the
    deadline (the slots of idle clients free up within a second).
    """
    deadline = time.monotonic() + timeout
    while True:
        data = _exchange(path, payload, deadline)
        if data:
            return data
        if time.monotonic() + RETRY_PAUSE >= deadline:
            raise TimeoutError("the daemon did not answer in time (it turned the connection away: "
                               "too many clients at once)")
        time.sleep(RETRY_PAUSE)


def _exchange(path: str, payload: bytes, deadline: float) -> bytes:
    """One connection: the request out, the reply's bytes back; empty when the daemon closed without a word."""
    client = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        client.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            client.connect(path)
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError) as e:
            raise DaemonUnreachable(str(e)) from None
        # Before a word is sent (an MFA code, say): a socket in a shared place (/tmp) may be someone else's.
        owner = peer_uid(client)
        if owner is not None and owner != posix.getuid():
            raise ProtocolError(f"the process listening at {path} runs as uid {owner}, not as you (uid "
                                f"{posix.getuid()}): it is not your credd; nothing was sent. Remove that socket, or "
                                "set `socket:` (or $CREDD_SOCKET) to a path in a directory only you can write")
        data = bytearray()
        try:
            client.sendall(payload)
            client.shutdown(_socket.SHUT_WR)
            while not data.endswith(b"\n"):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("the daemon did not answer in time")
                client.settimeout(remaining)
                chunk = client.recv(65536)
                if not chunk:
                    break
                data += chunk
                if len(data) > MAX_REPLY:
                    raise ProtocolError("reply too large")
        except (BrokenPipeError, ConnectionResetError):
            if data:
                raise ProtocolError("the daemon closed the connection in the middle of its reply") from None
            return b""  # turned away unread
    except TimeoutError:  # what _socket raises on a timeout (socket.timeout is an alias)
        raise TimeoutError("the daemon did not answer in time") from None
    finally:
        client.close()
    return bytes(data)


def decode_reply(data: bytes) -> dict:
    """A reply's bytes as a dict; ProtocolError for anything that is not a credd reply."""
    import json

    try:
        reply = json.loads(data)
    except ValueError:
        raise ProtocolError("the daemon's reply is not JSON (is something else listening on the socket?)") from None
    if not isinstance(reply, dict) or "ok" not in reply:
        raise ProtocolError("the daemon's reply is not a credd reply")
    return reply
