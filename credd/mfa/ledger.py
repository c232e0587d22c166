"""The window state file: the last window used per MFA serial, kept across restarts (no secrets in it)."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from credd import privatedir
from credd.atomicfile import ensure_private_dir, write_atomic
from credd.mfa.windows import MAX_WINDOWS_AHEAD, next_window, window_at

LOG = logging.getLogger("credd.mfa")

STATE_FILE = "mfa-windows.json"


class UsedWindows:
    """The last window used per MFA serial, kept in a JSON file so a restart does not reuse a code.

    `claim` is atomic across threads, so two refreshes that share an MFA device
    get different windows. The file is re-read on every claim (another credd
    process may have used the device) and written atomically. A file that
    cannot be written (a read-only or full state directory) is not fatal: the
    windows are kept in memory, so this process never reuses a code, and the
    log says so once, not on every code; the cost is at most one refused code
    after a restart, which the engine retries anyway. A state directory that
    is not the user's own (a symlink, another owner, writable by others) is
    treated the same way, and neither read nor written: whoever planted it
    could otherwise hold credd back with windows from the future, or steer
    its writes (`privatedir`).
    """

    def __init__(self, path: Path | None, log: logging.Logger = LOG, uid: int | None = None) -> None:
        self.path = path
        self._log = log
        self._uid = os.getuid() if uid is None else uid
        self._lock = threading.Lock()
        self._memory: dict[str, int] = {}
        self._unwritable = False  # the last write failed (or was refused) and the log has said so

    def claim(self, serial: str, now: float) -> int:
        """Reserve the first unused window for `serial` and return it; the caller waits for it to start."""
        with self._lock:
            known = self._load()
            last = known.get(serial)
            if last is not None and last + 1 - window_at(now) > MAX_WINDOWS_AHEAD:
                self._log.warning("MFA device %s: the last code used is from the future; the clock was set back",
                                  serial)
            window = next_window(now, last)
            self._save(known, serial, window)
            return window

    def record(self, serial: str, window: int) -> None:
        """Note that the code of `window` was sent (never moves backwards)."""
        with self._lock:
            known = self._load()
            if window > known.get(serial, window - 1):
                self._save(known, serial, window)

    def last_used(self, serial: str) -> int | None:
        with self._lock:
            return self._load().get(serial)

    def _load(self) -> dict[str, int]:
        merged = dict(self._memory)
        for serial, window in self._read_file().items():
            merged[serial] = max(window, merged.get(serial, window))
        return merged

    def _read_file(self) -> dict[str, int]:
        if self.path is None:
            return {}
        try:
            if self._refusal() is not None:  # `_save` says why, once
                return {}
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with open(fd, encoding="utf-8") as handle:
                data = json.loads(handle.read())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            self._log.warning("ignoring the MFA window state file %s: %s", self.path,
                              getattr(e, "strerror", None) or type(e).__name__)
            return {}
        windows = data.get("last_window") if isinstance(data, dict) else None
        if not isinstance(windows, dict):
            return {}
        return {str(k): v for k, v in windows.items() if isinstance(v, int) and not isinstance(v, bool)}

    def _save(self, known: dict[str, int], serial: str, window: int) -> None:
        self._memory[serial] = window
        if self.path is None:
            return
        data = json.dumps({"version": 1, "last_window": {**known, serial: window}}, indent=1, sort_keys=True) + "\n"
        try:
            ensure_private_dir(self.path.parent)
            refusal = self._refusal()
            if refusal is None:
                write_atomic(self.path, data.encode("utf-8"), follow_symlinks=False)
        except OSError as e:
            self._not_written(f"cannot write the MFA window state file {self.path} ({e.strerror or type(e).__name__})",
                              f"Make {self.path.parent} writable")
            return
        if refusal is not None:
            self._not_written(f"credd does not use the MFA window state file {self.path}", refusal)
            return
        if self._unwritable:
            self._unwritable = False
            self._log.info("the MFA window state file %s is written again", self.path)

    def _refusal(self) -> str | None:
        """What makes the state file's place unsafe to use (its directory, or a symlink as the file), or None.

        Raises FileNotFoundError when the directory does not exist (yet).
        """
        if self.path is None:  # a ledger kept in memory only has no place to judge
            return None
        refusal = privatedir.problem(self.path.parent, os.lstat(self.path.parent), self._uid)
        if refusal is None and os.path.islink(self.path):
            refusal = f"{self.path} is a symlink, which credd does not follow there; remove it"
        return refusal

    def _not_written(self, cause: str, fix: str) -> None:
        """Say once, with `fix`, that the windows stay in memory; not again for every code."""
        if self._unwritable:
            return
        self._unwritable = True
        self._log.error("%s: credd keeps the MFA windows it used in memory until it can, so it reuses no code while "
                        "it runs; a restart may cost one refused code. %s", cause, fix)


def state_file(state_dir: str | Path) -> Path:
    """Where `UsedWindows` keeps its state: `paths.state_dir(env)/mfa-windows.json`."""
    return Path(state_dir) / STATE_FILE
