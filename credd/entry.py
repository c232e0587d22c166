"""The `credd` console script.

`credd process` goes straight to the hook, which imports only the standard
library; every other command goes through `cli` and its argument parser.

Every command runs under umask 077 (`umask` says why) and with core files off (`coredump`): `keys set`,
`totp set`, `mfa`, `env`, `exec` and the hook hold secrets, and one rule for all is simpler than a list.
Every command but the hook is also made undumpable; `coredump` says why the hook is not, with figures.
"""

from __future__ import annotations

import sys

from credd import umask


def main(argv: list[str] | None = None) -> int:
    umask.make_private()
    args = sys.argv[1:] if argv is None else argv
    from credd import commandline, coredump, hook

    coredump.no_core_files()
    parsed = commandline.process_args(args)
    if parsed is not None:
        return hook.run(*parsed)
    coredump.undumpable()  # `credd serve` says so in its log when this fails; a short command has no log
    from credd.cli import main as cli_main

    return cli_main(args)
