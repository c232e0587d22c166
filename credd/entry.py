"""The `credd` console script.

`credd process` goes straight to the hook, which imports only the standard
library; every other command goes through `cli` and its argument parser.

Every command runs under umask 077: what credd, or a library it calls (keyrings.alt makes its
directory with os.makedirs), creates is private even when the user's umask is 000. Files credd
means to be readable get their mode set explicitly. `credd exec` gives the command it runs the
user's own umask back (`restore_user_umask`).

Every command also runs with core files off (`coredump`): `keys set`, `totp set`, `mfa`, `env`, `exec`
and the hook hold secrets, and one rule for all is simpler than a list. Every command but the hook is
also made undumpable; `coredump` says why the hook is not, with figures.
"""

from __future__ import annotations

import os
import sys

PRIVATE_UMASK = 0o077
_user_umask: int | None = None  # the umask credd was started with; process-wide, like the umask itself


def main(argv: list[str] | None = None) -> int:
    global _user_umask
    before = os.umask(PRIVATE_UMASK)
    if _user_umask is None:  # a second call in one process must not take 077 for the user's
        _user_umask = before
    args = sys.argv[1:] if argv is None else argv
    from credd import coredump, hook

    coredump.no_core_files()
    parsed = hook.parse_args(args)
    if parsed is not None:
        return hook.run(*parsed)
    coredump.undumpable()  # `credd serve` says so in its log when this fails; a short command has no log
    from credd.cli import main as cli_main

    return cli_main(args)


def restore_user_umask() -> None:
    """Put back the umask the user started credd with, for a program that takes credd's place."""
    if _user_umask is not None:
        os.umask(_user_umask)
