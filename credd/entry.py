"""The `credd` console script.

`credd process` goes straight to the hook, which imports only the standard
library; every other command goes through `cli` and its argument parser.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    from credd import hook

    parsed = hook.parse_args(args)
    if parsed is not None:
        return hook.run(*parsed)
    from credd.cli import main as cli_main

    return cli_main(args)
