"""`credd process PROFILE` when it arrives through the full parser (the console script skips it)."""

from __future__ import annotations

import argparse

from credd import hook
from credd.context import Context


def run(ctx: Context, args: argparse.Namespace) -> int:
    return hook.run(args.config, args.profile, ctx.env)
