"""What every layer of a source shares: the effects it is given, the session it hands on, the stop check.

A source kind's module (`keys.py`) provides new sessions through the
`SessionProvider` contract; `cache.py` wraps any such provider; `roles.py`
assumes roles with whatever session comes out. Nothing here calls anything.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, TypeVar

from credd.errors import RefreshError
from credd.mfa import MfaDriver, UsedWindows
from credd.model import Credentials, Failure, FailureKind
from credd.store import Store
from credd.sts import StsClients

SessionOrigin = Literal["memory", "keyring", "sts"]


@dataclass(frozen=True)
class Effects:
    """Everything with an effect that a source's layers use: real ones from the daemon, local ones in tests."""

    store: Store
    clients: StsClients
    drivers: Mapping[str, MfaDriver]
    windows: UsedWindows  # the MFA windows used, so no code is sent twice
    clock: Callable[[], datetime]
    sleep: Callable[[float], object]  # a wait that `stop` ends at once
    stop: threading.Event  # set: the daemon is stopping; abandon what has not reached STS yet
    log: logging.Logger
    hint_config: str | None = None  # the `--config` the daemon runs with, for the commands messages name


@dataclass(frozen=True)
class Session:
    """A source's session, and where this refresh had it from."""

    credentials: Credentials
    origin: SessionOrigin


class Basis(Protocol):
    """What a new session would be made from, read before any cache is consulted.

    The cache records it beside the session, and reuses a cached session only
    when it was made from the same (another key after `credd keys set`, or
    another MFA device, makes the cached session not the one the config describes).
    """

    @property
    def key_id(self) -> str: ...

    @property
    def mfa_serial(self) -> str | None: ...


B = TypeVar("B", bound=Basis)


class SessionProvider(Protocol[B]):
    """One source kind's way to a new session; `cache.CachedSessions` wraps it with memory and the keyring."""

    def basis(self) -> B:
        """What a new session would be made from; RefreshError when it cannot be had (no key, a locked keyring)."""
        ...

    def session(self, basis: B) -> Credentials:
        """A new session made from `basis` (an STS call; with MFA, a code nobody has sent yet)."""
        ...


def unless_stopping(stop: threading.Event, who: str) -> None:
    """Abandon the refresh here when the daemon is stopping: the last point before an STS call."""
    if stop.is_set():
        raise RefreshError(Failure(FailureKind.STOPPED, f"{who}: credd is stopping; the refresh was abandoned "
                                                        "before it reached STS", retryable=True))


def about(kind: str, name: str, message: str) -> str:
    """`message` as a log line about `kind` `name`: named once, by the message itself when it does already."""
    return message if message.startswith(f"{kind} {name!r}") else f"{kind} {name}: {message}"
