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
(`os._exit`): there is nothing left to flush or close, and tearing the
interpreter down would cost about as much as the hook's own work.

Imports: this module, `credd`, `credd.coredump`, `credd.paths`,
`credd.protocol` (and `credd.commandline` for a line with `--config`,
`credd.configfile` where the config's `socket:` line is read), `_socket`,
`resource`, `os`, `sys`, `time`. The `credd` script may run under `python -I
-S` (the form `credd init` writes), where site-packages is not on `sys.path`
and `os` is not loaded yet: `ensure_site` puts site-packages back before
anything beyond this path runs. No `from __future__ import annotations` on
this path: it is one more module to load.
"""

import os
import sys

from credd import coredump, paths, protocol

# What a profile name in a request may hold without JSON escaping; the config's names are a subset.
PLAIN_NAME = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.@+=,-")
FIELDS = (b"AccessKeyId", b"SecretAccessKey", b"SessionToken", b"Expiration")


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
    try:
        path = paths.socket_file(os.environ, config, sys.platform, os.getuid())
        reply = protocol.exchange(path, b'{"op":"credentials","profile":"' + profile.encode() + b'"}\n',
                                  protocol.client_timeout(os.environ))
    except Exception:  # noqa: BLE001  every failure has its message in the full hook, which asks again
        return _full(args)
    document = ready_document(reply)
    if document is None:
        return _full(args, reply, request)
    _write_all(1, document)
    if exit_when_served:
        os._exit(0)  # written with os.write, nothing buffered: skip the interpreter's teardown
    return 0


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
        return hook.run(config, profile, os.environ, first_reply=first)
    from credd import entry

    return entry.main(args)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]
