"""What `commands/doctor.py` finds out, as plain values: the checks judge these and nothing else.

Fields that may hold a secret (the environment, the credentials file's
text) are left out of `repr`, so a Facts in a traceback or a log shows none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from credd.model import Config

__all__ = [
    "AwsConfigFacts", "ClockProbe", "Facts", "FileFacts", "KeyringFacts", "SecretFacts", "ServiceFacts",
    "SocketFacts", "Stat", "StateDirFacts",
]


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
class StateDirFacts:
    """credd's state directory (`paths.state_dir`), where the daemon keeps the MFA windows it used."""

    path: str
    stat: Stat | None = None  # lstat of the directory, never followed; None: there is none
    file_path: str = ""  # the state file in it (`mfa.state_file`)
    file_stat: Stat | None = None  # its lstat; None: there is none
    error: str | None = None  # lstat failed for another reason than a missing directory


@dataclass(frozen=True)
class AwsConfigFacts:
    path: str
    exists: bool = False
    profiles: Mapping[str, Mapping[str, object]] = field(default_factory=dict)  # [default] is "default"
    error: str | None = None  # the file cannot be read or parsed; names the line
    lines: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # profile -> key -> its line, from 1


@dataclass(frozen=True)
class SocketFacts:
    path: str
    dir_problem: str | None = None  # unix_socket.prepare_directory's complaint about the socket's directory
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
    state_dir: StateDirFacts
    aws_config: AwsConfigFacts
    socket: SocketFacts
    service: ServiceFacts
    clock: tuple[ClockProbe, ...] = ()
    hint_config: str | None = None  # the --config doctor runs with, for the commands its fixes name
    # Another config that a hook line in ~/.aws/config names (`credd --config OTHER process P`) -> the
    # profiles it defines, or why it cannot be loaded.
    hook_configs: Mapping[str, frozenset[str] | str] = field(default_factory=dict)
    # Each HTTP endpoint the daemon serves, asked without a token: its probe URL -> the HTTP status, or why none.
    endpoint_probes: Mapping[str, int | str] = field(default_factory=dict)
