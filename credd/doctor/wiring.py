"""~/.aws/config: which of its profiles run credd, and which path each of credd's profiles takes to the SDKs.

The SDKs read a profile's keys from the credentials file before they run
its `credential_process`, so wiring can lead nowhere (a profile credd does
not have) or never run (a section in the file comes first).
"""

from __future__ import annotations

import os.path
import shlex
from collections.abc import Mapping

from credd import hook
from credd.doctor.facts import AwsConfigFacts, FileFacts
from credd.doctor.files import ParsedCredentials
from credd.doctor.findings import Finding, count, fail, ok, warn
from credd.model import Config


def wired_profiles(aws_profiles: Mapping[str, Mapping[str, object]]) -> dict[str, str | None]:
    """AWS profile -> the credd profile its credential_process asks for, for every one that runs credd.

    None: it runs credd, but not as `credd process PROFILE`.
    """
    wiring = {}
    for name, values in aws_profiles.items():
        command = values.get("credential_process")
        args = _credd_args(command) if isinstance(command, str) else None
        if args is not None:
            parsed = hook.parse_args(args)
            wiring[name] = parsed[1] if parsed else None
    return wiring


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


def aws_section(profile: str) -> str:
    """The section header of a profile in ~/.aws/config: `[default]`, else `[profile NAME]`."""
    return "[default]" if profile == "default" else f"[profile {profile}]"


def check_aws_config(aws: AwsConfigFacts, wiring: Mapping[str, str | None], env: Mapping[str, str]) -> list[Finding]:
    where = f"{aws.path} (from $AWS_CONFIG_FILE)" if env.get("AWS_CONFIG_FILE") else aws.path
    if aws.error:
        return [fail("aws config", aws.error)]
    if not aws.exists:
        return [ok("aws config", f"{where} does not exist (it is needed only to wire `credential_process`)")]
    found = [ok("aws config", f"{where}: {count(len(aws.profiles), 'profile')}, {len(wiring)} of them run credd")]
    for name, target in wiring.items():
        if target is None:
            found.append(warn(f"profile {name}", f"{aws_section(name)} in {aws.path} runs credd, but not as "
                                                 "`credd process PROFILE`",
                              f"set `credential_process = credd process PROFILE` in {aws_section(name)}"))
    return found


def check_profiles(config: Config, wiring: Mapping[str, str | None], parsed: ParsedCredentials, file: FileFacts,
                   aws: AwsConfigFacts) -> list[Finding]:
    """Which path each profile takes to the SDKs, and the wiring that leads nowhere or is never used."""
    wiring_findings = []
    served = {}  # AWS profile -> credd profile, for wiring that really runs
    for name, target in wiring.items():
        section = f"{aws_section(name)} in {aws.path}"
        if target is None:
            continue
        if target not in config.profiles:
            wiring_findings.append(_unknown_target(config, name, target, section))
        elif name in parsed.keyed or _written(config, name):
            wiring_findings.append(_shadowed(config, name, target, section, file.path))
        else:
            served[name] = target
    paths = [_path_of(profile.name, profile.write, [q for q, p in served.items() if p == profile.name], file.path,
                      aws) for profile in config.profiles.values()]
    return sorted(paths + wiring_findings, key=lambda finding: finding.topic)  # each profile's lines together


def _unknown_target(config: Config, name: str, target: str, section: str) -> Finding:
    known = ", ".join(config.profiles) or "none"
    return fail(f"profile {name}", f"{section} runs `credd process {target}`, but {config.path} has no profile "
                                   f"{target}",
                f"add {target} under `profiles:` in {config.path}, or run one of credd's profiles there ({known})")


def _written(config: Config, name: str) -> bool:
    return name in config.profiles and config.profiles[name].write


def _shadowed(config: Config, name: str, target: str, section: str, credentials: str) -> Finding:
    """credential_process wired for a profile whose keys the SDKs find in the credentials file first."""
    message = (f"{section} runs `credd process {target}`, but the SDKs read [{name}] from {credentials} first, so "
               "that never runs")
    if _written(config, name):  # credd fills that section itself: it works, through the file
        return warn(f"profile {name}", message + f" (credd writes [{name}] there itself)",
                    f"remove `credential_process` from {aws_section(name)}, or set `write: false` for {name} in "
                    f"{config.path}")
    return fail(f"profile {name}", message + ": the SDKs use the keys in that section instead of credd's",
                f"remove [{name}] from {credentials} (a long-term key: `credd keys import SOURCE --from-profile "
                f"{name}`), or wire credd under another profile name")


def _path_of(name: str, write: bool, wired_as: list[str], credentials: str, aws: AwsConfigFacts) -> Finding:
    also = f"; also by credential_process as {', '.join(wired_as)}" if wired_as else ""
    if write:
        return ok(f"profile {name}", f"served from the credentials file: credd keeps [{name}] in {credentials}{also}")
    if wired_as:
        return ok(f"profile {name}", f"served by credential_process: {aws_section(wired_as[0])} in {aws.path} "
                                     f"runs `credd process {name}`")
    if aws.error:
        return warn(f"profile {name}", f"cannot tell whether it is wired (write: false): {aws.path} cannot be read",
                    "fix the AWS config (see its FAIL line)")
    return warn(f"profile {name}", "not wired: credd does not write it into the credentials file (write: false) and "
                                   f"no profile in {aws.path} runs `credd process {name}`, so no SDK asks for it",
                f"add `{aws_section(name)}` with `credential_process = credd process {name}` to {aws.path}")
