"""The config, the keyring, and what the keyring holds for each source."""

from __future__ import annotations

from collections.abc import Mapping

from credd.commandline import credd_command
from credd.doctor.facts import KeyringFacts, SecretFacts
from credd.doctor.findings import Finding, count, fail, ok, warn
from credd.model import Config, mask_key_id


def _again(hint: str | None) -> str:
    return f"fix what is marked FAIL above, then run `{credd_command(hint, 'doctor')}` again"


def check_config(path: str, config: Config | None, error: str | None, hint: str | None = None) -> list[Finding]:
    if config is None:
        return [fail("config", error or f"{path}: cannot be read"),
                warn("doctor", "skipped the checks that need the config: the keyring entries of each source, "
                               "which path each profile takes, AWS_PROFILE, AWS_SHARED_CREDENTIALS_FILE and the clock",
                     _again(hint))]
    found = [ok("config", f"{path}: {count(len(config.sources), 'source')}, {count(len(config.profiles), 'profile')}")]
    return found + [warn("config", text) for text in config.warnings]  # each names the file and the line


def check_keyring(keyring: KeyringFacts, env: Mapping[str, str], hint: str | None = None) -> list[Finding]:
    if keyring.backend is None:
        return [fail("keyring", keyring.error or "no keyring backend")]
    if not keyring.explicit:
        return [ok("keyring", f"{keyring.backend} (found on its own)")]
    by_env = bool(env.get("PYTHON_KEYRING_BACKEND"))
    where = "$PYTHON_KEYRING_BACKEND" if by_env else "keyring's keyringrc.cfg"
    if not keyring.plaintext:
        return [ok("keyring", f"{keyring.backend} (chosen in {where})")]
    undo = ("unset PYTHON_KEYRING_BACKEND" if by_env
            else "remove `default-keyring` from keyringrc.cfg (`python -m keyring diagnose` shows where it is)")
    return [warn("keyring", f"{keyring.backend} keeps secrets in plain text on disk; you chose it in {where}",
                 f"{undo}, and use a real keyring: a Secret Service (gnome-keyring, KeePassXC) on Linux, "
                 "the Keychain on macOS; then store the keys again "
                 f"(`{credd_command(hint, 'keys', 'set', 'SOURCE')}`)")]


def check_secrets(config: Config, secrets: Mapping[str, SecretFacts], keyring: KeyringFacts,
                  hint: str | None = None) -> list[Finding]:
    if keyring.backend is None:
        return [warn("doctor", "skipped the keyring entries of each source: there is no keyring to ask", _again(hint))]
    found = []
    for name, source in config.sources.items():
        facts, topic = secrets.get(name, SecretFacts()), f"source {name}"
        if facts.error:
            found.append(fail(topic, facts.error))
            continue
        if facts.key_id is None:
            found.append(fail(topic, "no access key in the keyring, so credd cannot call STS",
                              f"{credd_command(hint, 'keys', 'set', name)}  (or "
                              f"`{credd_command(hint, 'keys', 'import', name, '--from-profile', 'NAME')}` for a key "
                              "in the credentials file)"))
        else:
            seed = ", and its TOTP seed" if source.mfa == "totp" and facts.has_seed else ""
            found.append(ok(topic, f"access key {mask_key_id(facts.key_id)} in the keyring{seed}"))
        if source.mfa == "totp" and not facts.has_seed:
            found.append(fail(topic, "mfa: totp, but the keyring holds no TOTP seed, so credd cannot make MFA codes",
                              credd_command(hint, "totp", "set", name)))
    return found
