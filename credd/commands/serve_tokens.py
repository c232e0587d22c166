"""The daemon's side of container endpoint tokens: issue, rotate, revoke, expire, and the token files.

A token may live in a file (`AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`), which
botocore and the JavaScript SDK read on every credentials fetch, so its value
can change under a running client. The daemon is the one writer of those
files: it writes them at issue (0600, atomically), replaces the value at each
rotation (`token-rotate`, or every `rotate` seconds on its own), and removes
the file when the token is revoked or expires, and at its own stop (tokens
live in its memory only). One writer means the file and the live value never
disagree for longer than a rename, and a client killed with SIGKILL (a
`credd exec --server`) leaves nothing behind once its token expires.

A rotated-out value is honoured for `container.ROTATION_GRACE`, so a client
that read the file just before the rename still gets its answer.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from credd import protocol
from credd.atomicfile import ensure_private_dir, write_atomic
from credd.endpoints.container import MAX_TTL, Token, Tokens
from credd.timefmt import utc_text

log = logging.getLogger("credd.tokens")

OWN = "<credd's own>"  # `"file": true`: a file in the daemon's directory, named by the token's id


class TokenDesk:
    """The socket ops on tokens (`token-issue`, `token-rotate`, `token-revoke`) and their upkeep.

    `directory`: where the files of `"file": true` tokens go (`credd exec --server`'s), a directory of the daemon's
    own beside its socket; `command` words a credd command line for a hint (with the daemon's --config).
    """

    def __init__(self, tokens: Tokens, directory: Path, clock: Callable[[], datetime],
                 command: Callable[..., str]) -> None:
        self.tokens = tokens
        self.directory = directory
        self.clock = clock
        self.command = command
        # One op at a time: an upkeep in its thread must not write a file that a revoke, or the stop, just removed.
        self._lock = threading.RLock()
        self._closed = False

    def issue(self, profiles: list[str], ttl: int, file: object = None, rotate: object = None) -> tuple[Token | None,
                                                                                                        dict]:
        """A new token (and its file, when asked for), and the reply; (None, an error reply) when refused."""
        with self._lock:
            if self._closed:
                return None, protocol.error_reply("failed", "the daemon is stopping")
            return self._issue(profiles, ttl, file, rotate)

    def _issue(self, profiles: list[str], ttl: int, file: object, rotate: object) -> tuple[Token | None, dict]:
        if rotate is not None and (not isinstance(rotate, int) or isinstance(rotate, bool) or rotate <= 0):
            return None, protocol.error_reply("bad-request", "rotate must be a number of seconds, at least 1")
        if rotate is not None and file is None:
            return None, protocol.error_reply("bad-request", "a token rotates only in a file: give `file` too")
        now = self.clock()
        seconds = min(ttl, int(MAX_TTL.total_seconds()))
        path, refused = self._file_for(file)
        if refused is not None:
            return None, refused
        token = self.tokens.issue(profiles, timedelta(seconds=seconds), now, file=path,
                                  rotate_every=timedelta(seconds=rotate) if rotate else None)
        if path == OWN:  # named by its id, in credd's own directory
            path = str(self.directory / token.id)
            token = replace(token, file=path)
            self.tokens.restore(token)
        if path is not None:
            error = self._write(token)
            if error is not None:
                self.tokens.revoke(token.id)
                return None, protocol.error_reply("failed", error)
        log.info("container endpoint: token %s issued for %s, for %d s%s%s", token.id, ", ".join(profiles), seconds,
                 f", in {path}" if path else "", f", rotated every {rotate} s" if rotate else "")
        reply = {"ok": True, "id": token.id, "token": token.value, "expires": utc_text(token.expires)}
        if path is not None:
            reply["file"] = path
        return token, reply

    def rotate(self, token_id: str) -> dict:
        """A new value for a live token now (its file rewritten); the old one works for the grace, then never."""
        with self._lock:
            rotated = self._rotate(token_id)
        if isinstance(rotated, str):
            return protocol.error_reply("failed", rotated)
        if rotated is None:
            return self._unknown(token_id)
        grace = int((rotated.previous_until - rotated.rotated_at).total_seconds()) \
            if rotated.previous_until and rotated.rotated_at else 0
        where = f"; {rotated.file} holds the new value" if rotated.file else (
            "; it has no file, so give its client the new value (`token` in this reply)")
        return {"ok": True, "id": token_id, "token": rotated.value, "expires": utc_text(rotated.expires),
                "file": rotated.file,
                "message": f"token {token_id} rotated: the old value works for {grace} s more{where}"}

    def revoke(self, token_id: str) -> dict:
        with self._lock:
            token = self.tokens.revoke(token_id)
            if token is None:
                return self._unknown(token_id)
            log.info("container endpoint: token %s revoked", token_id)
            removed = self._remove_file(token)
        return {"ok": True, "message": f"token {token_id} revoked" + (f"; {token.file} removed" if removed else "")}

    def upkeep(self) -> None:
        """Rotate what is due, remove the files of expired tokens. The daemon runs this every second."""
        with self._lock:
            if self._closed:
                return
            now = self.clock()
            for token in self.tokens.take_dropped(now):
                log.info("container endpoint: token %s expired", token.id)
                self._remove_file(token)
            for token in self.tokens.due(now):
                self._rotate(token.id)

    def close(self) -> None:
        """At the daemon's stop: every token dies with it, so no file may outlive it."""
        with self._lock:
            self._closed = True
            for token in self.tokens.all() + self.tokens.take_dropped(self.clock()):
                self._remove_file(token)

    def remove_stale(self) -> None:
        """At start: the files a daemon killed before its stop left in `directory` hold values nobody honours."""
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            return
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                _unlink(Path(entry.path))

    def _rotate(self, token_id: str) -> Token | str | None:
        """The rotated token; a message when its file could not take the new value (the old value stays); None
        when no live token has that id."""
        rotated = self.tokens.rotate(token_id, self.clock())
        if rotated is None:
            return None
        new, old = rotated
        if new.file is not None:
            error = self._write(new)
            if error is not None:
                self.tokens.restore(old)
                log.error("container endpoint: token %s not rotated: %s", token_id, error)
                return f"token {token_id} was not rotated (it keeps its value): {error}"
        log.info("container endpoint: token %s rotated", token_id)
        return new

    def _file_for(self, file: object) -> tuple[str | None, dict | None]:
        """Where the token's file goes: None (no file), credd's own directory (`true`), or an absolute path of
        the client's that nothing occupies yet."""
        if file is None or file is False:
            return None, None
        if file is True:
            return OWN, None
        if not isinstance(file, str) or not os.path.isabs(file):
            return None, protocol.error_reply("bad-request", "file must be true or an absolute path")
        if os.path.lexists(file):
            return None, protocol.error_reply("failed", f"{file} exists; credd writes a token only to a new file, "
                                              "so it never overwrites one of yours: remove it or choose another path")
        if not os.path.isdir(os.path.dirname(file)):
            return None, protocol.error_reply("failed", f"{os.path.dirname(file)} is not a directory; create it, or "
                                              "choose a path in one that exists")
        return file, None

    def _write(self, token: Token) -> str | None:
        """Write the token's value to its file (0600, atomic, no newline: botocore refuses one); why not, or None."""
        assert token.file is not None
        path = Path(token.file)
        try:
            if path.parent == self.directory:
                ensure_private_dir(self.directory)
            write_atomic(path, token.value.encode(), 0o600, follow_symlinks=False)
        except OSError as e:
            return f"cannot write {path}: {e.strerror or e}"
        return None

    def _remove_file(self, token: Token) -> bool:
        return token.file is not None and _unlink(Path(token.file))

    def _unknown(self, token_id: str) -> dict:
        return protocol.error_reply("unknown-token", f"no live token {token_id!r} (expired, revoked, or never "
                                    f"issued); `{self.command('status')}` lists the live ones")


def _unlink(path: Path) -> bool:
    """Remove a token file credd wrote (a regular file; a symlink or a directory put there is not credd's)."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as e:
        log.error("cannot remove the token file %s: %s", path, e.strerror or e)
        return False
    return True
