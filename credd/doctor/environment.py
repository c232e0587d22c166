"""The environment: keys that shadow every profile, AWS_PROFILE, and the credentials file the SDKs read."""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from credd.doctor.facts import FileFacts
from credd.doctor.files import ParsedCredentials
from credd.doctor.findings import Finding, fail, ok, warn
from credd.model import Config, mask_key_id
from credd.sts_endpoint import configured_elsewhere, endpoint_for

# The SDKs take these before any profile (the provider chain's first link).
ENV_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
# The profile an AWS command uses without --profile (AWS_DEFAULT_PROFILE: the AWS CLI's older name).
ENV_PROFILES = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE")


def check_environment_keys(env: Mapping[str, str]) -> list[Finding]:
    present = [name for name in ENV_KEYS if env.get(name)]
    if not present:
        return [ok("environment", "no AWS_ACCESS_KEY_ID or other keys in the environment to shadow credd's profiles")]
    shown = ", ".join(f"{name} ({mask_key_id(env[name])})" if name == "AWS_ACCESS_KEY_ID" else name
                      for name in present)
    return [warn("environment", f"{shown} {'is' if len(present) == 1 else 'are'} set: the SDKs take keys from the "
                                "environment before any profile, so no credd profile is used where they are set",
                 f"unset {' '.join(present)}  (and drop them from your shell's startup files)")]


def check_environment_profile(config: Config, env: Mapping[str, str], wiring: Mapping[str, str | None],
                              aws_profiles: Mapping[str, object], parsed: ParsedCredentials) -> list[Finding]:
    """AWS_PROFILE picks the profile of every command without --profile: credd's, someone else's, or none."""
    credd_names = set(config.profiles) | {name for name, target in wiring.items() if target in config.profiles}
    found = []
    for variable in ENV_PROFILES:
        name = env.get(variable)
        if not name:
            continue
        fix = (f"export {variable}=PROFILE with one of credd's profiles ({', '.join(sorted(credd_names)) or 'none'}),"
               f" or unset {variable}")
        if name in credd_names:
            found.append(ok("environment", f"{variable}={name}: a credd profile"))
        elif name in aws_profiles or name in parsed.sections:
            found.append(warn("environment", f"{variable}={name} is not a credd profile: AWS commands without "
                                             "--profile use it, not credd's credentials", fix))
        else:
            found.append(fail("environment", f"{variable}={name} names no profile at all: AWS commands without "
                                             "--profile fail with ProfileNotFound", fix))
    return found


def check_shared_file(config: Config, env: Mapping[str, str], file: FileFacts, sdk_path: str,
                      sdk_resolved: str) -> list[Finding]:
    """The SDKs must read the file credd writes, or profiles with `write: true` reach no one."""
    writes = [profile.name for profile in config.profiles.values() if profile.write]
    if sdk_resolved == file.resolved or not writes:
        return [ok("environment", f"the SDKs read {sdk_path}" + (", the file credd writes" if writes else ""))]
    if env.get("AWS_SHARED_CREDENTIALS_FILE"):
        return [fail("environment", f"AWS_SHARED_CREDENTIALS_FILE={env['AWS_SHARED_CREDENTIALS_FILE']}: the SDKs "
                                    f"read {sdk_path}, but credd writes {file.path}, so they never see "
                                    f"{', '.join(writes)}",
                     f"export AWS_SHARED_CREDENTIALS_FILE={shlex.quote(file.path)}, or set "
                     f"`credentials_file: {sdk_path}` in {config.path} and restart the daemon")]
    return [fail("environment", f"the SDKs read {sdk_path}, but credd writes {file.path} (credentials_file in "
                                f"{config.path}), so they never see {', '.join(writes)}",
                 f"export AWS_SHARED_CREDENTIALS_FILE={shlex.quote(file.path)} in your shell's startup file, or "
                 f"remove `credentials_file:` from {config.path} and restart the daemon")]


def check_endpoint_urls(config: Config, env: Mapping[str, str],
                        aws_profiles: Mapping[str, Mapping[str, object]]) -> list[Finding]:
    """An endpoint URL set for the AWS tools (LocalStack, often plain http) is one credd does not use: say so.

    The profile botocore reads it from is $AWS_PROFILE's, else [default].
    """
    profile = env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
    found = configured_elsewhere(env, aws_profiles.get(profile) or {})
    if not found:
        return []
    endpoints = ", ".join(dict.fromkeys(endpoint_for(source) for source in config.sources.values())) or "none"
    return [warn("environment", f"{'; '.join(found)}: credd ignores {'it' if len(found) == 1 else 'them'} and "
                                f"calls STS only at the endpoint its config names, else the region's ({endpoints})",
                 "nothing to do if it is meant for other tools; to point credd at another STS, set "
                 f"sources.NAME.sts_endpoint in {config.path} (https, or http to this machine only)")]
