"""MFA codes: where they come from, and when one may be used.

Three drivers, picked by the source's `mfa` setting (as aws-vault picks its
prompt drivers by name): `totp` makes the code from the seed in the keyring,
`command` runs `mfa_command`, `prompt` takes a code the user handed in.

AWS accepts each code once ("MultiFactorAuthentication failed with invalid
MFA one time pass code"), and a code lives for one 30-second window. So
credd remembers, per MFA serial, the last window it used, in a small state
file (serial -> window number, no secrets) that survives restarts, and waits
for the next window rather than send a code AWS will refuse.

One module per job:
  windows.py  the window arithmetic; pure, the clock is always an argument
  ledger.py   the window state file (`UsedWindows`)
  inbox.py    the codes users hand in, and the codes already sent to STS
  drivers.py  totp, command and prompt, by the name `mfa:` gives them

The names below are what the rest of credd uses, as `mfa.X`.
"""

from __future__ import annotations

from credd.mfa.drivers import (
    COMMAND_TIMEOUT,
    CommandDriver,
    MfaDriver,
    PromptDriver,
    TotpDriver,
    last_code,
    make_drivers,
    mask_codes,
)
from credd.mfa.inbox import CODE, CODE_USED_FOR, PROMPT_CODE_MAX_AGE, CodeInbox
from credd.mfa.ledger import STATE_FILE, UsedWindows, state_file
from credd.mfa.windows import (
    MAX_WINDOWS_AHEAD,
    WINDOW,
    next_window,
    seconds_until,
    window_at,
)

__all__ = [
    "CODE", "CODE_USED_FOR", "COMMAND_TIMEOUT", "MAX_WINDOWS_AHEAD", "PROMPT_CODE_MAX_AGE", "STATE_FILE", "WINDOW",
    "CodeInbox", "CommandDriver", "MfaDriver", "PromptDriver", "TotpDriver", "UsedWindows",
    "last_code", "make_drivers", "mask_codes", "next_window", "seconds_until", "state_file", "window_at",
]
