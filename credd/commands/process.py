"""`credd process PROFILE` when it arrives through the full parser (the console script skips it)."""

from __future__ import annotations

from credd import hook
from credd.commands.args import ProcessArgs
from credd.context import Context


def run(ctx: Context, args: ProcessArgs) -> int:
    return hook.run(ctx.config_arg, args.profile, ctx.env)
