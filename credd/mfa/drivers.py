"""The drivers that make or fetch a code, by the name the source's `mfa:` setting gives: totp, command, prompt."""

from __future__ import annotations

import logging
import re
import subprocess
from collections.abc import Callable, Mapping
from typing import Protocol

from credd.commandline import credd_command
from credd.errors import KeyringError, MfaCodeUsedError, MfaError, RefreshError
from credd.mfa.inbox import CODE, CodeInbox
from credd.mfa.windows import WINDOW
from credd.model import Failure, FailureKind, Secret, Source

LOG = logging.getLogger("credd.mfa")

COMMAND_TIMEOUT = 60.0  # a hardware key may wait for a touch


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
