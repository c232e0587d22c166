"""`credd doctor`'s checks: what stands between `aws` and credd's credentials, and how to fix each thing.

Pure: every check takes plain facts (the config, the environment, the AWS
config's profiles, file modes, the daemon's status reply, a measured clock
skew) and returns `Finding`s; `commands/doctor.py` gathers the facts. So a
broken setup is one table row in the tests, with no keyring, daemon or
network behind it.

Most of what goes wrong is shadowing, because of the order in which the SDKs
look for credentials: environment variables first, then a profile's keys in
the shared credentials file, and only then the profile's `credential_process`.
A key left in the environment, a file the SDKs read that credd does not
write, or a section in that file hides credd; so does a daemon that is not
running, a keyring without the key, or a clock AWS will not believe.
"""

from __future__ import annotations

import os.path
import shlex
import stat
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Literal

from credd import credfile, hook
from credd.durations import format_duration
from credd.errors import CredentialsFileError
from credd.model import Config, mask_key_id

Level = Literal["ok", "warn", "fail"]

# The SDKs take these before any profile (the provider chain's first link).
ENV_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
# The profile an AWS command uses without --profile (AWS_DEFAULT_PROFILE: the AWS CLI's older name).
ENV_PROFILES = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE")
SKEW_WARN = 30  # seconds: one TOTP window; AWS may refuse codes made on a clock this far off
# Seconds: TOTP codes made on a clock this far off are refused, and so are requests some AWS services
# get signed this far off (STS refuses them from 15 minutes).
SKEW_FAIL = 300
RUNNING_STATES = ("active", "activating", "reloading")  # systemctl is-active; launchd says "state = running"
TIME_SYNC = ("turn on network time: `timedatectl set-ntp true` (Linux), or System Settings > General > "
             "Date & Time > Set time and date automatically (macOS)")
AGAIN = "fix what is marked FAIL above, then run `credd doctor` again"


@dataclass(frozen=True)
class Finding:
    level: Level
    topic: str
    message: str
    fix: str | None = None  # None where the message, from credd's own errors, already says what to do


def ok(topic: str, message: str) -> Finding:
    return Finding("ok", topic, message)


def warn(topic: str, message: str, fix: str | None = None) -> Finding:
    return Finding("warn", topic, message, fix)


def fail(topic: str, message: str, fix: str | None = None) -> Finding:
    return Finding("fail", topic, message, fix)


# Facts: what commands/doctor.py found out ---------------------------------------------------------------


@dataclass(frozen=True)
class Stat:
    """What a mode check needs from stat(2)."""

    mode: int  # st_mode: the file type and permission bits
    uid: int


@dataclass(frozen=True)
class KeyringFacts:
    backend: str | None  # the backend's class path; None when select_backend refused
    explicit: bool = False
    plaintext: bool = False
    error: str | None = None


@dataclass(frozen=True)
class SecretFacts:
    """What the keyring holds for one source (never a secret: the key id is masked before it is shown)."""

    key_id: str | None = None
    has_seed: bool = False
    error: str | None = None


@dataclass(frozen=True)
class FileFacts:
    """The shared credentials file credd writes."""

    path: str
    resolved: str  # the real path: the file a write replaces, if `path` is a symlink
    stat: Stat | None = None  # None: there is no file
    dir_stat: Stat | None = None
    text: str | None = field(default=None, repr=False)  # the whole file: may hold keys
    error: str | None = None  # it could not be read


@dataclass(frozen=True)
class AwsConfigFacts:
    path: str
    exists: bool = False
    profiles: Mapping[str, Mapping[str, object]] = field(default_factory=dict)  # [default] is "default"
    error: str | None = None  # the file cannot be read or parsed; names the line


@dataclass(frozen=True)
class SocketFacts:
    path: str
    dir_problem: str | None = None  # server.prepare_directory's complaint about the socket's directory
    stat: Stat | None = None  # lstat of the socket file; None: no file
    reply: Mapping | None = None  # the daemon's status reply
    error: str | None = None  # why it did not answer; None without a reply: nothing listens (not running)


@dataclass(frozen=True)
class ServiceFacts:
    name: str  # credd.service, or the launchd label
    path: str | None  # the unit or plist; None: credd has no service manager for this platform
    installed: bool = False
    state: str | None = None  # what systemctl is-active / launchctl print said; None: could not ask
    detail: str = ""  # why the state is unknown
    logs: str = ""


@dataclass(frozen=True)
class ClockProbe:
    endpoint: str
    skew: float | None = None  # seconds this machine's clock is ahead of STS's (negative: behind)
    error: str | None = None  # why STS could not be asked


@dataclass(frozen=True)
class Facts:
    uid: int
    env: Mapping[str, str] = field(repr=False)  # may hold AWS_SECRET_ACCESS_KEY
    config_path: str
    config: Config | None
    config_error: str | None
    keyring: KeyringFacts
    secrets: Mapping[str, SecretFacts]  # per source; empty without a config or a keyring
    credentials: FileFacts
    sdk_credentials_file: str  # the file the SDKs read: $AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials
    sdk_credentials_resolved: str
    aws_config: AwsConfigFacts
    socket: SocketFacts
    service: ServiceFacts
    clock: tuple[ClockProbe, ...] = ()


# Running the checks ---------------------------------------------------------------------------------------


def diagnose(facts: Facts) -> list[Finding]:
    """Every check, in the order a user would fix things; without a valid config, those that need one are skipped."""
    parsed = parse_credentials(facts.credentials)
    wiring = wired_profiles(facts.aws_config.profiles)
    config, env, reply = facts.config, facts.env, facts.socket.reply
    pid = reply.get("pid") if reply is not None and reply.get("ok") else None
    plan: list[tuple[Callable[..., list[Finding]], tuple, bool]] = [  # (check, its arguments, needs the config)
        (check_config, (facts.config_path, config, facts.config_error), False),
        (check_keyring, (facts.keyring, env), False),
        (check_secrets, (config, facts.secrets, facts.keyring), True),
        (check_credentials_file, (facts.credentials, parsed, config, facts.uid), False),
        (check_aws_config, (facts.aws_config, wiring, env), False),
        (check_profiles, (config, wiring, parsed, facts.credentials, facts.aws_config), True),
        (check_environment_keys, (env,), False),
        (check_environment_profile, (config, env, wiring, facts.aws_config.profiles, parsed), True),
        (check_shared_file, (config, env, facts.credentials, facts.sdk_credentials_file,
                             facts.sdk_credentials_resolved), True),
        (check_socket, (facts.socket,), False),
        (check_daemon, (config, reply), True),
        (check_service, (facts.service, pid), False),
        (check_clock, (facts.clock,), True),
    ]
    return [finding for check, args, needs_config in plan if config is not None or not needs_config
            for finding in _guarded(check, args, env)]


def _guarded(check: Callable[..., list[Finding]], args: tuple, env: Mapping[str, str]) -> list[Finding]:
    """One check's findings; a bug in one check must not cost the user the rest of the report."""
    try:
        return check(*args)
    except Exception as e:
        if env.get("CREDD_DEBUG"):
            raise
        return [fail("doctor", f"internal error in {check.__name__} ({type(e).__name__}); this is a bug in credd",
                     "run again with CREDD_DEBUG=1 for details, and report it")]


# The config and the keyring -------------------------------------------------------------------------------


def check_config(path: str, config: Config | None, error: str | None) -> list[Finding]:
    if config is None:
        return [fail("config", error or f"{path}: cannot be read"),
                warn("doctor", "skipped the checks that need the config: the keyring entries of each source, "
                               "which path each profile takes, AWS_PROFILE, AWS_SHARED_CREDENTIALS_FILE and the clock",
                     AGAIN)]
    found = [ok("config", f"{path}: {count(len(config.sources), 'source')}, {count(len(config.profiles), 'profile')}")]
    return found + [warn("config", f"{path}: {text}") for text in config.warnings]


def check_keyring(keyring: KeyringFacts, env: Mapping[str, str]) -> list[Finding]:
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
                 "the Keychain on macOS; then store the keys again (`credd keys set SOURCE`)")]


def check_secrets(config: Config, secrets: Mapping[str, SecretFacts], keyring: KeyringFacts) -> list[Finding]:
    if keyring.backend is None:
        return [warn("doctor", "skipped the keyring entries of each source: there is no keyring to ask", AGAIN)]
    found = []
    for name, source in config.sources.items():
        facts, topic = secrets.get(name, SecretFacts()), f"source {name}"
        if facts.error:
            found.append(fail(topic, facts.error))
            continue
        if facts.key_id is None:
            found.append(fail(topic, "no access key in the keyring, so credd cannot call STS",
                              f"credd keys set {name}  (or `credd keys import {name} --from-profile NAME` for a key "
                              "in the credentials file)"))
        else:
            seed = ", and its TOTP seed" if source.mfa == "totp" and facts.has_seed else ""
            found.append(ok(topic, f"access key {mask_key_id(facts.key_id)} in the keyring{seed}"))
        if source.mfa == "totp" and not facts.has_seed:
            found.append(fail(topic, "mfa: totp, but the keyring holds no TOTP seed, so credd cannot make MFA codes",
                              f"credd totp set {name}"))
    return found


# The shared credentials file ------------------------------------------------------------------------------


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
                           uid: int) -> list[Finding]:
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
        found += long_term_keys(parsed, config, file.path)
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


def long_term_keys(parsed: ParsedCredentials, config: Config | None, path: str) -> list[Finding]:
    """Long-term keys in plain text belong in the keyring; in a section credd should write, they stop it."""
    found = []
    for name, section in parsed.sections.items():
        if not section.holds_long_term_key:
            continue
        source = _source_for(name, config)
        fix = f"credd keys import {source} --from-profile {name}"
        if source == "SOURCE":
            fix += "  (SOURCE: the source in credd's config that the key belongs to)"
        key_id = mask_key_id(section.keys[credfile.ACCESS_KEY_ID].value)
        profile = config.profiles.get(name) if config else None
        if profile is not None and profile.write:
            found.append(fail("credentials file", f"[{name}] in {path} holds a long-term access key ({key_id}), "
                                                  f"which credd does not overwrite: it cannot write profile {name}",
                              fix))
        else:
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


# ~/.aws/config and which path each profile takes -----------------------------------------------------------


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


# The environment ----------------------------------------------------------------------------------------


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


# The socket, the daemon and the service ---------------------------------------------------------------------


def check_socket(socket: SocketFacts) -> list[Finding]:
    found = []
    if socket.dir_problem:
        found.append(fail("socket", socket.dir_problem))
    if socket.stat is not None and not stat.S_ISSOCK(socket.stat.mode):
        found.append(fail("socket", f"{socket.path} is not a socket", "move it out of the way; `credd serve` makes "
                                                                      "the socket there"))
    elif socket.stat is not None and stat.S_IMODE(socket.stat.mode) & 0o077:
        found.append(fail("socket", f"{socket.path} is open to other users (mode {stat.S_IMODE(socket.stat.mode):o})",
                          f"chmod 600 {shlex.quote(socket.path)}"))
    reply = socket.reply
    if reply is not None and reply.get("ok"):
        found.append(ok("daemon", f"credd {reply.get('version')} (pid {reply.get('pid')}) answers at {socket.path}"))
    elif reply is not None:
        found.append(fail("daemon", f"the daemon at {socket.path} refused: {reply.get('message')}",
                          "make sure $CREDD_SOCKET and `socket:` name your own daemon's socket"))
    elif socket.error:
        found.append(fail("daemon", f"the daemon at {socket.path} does not answer: {socket.error}",
                          "restart it (`credd service install` restarts the service; or stop `credd serve` and start "
                          "it again); its log says what it was stuck on"))
    else:
        found.append(warn("daemon", f"the daemon is not running (nothing listens at {socket.path}): `credd process` "
                                    "fails, and nothing refreshes the credentials file",
                          "`credd service install` (starts it now and at login), or `credd serve` in a terminal"))
    return found


def check_daemon(config: Config, reply: Mapping | None) -> list[Finding]:
    """The running daemon should serve this config, all of it, without errors."""
    if reply is None or not reply.get("ok"):
        return []
    pid, found = reply.get("pid"), []
    if os.path.normpath(str(reply.get("config"))) != os.path.normpath(str(config.path)):
        found.append(warn("daemon", f"the daemon (pid {pid}) runs with {reply.get('config')}, not {config.path}",
                          f"check that one too (`credd --config {shlex.quote(str(reply.get('config')))} doctor`), or "
                          "restart the daemon with this config"))
    served = {row.get("profile") for row in reply.get("profiles", [])}
    missing, extra = sorted(set(config.profiles) - served), sorted(served - set(config.profiles))
    if missing or extra:
        what = "; ".join(part for part in (missing and f"it does not serve {', '.join(missing)}",
                                           extra and f"it still serves {', '.join(extra)}") if part)
        found.append(warn("daemon", f"the daemon (pid {pid}) runs an older version of {config.path}: {what}",
                          f"reload it: `systemctl --user reload credd.service`, or `kill -HUP {pid}`"))
    for row in reply.get("profiles", []):
        if row.get("last_error"):
            found.append(warn(f"profile {row.get('profile')}",
                              f"the daemon's last refresh failed: {row['last_error']}"))
    return found


def check_service(service: ServiceFacts, daemon_pid: object) -> list[Finding]:
    name = service.name
    if service.path is None:
        return [ok("service", "credd has no service manager for this platform; run `credd serve` from your "
                              "session's startup")]
    if not service.installed:
        why = (f"the daemon (pid {daemon_pid}) was started by hand and will not start again at login" if daemon_pid
               else "nothing starts the daemon at login")
        return [warn("service", f"{name} is not installed: {why}", "credd service install")]
    if service.state is None:
        return [warn("service", f"{name} is installed ({service.path}), but its state is unknown: {service.detail}",
                     "run `credd service status` in a login session of your own (su and sudo leave no user "
                     "service manager to ask)")]
    if service.state in RUNNING_STATES or service.state.startswith("state = running"):
        return [ok("service", f"{name} is installed and running ({service.state})")]
    return [fail("service", f"{name} is installed but not running ({service.state})",
                 f"`credd service install` starts it again; `{service.logs}` says why it stopped")]


# The clock ----------------------------------------------------------------------------------------------


def check_clock(probes: tuple[ClockProbe, ...]) -> list[Finding]:
    found = []
    for probe in probes:
        if probe.skew is None:
            found.append(warn("clock", f"cannot reach STS at {probe.endpoint} to check the clock: {probe.error}",
                              "nothing to do when offline; otherwise check the network (and $HTTPS_PROXY)"))
            continue
        size = abs(probe.skew)
        off = f"{format_duration(round(size))} {'ahead of' if probe.skew > 0 else 'behind'} STS ({probe.endpoint})"
        if size >= SKEW_FAIL:
            found.append(fail("clock", f"this machine's clock is {off}: AWS refuses the TOTP codes made here, "
                                       "and some AWS services refuse requests signed this far off (STS from 15 "
                                       "minutes)", TIME_SYNC))
        elif size >= SKEW_WARN:
            found.append(warn("clock", f"this machine's clock is {off}: AWS may refuse the TOTP codes made here",
                              TIME_SYNC))
        else:
            found.append(ok("clock", f"within {max(1, round(size))} s of STS ({probe.endpoint})"))
    return found


# Output -------------------------------------------------------------------------------------------------

LABELS = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}


def count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' * (number != 1)}"


def failed(findings: list[Finding]) -> bool:
    return any(finding.level == "fail" for finding in findings)


def format_text(findings: list[Finding]) -> str:
    """One line a finding, its fix indented under it, and a count at the end."""
    lines = []
    for finding in findings:
        lines.append(f"{LABELS[finding.level]} {finding.topic}: {finding.message}")
        if finding.fix:
            lines.append(f"     fix: {finding.fix}")
    failures = sum(finding.level == "fail" for finding in findings)
    warnings = sum(finding.level == "warn" for finding in findings)
    if failures or warnings:
        lines.append(f"{failures} failed, {count(warnings, 'warning')}")
    else:
        lines.append("everything is ok")
    return "\n".join(lines)


def as_json(findings: list[Finding]) -> dict:
    return {"ok": not failed(findings), "findings": [asdict(finding) for finding in findings]}
