"""`credd completion SHELL` (the script to install) and `credd __complete` (what the script runs on TAB).

`__complete` is called on every TAB: it reads the config with `completion.config_names`, never with the
config loader (yaml), and imports nothing beyond the standard library and the argument parser.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import IO

from credd import completion, paths
from credd.commands.args import CompletionArgs
from credd.context import Context


def print_script(ctx: Context, args: CompletionArgs) -> int:
    ctx.stdout.write(completion.SCRIPTS[args.shell])
    return 0


def complete(parser: argparse.ArgumentParser, argv: Sequence[str], env: Mapping[str, str], out: IO[str]) -> int:
    """`__complete SHELL CURRENT [WORD ...]`: the candidates for CURRENT, typed after `credd WORD ...`.

    Always exits 0 and prints nothing on a problem (an unreadable config, a bad call):
    a TAB must never spill an error into the line being typed.
    """
    if len(argv) < 2 or argv[0] not in completion.SHELLS:
        return 0
    shell, current, words = argv[0], argv[1], argv[2:]

    def names(section: str, config: str | None) -> list[str]:
        try:
            with open(paths.config_file(env, config), encoding="utf-8") as file:
                return completion.config_names(file.read(), section)
        except (OSError, ValueError):
            return []

    out.write(completion.render(completion.candidates(parser, words, current, names), shell))
    return 0

