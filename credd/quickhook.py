"""`credd process PROFILE` at the interpreter's floor: the common reply printed without json, re or site.

The `credd` script runs `main` first. For `credd [--config PATH] process
PROFILE` it sends the request, and when the daemon's reply is a protocol-2
credentials reply whose values are plain printable ASCII (every real one: key
ids, base64 secrets and tokens, an ISO time), it prints the credential_process
document the daemon wrote, byte for byte what the full hook (`credd.hook`)
would print for that reply. Everything else goes to the full hook or the full command line, with
what was already received: a daemon error, an MFA prompt, an older daemon, an
unusual name, any other command.

Once the document is written, the script's call ends the process at once
(`posix._exit`): there is nothing left to flush or close, and tearing the
interpreter down would cost about as much as the hook's own work.

No `os`: the `credd` script may run under `python -I -S` (the form `credd
init` writes), where `os` is not loaded yet, and `os` with what it imports
(`_collections_abc`, `posixpath`, `stat`, ...) costs about a fifth of `python
-I -S -c pass`. So the fast path uses `posix`, which the interpreter loads
at start (bytes in `posix.environ`, decoded here as `os.environ` decodes
them), and finds the socket with string operations (`socket_path`) in the
common cases, handing the rest to `paths.socket_file`.

Imports: this module, `credd`, `credd.coredump`, `credd.protocol` (and
`credd.commandline` for a line with `--config`; `credd.paths` and `os` where
`socket_path` hands over), `_socket`, `resource`, `posix`, `sys`, `time` (the
last three loaded at start). Under `-S` site-packages is not on `sys.path`:
`ensure_site` puts it back before anything beyond this path runs. No `from
__future__ import annotations` on this path: it is one more module to load.
"""

import posix
import sys

from credd import coredump, protocol

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy treats the name alike)
if TYPE_CHECKING:
    from collections.abc import Mapping

# What a profile name in a request may hold without JSON escaping; the config's names are a subset.
PLAIN_NAME = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.@+=,-")
FIELDS = (b"AccessKeyId", b"SecretAccessKey", b"SessionToken", b"Expiration")
# The variables paths.socket_file and protocol.client_timeout read.
VARIABLES = ("CREDD_SOCKET", "CREDD_CONFIG", "XDG_CONFIG_HOME", "XDG_RUNTIME_DIR", "HOME", "CREDD_PROCESS_TIMEOUT")
CONFIG_LIMIT = 1 << 20  # what paths reads of a config for its `socket:` line
S_IFMT, S_IFREG = 0o170000, 0o100000  # stat's, without importing stat


def main(argv: list[str] | None = None, *, exit_when_served: bool = False) -> int:
    """The `credd` script's entry: the fast path for `[--config PATH] process PROFILE`, else the full command.

    `exit_when_served`: the script's own call, which ends the process as soon as the fast path has
    written the document; the full path returns its status as ever.
    """
    args = sys.argv[1:] if argv is None else argv
    coredump.no_core_files()  # as entry.main does for every command: what this process receives is a secret
    request = credentials_request(args)
    if request is None:
        return _full(args)
    config, profile = request
    env = environment(VARIABLES)
    try:
        path = socket_path(env, config, sys.platform, posix.getuid())
        if path is None:
            path = _socket_file(config)
        reply = protocol.exchange(path, b'{"op":"credentials","profile":"' + profile.encode() + b'"}\n',
                                  protocol.client_timeout(env))
    except Exception:  # noqa: BLE001  every failure has its message in the full hook, which asks again
        return _full(args)
    document = ready_document(reply)
    if document is None:
        return _full(args, reply, request)
    _write_all(1, document)
    if exit_when_served:
        posix._exit(0)  # written with posix.write, nothing buffered: skip the interpreter's teardown
    return 0


def environment(names: "tuple[str, ...]") -> dict[str, str]:
    """These variables of the process's environment, decoded as `os.environ` decodes them (`os.fsdecode`).

    `posix.environ` is the environment the process started with; once `os` is loaded (by `site`, or by a caller
    of `main`), `os.environ` is read instead, since only it holds the changes made since.
    """
    os = sys.modules.get("os")
    if os is not None:
        return {name: os.environ[name] for name in names if name in os.environ}
    encoding, errors = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()
    found = {}
    for name in names:
        value = posix.environ.get(name.encode())
        if value is not None:
            found[name] = value.decode(encoding, errors)
    return found


def socket_path(env: "Mapping[str, str]", config: str | None, platform: str, uid: int) -> str | None:
    """`paths.socket_file`'s answer found with string operations and `posix` alone; None where that takes more.

    Found here: an absolute `$CREDD_SOCKET`, else (the config having no `socket:`
    line) Linux's default. Handed over (None): a `$VAR` or `~` to expand, a
    relative path (an error the full path words), a config with a `socket:`
    line or larger than paths reads, a home from the password database, and
    every platform but Linux. tests/test_quickhook.py checks on generated
    environments that an answer here is always `paths.socket_file`'s.
    """
    if platform != "linux":
        return None
    value = env.get("CREDD_SOCKET")
    if value:
        return value if value.startswith("/") and "$" not in value else None
    path = _config_path(env, config)
    if path is None or _may_name_socket(path):
        return None
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime and runtime.startswith("/"):
        return _join(runtime, "credd/credd.sock")
    return f"/tmp/credd-{uid}/credd.sock"


def _config_path(env: "Mapping[str, str]", config: str | None) -> str | None:
    """`paths.config_file`'s answer where it needs no expansion but `~/`; None where it needs more."""
    if config:
        path = config
    elif env.get("CREDD_CONFIG"):
        path = env["CREDD_CONFIG"]
    else:
        base = env.get("XDG_CONFIG_HOME")
        if not (base and base.startswith("/")):  # unset or relative: XDG says ignore it
            home = env.get("HOME", "")
            if not home.startswith("/"):
                return None  # paths asks the password database
            base = _join(home, ".config")
        return _join(base, "credd/config.yaml")
    if "$" in path:
        return None
    if path == "~" or path.startswith("~/"):
        home = env.get("HOME", "")
        return home + path[1:] if home.startswith("/") else None
    return path


def _may_name_socket(path: str) -> bool:
    """Whether the config at `path` may have a `socket:` line (or is too large to tell); read as `configfile` reads
    it (non-blocking, regular files only). No readable config names no socket, for paths as here."""
    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_NONBLOCK | posix.O_NOCTTY | posix.O_CLOEXEC)
    except (OSError, ValueError):
        return False
    try:
        if posix.fstat(fd).st_mode & S_IFMT != S_IFREG:
            return False
        data = b""
        while len(data) <= CONFIG_LIMIT:
            chunk = posix.read(fd, CONFIG_LIMIT + 1 - len(data))
            if not chunk:
                break
            data += chunk
    except OSError:
        return False
    finally:
        posix.close(fd)
    # Every line paths.socket_setting could take starts so (a line with an empty value too: handed over all the same).
    return len(data) > CONFIG_LIMIT or data.startswith(b"socket:") or b"\nsocket:" in data


def _join(directory: str, rest: str) -> str:
    """`os.path.join(directory, rest)` for an absolute `directory` and a relative `rest`."""
    return directory + rest if directory.endswith("/") else directory + "/" + rest


def _socket_file(config: str | None) -> str:
    """The socket as `paths` finds it, `os` and all: the cases `socket_path` hands over."""
    import os

    from credd import paths

    return paths.socket_file(os.environ, config, sys.platform, os.getuid())


def credentials_request(args: list[str]) -> tuple[str | None, str] | None:
    """(the `--config` given or None, the profile) for a hook's command line with a plain name; None for any other.

    `process PROFILE` is read here; a line with `--config` (what `credd init --config PATH` writes) is read by
    `commandline.process_args`, as the full hook reads it, imported only then.
    """
    if len(args) == 2 and args[0] == "process":
        request: tuple[str | None, str] | None = (None, args[1])
    else:
        from credd.commandline import process_args

        request = process_args(args)
    return request if request is not None and is_plain_name(request[1]) else None


def is_plain_name(name: str) -> bool:
    return 0 < len(name) <= protocol.MAX_NAME and not name.startswith("-") and all(c in PLAIN_NAME for c in name)


def ready_document(reply: bytes) -> bytes | None:
    """The line to print for a protocol-2 credentials reply whose values are all plain; None for any other reply.

    Plain: printable ASCII without `"` or `\\`, which `json.dumps` writes as they
    are, so the full hook's parse-and-print gives these same bytes. The form
    checked is exactly `protocol.encode`'s:
    `{"Version": 1, "AccessKeyId": "…", "SecretAccessKey": "…", "SessionToken": "…", "Expiration": "…"}`.
    """
    if not (reply.startswith(protocol.READY_PREFIX) and reply.endswith(b"}\n")):
        return None
    document = reply[len(protocol.READY_PREFIX):-2]
    parts = document.split(b'"')  # no value may hold a quote, so the pieces fall exactly here
    if len(parts) != 3 + 4 * len(FIELDS) or parts[:3] != [b"{", b"Version", b": 1, "]:
        return None
    for index, name in enumerate(FIELDS):
        key, colon, value, after = parts[3 + 4 * index:7 + 4 * index]
        if key != name or colon != b": " or after != (b"}" if name == FIELDS[-1] else b", "):
            return None
        if not value or not value.isascii() or b"\\" in value or not value.decode("ascii").isprintable():
            return None
    return document + b"\n"


def ensure_site() -> None:
    """Under `python -S` (the fast path's flags), run `site` now: the full command needs its packages."""
    if sys.flags.no_site:
        import site

        site.main()


def _full(args: list[str], reply: bytes | None = None, request: tuple[str | None, str] | None = None) -> int:
    """The full hook, handed the reply already received (no second request), or the full command line."""
    ensure_site()
    if reply is not None:
        from credd import hook, umask

        umask.make_private()  # as for every command
        try:
            first = protocol.decode_reply(reply)
        except protocol.ProtocolError:
            first = None  # the full hook asks again and reports what it gets
        config, profile = request or (None, args[1])
        import os

        return hook.run(config, profile, os.environ, first_reply=first)
    from credd import entry

    return entry.main(args)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[posix.write(fd, data):]
