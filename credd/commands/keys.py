"""`credd keys set|import|rm|ls`: long-term access keys in the keyring."""

from __future__ import annotations

from credd.commands.args import JsonArgs, KeysImportArgs, SourceArgs
from credd.config import NAME
from credd.context import Context
from credd.errors import UsageError
from credd.keyimport import import_from_aws_vault, import_from_profile, warn_if_plaintext
from credd.model import AccessKey, Config, mask_key_id
from credd.secret_formats import parse_access_key, parse_key_id, parse_secret_key
from credd.store import KINDS, SESSION, TOTP_SEED, Store, backend_name
from credd.terminal import ask, ask_hidden, ask_valid, is_interactive, read_lines


def known_source(config: Config, name: str) -> str:
    """`name` if the config defines it, else a usage error that lists the ones it does."""
    if name not in config.sources:
        names = ", ".join(sorted(config.sources)) or "none"
        raise UsageError(f"no source named {name!r} in {config.path} (sources: {names})")
    return name


def set_key(ctx: Context, args: SourceArgs) -> int:
    config = ctx.load_config()
    source = known_source(config, args.source)
    store = ctx.open_store(config)  # before asking: no typing a secret into a keyring that is not there
    if is_interactive(ctx.stdin):
        # The id is no secret and shows while typed, so a paste can be checked; each field is
        # checked as soon as it is typed, and asked again.
        key_id = ask_valid(lambda: ask(f"Access key ID for {source}", ctx.stdin, ctx.stdout), parse_key_id,
                           ctx.stderr)
        secret = ask_valid(lambda: ask_hidden(f"Secret access key for {source}: ", ctx.stdin), parse_secret_key,
                           ctx.stderr)
        key = AccessKey(key_id, secret)
    else:
        key = parse_access_key(*read_lines(ctx.stdin, ("access key id", "secret access key")))
    store.set_access_key(source, key)
    # A session made with the previous key must not outlive its replacement.
    store.delete(source, SESSION)
    ctx.say(f"stored access key {mask_key_id(key.key_id)} for source {source} "
            f"in the keyring ({backend_name(store.backend)})")
    warn_if_plaintext(ctx, store)
    return 0


def import_key(ctx: Context, args: KeysImportArgs) -> int:
    config = ctx.load_config()
    source = known_source(config, args.source)
    if args.from_aws_vault is not None:
        import_from_aws_vault(ctx, config, source, args.from_aws_vault, args.replace)
    else:
        assert args.from_profile is not None  # the parser requires one of the two
        import_from_profile(ctx, config, source, args.from_profile, args.replace)
    return 0


def remove(ctx: Context, args: SourceArgs) -> int:
    config = ctx.load_config()
    # A source already deleted from the config may still have entries to clean up.
    if not NAME.fullmatch(args.source):
        raise UsageError(f"{args.source!r} is not a valid source name")
    store = ctx.open_store(config)
    removed = [kind for kind in KINDS if store.delete(args.source, kind)]
    if removed:
        ctx.say(f"removed from the keyring for source {args.source}: {', '.join(removed)}")
    else:
        ctx.say(f"the keyring held nothing for source {args.source}")
    return 0


def list_keys(ctx: Context, args: JsonArgs) -> int:
    config = ctx.load_config()
    store = ctx.open_store(config)
    held = {name: holdings(store, name) for name in config.sources}
    if args.json:
        import json

        ctx.say(json.dumps({"keyring": backend_name(store.backend), "service": config.keyring_service,
                            "sources": held}, indent=2, ensure_ascii=False))
        return 0
    ctx.say(f"keyring: {backend_name(store.backend)}, service {config.keyring_service!r}")
    for name, found in held.items():
        key_text = found["access_key_id"] or f"no key ({ctx.command('keys', 'set', name)})"
        extras = [label for field, label in (("totp_seed", "TOTP seed"), ("cached_session", "cached session"))
                  if found[field]]
        ctx.say(f"  {name}: {key_text}" + (f"; {', '.join(extras)}" if extras else ""))
    return 0


def holdings(store: Store, source: str) -> dict[str, str | bool | None]:
    """What the keyring holds for `source`, as `keys ls --json` shows it: the key id masked, never a secret."""
    key = store.get_access_key(source)
    return {"access_key_id": mask_key_id(key.key_id) if key else None,
            "totp_seed": store.has(source, TOTP_SEED), "cached_session": store.has(source, SESSION)}
