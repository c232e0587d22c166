"""The code inbox: codes the user hands in (`credd mfa SOURCE CODE`), and the record of codes sent to STS."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

from credd.commandline import credd_command
from credd.errors import MfaCodeUsedError, SecretFormatError
from credd.model import Secret

CODE = re.compile(r"[0-9]{6}")  # ASCII digits only: \d also takes `١٢٣٤٥٦`
PROMPT_CODE_MAX_AGE = 90.0  # a handed-in code older than three windows is stale
# How long a code sent to STS counts as used. AWS takes a code in its own 30-s step and, for
# clock drift, the step either side: sent at the start of the step before its own, it stays
# acceptable for up to three steps. aws-vault keeps no such ledger and lets AWS refuse.
CODE_USED_FOR = 3 * 30.0


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
