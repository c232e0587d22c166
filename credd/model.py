"""Plain data: the validated configuration and the secrets credd handles.

No I/O here and no third-party imports, so every other module can use these
types without pulling in boto3, keyring or yaml.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Literal, NoReturn

MfaMethod = Literal["totp", "command", "prompt"]

# AWS caps a role assumed with session credentials (role chaining) at one hour.
CHAINED_ROLE_MAX = 3600


class Secret:
    """A string that never shows itself by accident.

    `repr`, `str` and f-strings give a fixed mask, so a secret that ends up in
    a log line, an exception or a traceback's locals shows nothing. Code that
    really needs the value calls `reveal()`, which is easy to grep for.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret wraps a str")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> NoReturn:  # no pickling a secret into some cache by accident
        raise TypeError("a Secret cannot be pickled")


def mask_key_id(key_id: str) -> str:
    """`AKIAIOSFODNN7EXAMPLE` -> `AKIA…MPLE`: enough to tell keys apart."""
    if len(key_id) <= 8:
        return "…"
    return f"{key_id[:4]}…{key_id[-4:]}"


@dataclass(frozen=True)
class AccessKey:
    """A long-term IAM user access key."""

    key_id: str
    secret: Secret

    def __repr__(self) -> str:
        return f"AccessKey({mask_key_id(self.key_id)})"


@dataclass(frozen=True)
class Credentials:
    """Temporary credentials from STS: a session's or an assumed role's."""

    access_key_id: str
    secret_access_key: Secret
    session_token: Secret
    expiration: datetime  # timezone-aware, UTC

    def __repr__(self) -> str:
        return f"Credentials({mask_key_id(self.access_key_id)}, expires {self.expiration.isoformat()})"


@dataclass(frozen=True)
class Source:
    """A long-term IAM user identity and how to get its MFA codes."""

    name: str
    mfa_serial: str | None
    mfa: MfaMethod | None
    mfa_command: tuple[str, ...] | None
    duration: int  # GetSessionToken DurationSeconds
    region: str
    sts_endpoint: str | None


@dataclass(frozen=True)
class Profile:
    """What users ask for by name: a source's session, or a role assumed with it."""

    name: str
    source: str
    role_arn: str | None
    role_session_name: str
    external_id: str | None
    duration: int  # AssumeRole DurationSeconds (ignored for a session profile)
    write: bool
    # For the SDKs (wired into ~/.aws/config, exported by env/exec); the config loader sets it, from the
    # source's region when the profile names none. None only in a Profile built by hand: see Config.region_of.
    region: str | None = None
    # Role chaining: the profile whose credentials assume this role; None: the source's session does.
    # `source` is then the chain's root's source, whose session (one MFA code) serves the whole chain.
    source_profile: str | None = None
    # AssumeRole's other options, passed as set (None or empty: not sent).
    source_identity: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    transitive_tags: tuple[str, ...] = ()
    policy_arns: tuple[str, ...] = ()
    policy: str | None = None  # an inline session policy, as packed JSON

    @property
    def is_role(self) -> bool:
        return self.role_arn is not None

    @property
    def role_duration(self) -> int:
        """The DurationSeconds AssumeRole is asked for, and grants: credd assumes roles with a session's
        credentials, and AWS caps a role assumed that way at one hour."""
        return min(self.duration, CHAINED_ROLE_MAX)


@dataclass(frozen=True)
class Config:
    """A validated configuration with every default resolved."""

    path: Path
    credentials_file: Path
    socket: Path
    keyring_service: str
    refresh_before: int  # seconds
    sources: dict[str, Source]
    profiles: dict[str, Profile]
    warnings: tuple[str, ...] = field(default=())
    container: tuple[str, int] | None = None  # the container endpoint's loopback host and port (0: any); None: off
    imds: tuple[ImdsListener, ...] = ()  # the IMDSv2 listeners, one profile each; none: off

    @property
    def refresh_margin(self) -> timedelta:
        """`refresh_before`: credentials with less than this left are renewed."""
        return timedelta(seconds=self.refresh_before)

    def region_of(self, profile: str) -> str:
        """The region the SDKs should use for `profile`: its own, else its source's."""
        chosen = self.profiles[profile]
        return chosen.region or self.sources[chosen.source].region

    def account_of(self, profile: str) -> str | None:
        """The AWS account `profile`'s credentials act in, where the config says it: a role's, from its ARN; a
        session's, from its source's MFA device ARN (the IAM user's account). None otherwise (a hardware MFA
        serial, no MFA): credd does not call STS just to find out."""
        chosen = self.profiles[profile]
        arn = chosen.role_arn or self.sources[chosen.source].mfa_serial or ""
        return arn.split(":")[4] if arn.startswith("arn:") else None


@dataclass(frozen=True)
class ImdsListener:
    """One IMDSv2 listener: a loopback address and the profile it serves (an instance has one role)."""

    host: str
    port: int  # 0: any free one
    profile: str


class FailureKind(str, Enum):
    """Why credentials could not be had. Each kind has its own remedy, so `status` can say what to do."""

    MFA_NEEDED = "mfa_needed"            # a `prompt` source waits for the user to hand in a code
    MFA_INVALID = "mfa_invalid"          # AWS rejected the code: wrong, expired or used before
    MFA_UNAVAILABLE = "mfa_unavailable"  # no code could be made: no TOTP seed, mfa_command failed
    KEY_MISSING = "key_missing"          # no long-term key in the keyring
    KEY_INVALID = "key_invalid"          # AWS refused the long-term key: wrong, deactivated or deleted
    EXPIRED_TOKEN = "expired_token"      # AWS refused the session: expired or revoked; a new one is needed
    ACCESS_DENIED = "access_denied"      # AWS denied the call (most often AssumeRole on one role)
    THROTTLED = "throttled"              # STS throttled every attempt
    SERVER = "server"                    # STS failed (5xx) on every attempt
    NETWORK = "network"                  # STS could not be reached, or did not answer in time
    CLOCK = "clock"                      # AWS says this machine's clock is off
    BAD_REPLY = "bad_reply"              # STS answered with something credd cannot use
    KEYRING = "keyring"                  # the keyring refused (locked, dismissed prompt)
    SHADOWED = "shadowed"                # a long-term key in the profile's section keeps credd from writing it
    STOPPED = "stopped"                  # the daemon stopped before the refresh reached STS
    OTHER = "other"


@dataclass(frozen=True)
class Failure:
    """A refresh that did not work: what `status` shows and what the scheduler needs to decide.

    `message` is one line that names the source or profile and what to do; it
    never holds a secret or an MFA code. `retryable` says whether trying again
    later, without the user doing anything, may succeed.
    """

    kind: FailureKind
    message: str
    retryable: bool
    aws_code: str | None = None  # the STS error code, when STS gave one
