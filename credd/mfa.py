"""MFA codes: where they come from, and when one may be used.

Three drivers, picked by the source's `mfa` setting (as aws-vault picks its
prompt drivers by name): `totp` makes the code from the seed in the keyring,
`command` runs `mfa_command`, `prompt` takes a code the user handed in.

AWS accepts each code once ("MultiFactorAuthentication failed with invalid
MFA one time pass code"), and a code lives for one 30-second window. So
credd remembers, per MFA serial, the last window it used, in a small state
file (serial -> window number, no secrets) that survives restarts, and waits
for the next window rather than send a code AWS will refuse. The window
arithmetic is pure; the clock is always an argument.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from credd import privatedir
from credd.atomicfile import ensure_private_dir, write_atomic
from credd.commandline import credd_command
from credd.errors import KeyringError, MfaCodeUsedError, MfaError, RefreshError, SecretFormatError
from credd.model import Failure, FailureKind, Secret, Source

LOG = logging.getLogger("credd.mfa")

WINDOW = 30  # seconds per TOTP code (RFC 6238's default, and AWS's)
# A last-used window further ahead than this (five minutes) means the clock was
# set back: waiting for it could take hours, so it is ignored instead. Claims
# queued by concurrent refreshes of one device stay far below it.
MAX_WINDOWS_AHEAD = 10
CODE = re.compile(r"[0-9]{6}")  # ASCII digits only: \d also takes `١٢٣٤٥٦`
STATE_FILE = "mfa-windows.json"
COMMAND_TIMEOUT = 60.0  # a hardware key may wait for a touch
PROMPT_CODE_MAX_AGE = 90.0  # a handed-in code older than three windows is stale
# How long a code sent to STS counts as used. AWS takes a code in its own 30-s step and, for
# clock drift, the step either side: sent at the start of the step before its own, it stays
# acceptable for up to three steps. aws-vault keeps no such ledger and lets AWS refuse.
CODE_USED_FOR = 3 * 30.0


# The no-reuse window: pure -----------------------------------------------------

def window_at(timestamp: float) -> int:
    """The number of the 30-second window `timestamp` (Unix seconds) falls in."""
    return int(timestamp // WINDOW)


def next_window(now: float, last_used: int | None) -> int:
    """The first window whose code has not been used: this one, or the one after the last used."""
    current = window_at(now)
    if last_used is None or last_used < current:
        return current
    if last_used + 1 - current > MAX_WINDOWS_AHEAD:
        return current
    return last_used + 1


def seconds_until(now: float, window: int) -> float:
    """How long to wait before `window` starts (0 when it has)."""
    return max(0.0, window * WINDOW - now)


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


# Drivers -----------------------------------------------------------------------

class MfaDriver(Protocol):
    """Makes (or fetches) the code for one source."""

    regenerates: bool  # True: can make a fresh code on its own; False: must ask the user again

    def code(self, source: Source, window: int) -> Secret:
        """The code to send now; `window` is the one the engine waited for."""
        ...

    def rejected(self, source: Source) -> Failure:
        """What to tell the user once AWS has rejected this driver's codes."""
        ...


def _unavailable(source: Source, problem: str, retryable: bool) -> MfaError:
    return MfaError(Failure(FailureKind.MFA_UNAVAILABLE, f"source {source.name!r}: {problem}", retryable))


class TotpDriver:
    """`mfa: totp`: the code from the seed in the keyring, for the window the engine claimed."""

    regenerates = True

    def __init__(self, seeds: Callable[[str], Secret | None], hint_config: str | None = None) -> None:
        self._seeds = seeds  # Store.get_totp_seed
        self._hint = hint_config  # the daemon's --config, for the commands its messages name

    def code(self, source: Source, window: int) -> Secret:
        import pyotp

        try:
            seed = self._seeds(source.name)
        except KeyringError as e:  # locked or gone: a RefreshError, so the engine reports it and retries
            raise RefreshError(Failure(FailureKind.KEYRING, str(e), retryable=True)) from None
        if seed is None:
            raise _unavailable(source, f"no TOTP seed in the keyring; store it with `{self._totp_set(source)}`",
                               retryable=False)
        try:
            return Secret(pyotp.TOTP(seed.reveal()).at(window * WINDOW))
        except Exception:  # noqa: BLE001  binascii.Error, ValueError: a seed that is not base32; never show it
            raise _unavailable(source, f"the TOTP seed in the keyring is damaged; store it again with "
                                       f"`{self._totp_set(source)}`", retryable=False) from None

    def rejected(self, source: Source) -> Failure:
        return Failure(FailureKind.MFA_INVALID,
                       f"source {source.name!r}: AWS rejected two codes made from the stored TOTP seed; the seed "
                       f"may belong to another device (store it again with `{self._totp_set(source)}`) or "
                       f"this machine's clock may be off (`{credd_command(self._hint, 'doctor')}`)", retryable=False)

    def _totp_set(self, source: Source) -> str:
        return credd_command(self._hint, "totp", "set", source.name)


def last_code(output: str) -> str | None:
    """The last line of `output` that is a 6-digit code, white space around it allowed."""
    for line in reversed(output.splitlines()):
        if CODE.fullmatch(line.strip()):
            return line.strip()
    return None


def mask_codes(text: str) -> str:
    """A line fit for the log: runs of six or more digits (codes, perhaps) masked, one line, bounded."""
    return re.sub(r"\d{6,}", "******", " ".join(text.split()))[:200]


class CommandDriver:
    """`mfa: command`: run `mfa_command` (no shell, bounded time); its last 6-digit stdout line is the code."""

    regenerates = True

    def __init__(self, run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
                 timeout: float = COMMAND_TIMEOUT, log: logging.Logger = LOG) -> None:
        self._run = run
        self.timeout = timeout
        self._log = log

    def code(self, source: Source, window: int) -> Secret:
        argv = list(source.mfa_command or ())
        if not argv:
            raise _unavailable(source, f"mfa: command needs sources.{source.name}.mfa_command", retryable=False)
        done = self._execute(source, argv)
        for line in done.stderr.decode("utf-8", "replace").splitlines():
            if line.strip():
                self._log.info("source %s: mfa_command says: %s", source.name, mask_codes(line))
        if done.returncode != 0:
            raise _unavailable(source, f"mfa_command ({argv[0]}) exited with status {done.returncode}; "
                                       "its error output is in credd's log", retryable=True)
        code = last_code(done.stdout.decode("utf-8", "replace"))
        if code is None:
            raise _unavailable(source, f"mfa_command ({argv[0]}) printed no line with a 6-digit code; "
                                       f"fix sources.{source.name}.mfa_command", retryable=False)
        return Secret(code)

    def _execute(self, source: Source, argv: list[str]) -> subprocess.CompletedProcess:
        try:
            return self._run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=self.timeout,
                             shell=False, check=False)
        except FileNotFoundError:
            raise _unavailable(source, f"mfa_command {argv[0]!r} was not found; install it or fix "
                                       f"sources.{source.name}.mfa_command", retryable=False) from None
        except PermissionError:
            raise _unavailable(source, f"mfa_command {argv[0]!r} is not executable; fix "
                                       f"sources.{source.name}.mfa_command", retryable=False) from None
        except subprocess.TimeoutExpired:
            raise _unavailable(source, f"mfa_command ({argv[0]}) did not finish within {self.timeout:g} s "
                                       "and was stopped", retryable=True) from None
        except OSError as e:
            raise _unavailable(source, f"cannot run mfa_command ({argv[0]}): {e.strerror}",
                               retryable=False) from None

    def rejected(self, source: Source) -> Failure:
        return Failure(FailureKind.MFA_INVALID,
                       f"source {source.name!r}: AWS rejected two codes printed by mfa_command; check that it "
                       f"reads the device of {source.mfa_serial} and that this machine's clock is right",
                       retryable=False)


class CodeInbox:
    """Codes the user hands in (`credd mfa SOURCE CODE`), one slot per source; the daemon fills it.

    A code is taken once. A code left waiting longer than `max_age` is stale
    (its window is long gone) and dropped. A code that went to STS for a
    device is refused for that device for CODE_USED_FOR seconds: AWS would
    refuse it, and only after a round trip that says less. The used codes
    live in memory only, never on disk: even a hash of a 6-digit code is
    read back by trying all million, and a restart forgets at most 90 s of
    them, which costs one refusal from AWS.
    """

    def __init__(self, clock: Callable[[], float] = time.time, max_age: float = PROMPT_CODE_MAX_AGE,
                 used_for: float = CODE_USED_FOR, hint_config: str | None = None) -> None:
        self._clock = clock
        self.hint_config = hint_config  # the daemon's --config, for `credd mfa` in what it says
        self._max_age = max_age
        self._used_for = used_for
        self._slots: dict[str, tuple[Secret, float]] = {}
        self._sent: dict[str, dict[Secret, float]] = {}  # MFA serial -> code -> when it went to STS
        self._changed = threading.Condition()

    def put(self, source: str, code: str, serial: str | None = None) -> None:
        """Hand in a code for `source`; a newer code replaces one not yet used. Refused when used for `serial`."""
        code = code.strip()
        if not CODE.fullmatch(code):
            raise SecretFormatError(f"an MFA code is 6 digits; that was {len(code)} characters")
        with self._changed:
            if serial is not None:
                self._refuse_used(source, serial, Secret(code))
            self._slots[source] = (Secret(code), self._clock())
            self._changed.notify_all()

    def take(self, source: str, timeout: float = 0.0) -> Secret | None:
        """The code handed in for `source`, waiting up to `timeout` seconds for one; None if there is none."""
        with self._changed:
            self._changed.wait_for(lambda: source in self._slots, timeout=timeout)
            code, handed_in = self._slots.pop(source, (None, 0.0))
        if code is not None and self._clock() - handed_in > self._max_age:
            return None
        return code

    def sending(self, source: str, serial: str, code: Secret) -> None:
        """Note that `code` goes to STS for `serial` now; MfaCodeUsedError if it went there lately.

        Checked here too, not only in `put`: two hand-ins of one code can both pass `put` before either is sent.
        """
        with self._changed:
            self._refuse_used(source, serial, code)
            self._sent.setdefault(serial, {})[code] = self._clock()

    def has(self, source: str) -> bool:
        with self._changed:
            return source in self._slots

    def _refuse_used(self, source: str, serial: str, code: Secret) -> None:
        now = self._clock()
        sent = self._sent.get(serial, {})
        for old in [old for old, when in sent.items() if now - when >= self._used_for]:
            del sent[old]
        if code in sent:
            raise MfaCodeUsedError(
                f"source {source}: that MFA code was already sent to AWS for {serial} {now - sent[code]:.0f} s ago, "
                f"and AWS accepts each code only once; wait for your device to show the next code, then run "
                f"`{credd_command(self.hint_config, 'mfa', source)}` with it")


class PromptDriver:
    """`mfa: prompt`: no code can be made; use the one the user handed in, or say that one is needed."""

    regenerates = False

    def __init__(self, inbox: CodeInbox, wait: float = 0.0) -> None:
        self.inbox = inbox
        self.wait = wait

    def _hand_in(self, source: Source) -> str:
        """`credd mfa SOURCE`, with the --config the inbox's daemon runs with."""
        return credd_command(self.inbox.hint_config, "mfa", source.name)

    def code(self, source: Source, window: int) -> Secret:
        code = self.inbox.take(source.name, timeout=self.wait)
        if code is None:
            raise MfaError(Failure(FailureKind.MFA_NEEDED,
                                   f"source {source.name!r} needs an MFA code: run `{self._hand_in(source)}` "
                                   f"with the code your device for {source.mfa_serial} shows", retryable=False))
        if source.mfa_serial is not None:
            try:
                self.inbox.sending(source.name, source.mfa_serial, code)
            except MfaCodeUsedError as e:  # a new code is needed: the hook asks for one
                raise MfaError(Failure(FailureKind.MFA_NEEDED, str(e), retryable=False)) from None
        return code

    def rejected(self, source: Source) -> Failure:
        return Failure(FailureKind.MFA_INVALID,
                       f"source {source.name!r}: AWS rejected the MFA code (wrong, expired or used before); "
                       f"run `{self._hand_in(source)}` with the next code your device shows", retryable=False)


def make_drivers(*, seeds: Callable[[str], Secret | None], inbox: CodeInbox,
                 run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
                 command_timeout: float = COMMAND_TIMEOUT, log: logging.Logger = LOG,
                 hint_config: str | None = None) -> Mapping[str, MfaDriver]:
    """The drivers by the name `mfa:` uses in the config.

    `hint_config`: the `--config` the daemon runs with, for the commands the drivers' messages name (the
    prompt driver's are the inbox's, which the daemon makes with the same value).
    """
    return {
        "totp": TotpDriver(seeds, hint_config),
        "command": CommandDriver(run, command_timeout, log),
        "prompt": PromptDriver(inbox),
    }


def state_file(state_dir: str | Path) -> Path:
    """Where `UsedWindows` keeps its state: `paths.state_dir(env)/mfa-windows.json`."""
    return Path(state_dir) / STATE_FILE
