"""Moving a long-term key into the keyring: `credd keys import` (from a credentials-file section or from
aws-vault) and `credd init`.

All come here, so they cannot drift apart. The file changes only after
the keyring has returned the key intact, so a failure at any step leaves the
key in at least one place.
"""

from __future__ import annotations

from collections.abc import Mapping

from credd import awsvault, credfile
from credd.atomicfile import read_text, update_file
from credd.commandline import credd_command
from credd.context import Context
from credd.errors import CredentialsFileError, KeyringError, UsageError
from credd.model import AccessKey, Config, mask_key_id
from credd.secret_formats import parse_access_key
from credd.store import SESSION, Store, backend_name, is_plaintext


def import_from_profile(ctx: Context, config: Config, source: str, section: str, replace: bool = False) -> None:
    """Move the long-term key in `section` of the credentials file into the keyring for `source`."""
    import_from_profiles(ctx, config, {source: section}, replace)


def import_from_profiles(ctx: Context, config: Config, sections: Mapping[str, str], replace: bool = False) -> None:
    """`import_from_profile` for each source -> section, with one read and one write of the credentials file
    however many keys move (`credd config import` moves one per source)."""
    store = ctx.open_store(config)
    path = config.credentials_file
    text = read_text(path)
    if text is None:
        source = next(iter(sections))
        raise CredentialsFileError(str(path), None, f"there is no such file, so no key to import; "
                                                    f"store the key with `{ctx.command('keys', 'set', source)}`")
    keys = {}
    for source, section in sections.items():
        found = credfile.read_long_term_key(text, section, str(path))
        keys[section] = parse_access_key(found.key_id, found.secret.reveal())
        _store_verified(store, source, keys[section], replace, "the credentials file was left as it was")
    held: set[str] = set()

    def remove(current: str) -> str:
        held.clear()  # update_file may run this again on a file changed meanwhile: the last run counts
        held.update(credfile.long_term_sections(current, list(keys), str(path)))
        return credfile.remove_long_term_keys(current, keys, str(path))

    update_file(path, remove, hint_config=ctx.hint_config)
    for source, section in sections.items():
        where = f"removed it from [{section}] in {path}" if section in held else \
            f"[{section}] in {path} no longer held it"
        ctx.say(f"imported access key {mask_key_id(keys[section].key_id)} for source {source} into the keyring "
                f"({backend_name(store.backend)}); {where}")
    warn_if_plaintext(ctx, store)


def import_from_aws_vault(ctx: Context, config: Config, source: str, profile: str, replace: bool = False) -> None:
    """Copy the long-term key aws-vault holds for `profile` into the keyring for `source`.

    aws-vault's item stays: it is aws-vault's to remove, and the user may still run aws-vault.
    """
    store = ctx.open_store(config)  # first: no reading a secret for a keyring that is not there
    key = awsvault.read_long_term_key(profile, ctx.env, ctx.platform, ctx.command("keys", "set", source))
    _store_verified(store, source, key, replace, "aws-vault's item was left as it was")
    ctx.say(f"imported access key {mask_key_id(key.key_id)} for source {source} from aws-vault profile {profile} "
            f"into the keyring ({backend_name(store.backend)}); aws-vault still holds it "
            f"(`aws-vault remove {profile}` removes it there)")
    warn_if_plaintext(ctx, store)


def _store_verified(store: Store, source: str, key: AccessKey, replace: bool, untouched: str) -> None:
    """Store `key` for `source` and read it back; never drop a different key the keyring holds unasked."""
    existing = store.get_access_key(source)
    if existing is not None and existing != key and not replace:
        raise UsageError(f"the keyring already holds another access key ({mask_key_id(existing.key_id)}) for source "
                         f"{source}; nothing was changed. Add --replace to replace it with "
                         f"{mask_key_id(key.key_id)}")
    store.set_access_key(source, key)
    if store.get_access_key(source) != key:
        doctor = credd_command(store.hint_config, "doctor")
        raise KeyringError(f"the keyring ({backend_name(store.backend)}) did not return the access key of source "
                           f"{source!r} as stored; {untouched}. "
                           f"Check that the keyring is unlocked and writable (`{doctor}`)")
    if existing != key:
        # A session made with the previous key must not outlive its replacement.
        store.delete(source, SESSION)


def warn_if_plaintext(ctx: Context, store: Store) -> None:
    if is_plaintext(store.backend):
        ctx.warn(f"{backend_name(store.backend)} keeps secrets in plain text on disk; you chose it, "
                 "but a real keyring (Secret Service, macOS Keychain) protects them")
