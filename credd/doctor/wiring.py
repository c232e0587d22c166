"""~/.aws/config: which of its profiles run credd, and which path each of credd's profiles takes to the SDKs.

The SDKs read a profile's keys from the credentials file before they run
its `credential_process`, so wiring can lead nowhere (a profile credd does
not have) or never run (a section in the file comes first).
"""

from __future__ import annotations

import os.path
from collections.abc import Mapping

from credd import paths
from credd.awsconfig import SHADOWING, hook_config_args, new_section
from credd.commandline import credd_command
from credd.doctor.facts import AwsConfigFacts, FileFacts
from credd.doctor.files import ParsedCredentials
from credd.doctor.findings import Finding, count, fail, ok, warn
from credd.model import Config


def hook_config(arg: str | None, env: Mapping[str, str]) -> str:
    """The config file a hook line with `--config arg` (or none) reads, as an absolute path, in this environment."""
    try:
        return os.path.abspath(paths.config_file(env, arg))
    except ValueError:  # an unset $VAR: the hook fails on it too; compare it as written
        return arg or ""


def aws_section(profile: str) -> str:
    """The section header of a profile in ~/.aws/config: `[default]`, else `[profile NAME]`."""
    return f"[{new_section(profile)}]"


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
                   aws: AwsConfigFacts, env: Mapping[str, str] | None = None,
                   others: Mapping[str, frozenset[str] | str] | None = None, hint: str | None = None) -> list[Finding]:
    """Which path each profile takes to the SDKs, and the wiring that leads nowhere or is never used.

    A hook line that names another config (`credd --config OTHER process P`) is judged against that
    config, not this one: the hook reads the config its own command line names.
    """
    wiring_findings = []
    served = {}  # AWS profile -> credd profile, for wiring that really runs
    configs = hook_config_args(aws.profiles)
    for name, target in wiring.items():
        section = f"{aws_section(name)} in {aws.path}"
        if target is None:
            continue
        used = hook_config(configs.get(name), env or {})
        if used != os.path.abspath(config.path):
            wiring_findings.append(_elsewhere(name, target, section, used, (others or {}).get(used)))
        elif target not in config.profiles:
            wiring_findings.append(_unknown_target(config, name, target, section))
        elif name in parsed.keyed or _written(config, name):
            wiring_findings.append(_shadowed(config, name, target, section, file.path, hint))
        else:
            served[name] = target
    paths = [_path_of(profile.name, profile.write, [q for q, p in served.items() if p == profile.name], file.path,
                      aws) for profile in config.profiles.values()]
    found = paths + wiring_findings + role_shadowing(config, wiring, aws, hint)
    return sorted(found, key=lambda finding: finding.topic)  # each profile's lines together


def role_shadowing(config: Config, wiring: Mapping[str, str | None], aws: AwsConfigFacts,
                   hint: str | None = None) -> list[Finding]:
    """Profiles credd serves whose ~/.aws/config section botocore answers first, imported or written by hand.

    botocore's provider chain assumes a `role_arn` itself (with its `source_profile` or `credential_source`),
    and runs web identity and SSO, before it reads the credentials file or runs `credential_process`.
    """
    found = []
    for name, values in aws.profiles.items():
        profile = config.profiles.get(name)
        served = (profile is not None and profile.write) or wiring.get(name) is not None
        keys = [key for key in SHADOWING if key in values]
        if not served or not keys:
            continue
        lines = aws.lines.get(name, {})
        first = min((lines[key] for key in keys if key in lines), default=None)
        where = f"{aws.path}:{first}" if first else aws.path
        way = "the credentials file credd writes" if profile is not None and profile.write else "credd's " \
            "credential_process"
        message = (f"{where}: {aws_section(name)} sets {', '.join(keys)}, which botocore uses before {way}: the SDKs "
                   "never take credd's credentials for it (a role there is assumed by the SDK itself, asking for "
                   "its own MFA code)")
        if profile is not None and profile.role_arn is not None and values.get("role_arn") == profile.role_arn and \
                not any(key.startswith("sso_") for key in keys):
            fix = (f"`{credd_command(hint, 'config', 'import', '--profile', name)}` (it turns those lines into "
                   "comments; `--undo` puts them back)")
        else:
            numbers = [str(lines[key]) for key in keys if key in lines]
            where = f" ({'lines' if len(numbers) > 1 else 'line'} {', '.join(numbers)})" if numbers else ""
            fix = f"remove {', '.join(keys)} from {aws_section(name)} in {aws.path}{where}"
        found.append(fail(f"profile {name}", message, fix))
    return found


def _elsewhere(name: str, target: str, section: str, used: str, profiles: frozenset[str] | str | None) -> Finding:
    """A hook line that runs credd with another config than the one doctor checks."""
    runs = f"{section} runs `{credd_command(used, 'process', target)}`"
    check = credd_command(used, "doctor")
    if isinstance(profiles, str):
        return fail(f"profile {name}", f"{runs}, but that config cannot be loaded: {profiles}",
                    f"fix it (`{credd_command(used, 'config', 'check')}`), or change the line to the config you use")
    if profiles is None:
        return warn(f"profile {name}", f"{runs}, another config than the one checked here", f"`{check}`")
    if target not in profiles:
        return fail(f"profile {name}", f"{runs}, but {used} has no profile {target}",
                    f"add {target} under `profiles:` in {used}, or run one of its profiles there "
                    f"({', '.join(sorted(profiles)) or 'none'})")
    return ok(f"profile {name}", f"{runs}: served with that config, not the one checked here (`{check}` checks it)")


def _unknown_target(config: Config, name: str, target: str, section: str) -> Finding:
    known = ", ".join(config.profiles) or "none"
    return fail(f"profile {name}", f"{section} runs `credd process {target}`, but {config.path} has no profile "
                                   f"{target}",
                f"add {target} under `profiles:` in {config.path}, or run one of credd's profiles there ({known})")


def _written(config: Config, name: str) -> bool:
    return name in config.profiles and config.profiles[name].write


def _shadowed(config: Config, name: str, target: str, section: str, credentials: str, hint: str | None) -> Finding:
    """credential_process wired for a profile whose keys the SDKs find in the credentials file first."""
    message = (f"{section} runs `credd process {target}`, but the SDKs read [{name}] from {credentials} first, so "
               "that never runs")
    if _written(config, name):  # credd fills that section itself: it works, through the file
        return warn(f"profile {name}", message + f" (credd writes [{name}] there itself)",
                    f"remove `credential_process` from {aws_section(name)}, or set `write: false` for {name} in "
                    f"{config.path}")
    return fail(f"profile {name}", message + ": the SDKs use the keys in that section instead of credd's",
                f"remove [{name}] from {credentials} (a long-term key: "
                f"`{credd_command(hint, 'keys', 'import', 'SOURCE', '--from-profile', name)}`), or wire credd under "
                "another profile name")


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
