"""A source's session kept in memory and in the keyring, around any session provider.

Memory first, then the keyring, then the provider (a new session, which may
cost an MFA code): as aws-vault's CachedSessionProvider wraps its
SessionTokenProvider. The keyring copy lets a restart within the session's
life go without a code.

The Store keeps the entry as an opaque secret; its shape lives here. Next to
the credentials it records which long-term key and which MFA device made the
session: after `credd keys set` with another key, or a change of
`mfa_serial`, the cached session is not the one the config describes and is
not reused.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic

from credd import refresh
from credd.errors import KeyringError
from credd.model import Credentials, Secret
from credd.sources.base import B, Session, SessionProvider
from credd.store import Store
from credd.timefmt import parse_utc, utc_text

VERSION = 1


class CachedSessions(Generic[B]):
    """One source's session: the one in memory, else the one cached in the keyring, else a new one."""

    def __init__(self, name: str, provider: SessionProvider[B], store: Store, *, margin: timedelta,
                 log: logging.Logger) -> None:
        self.name = name
        self.provider = provider
        self.store = store
        self.margin = margin  # a session with less than this left is not reused (`refresh_before`)
        self.log = log
        self.held: Credentials | None = None  # the latest session, in memory

    def session(self, now: datetime, *, new: bool = False) -> Session:
        """A session with more than `margin` left; `new` skips memory and keyring (and costs a code)."""
        if not new and self._fresh(self.held, now):
            assert self.held is not None
            return Session(self.held, "memory")
        basis = self.provider.basis()  # first: a missing key fails even with a session cached
        if not new:
            cached = self._cached(basis.key_id, basis.mfa_serial, now)
            if cached is not None:
                self.held = cached
                return Session(cached, "keyring")
        creds = self.provider.session(basis)
        self.held = creds
        self._keep(CachedSession(creds, basis.key_id, basis.mfa_serial))
        return Session(creds, "sts")

    def _fresh(self, creds: Credentials | None, now: datetime) -> bool:
        return creds is not None and refresh.is_fresh(creds.expiration, now, self.margin)

    def _cached(self, key_id: str, mfa_serial: str | None, now: datetime) -> Credentials | None:
        try:
            raw = self.store.get_session(self.name)
        except KeyringError as e:
            self.log.warning("source %s: cannot read the cached session: %s", self.name, e)
            return None
        cached = load(raw, self.name, self.log) if raw is not None else None
        if cached is None or not cached.matches(key_id, mfa_serial):
            return None
        if not self._fresh(cached.credentials, now):
            return None
        self.log.info("source %s: reusing the session cached in the keyring (expires %s)", self.name,
                      utc_text(cached.credentials.expiration))
        return cached.credentials

    def _keep(self, session: CachedSession) -> None:
        try:
            self.store.set_session(self.name, dump(session))
        except KeyringError as e:
            # The credentials are good; only a restart will cost an extra MFA code.
            self.log.error("source %s: the new session could not be cached in the keyring: %s", self.name, e)


# The keyring entry ----------------------------------------------------------------

@dataclass(frozen=True)
class CachedSession:
    credentials: Credentials
    key_id: str  # the long-term key that made it
    mfa_serial: str | None  # the MFA device it was made with, if any

    def matches(self, key_id: str, mfa_serial: str | None) -> bool:
        return self.key_id == key_id and self.mfa_serial == mfa_serial


def dump(session: CachedSession) -> Secret:
    creds = session.credentials
    return Secret(json.dumps({
        "version": VERSION,
        "AccessKeyId": creds.access_key_id,
        "SecretAccessKey": creds.secret_access_key.reveal(),
        "SessionToken": creds.session_token.reveal(),
        "Expiration": utc_text(creds.expiration),
        "SourceKeyId": session.key_id,
        "MfaSerial": session.mfa_serial,
    }))


def load(raw: Secret, source: str, log: logging.Logger) -> CachedSession | None:
    """The cached session, or None (logged) when the entry is damaged or from another version."""
    try:
        data = json.loads(raw.reveal())
        if data.get("version") != VERSION:
            raise ValueError("another version")
        expiration = parse_utc(data["Expiration"])
        serial = data["MfaSerial"]
        if serial is not None and not isinstance(serial, str):
            raise TypeError("MfaSerial")
        texts = [data[name] for name in ("AccessKeyId", "SecretAccessKey", "SessionToken", "SourceKeyId")]
        if not all(isinstance(text, str) and text for text in texts):
            raise TypeError("a field is not text")
    except (ValueError, KeyError, TypeError, AttributeError):
        log.warning("source %s: ignoring the damaged session cached in the keyring", source)
        return None
    key_id, secret, token, source_key_id = texts
    return CachedSession(Credentials(key_id, Secret(secret), Secret(token), expiration), source_key_id, serial)
