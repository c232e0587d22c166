"""`~/.aws/config` and the credentials file -> what `credd config import` would add: pure, no I/O.

A base profile (no `role_arn`) whose long-term key is in the credentials file
becomes a source of the same name, and a profile of that name serving its
session (so `--profile NAME` keeps working once the key has left the file).
So does a `source_profile`, or a picked name, that names a section found only in
the credentials file (botocore takes that: `[base]` with its key, no `[profile base]`).
A role profile becomes a credd profile: `source:` when its `source_profile`
is a base, `source_profile:` when it is another role (a chain). An
`mfa_serial` declared on any hop of a chain goes to the chain's source: credd
asks for one MFA code per source and assumes every role with that session.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from credd import credfile
from credd.durations import format_duration
from credd.errors import one_line

# Values of `credential_source` (botocore), and why credd cannot serve a role assumed with them.
CREDENTIAL_SOURCES = {
    "environment": "its role is assumed with the AWS_* variables of the process that asks, which credd's daemon "
                   "does not have",
    "ec2instancemetadata": "its role is assumed with the EC2 instance's own role, which only a process on that "
                           "instance can use",
    "ecscontainer": "its role is assumed with the ECS task's role, which only a process in that container can use",
}
SSO_KEYS = ("sso_start_url", "sso_session", "sso_account_id", "sso_role_name")


@dataclass(frozen=True)
class KeyMove:
    """A long-term key to move from section `section` of the credentials file into the keyring for `source`."""

    source: str
    section: str


@dataclass(frozen=True)
class Skipped:
    """A profile of `~/.aws/config` the import leaves alone, and why."""

    profile: str
    line: int  # of its section header, from 1
    reason: str


@dataclass
class Plan:
    # Name -> the keys credd's YAML gives it, in the order they are written.
    sources: dict[str, dict[str, object]] = field(default_factory=dict)
    profiles: dict[str, dict[str, object]] = field(default_factory=dict)
    keys: list[KeyMove] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)  # profile -> line of its section in ~/.aws/config
    # A base with no section in ~/.aws/config -> "CREDENTIALS:LINE" of its key's section.
    elsewhere: dict[str, str] = field(default_factory=dict)

    def where(self, name: str, config_path: str) -> str:
        """Where profile `name` comes from: its section in `config_path`, else its key's in the credentials file."""
        return self.elsewhere.get(name) or f"{config_path}:{self.lines.get(name, '?')}"


class _Cannot(Exception):
    pass


def profile_sections(text: str, path: str) -> dict[str, credfile.Section]:
    """The profiles of an AWS config file, by name, as botocore names them: `[default]` and `[profile NAME]`."""
    doc = credfile.parse(text, path)
    found: dict[str, credfile.Section] = {}
    for name, section in doc.sections.items():
        if name == "default":
            found.setdefault("default", section)
        elif name.startswith("profile ") and name[8:].strip():
            found[name[8:].strip()] = section  # `[profile default]` wins over `[default]`, as in botocore
    return found


def plan_import(config_text: str, config_path: str, credentials_text: str | None, credentials_path: str,
                wanted: Sequence[str] = (), known_sources: Collection[str] = ()) -> Plan:
    """What importing `config_text` adds to credd's config.

    `wanted`: the profiles to take (with the profiles their chains need); empty: all.
    `known_sources`: sources credd's config already has, whose keys may already have left the credentials file.
    """
    from credd.config import NAME

    sections = profile_sections(config_text, config_path)
    values = {name: _with_includes(name, sections) for name in sections}
    # A source_profile may name a section of the credentials file alone, as botocore allows.
    # So may a picked name: `[base]` with its key is a profile botocore serves, with or without `[profile base]`.
    named = {str(got["source_profile"]) for got in values.values() if got.get("source_profile")} | set(wanted)
    keys = credfile.long_term_sections(credentials_text or "", [*values, *sorted(named - set(values))],
                                       credentials_path)
    # A known source is one an earlier import took (its key has left the credentials file): no change, not an error.
    missing = [name for name in wanted if name not in sections and name not in keys and name not in known_sources]
    if missing:
        _refuse_missing(missing, sections, credentials_text, config_path, credentials_path)
    plan = Plan(lines={name: section.header + 1 for name, section in sections.items()})
    order = list(wanted) or list(sections)
    done: dict[str, str | None] = {}  # profile -> its root source; None: could not be taken
    why: dict[str, str] = {}  # profile -> why it could not be taken

    def take(name: str, seen: tuple[str, ...]) -> str:
        """`name`'s root source, once it is planned; a _Cannot saying why not (also noted in plan.skipped)."""
        if name in seen:
            raise _Cannot(f"its source_profile chain goes round in a circle ({' -> '.join([*seen, name])})")
        if name not in values:
            return take_credentials_only(name)
        if name not in done:
            try:
                done[name] = _take_one(name, seen)
            except _Cannot as e:
                done[name] = None
                why[name] = str(e)
                plan.skipped.append(Skipped(name, plan.lines[name], str(e)))
        root = done[name]
        if root is None:
            raise _Cannot(f"it needs profile {name}, which is left alone: {why[name]}")
        return root

    def take_credentials_only(name: str) -> str:
        """A `source_profile` with no section in `config_path`: botocore reads its key from the credentials file."""
        if name not in keys and name not in known_sources:  # known: an earlier import moved its key already
            raise _Cannot(f"its source_profile {name!r} is not a profile of {config_path}, nor a section of "
                          f"{credentials_path} with a long-term key")
        if not NAME.fullmatch(name):
            raise _Cannot(f"its source_profile {name!r} (in {credentials_path}) has a name credd does not take "
                          "(up to 64 letters, digits and _.@+=,-)")
        if name not in done:
            done[name] = _take_base(name, {}, keys, known_sources, plan, credentials_path)
            if name in keys:
                plan.elsewhere[name] = f"{credentials_path}:{keys[name].line}"
        return name

    def _take_one(name: str, seen: tuple[str, ...]) -> str:
        got = values[name]
        if not NAME.fullmatch(name):
            raise _Cannot("its name is not one credd takes (up to 64 letters, digits and _.@+=,-)")
        if any(key in got for key in SSO_KEYS):
            raise _Cannot("an SSO profile: credd has no SSO source yet")
        if "credential_process" in got:
            raise _Cannot("it runs its own credential_process, which keeps serving it")
        if "web_identity_token_file" in got:
            raise _Cannot("a web identity profile: its token file is its credentials, not a key credd keeps")
        source_kind = str(got.get("credential_source", "")).lower()
        if source_kind:
            reason = CREDENTIAL_SOURCES.get(source_kind, "credd knows no such credential_source")
            raise _Cannot(f"credential_source = {got['credential_source']}: {reason}")
        role = got.get("role_arn")
        parent = str(got.get("source_profile") or "")
        if not role:
            return _take_base(name, got, keys, known_sources, plan, credentials_path)
        entry: dict[str, object] = {}
        if parent == name:  # its own key assumes its own role, as botocore reads a self-referencing profile
            root = _take_base(name, got, keys, known_sources, plan, credentials_path)
            entry["source"] = root
        elif not parent:
            raise _Cannot("role_arn without source_profile or credential_source: no credentials to assume it with")
        else:
            root = take(parent, (*seen, name))
            if "role_arn" in plan.profiles[parent]:
                entry["source_profile"] = parent  # a chain: assumed with the parent role's credentials
            else:
                entry["source"] = root  # assumed with the source's session, as the parent's key gave it
        entry["role_arn"] = str(role)
        for key in ("role_session_name", "external_id"):
            if got.get(key):
                entry[key] = str(got[key])
        if got.get("duration_seconds"):
            text = str(got["duration_seconds"]).strip()
            if not (text.isascii() and text.isdigit() and 900 <= int(text) <= 43200):
                raise _Cannot(f"duration_seconds = {one_line(text)} is not AssumeRole's 900 to 43200 seconds")
            entry["duration"] = format_duration(int(text))
        if got.get("region"):
            entry["region"] = str(got["region"])
        if got.get("mfa_serial"):
            _give_mfa(plan.sources[root], str(got["mfa_serial"]))
        plan.profiles[name] = entry
        return root

    for name in order:
        with contextlib.suppress(_Cannot):  # noted in plan.skipped where it happened
            take(name, ())
    return plan


def _refuse_missing(missing: Sequence[str], sections: Collection[str], credentials_text: str | None,
                    config_path: str, credentials_path: str) -> NoReturn:
    """A picked name in neither file: say so, naming both, and list what could be picked."""
    from credd.errors import UsageError

    text = credentials_text or ""
    bases = credfile.long_term_sections(text, credfile.parse(text, credentials_path).sections, credentials_path)
    names = ", ".join(map(repr, missing))
    in_file = ", ".join(f"[{name}]" for name in missing)
    raise UsageError(f"{config_path} has no profile named {names}, and {credentials_path} no section {in_file} with "
                     f"a long-term key (profiles: {', '.join(sorted({*sections, *bases})) or 'none'})")


def _take_base(name: str, got: dict[str, object], keys: dict[str, credfile.LongTermSection],
               known_sources: Collection[str], plan: Plan, credentials_path: str) -> str:
    if name not in keys and name not in known_sources:
        raise _Cannot(f"no role_arn, and no long-term key in [{name}] of {credentials_path} to keep")
    source: dict[str, object] = {}
    if got.get("region"):
        source["region"] = str(got["region"])
    plan.sources[name] = source
    if got.get("mfa_serial"):
        _give_mfa(source, str(got["mfa_serial"]))
    if got.get("mfa_process"):
        # aws-vault runs it through a shell; credd runs a list without one, so the shell is named.
        source["mfa"] = "command"
        source["mfa_command"] = ["sh", "-c", str(got["mfa_process"])]
    plan.profiles[name] = {"source": name}
    if name in keys:
        plan.keys.append(KeyMove(name, name))
    return name


def _give_mfa(source: dict[str, object], serial: str) -> None:
    had = source.get("mfa_serial")
    if had is not None and had != serial:
        raise _Cannot(f"its mfa_serial {serial} differs from {had}, which its chain's source already uses; "
                      "credd asks one MFA device per source")
    source["mfa_serial"] = serial
    source.setdefault("mfa", "prompt")


def _with_includes(name: str, sections: dict[str, credfile.Section]) -> dict[str, object]:
    """A profile's values, with aws-vault's `include_profile` ones under them (its own win), to any depth."""
    got: dict[str, object] = {}
    seen: list[str] = []
    current: str | None = name
    while current is not None and current in sections and current not in seen:
        seen.append(current)
        values = sections[current].values()
        for key, value in values.items():
            got.setdefault(key, value)
        current = values.get("include_profile")
    got.pop("include_profile", None)
    return got


def render_entries(entries: dict[str, dict[str, object]], indent: str) -> str:
    """`entries` as lines of a YAML block mapping, each indented by `indent` (the file's own)."""
    import yaml

    if not entries:
        return ""
    text = yaml.safe_dump(entries, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1 << 16)
    return "".join(indent + line for line in text.splitlines(keepends=True))


def render_config(plan: Plan) -> str:
    """A whole credd config holding just what `plan` adds."""
    text = "version: 1\nsources:\n" + render_entries(plan.sources, "  ")
    if plan.profiles:
        text += "profiles:\n" + render_entries(plan.profiles, "  ")
    return text
