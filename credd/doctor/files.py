"""The shared credentials file: whose it is, who may read it and replace it, and the keys left in it."""

from __future__ import annotations

import os.path
import shlex
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field

from credd import credfile, shadow
from credd.commandline import credd_command
from credd.doctor.facts import FileFacts, SecretFacts, Stat
from credd.doctor.findings import Finding, count, fail, ok, warn
from credd.errors import CredentialsFileError
from credd.model import Config, mask_key_id


@dataclass(frozen=True)
class ParsedCredentials:
    """The credentials file as botocore reads it, parsed once for the checks that look into it."""

    sections: Mapping[str, credfile.Section] = field(default_factory=dict)
    keyed: frozenset[str] = frozenset()  # profiles botocore reads an access key from: they shadow credential_process
    error: str | None = None


def parse_credentials(file: FileFacts) -> ParsedCredentials:
    if not file.text:
        return ParsedCredentials()
    try:
        document = credfile.parse(file.text, file.path)
        profiles = credfile.read_profiles(file.text, file.path)
    except CredentialsFileError as e:
        return ParsedCredentials(error=str(e))
    keyed = frozenset(name for name, values in profiles.items() if credfile.ACCESS_KEY_ID in values)
    return ParsedCredentials(document.sections, keyed)


def check_credentials_file(file: FileFacts, parsed: ParsedCredentials, config: Config | None,
                           uid: int, secrets: Mapping[str, SecretFacts] | None = None,
                           hint: str | None = None) -> list[Finding]:
    topic = "credentials file"
    if file.error:
        return [fail(topic, file.error)]
    if file.stat is None:
        return [ok(topic, f"{file.path} does not exist yet; credd creates it (mode 600) when it first writes a "
                          "profile")]
    found = private_file(topic, file.path, file.stat, uid)
    if file.dir_stat is not None:
        found += safe_directory(topic, os.path.dirname(file.resolved), file.dir_stat, uid)
    if parsed.error:
        found.append(fail(topic, parsed.error))
    else:
        found += long_term_keys(parsed, config, file.path, secrets or {}, hint)
    if found:
        return found
    owned = sum(section.owned for section in parsed.sections.values())
    return [ok(topic, f"{file.path}: mode {stat.S_IMODE(file.stat.mode):o}, {count(len(parsed.sections), 'profile')}, "
                      f"{owned} written by credd")]


def private_file(topic: str, path: str, info: Stat, uid: int) -> list[Finding]:
    """A file that holds keys: yours, and no one else's to read."""
    found = []
    if info.uid != uid:
        found.append(fail(topic, f"{path} belongs to uid {info.uid}, not to you (uid {uid})",
                          f"sudo chown {uid} {shlex.quote(path)}"))
    mode = stat.S_IMODE(info.mode)
    if mode & 0o077:
        found.append(fail(topic, f"{path} is open to other users (mode {mode:o}), and it holds AWS keys",
                          f"chmod 600 {shlex.quote(path)}"))
    return found


def safe_directory(topic: str, directory: str, info: Stat, uid: int) -> list[Finding]:
    """The directory credd replaces the file in: yours, and no one else's to write."""
    found = []
    if info.uid != uid:
        found.append(fail(topic, f"{directory} belongs to uid {info.uid}, not to you: credd cannot replace the "
                                 "credentials file in it", f"sudo chown {uid} {shlex.quote(directory)}"))
    mode = stat.S_IMODE(info.mode)
    if mode & 0o022:
        found.append(fail(topic, f"{directory} is writable by other users (mode {mode:o}): they could replace the "
                                 "credentials file", f"chmod go-w {shlex.quote(directory)}"))
    return found


def long_term_keys(parsed: ParsedCredentials, config: Config | None, path: str,
                   secrets: Mapping[str, SecretFacts], hint: str | None = None) -> list[Finding]:
    """Long-term keys in plain text belong in the keyring; in a section credd should write, they stop it."""
    found = []
    for name, section in parsed.sections.items():
        if not section.holds_long_term_key:
            continue
        profile = config.profiles.get(name) if config else None
        if config is not None and profile is not None and profile.write and not section.owned:
            # `keys import` only for the source's own key: any other would give the source another identity.
            held = secrets.get(profile.source, SecretFacts())
            found.append(fail("credentials file", *shadow.advice(
                name, profile.source, f"{path}:{section.header + 1}", section.keys[credfile.ACCESS_KEY_ID].value,
                held.key_id, str(config.path), hint)))
            continue
        source = _source_for(name, config)
        fix = credd_command(hint, "keys", "import", source, "--from-profile", name)
        if source == "SOURCE":
            fix += "  (SOURCE: the source in credd's config that the key belongs to)"
        key_id = mask_key_id(section.keys[credfile.ACCESS_KEY_ID].value)
        found.append(warn("credentials file", f"[{name}] in {path} holds a long-term access key ({key_id}) in "
                                              "plain text", fix))
    return found


def _source_for(section: str, config: Config | None) -> str:
    """The source a long-term key most likely belongs to, for the `credd keys import` line."""
    if config is None:
        return "SOURCE"
    if section in config.sources:
        return section
    if section in config.profiles:
        return config.profiles[section].source
    return next(iter(config.sources)) if len(config.sources) == 1 else "SOURCE"
