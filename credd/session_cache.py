"""A source's session kept in the keyring, so a restart within its life needs no MFA code.

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
from datetime import datetime, timezone

from credd.model import Credentials, Secret

LOG = logging.getLogger("credd.session_cache")
VERSION = 1


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
        "Expiration": creds.expiration.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "SourceKeyId": session.key_id,
        "MfaSerial": session.mfa_serial,
    }))


def load(raw: Secret, source: str, log: logging.Logger = LOG) -> CachedSession | None:
    """The cached session, or None (logged) when the entry is damaged or from another version."""
    try:
        data = json.loads(raw.reveal())
        if data.get("version") != VERSION:
            raise ValueError("another version")
        expiration = datetime.strptime(data["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
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
