"""YAML -> a validated `Config`, with errors that name the file, the line and the key.

The schema: which keys exist at each level, what each may hold, the defaults
and the checks across keys. Reading the YAML itself (composed nodes with
their line numbers, duplicate keys, tags, typed values) is `yamlnodes`.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TypedDict, cast

import yaml

from credd import configfile, paths
from credd.commandline import credd_command
from credd.durations import format_duration, parse_duration
from credd.errors import ConfigError, one_line
from credd.model import CHAINED_ROLE_MAX, Config, ImdsListener, MfaMethod, Profile, Source
from credd.roleoptions import OPTION_KEYS, read_options
from credd.sts_endpoint import is_loopback_host
from credd.yamlnodes import Entries, NodeReader, error_at, shown

MAX_CONFIG_BYTES = 1 << 20

# AWS's limits on DurationSeconds.
SESSION_DURATION = (900, 36 * 3600)
ROLE_DURATION = (900, 12 * 3600)
# botocore refreshes credentials with less than this left.
BOTOCORE_REFRESH_WINDOW = 15 * 60

class _Defaults(TypedDict):
    keyring_service: str
    refresh_before: int
    session_duration: int
    role_duration: int
    region: str


DEFAULTS: _Defaults = {
    "keyring_service": "credd",
    "refresh_before": 20 * 60,
    "session_duration": 12 * 3600,
    "role_duration": 3600,
    "region": "us-east-1",
}

# Source and profile names become INI section names and keyring entry names:
# no brackets, colons, spaces or leading punctuation.
# AWS's identifiers are ASCII: \w and \d match only ASCII here (re.ASCII), not `é` or `١`.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+=,-]{0,63}")
# An MFA device's ARN (checked as a role ARN is: partition, iam, a 12-digit account, the `mfa/` path), or the
# serial number of a hardware token (letters and digits, like GAHT12345678), which STS also takes.
MFA_SERIAL = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:mfa/[\w+=,.@/-]{1,512}|[A-Z][A-Z0-9]{8,255}", re.ASCII)
ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}", re.ASCII)
ROLE_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}", re.ASCII)
REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}", re.ASCII)
KEYRING_SERVICE = re.compile(r"[\w.@+:/-]{1,128}", re.ASCII)
ENDPOINT = re.compile(r"(https?)://(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(?::([0-9]{1,5}))?(/[^\s]*)?")

TOP_KEYS = ("version", "credentials_file", "socket", "keyring_service", "refresh_before", "sources", "profiles",
            "endpoints")
ENDPOINT_KEYS = ("container", "imds")
IMDS_KEYS = ("listen", "profile")
LOOPBACK = ("127.0.0.1", "::1")  # the endpoints serve this machine only
SOURCE_KEYS = ("mfa_serial", "mfa", "mfa_command", "duration", "region", "sts_endpoint")
PROFILE_KEYS = ("source", "source_profile", "role_arn", "role_session_name", "external_id", "duration", "write",
                "region", *OPTION_KEYS)
# Where each level's keys go, as a hint names it: `{source}` is filled in where the source is known.
LEVELS = ((TOP_KEYS, "at the top level"),
          (SOURCE_KEYS, "under sources.{source} (the source it is for)"),
          (PROFILE_KEYS, "under profiles.NAME (the profile it is for)"))
MFA_METHODS = ("totp", "command", "prompt")
MFA_COMMAND_EXAMPLE = "[ykman, oath, accounts, code, --single, aws]"


def load_config(path: Path, env: Mapping[str, str], platform: str, uid: int,
                hint_config: str | None = None) -> Config:
    """Read and validate the config file at `path`; raise ConfigError on any problem.

    `hint_config`: the `--config` the user gave, for the `credd init` an error names (it must write this file).
    """
    label = str(path)
    try:
        data, info = configfile.read(label, MAX_CONFIG_BYTES)
    except FileNotFoundError:
        dangling = " (a symlink to nothing)" if os.path.islink(path) else ""
        raise ConfigError(label, None, "", f"no such file{dangling}; run `{credd_command(hint_config, 'init')}` to "
                                           "write one, or pass --config PATH") from None
    except configfile.NotRegularFile as e:
        raise ConfigError(label, None, "", f"{e.strerror or e}; give --config the path of a YAML file") from None
    except OSError as e:
        raise ConfigError(label, None, "", f"cannot read it: {e.strerror or e}") from None
    _refuse_unsafe(label, info, uid)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(label, None, "", f"is larger than {MAX_CONFIG_BYTES} bytes; this is not a credd config")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ConfigError(label, line, "", "is not valid UTF-8 text") from None
    return parse_config(text, label, path, env, platform, uid, hint_config)


def _refuse_unsafe(label: str, info: os.stat_result, uid: int) -> None:
    """The file and the directories it is reached through must be safe from other users (see configfile.unsafe)."""
    problem = configfile.unsafe(label, info, uid)
    for directory in dict.fromkeys((os.path.dirname(os.path.abspath(label)), os.path.dirname(os.path.realpath(label)))):
        if problem is not None:
            break
        try:
            problem = configfile.unsafe(directory, os.stat(directory), uid, directory=True)
        except OSError:
            continue  # gone since the file was read: nothing to refuse
    if problem is not None:
        raise ConfigError(label, None, "", problem)


def parse_config(text: str, label: str, path: Path, env: Mapping[str, str], platform: str, uid: int,
                 hint_config: str | None = None) -> Config:
    """Validate YAML `text`; `label` is how errors name the file, `hint_config` as for `load_config`."""
    reader = _Reader(label, text, hint_config)
    root = reader.root()
    top = reader.mapping(root, "")
    reader.only_known(top, TOP_KEYS, "")

    version = reader.optional(top, "version", "")
    if version is not None and _is_not_one(reader.scalar(version, "version")):
        raise reader.error(version, "version", "only version 1 is supported; set `version: 1`")

    sources = _sources(reader, top)
    profiles = _profiles(reader, top, sources)
    refresh_before = _refresh_before(reader, top, sources, profiles)

    credentials_file = _path_setting(reader, top, "credentials_file", env) or _default_credentials_file(label, env)
    socket = _socket(reader, top, env, platform, uid)
    _same_socket_for_clients(reader, top)

    keyring_service = DEFAULTS["keyring_service"]
    if "keyring_service" in top:
        keyring_service = reader.string(top["keyring_service"][1], "keyring_service", KEYRING_SERVICE)

    return Config(
        path=path,
        credentials_file=credentials_file,
        socket=socket,
        keyring_service=keyring_service,
        refresh_before=refresh_before,
        sources=sources,
        profiles=profiles,
        warnings=tuple(_warnings(reader, top, sources, profiles, refresh_before)),
        container=_container(reader, top),
        imds=_imds(reader, top, profiles),
    )


def _endpoints(reader: _Reader, top: Entries) -> Entries:
    """The `endpoints:` mapping; empty when there is none (every endpoint but the socket off)."""
    node = reader.optional(top, "endpoints", "")
    if node is None:
        return {}
    entries = reader.mapping(node, "endpoints")
    reader.only_known(entries, ENDPOINT_KEYS, "endpoints")
    return entries


def _container(reader: _Reader, top: Entries) -> tuple[str, int] | None:
    """`endpoints: {container: 127.0.0.1:PORT}` as (host, port); None when the endpoint is off (the default)."""
    setting = reader.optional(_endpoints(reader, top), "container", "endpoints")
    if setting is None:
        return None
    return _loopback_address(reader, setting, "endpoints.container", "container: ")


def _loopback_address(reader: _Reader, node: yaml.Node, key: str, written: str) -> tuple[str, int]:
    """`127.0.0.1:PORT` or `[::1]:PORT` as (host, port); `written` is how the fix starts (`container: `)."""
    value = str(reader.scalar(node, key))
    host, _, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if host not in LOOPBACK:
        raise reader.error(node, key,
                           f"{shown(value)} is not a loopback address: credd's endpoints serve this machine "
                           f"only; write `{written}127.0.0.1:PORT` or `{written}'[::1]:PORT'` "
                           "(PORT 0: any free one)")
    if not (port.isascii() and port.isdigit() and int(port) <= 65535):
        raise reader.error(node, key, f"{shown(value)} has no port from 0 to 65535; write `{written}127.0.0.1:PORT`")
    return host, int(port)


def _imds(reader: _Reader, top: Entries, profiles: dict[str, Profile]) -> tuple[ImdsListener, ...]:
    """`endpoints: {imds: [{listen: 127.0.0.1:PORT, profile: NAME}, ...]}`: one listener a profile, as an instance
    has one role; none when the key is absent (the default)."""
    node = reader.optional(_endpoints(reader, top), "imds", "endpoints")
    if node is None:
        return ()
    example = "`imds: [{listen: 127.0.0.1:9912, profile: NAME}]`"
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        raise reader.error(node, "endpoints.imds", f"expected a list of listeners, like {example}")
    listeners: list[ImdsListener] = []
    taken: dict[tuple[str, int], int] = {}
    for item in node.value:
        fields = reader.mapping(item, "endpoints.imds")
        reader.only_known(fields, IMDS_KEYS, "endpoints.imds")
        listen = reader.required(fields, "listen", "endpoints.imds", f"the address to listen on, like {example}",
                                 parent=item)
        host, port = _loopback_address(reader, listen, "endpoints.imds.listen", "listen: ")
        named = reader.required(fields, "profile", "endpoints.imds", f"the profile it serves, like {example}",
                                parent=item)
        profile = reader.scalar(named, "endpoints.imds.profile")
        if profile not in profiles:
            hint = _did_you_mean(str(profile), profiles) or f" (profiles: {', '.join(sorted(profiles))})"
            raise reader.error(named, "endpoints.imds.profile", f"{shown(profile)} is not a profile here{hint}")
        if port and (host, port) in taken:
            raise reader.error(listen, "endpoints.imds.listen",
                               f"{host}:{port} is already the listener on line {taken[host, port]}; give each "
                               "listener its own port (0: any free one)")
        taken[host, port] = reader.line(listen)
        listeners.append(ImdsListener(host, port, str(profile)))
    return tuple(listeners)


def _is_not_one(value: object) -> bool:
    return isinstance(value, bool) or value != 1


def _sources(reader: _Reader, top: Entries) -> dict[str, Source]:
    node = reader.required(top, "sources", "", "define at least one source (an IAM user whose key credd keeps)")
    entries = reader.mapping(node, "sources")
    if not entries:
        raise reader.error(node, "sources", "define at least one source (an IAM user whose key credd keeps)")
    return {name: _source(reader, name, value) for name, (key_node, value) in reader.named(entries, "sources")}


def _source(reader: _Reader, name: str, node: yaml.Node) -> Source:
    key = f"sources.{name}"
    fields = reader.mapping(node, key, allow_empty_value=True)
    reader.only_known(fields, SOURCE_KEYS, key, source=name)

    mfa_serial_node = reader.optional(fields, "mfa_serial", key)
    mfa_serial = None
    if mfa_serial_node is not None:
        mfa_serial = reader.string(mfa_serial_node, f"{key}.mfa_serial", MFA_SERIAL,
                                   "expected the MFA device's ARN, like arn:aws:iam::111111111111:mfa/alice")

    mfa_node = reader.optional(fields, "mfa", key)
    mfa: MfaMethod | None = None
    if mfa_node is not None:
        mfa = cast("MfaMethod", reader.choice(mfa_node, f"{key}.mfa", MFA_METHODS))
        if mfa_serial is None:
            raise reader.error(mfa_node, f"{key}.mfa",
                               f"mfa: {mfa} needs mfa_serial, the ARN of the MFA device "
                               "(arn:aws:iam::ACCOUNT:mfa/NAME); remove `mfa` for a source without MFA")
    elif mfa_serial is not None:
        mfa = "prompt"  # the one method that needs nothing else set up

    command_node = reader.optional(fields, "mfa_command", key)
    mfa_command = None
    if command_node is not None:
        mfa_command = reader.string_list(command_node, f"{key}.mfa_command", MFA_COMMAND_EXAMPLE)
        if mfa != "command":
            raise reader.error(command_node, f"{key}.mfa_command",
                               f"is only used with `mfa: command` (this source has mfa: {mfa or 'none'})")
    elif mfa == "command" and mfa_node is not None:  # (set only from an `mfa:` node)
        raise reader.error(mfa_node, f"{key}.mfa",
                           f"mfa: command needs mfa_command, the program that prints a code, as a list: "
                           f"{MFA_COMMAND_EXAMPLE}")

    duration = reader.duration(fields, "duration", key, DEFAULTS["session_duration"], SESSION_DURATION,
                               "GetSessionToken")
    region = _region(reader, fields, key) or DEFAULTS["region"]
    endpoint = None
    if "sts_endpoint" in fields:
        endpoint = _endpoint(reader, fields["sts_endpoint"][1], f"{key}.sts_endpoint")
    return Source(name, mfa_serial, mfa, mfa_command, duration, region, endpoint)


def _endpoint(reader: _Reader, node: yaml.Node, key: str) -> str:
    url = reader.string(node, key, ENDPOINT, "expected a URL like https://sts.us-east-1.amazonaws.com")
    match = ENDPOINT.fullmatch(url)
    assert match is not None
    scheme, host, port = match.group(1), match.group(2), match.group(3)
    if port is not None and not 0 < int(port) < 65536:
        raise reader.error(node, key, f"expected a URL like https://sts.us-east-1.amazonaws.com, got port {port}")
    # Plain HTTP would carry the temporary credentials in clear text; only a local
    # STS (a test or a proxy on this machine) may use it.
    if scheme == "http" and not is_loopback_host(host):
        raise reader.error(node, key, f"plain http is only allowed to this machine (localhost); use https://{host}")
    return url.rstrip("/")


def _profiles(reader: _Reader, top: Entries, sources: dict[str, Source]) -> dict[str, Profile]:
    if "profiles" not in top:
        return {}
    entries = reader.mapping(top["profiles"][1], "profiles", allow_empty_value=True)
    profiles = {name: _profile(reader, name, key_node, value, sources)
                for name, (key_node, value) in reader.named(entries, "profiles")}
    return _resolve_chains(reader, profiles, sources)


def _resolve_chains(reader: _Reader, profiles: dict[str, Profile], sources: dict[str, Source]) -> dict[str, Profile]:
    """Give each chained profile (`source_profile:`) its root's source, and its region when it sets none.

    A missing link is an error at the `source_profile:` line naming it; a cycle, at the line that closes it.
    """
    resolved = {}
    for name, profile in profiles.items():
        chain = [name]
        link = profile
        while link.source_profile is not None:
            key = f"profiles.{chain[-1]}.source_profile"
            parent = profiles.get(link.source_profile)
            if parent is None:
                hint = _did_you_mean(link.source_profile, profiles)
                raise error_at(reader.label, reader.lines.get(key), key,
                               f"no profile named {link.source_profile!r}{hint}; a chained role is assumed with "
                               "the credentials of a profile under `profiles:`")
            if link.source_profile in chain:
                loop = " -> ".join([*chain[chain.index(link.source_profile):], link.source_profile])
                raise error_at(reader.label, reader.lines.get(key), key,
                               f"the chain goes round in a circle ({loop}); one of these profiles must take "
                               "`source: SOURCE` instead of `source_profile:`")
            chain.append(link.source_profile)
            link = parent
        root = link.source
        resolved[name] = replace(profile, source=root, region=profile.region or sources[root].region)
    return resolved


def _profile(reader: _Reader, name: str, name_node: yaml.Node, node: yaml.Node, sources: dict[str, Source]) -> Profile:
    key = f"profiles.{name}"
    fields = reader.mapping(node, key, allow_empty_value=True)
    reader.only_known(fields, PROFILE_KEYS, key, source=_named_source(fields))

    source_profile = None
    if "source_profile" in fields:
        if "source" in fields:
            raise reader.error(fields["source_profile"][0], f"{key}.source_profile",
                               "a profile takes either `source:` (a source's session) or `source_profile:` "
                               "(another profile's credentials), not both; remove one")
        source_profile = reader.string(reader.required(fields, "source_profile", key, "name a profile"),
                                       f"{key}.source_profile", NAME, "expected a profile name")
        if "role_arn" not in fields:
            raise reader.error(fields["source_profile"][0], f"{key}.source_profile",
                               "role chaining needs role_arn: the role assumed with that profile's credentials")
        source = ""  # the chain's root's source: set by _resolve_chains once every profile is read
    else:
        source_node = reader.required(fields, "source", key, "name the source (under `sources:`) this profile uses, "
                                      "or the profile whose credentials assume its role (`source_profile:`)",
                                      name_node)
        source = reader.string(source_node, f"{key}.source", NAME, "expected a source name")
        if source not in sources:
            hint = _did_you_mean(source, sources)
            raise reader.error(source_node, f"{key}.source", f"no source named {source!r}{hint}")

    role_node = reader.optional(fields, "role_arn", key)
    role_arn = None
    if role_node is not None:
        role_arn = reader.string(role_node, f"{key}.role_arn", ROLE_ARN,
                                 "expected a role ARN like arn:aws:iam::222222222222:role/Admin")
    else:
        for role_only in ("role_session_name", "external_id", "duration", *OPTION_KEYS):
            if role_only in fields:
                raise reader.error(fields[role_only][0], f"{key}.{role_only}",
                                   f"only applies to a role (set role_arn); a session profile lasts as long as "
                                   f"the session (sources.{source}.duration)")

    session_name = f"credd-{source or name}"[:64]
    if "role_session_name" in fields:
        session_name = reader.string(fields["role_session_name"][1], f"{key}.role_session_name", ROLE_SESSION_NAME,
                                     "expected 2 to 64 of letters, digits and _+=,.@-")
    external_id = None
    if "external_id" in fields:
        external_id = reader.string(fields["external_id"][1], f"{key}.external_id", EXTERNAL_ID,
                                    "expected 2 to 1224 of letters, digits and _+=,.@:/-")
    duration = reader.duration(fields, "duration", key, DEFAULTS["role_duration"], ROLE_DURATION, "AssumeRole")
    write = True
    if "write" in fields:
        write = reader.boolean(fields["write"][1], f"{key}.write")
    region = _region(reader, fields, key) or (sources[source].region if source else None)
    options = read_options(reader, fields, key)
    return Profile(name, source, role_arn, session_name, external_id, duration, write, region, source_profile,
                   options.source_identity, options.tags, options.transitive_tags, options.policy_arns,
                   options.policy)


def _region(reader: _Reader, fields: Entries, key: str) -> str | None:
    """A source's STS region or a profile's region for the SDKs: one rule for both."""
    if "region" not in fields:
        return None
    return reader.string(fields["region"][1], f"{key}.region", REGION, "expected an AWS region like us-east-1")


def _refresh_before(reader: _Reader, top: Entries, sources: dict[str, Source], profiles: dict[str, Profile]) -> int:
    if "refresh_before" not in top:
        return DEFAULTS["refresh_before"]
    node = top["refresh_before"][1]
    seconds = reader.duration(top, "refresh_before", "", DEFAULTS["refresh_before"], (1, 36 * 3600), None)
    for what, lifetime in _lifetimes(sources, profiles):
        if seconds >= lifetime:
            raise reader.error(node, "refresh_before",
                               f"{_written(node)} is not shorter than {what} ({format_duration(lifetime)}), "
                               "so credd would refresh without pause; make it shorter")
    return seconds


def _lifetimes(sources: dict[str, Source], profiles: dict[str, Profile]) -> Iterator[tuple[str, int]]:
    """What each credential lives for, as AWS will really grant it."""
    for source in sources.values():
        yield f"sources.{source.name}.duration", source.duration
    for profile in profiles.values():
        if profile.is_role:
            yield f"profiles.{profile.name}.duration", profile.role_duration


def _warnings(reader: _Reader, top: Entries, sources: dict[str, Source], profiles: dict[str, Profile],
              refresh_before: int) -> Iterator[str]:
    """Warnings as errors are written: file, line, key, and the value as the user wrote it."""
    if not profiles:
        line = reader.line(top["profiles"][0]) if "profiles" in top else None
        yield str(error_at(reader.label, line, "", "no profiles: add one under `profiles:` so that credd has something "
                                                   "to serve"))
    used = {profile.source for profile in profiles.values()}
    for name in sources:
        if profiles and name not in used:
            yield reader.warning(f"sources.{name}", "no profile uses this source")
    for profile in profiles.values():
        if profile.is_role and profile.duration > CHAINED_ROLE_MAX:
            key = f"profiles.{profile.name}.duration"
            yield reader.warning(key, f"{reader.written.get(key, format_duration(profile.duration))} will be capped "
                                      "at 1h: AWS limits a role assumed with session credentials to one hour")
    if refresh_before < BOTOCORE_REFRESH_WINDOW:
        written = reader.written.get("refresh_before", format_duration(refresh_before))
        yield reader.warning("refresh_before", f"{written} is under 15m; the AWS SDKs refresh credentials with less "
                                               "than 15 minutes left, so they would call credd on every request for "
                                               "the last stretch")


def _named_source(fields: Entries) -> str:
    """The source a profile's `source:` names, for a hint; `NAME` when it names none yet."""
    node = fields.get("source", (None, None))[1]
    value = node.value if isinstance(node, yaml.ScalarNode) else None
    return value if isinstance(value, str) and NAME.fullmatch(value) else "NAME"


def _written(node: yaml.Node) -> str:
    """A duration as the user wrote it, for a message: `48h` stays `48h`; bare seconds say so."""
    text = str(node.value).strip() if isinstance(node, yaml.ScalarNode) else ""
    if text.isascii() and text.isdigit():
        return f"{one_line(text, 40)} (seconds)"
    return one_line(text, 40)


def _default_credentials_file(label: str, env: Mapping[str, str]) -> Path:
    try:
        return Path(paths.credentials_file(env))
    except ValueError as e:
        raise error_at(label, None, "credentials_file", f"$AWS_SHARED_CREDENTIALS_FILE: {e}") from None


def _socket(reader: _Reader, top: Entries, env: Mapping[str, str], platform: str, uid: int) -> Path:
    """`$CREDD_SOCKET`, else `socket:`, else the platform's default; short enough for sun_path.

    The environment wins over the file so that `credd process`, which reads no
    YAML, finds the same socket as the daemon when both are given the variable.
    """
    line = None
    if env.get("CREDD_SOCKET"):
        try:
            socket = Path(paths.expand(env["CREDD_SOCKET"], env))
        except ValueError as e:
            raise error_at(reader.label, None, "socket", f"$CREDD_SOCKET: {e}") from None
        if not socket.is_absolute():
            raise error_at(reader.label, None, "socket",
                           f"$CREDD_SOCKET must be an absolute path, got {one_line(str(socket), 300)}")
    elif (setting := _path_setting(reader, top, "socket", env)) is not None:  # None: no `socket:` key
        socket = setting
        line = reader.line(top["socket"][1])
    else:
        socket = Path(paths.default_socket(env, platform, uid))
    limit = paths.SOCKET_PATH_MAX.get(platform, 103)
    size = len(bytes(socket))
    if size > limit:
        raise error_at(reader.label, line, "socket",
                       f"{one_line(str(socket), 300)} is {size} bytes long, but a Unix socket path may have at most "
                       f"{limit} here; set `socket:` (or $CREDD_SOCKET) to a shorter path")
    return socket


def _same_socket_for_clients(reader: _Reader, top: Entries) -> None:
    """Refuse a `socket:` that credd's clients, which read it without YAML (`paths.socket_file`), would misread."""
    entry = top.get("socket")
    if entry is not None and not isinstance(entry[1], yaml.ScalarNode):
        return  # not a path at all: `_socket` says so where the setting is used
    misread = paths.socket_misread(reader.text, entry[1].value if entry is not None else None)
    if misread is not None:
        line = reader.line(entry[0]) if entry is not None else misread[0]
        raise error_at(reader.label, line, "socket", misread[1])


def _path_setting(reader: _Reader, top: Entries, key: str, env: Mapping[str, str]) -> Path | None:
    if key not in top:
        return None
    node = top[key][1]
    raw = reader.string(node, key, re.compile(r"[^\x00-\x1f]{1,4096}"), "expected a path")
    try:
        path = Path(paths.expand(raw, env))
    except ValueError as e:
        raise reader.error(node, key, str(e)) from None
    if not path.is_absolute():
        raise reader.error(node, key,
                           f"{one_line(raw, 300)} is relative; give an absolute path or one starting with ~/")
    try:
        os.fsencode(path)
    except UnicodeEncodeError:  # a lone surrogate from a "\ud800" escape: no file can have this name
        raise reader.error(node, key, f"{shown(str(path))} is not a path this system can name") from None
    return path


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Reader(NodeReader):
    """The generic node reader, plus what credd's schema reads the same way at every level."""

    def __init__(self, label: str, text: str, hint_config: str | None = None) -> None:
        super().__init__(label, text, kind="a credd config")
        self.hint_config = hint_config  # the user's --config, for the `credd init` that writes a starter here
        self.written: dict[str, str] = {}  # full key -> a duration as the user wrote it

    def root(self) -> yaml.Node:
        node = super().root()
        if node is None:
            raise error_at(self.label, None, "", f"the file is empty; run `{credd_command(self.hint_config, 'init')}` "
                                                 "to write a starter config")
        return node

    def named(self, entries: Entries, key: str) -> Iterator[tuple[str, tuple[yaml.Node, yaml.Node]]]:
        """Entries whose names are valid source or profile names."""
        for name, (key_node, value_node) in entries.items():
            if not NAME.fullmatch(name):
                raise self.error(key_node, f"{key}.{name}",
                                 "a name may have up to 64 letters, digits and _.@+=,- and must start with a "
                                 "letter or digit")
            yield name, (key_node, value_node)

    def only_known(self, entries: Entries, known: tuple[str, ...], key: str, source: str = "NAME") -> None:
        """Refuse unknown keys; a key that belongs at another level says where."""
        for name, (key_node, _) in entries.items():
            if name not in known:
                full = f"{key}.{name}" if key else name
                places = [where.format(source=source) for keys, where in LEVELS if name in keys and keys is not known]
                if places:
                    raise self.error(key_node, full, f"unknown key here: it belongs {' or '.join(places)}")
                hint = _did_you_mean(name, known) or f" (known keys: {', '.join(known)})"
                raise self.error(key_node, full, f"unknown key{hint}")

    def duration(self, entries: Entries, name: str, key: str, default: int, bounds: tuple[int, int],
                 call: str | None) -> int:
        node = self.optional(entries, name, key)
        if node is None:
            return default
        full = f"{key}.{name}" if key else name
        value = self.scalar(node, full)
        try:
            seconds = parse_duration(value)
        except ValueError as e:
            raise self.error(node, full, str(e)) from None
        low, high = bounds
        written = _written(node)
        if not low <= seconds <= high:
            range_text = f"{format_duration(low)} to {format_duration(high)}"
            what = f"{call} takes {range_text}" if call else f"expected {range_text}"
            raise self.error(node, full, f"{written} is out of range: {what}")
        self.written[full] = written
        return seconds
