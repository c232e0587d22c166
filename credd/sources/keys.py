"""Long-term keys with MFA: a source's session from GetSessionToken, signed with the IAM user's key.

The key comes from the keyring; the MFA code from the source's driver
(`totp`, `command`, `prompt`), for a code window nobody has used yet: AWS
accepts each code once, so a driver that makes its own codes waits for the
next window rather than send one again, and tries once more in the next
window when AWS rejects a code (someone else may just have used it).
"""

from __future__ import annotations

from dataclasses import dataclass

from credd import mfa, sts
from credd.commandline import credd_command
from credd.errors import KeyringError, MfaError, RefreshError, StsError
from credd.model import AccessKey, Credentials, Failure, FailureKind, Secret, Source
from credd.sources.base import Effects, unless_stopping


@dataclass(frozen=True)
class KeyBasis:
    """The long-term key (and MFA device) a session is made with."""

    key: AccessKey
    mfa_serial: str | None

    @property
    def key_id(self) -> str:
        return self.key.key_id


class KeySessions:
    """The session provider of a source with a long-term key: GetSessionToken, with an MFA code if it has a device."""

    def __init__(self, source: Source, effects: Effects, skew: sts.SkewWatcher) -> None:
        self.source = source
        self.effects = effects
        self.skew = skew  # told how far this machine's clock is from STS's at each reply

    def basis(self) -> KeyBasis:
        """The source's key from the keyring: a RefreshError when it is missing or the keyring refuses."""
        name = self.source.name
        try:
            key = self.effects.store.get_access_key(name)
        except KeyringError as e:
            raise RefreshError(Failure(FailureKind.KEYRING, str(e), retryable=True)) from None
        if key is None:
            raise RefreshError(Failure(FailureKind.KEY_MISSING,
                                       f"source {name!r} has no access key in the keyring; store it with "
                                       f"`{credd_command(self.effects.hint_config, 'keys', 'set', name)}`",
                                       retryable=False))
        return KeyBasis(key, self.source.mfa_serial)

    def session(self, basis: KeyBasis) -> Credentials:
        """A new session: costs an MFA code when the source has a device."""
        source, clock = self.source, self.effects.clock
        client = self.effects.clients.for_key(source, basis.key)
        if source.mfa_serial is None:
            unless_stopping(self.effects.stop, f"source {source.name!r}")
            return self._logged(sts.get_session_token(client, source, None, clock(), skew=self.skew,
                                                      hint_config=self.effects.hint_config))
        driver = self._driver()
        # A rejected code may just have been used elsewhere: a driver that makes its own
        # codes tries once more in the next window; a handed-in code needs the user again.
        attempts = 2 if driver.regenerates else 1
        for attempt in range(1, attempts + 1):
            code = self._mfa_code(driver)
            unless_stopping(self.effects.stop, f"source {source.name!r}")
            try:
                return self._logged(sts.get_session_token(client, source, code, clock(), skew=self.skew,
                                                          hint_config=self.effects.hint_config))
            except StsError as e:
                if e.failure.kind is not FailureKind.MFA_INVALID:
                    raise
            if attempt < attempts:
                self.effects.log.warning("source %s: AWS rejected the MFA code; trying once more with the next one",
                                         source.name)
        raise MfaError(driver.rejected(source))

    def _logged(self, creds: Credentials) -> Credentials:
        self.effects.log.info("source %s: new session %r", self.source.name, creds)
        return creds

    def _driver(self) -> mfa.MfaDriver:
        source = self.source
        driver = self.effects.drivers.get(source.mfa or "prompt")
        if driver is None:
            raise MfaError(Failure(FailureKind.MFA_UNAVAILABLE,
                                   f"source {source.name!r}: no MFA driver named {source.mfa!r}", retryable=False))
        return driver

    def _mfa_code(self, driver: mfa.MfaDriver) -> Secret:
        """A code nobody has sent yet: wait for an unused window where the driver can make its own code."""
        source, effects = self.source, self.effects
        serial = source.mfa_serial
        assert serial is not None
        now = effects.clock().timestamp()
        if driver.regenerates:
            window = effects.windows.claim(serial, now)
            wait = mfa.seconds_until(now, window)
            if wait > 0:
                effects.log.info("source %s: waiting %.0f s for a fresh MFA code (AWS accepts each code once)",
                                 source.name, wait)
                effects.sleep(wait)
                unless_stopping(effects.stop, f"source {source.name!r}")  # not a code (or a key touch) for nothing
        else:
            window = mfa.window_at(now)
        code = driver.code(source, window)
        # A slow command (a key waiting for a touch) may have read a later window's code.
        effects.windows.record(serial, max(window, mfa.window_at(effects.clock().timestamp())))
        return code
