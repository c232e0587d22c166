"""`credd config check`: validate the config and say what it defines."""

from __future__ import annotations

from credd.commands.args import NoArgs
from credd.context import Context


def run(ctx: Context, args: NoArgs) -> int:
    config = ctx.load_config()
    for warning in config.warnings:
        ctx.warn(warning)  # names the file and the line itself
    sources = len(config.sources)
    profiles = len(config.profiles)
    ctx.say(f"{config.path}: ok ({sources} source{'s' * (sources != 1)}, "
            f"{profiles} profile{'s' * (profiles != 1)})")
    return 0
