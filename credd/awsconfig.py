"""Wiring profiles into `~/.aws/config`: `credential_process = credd process NAME` and `region = ...` lines.

The AWS config file has the credentials file's syntax as botocore reads it,
so this uses the same byte-preserving editor (`credfile.set_keys`), through the
same locked atomic write. Pure text functions (`wire_text`) apart from the one
that touches the file (`wire_aws_config`); and which profiles of the file run
credd (`wired_profiles`), which `init` and `doctor` both ask.
"""

from __future__ import annotations

import os.path
import shlex
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from credd import credfile
from credd.commandline import process_args

CREDENTIAL_PROCESS = "credential_process"
REGION = "region"
# Keys with which botocore takes another way before it runs credential_process: its provider
# chain tries assume-role, web identity and SSO first.
# (`source_profile` and `credential_source` only count with a `role_arn`, but they are that role's lines.)
SHADOWING = ("role_arn", "source_profile", "credential_source", "web_identity_token_file", "sso_start_url",
             "sso_session", "sso_account_id", "sso_role_name")
# What `credd config import` moves out of botocore's sight in each section it imports: the role and how to
# assume it (botocore's), and aws-vault's own keys for it, which credd's config now holds.
ROLE_KEYS = ("role_arn", "source_profile", "credential_source", "mfa_serial", "external_id", "role_session_name",
             "duration_seconds", "source_identity", "include_profile", "mfa_process", "parent_profile",
             "session_tags", "transitive_session_tags")
# The mark before each line import turned into a comment: the line as it was follows it, byte for byte.
IMPORT_MARK = "# credd-import: "
WiringState = Literal["added", "wired", "other", "none"]


@dataclass(frozen=True)
class Wiring:
    """What wiring one profile into `~/.aws/config` found or did."""

    profile: str
    section: str
    # added/wired/other: of a credential_process line (wired: credd serves it already; other: another command,
    # left alone); none: the profile is not served by the hook (write: true), only its region was wanted.
    state: WiringState
    line: int | None = None  # of the credential_process line that was there
    shadowed_by: tuple[str, ...] = ()  # keys in the section that botocore uses before credential_process
    region: str | None = None  # the `region` line this added; None: none added (the section has its own)


def wire_aws_config(path: Path, profiles: Sequence[str], command: Sequence[str],
                    regions: Mapping[str, str] | None = None) -> list[Wiring]:
    """Wire `profiles` into the AWS config file at `path` under credd's lock; what was found or done for each."""
    from credd.atomicfile import update_file  # only here: the rest of this module is pure, and doctor reads it

    outcomes: list[Wiring] = []

    def transform(text: str) -> str:
        new, found = wire_text(text, profiles, command, str(path), regions)
        outcomes[:] = found  # update_file may re-run this on a file changed meanwhile: the last run counts
        return new

    update_file(path, transform)
    return outcomes


def wire_text(text: str, profiles: Sequence[str], command: Sequence[str], path: str,
              regions: Mapping[str, str] | None = None) -> tuple[str, list[Wiring]]:
    """Add `credential_process = COMMAND process NAME` for each of `profiles` that has none, and
    `region = R` for each profile of `regions` whose section names no region; pure.

    `regions` may name profiles that are not in `profiles` (written to the credentials file, not
    served by the hook): they get the region line only. The SDKs find no region in the credentials
    file, so without it `aws --profile NAME` says "You must specify a region".

    Never a second section or key for a profile: an existing section gets the
    lines, one with our line is left as it is (region too), one with another
    command is left alone for the user to decide, and a region the user set stays.
    """
    regions = regions or {}
    outcomes = []
    for profile in [*profiles, *(name for name in regions if name not in profiles)]:
        doc = credfile.parse(text, path)
        section = section_of(doc, profile)
        existing = doc.sections.get(section)
        current = existing.keys.get(CREDENTIAL_PROCESS) if existing else None
        shadowed_by = tuple(key for key in SHADOWING if existing and key in existing.keys)
        state: WiringState
        line: int | None
        if profile not in profiles:
            state, line = "none", None
        elif current is None:
            state, line = "added", None
        else:
            # Any credd that serves this profile counts, as for `credd doctor` (`credd process NAME` on PATH too).
            runs_credd = wired_profiles({profile: {CREDENTIAL_PROCESS: current.value}}).get(profile) == profile
            state, line = ("wired" if runs_credd else "other"), current.lines[0] + 1
        wanted: dict[str, str] = {}
        if state == "added":
            wanted[CREDENTIAL_PROCESS] = hook_line(command, profile)
        region = regions.get(profile)
        if region and state in ("added", "none") and not (existing and REGION in existing.keys):
            wanted[REGION] = region
        if wanted:
            text = credfile.set_keys(text, section, wanted, path)
        outcomes.append(Wiring(profile, section, state, line, shadowed_by, wanted.get(REGION)))
    return text, outcomes


def hook_line(command: Sequence[str], profile: str) -> str:
    """The credential_process value: botocore splits it with `shlex.split` (no shell), other SDKs run it
    with `sh -c`; `shlex.join` quotes what either would split (a path with spaces)."""
    return shlex.join([*command, "process", profile])


def section_of(doc: credfile.Document, profile: str) -> str:
    """The section botocore reads `profile` from, else the one to add.

    botocore's own `build_profile_map` decides, on the section names: besides
    `[default]` and `[profile NAME]` it takes `[profile "NAME"]` and
    `[profile  NAME]`, and of two sections for one profile the later wins.
    """
    return sections_of(doc, [profile])[profile]


def sections_of(doc: credfile.Document, profiles: Collection[str]) -> dict[str, str]:
    """`section_of` for each of `profiles`, from one look at the section names (a large file has many)."""
    from botocore.configloader import build_profile_map

    found = build_profile_map({name: name for name in doc.sections})["profiles"]
    return {profile: found.get(profile) or new_section(profile) for profile in profiles}


def new_section(profile: str) -> str:
    """The name of the section ~/.aws/config keeps `profile` in: `default`, else `profile NAME`."""
    return "default" if profile == "default" else f"profile {profile}"


# What `credd config import` does to ~/.aws/config -----------------------------------------------------------------


@dataclass(frozen=True)
class Rewired:
    """One imported profile's section after `rewire_text`."""

    profile: str
    section: str
    moved: tuple[str, ...]  # the keys now behind IMPORT_MARK (empty: none were left)
    wired: WiringState | None  # of its credential_process line (write: false); None: the credentials file serves it


def rewire_text(text: str, profiles: Mapping[str, bool], command: Sequence[str],
                path: str) -> tuple[str, list[Rewired]]:
    """Point each of `profiles` (name -> credd writes it into the credentials file) at what credd serves; pure.

    botocore assumes a profile's `role_arn` itself (and runs SSO, web identity) before it reads the
    credentials file or runs `credential_process`, so those lines (ROLE_KEYS) become comments behind
    IMPORT_MARK, and a `write: false` profile gets credd's `credential_process` line in their place.
    `region` and every other line stay. Running it again changes nothing.
    """
    # One parse and one edit for every section: per profile, each edit re-reads the whole file, and an import of
    # hundreds of profiles then takes seconds to minutes (BENCHMARKS.md, issue 15).
    doc = credfile.parse(text, path)
    sections = sections_of(doc, list(profiles))
    moved: dict[str, tuple[str, ...]] = {}
    for name in profiles:
        existing = doc.sections.get(sections[name])
        moved[name] = tuple(key for key in ROLE_KEYS if existing is not None and key in existing.keys)
    text = credfile.comment_keys(text, {sections[name]: keys for name, keys in moved.items() if keys}, IMPORT_MARK,
                                 path)
    hooked = [name for name, write in profiles.items() if not write]
    wired: dict[str, WiringState] = {}
    if hooked:
        text, found = wire_text(text, hooked, command, path)
        wired = {wiring.profile: wiring.state for wiring in found}
    return text, [Rewired(name, sections[name], moved[name], wired.get(name)) for name in profiles]


def original_view(text: str, path: str) -> str:
    """`text` as it was before `credd config import` rewired it: what a later import plans from; pure.

    Marked lines read as they were, and in a section with marked lines a `credential_process` that runs
    credd is the one import added (an imported profile had none: import leaves such profiles alone), so it
    reads as a blank line. Line numbers stay those of `text`.
    """
    if IMPORT_MARK not in text:
        return text
    lines = credfile.split_lines(text)
    restored = {index for index, line in enumerate(lines) if line.startswith(IMPORT_MARK)}
    lines = [line[len(IMPORT_MARK):] if index in restored else line for index, line in enumerate(lines)]
    doc = credfile.parse("".join(lines), path)
    for section in doc.sections.values():
        key = section.keys.get(CREDENTIAL_PROCESS)
        if key is None or _credd_args(key.value) is None:
            continue
        if any(section.header < index <= section.last for index in restored):
            for index in key.lines:
                lines[index] = lines[index][len(lines[index].rstrip("\r\n")):]
    return "".join(lines)


# Which profiles run credd ---------------------------------------------------------------------------------------


def credd_hooks(aws_profiles: Mapping[str, Mapping[str, object]]) -> dict[str, tuple[str | None, str] | None]:
    """AWS profile -> (the `--config` it passes or None, the credd profile) of its `credd process` line, for every
    profile whose credential_process runs credd; None where it runs credd, but not as `credd process PROFILE`."""
    found = {}
    for name, values in aws_profiles.items():
        command = values.get("credential_process")
        args = _credd_args(command) if isinstance(command, str) else None
        if args is not None:
            found[name] = process_args(args)
    return found


def wired_profiles(aws_profiles: Mapping[str, Mapping[str, object]]) -> dict[str, str | None]:
    """AWS profile -> the credd profile its credential_process asks for, for every one that runs credd.

    None: it runs credd, but not as `credd process PROFILE`.
    """
    return {name: found[1] if found else None for name, found in credd_hooks(aws_profiles).items()}


def hook_config_args(aws_profiles: Mapping[str, Mapping[str, object]]) -> dict[str, str | None]:
    """AWS profile -> the `--config` its `credd process PROFILE` line passes (None: none), for every such line."""
    return {name: found[0] for name, found in credd_hooks(aws_profiles).items() if found}


def _credd_args(command: str) -> list[str] | None:
    """The words after `credd` (or `python -m credd`) in a credential_process command; None if it runs no credd."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    for index, word in enumerate(words):
        if os.path.basename(word) == "credd":
            return words[index + 1:]
        if words[index:index + 2] == ["-m", "credd"]:
            return words[index + 2:]
    return None
