"""Keeping the shared credentials file in step with what the daemon holds.

`CredentialsWriter` is the I/O: one atomic update of the file per call.
`FileSync` is what the file side remembers between updates, for one
config: which owned sections are in the file, which profiles a failed write
(a read-only directory, a full disk, a long-term key in the section) left
out and why, and the lock a write in flight holds. What the daemon holds
but the file does not is tried again with every update, and at least every
UNWRITTEN_RETRY. On reload, the new config's FileSync takes over the old
one's memory (`take_over`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from credd import credfile, refresh
from credd.atomicfile import update_file
from credd.errors import CreddError
from credd.model import Credentials, Failure, FailureKind

log = logging.getLogger("credd.daemon")  # the daemon's log lines, under the name they have always had

# While credentials could not be written to the credentials file, the write is tried again this often.
UNWRITTEN_RETRY = timedelta(seconds=60)



class Writer(Protocol):
    """The file's I/O, as FileSync uses it: `CredentialsWriter`, or a test's stand-in for a failing disk."""

    def __call__(self, write: dict[str, Credentials],
                 remove: Iterable[str]) -> dict[str, credfile.LongTermSection] | None: ...

    def remove_expired(self, now: datetime) -> list[str]: ...


class CredentialsWriter:
    """Writes the owned profiles into the shared credentials file, one atomic update per call."""

    def __init__(self, path: Path, hint_config: str | None = None) -> None:
        self.path = path
        self.hint_config = hint_config  # the daemon's --config, for the command a failed write names

    def __call__(self, write: dict[str, Credentials], remove: Iterable[str]) -> dict[str, credfile.LongTermSection]:
        """Write and remove in one update; return the sections left out because they hold a long-term key.

        Those are refused one by one, so the other profiles still get their credentials.
        """
        remove = [name for name in remove if name not in write]
        refused: dict[str, credfile.LongTermSection] = {}
        if not write and not remove:
            return refused

        def transform(text: str) -> str:
            refused.clear()
            refused.update(credfile.long_term_sections(text, write, str(self.path)))
            kept = {name: creds for name, creds in write.items() if name not in refused}
            return credfile.update(text, kept, remove, path=str(self.path))

        update_file(self.path, transform, hint_config=self.hint_config)
        return refused

    def remove_expired(self, now: datetime) -> list[str]:
        """Drop every section credd owns whose credentials can no longer be served; return their names.

        Ownership and expiry live in the file, so what a daemon wrote before a
        restart (a laptop offline at login) is cleaned up without STS. Decided
        again on the text being changed.
        """
        cutoff = now + refresh.SERVE_MARGIN
        removed: list[str] = []

        def transform(text: str) -> str:
            removed[:] = credfile.expired_sections(text, cutoff, str(self.path))
            return credfile.update(text, {}, removed, path=str(self.path)) if removed else text

        update_file(self.path, transform, hint_config=self.hint_config)
        return removed


@dataclass
class Synced:
    """What one update did to the profiles' standing, for the daemon's `status`."""

    failed: dict[str, Failure] = field(default_factory=dict)  # left out of the file by this update, and why
    caught_up: dict[str, Failure] = field(default_factory=dict)  # written again: the failure that is now over


class FileSync:
    """The credentials-file side of one config: what is in the file, what is not yet, and the write lock."""

    def __init__(self, path: Path, write: Writer, owned: Iterable[str]) -> None:
        self.path = path
        self.write = write
        self.owned = frozenset(owned)  # the profiles this config writes to the file
        self.lock = threading.Lock()  # shutdown waits on this: a write in flight always finishes
        self._in_file: set[str] = set()  # owned profiles credd has written and not yet removed
        self._unwritten: dict[str, Failure] = {}  # owned profiles whose newest credentials a write left out

    def in_file(self, name: str) -> bool:
        """Whether credd has written `name` to the file (and not removed it since)."""
        return name in self._in_file

    def left_out(self, name: str) -> Failure | None:
        """Why the file lacks `name`'s newest credentials, which credd still serves; None if it has them."""
        return self._unwritten.get(name)

    def retry_at(self, names: Iterable[str], now: datetime) -> datetime | None:
        """When to try the file again for these profiles, if it holds any of them back.

        The file catches up soon after the fault (a read-only dir, a full disk)
        is gone, and a fault that stays costs one write a minute, not a storm.
        """
        return now + UNWRITTEN_RETRY if any(name in self._unwritten for name in names) else None

    def update(self, source: str, write: dict[str, Credentials], gone: set[str], of_source: set[str], *,
               held: Callable[[str], Credentials | None],
               shadowed: Callable[[str, credfile.LongTermSection], Failure]) -> Synced:
        """Write `write` and remove what of `gone` is in the file, for `of_source`, the owned profiles of `source`.

        What an earlier update left out goes in with this one, renewed or not
        (`held` gives what the daemon has): the file must not keep stale
        credentials until the next renewal. `shadowed` says why a section
        holding a long-term key was left alone.
        """
        write = dict(write)
        gone = set(gone)
        for name in sorted(set(self._unwritten) & of_source - set(write)):
            credentials = held(name)
            if credentials is not None:
                write[name] = credentials
            else:
                self._unwritten.pop(name)
                gone.add(name)
        remove = gone & self._in_file
        synced = Synced()
        try:
            with self.lock:
                refused = self.write(write, remove) or {}
        except CreddError as e:
            failure = Failure(FailureKind.OTHER, f"{e}. credd still serves these credentials over its socket "
                              "(`credd process`) and writes the file at its next refresh", retryable=True)
            # Retried every minute while the fault lasts: said once, not once a minute.
            repeated = bool(write) and all(name in self._unwritten and self._unwritten[name].message == failure.message
                                           for name in write)
            (log.debug if repeated else log.error)("source %s: profile(s) %s not written: %s", source,
                                                    ", ".join(sorted(write)) or "-", failure.message)
            for name in write:
                synced.failed[name] = self._unwritten[name] = failure
            return synced
        for name, section in refused.items():
            failure = shadowed(name, section)
            repeated = name in self._unwritten and self._unwritten[name].message == failure.message
            (log.debug if repeated else log.error)("%s", failure.message)  # retried each minute: said once
            synced.failed[name] = self._unwritten[name] = failure
        written = set(write) - set(refused)
        for name in written:
            failed = self._unwritten.pop(name, None)
            if failed is not None:
                log.info("profile %s: written to %s again", name, self.path)
                synced.caught_up[name] = failed
        self._in_file = (self._in_file | written) - remove
        return synced

    def remove(self, names: Iterable[str]) -> None:
        """Drop credd's sections of profiles it no longer writes (after a reload)."""
        names = set(names)
        if not names:
            return
        try:
            with self.lock:
                self.write({}, names)
        except CreddError as e:
            log.error("cannot remove the sections of profile(s) %s, which credd no longer writes: %s; they expire "
                      "on their own, or remove them by hand", ", ".join(sorted(names)), e)
            return
        self._in_file -= names

    def remove_expired(self, now: datetime) -> list[str]:
        """At start-up: drop the sections whose credentials can no longer be served; return their names."""
        with self.lock:
            return self.write.remove_expired(now)

    def take_over(self, old: FileSync) -> None:
        """After a reload: keep what the old config's side knew of the profiles this one still writes,
        and, in the same file, remove the sections of those it writes no more."""
        self._in_file = old._in_file & self.owned
        self._unwritten = {name: failure for name, failure in old._unwritten.items() if name in self.owned}
        if self.path == old.path:
            self.remove(old._in_file - self.owned)

    def finish(self) -> None:
        """Wait for a write in flight, if any, to end (at shutdown)."""
        with self.lock:
            pass
