"""`credd totp set`: a TOTP seed in the keyring, so credd can make MFA codes itself."""

from __future__ import annotations

from credd.commands.args import SourceArgs
from credd.commands.keys import known_source
from credd.context import Context
from credd.keyimport import warn_if_plaintext
from credd.secret_formats import parse_totp_seed
from credd.store import backend_name
from credd.terminal import ask_hidden, ask_valid, is_interactive, read_lines


def set_seed(ctx: Context, args: SourceArgs) -> int:
    config = ctx.load_config()
    source = known_source(config, args.source)
    store = ctx.open_store(config)
    if is_interactive(ctx.stdin):
        seed = ask_valid(lambda: ask_hidden(f"TOTP seed (base32 or otpauth:// URI) for {source}: ", ctx.stdin),
                         parse_totp_seed, ctx.stderr)
    else:
        seed = parse_totp_seed(*read_lines(ctx.stdin, ("TOTP seed",)))
    store.set_totp_seed(source, seed)
    ctx.say(f"stored the TOTP seed for source {source} in the keyring ({backend_name(store.backend)})")
    warn_if_plaintext(ctx, store)
    method = config.sources[source].mfa
    if method != "totp":
        ctx.warn(f"source {source} has mfa: {method or 'none'}; set `mfa: totp` in {config.path} "
                 "for credd to use this seed")
    return 0
