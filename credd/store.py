"""The keyring: long-term keys, TOTP seeds and cached sessions, one entry each per source.

Entries live under the config's `keyring_service`, with user names
`SOURCE:access-key`, `SOURCE:totp-seed` and `SOURCE:session`. Values are JSON
(or the bare seed). Nothing here logs or formats a secret; values come back
wrapped in `Secret`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from credd.commandline import credd_command
from credd.errors import KeyringError, NoSecureKeyringError, one_line
from credd.model import AccessKey, Secret

ACCESS_KEY = "access-key"
TOTP_SEED = "totp-seed"
SESSION = "session"
KINDS = (ACCESS_KEY, TOTP_SEED, SESSION)

HOW_TO_GET_ONE = (
    "On Linux, install and start a Secret Service (gnome-keyring, or KeePassXC with its Secret Service "
    "integration) in your login session; on a headless box, run credd under `dbus-run-session` with "
    "`gnome-keyring-daemon --unlock`. To knowingly use another backend, name it in $PYTHON_KEYRING_BACKEND "
    "or in keyring's keyringrc.cfg (`python -m keyring diagnose` shows where)."
)


class KeyringBackend(Protocol):
    """What credd calls on a keyring backend: keyring's `KeyringBackend` has it, and so must a stand-in.

    credd calls them positionally. A backend raises what it likes (keyring's errors, D-Bus's, OSError):
    `Store` turns that into a KeyringError.
    """

    def get_password(self, service: str, username: str, /) -> str | None: ...

    def set_password(self, service: str, username: str, password: str, /) -> None: ...

    def delete_password(self, service: str, username: str, /) -> None:
        """Raises keyring.errors.PasswordDeleteError when there is no such entry."""
        ...


@dataclass(frozen=True)
class BackendChoice:
    """The backend credd will use and whether the user named it."""

    backend: KeyringBackend
    explicit: bool

    @property
    def name(self) -> str:
        return backend_name(self.backend)


def backend_name(backend: KeyringBackend) -> str:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


def is_plaintext(backend: KeyringBackend) -> bool:
    """keyrings.alt's PlaintextKeyring (file or pyfs) keeps secrets readable on disk."""
    return "plaintext" in type(backend).__name__.lower()


def is_unusable(backend: KeyringBackend) -> bool:
    """keyring's `fail` and `null` backends store nothing."""
    return type(backend).__module__ in ("keyring.backends.fail", "keyring.backends.null")


# The OS keyrings credd finds on its own, in the order it tries them. Anything
# else (keyrings.alt's files, a third-party plugin with a high priority) must be
# named by the user: keyring's own priority-based pick would take a plain-text
# file on a headless Linux box, and a stray plugin could claim every secret.
SECURE_BACKENDS = {
    "darwin": ("keyring.backends.macOS.Keyring",),
    "linux": ("keyring.backends.SecretService.Keyring", "keyring.backends.kwallet.DBusKeyring"),
}


def select_backend(env: Mapping[str, str] = os.environ, platform: str = sys.platform) -> BackendChoice:
    """The keyring backend to use: the user's explicit choice, else the platform's OS keyring.

    An explicit choice is `$PYTHON_KEYRING_BACKEND` or keyring's config file
    (keyringrc.cfg); it may be any backend, plain text included, because the
    user asked for it. Otherwise only the OS keyrings above are considered.
    """
    import keyring.core

    backend: KeyringBackend | None
    try:
        if env.get("PYTHON_KEYRING_BACKEND"):
            backend = keyring.core.load_keyring(env["PYTHON_KEYRING_BACKEND"])
        else:
            backend = keyring.core.load_config()
    except Exception as e:  # keyring raises ImportError, RuntimeError, ValueError here
        raise KeyringError(f"cannot load the keyring backend you chose: {type(e).__name__}: {e}. "
                           f"{HOW_TO_GET_ONE}") from e
    if backend is not None:
        if is_unusable(backend):
            raise NoSecureKeyringError(f"the keyring backend you chose, {backend_name(backend)}, stores nothing. "
                                       f"{HOW_TO_GET_ONE}")
        return BackendChoice(backend, explicit=True)

    reasons = []
    for name in SECURE_BACKENDS.get(platform, SECURE_BACKENDS["linux"]):
        try:
            return BackendChoice(keyring.core.load_keyring(name), explicit=False)
        except Exception as e:  # noqa: BLE001  not viable here (missing module, no D-Bus, no daemon): the next one
            reasons.append(f"{name.split('.')[-2]}: {e}")
    raise NoSecureKeyringError(no_keyring_message(reasons, env, platform))


GNOME_KEYRING = "gnome-keyring-daemon --unlock --components=secrets"
MAX_REASON = 160  # a backend's own message can run to hundreds of characters of D-Bus detail


def no_keyring_message(reasons: list[str], env: Mapping[str, str], platform: str) -> str:
    """The fix for this platform on one short first line; then why, and each backend tried, one a line."""
    if platform == "darwin":
        fix = "unlock your login Keychain: security unlock-keychain ~/Library/Keychains/login.keychain-db"
        details = ["over SSH the Keychain stays locked until it is unlocked in that session"]
    elif env.get("DBUS_SESSION_BUS_ADDRESS"):
        fix = f"start and unlock gnome-keyring: {GNOME_KEYRING}"
        details = ["it reads the keyring's password from its input: type it, then Ctrl-D (KeePassXC's Secret "
                   "Service integration works too)"]
    else:
        fix = f"start and unlock gnome-keyring: dbus-run-session -- sh -c '{GNOME_KEYRING} && exec \"$SHELL\"'"
        details = ["there is no D-Bus session bus ($DBUS_SESSION_BUS_ADDRESS is unset): dbus-run-session starts one "
                   "for the shell it runs (with systemd, the dbus-user-session package gives every login one)",
                   "gnome-keyring-daemon --unlock reads the keyring's password from its input: type it, then Ctrl-D"]
    details.append("credd does not fall back to a keyring that keeps secrets in plain text on disk; to choose another "
                   "backend knowingly, name it in $PYTHON_KEYRING_BACKEND or in keyring's keyringrc.cfg "
                   "(`python -m keyring diagnose` shows where)")
    details.append("backends tried:")
    details += [f"  {one_line(reason, MAX_REASON)}" for reason in reasons]
    return f"no secure keyring is available; {fix}\n" + "\n".join(f"  {line}" for line in details)


class Store:
    """Reads and writes credd's secrets in one keyring backend under one service name."""

    def __init__(self, backend: KeyringBackend, service: str, hint_config: str | None = None) -> None:
        self.backend = backend
        self.service = service
        self.hint_config = hint_config  # the user's --config, for the commands its errors name

    # Long-term access keys --------------------------------------------------

    def set_access_key(self, source: str, key: AccessKey) -> None:
        value = json.dumps({"AccessKeyId": key.key_id, "SecretAccessKey": key.secret.reveal()})
        self._set(source, ACCESS_KEY, value)

    def get_access_key(self, source: str) -> AccessKey | None:
        raw = self._get(source, ACCESS_KEY)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            return AccessKey(str(data["AccessKeyId"]), Secret(str(data["SecretAccessKey"])))
        except (ValueError, KeyError, TypeError):
            raise KeyringError(
                f"the access key stored for source {source!r} is damaged; store it again with "
                f"`{credd_command(self.hint_config, 'keys', 'set', source)}`"
            ) from None

    # TOTP seeds -------------------------------------------------------------

    def set_totp_seed(self, source: str, seed: Secret) -> None:
        self._set(source, TOTP_SEED, seed.reveal())

    def get_totp_seed(self, source: str) -> Secret | None:
        raw = self._get(source, TOTP_SEED)
        return None if raw is None else Secret(raw)

    # Cached sessions (opaque JSON here; credd.sources.cache owns the shape) ------

    def set_session(self, source: str, session: Secret) -> None:
        self._set(source, SESSION, session.reveal())

    def get_session(self, source: str) -> Secret | None:
        raw = self._get(source, SESSION)
        return None if raw is None else Secret(raw)

    # Housekeeping -----------------------------------------------------------

    def has(self, source: str, kind: str) -> bool:
        return self._get(source, kind) is not None

    def delete(self, source: str, kind: str) -> bool:
        """Remove one entry; True if there was one."""
        import keyring.errors

        if self._get(source, kind) is None:
            return False
        try:
            self.backend.delete_password(self.service, _user(source, kind))
        except keyring.errors.PasswordDeleteError:
            return False
        except Exception as e:
            raise self._failure("delete", source, kind, e) from e
        return True

    def _set(self, source: str, kind: str, value: str) -> None:
        try:
            self.backend.set_password(self.service, _user(source, kind), value)
        except Exception as e:
            raise self._failure("store", source, kind, e) from e
        # Some backends accept a write and drop it (a locked collection, a null
        # backend named by mistake): read back before telling the user it is safe.
        if self._get(source, kind) != value:
            raise KeyringError(
                f"the keyring ({backend_name(self.backend)}) accepted the {_what(kind)} of source {source!r} but "
                "does not return it; check that it is unlocked and writable "
                f"(`{credd_command(self.hint_config, 'doctor')}`)"
            )

    def _get(self, source: str, kind: str) -> str | None:
        try:
            return self.backend.get_password(self.service, _user(source, kind))
        except Exception as e:
            raise self._failure("read", source, kind, e) from e

    def _failure(self, action: str, source: str, kind: str, error: Exception) -> KeyringError:
        # The backend's own message, never the value: keyring errors describe the
        # backend state (locked, dismissed prompt), and no secret is passed to them.
        detail = str(error).strip()
        end = "" if detail.endswith((".", "!", "?")) else "."
        return KeyringError(
            f"cannot {action} the {_what(kind)} of source {source!r} in the keyring ({backend_name(self.backend)}): "
            f"{type(error).__name__}: {detail}{end} {advice(error, self.hint_config)}"
        )


def advice(error: BaseException, hint_config: str | None = None) -> str:
    """What to do about a keyring backend's failure: a locked keyring and a missing one need different fixes.

    `hint_config`: the user's --config, for the command it names.

    Looks at the exception and its causes by class name and text, so no
    backend's module has to be importable here (secretstorage exists only on Linux).
    """
    doctor = credd_command(hint_config, "doctor")
    names: set[str] = set()
    text, seen = "", 0
    cause: BaseException | None = error
    while cause is not None and seen < 5:
        names.update(cls.__name__ for cls in type(cause).__mro__)
        text += f" {cause}".lower()
        cause, seen = cause.__cause__ or cause.__context__, seen + 1
    if "KeyringLocked" in names or "locked" in text:
        return ("The keyring is locked: unlock it (log in to your desktop session, or unlock the login keyring "
                "in Seahorse or KeePassXC); a running `credd serve` tries again on its own.")
    if names & UNREACHABLE_ERRORS or any(marker in text for marker in UNREACHABLE_TEXTS):
        return ("The keyring service is not running or cannot be reached: start your Secret Service "
                "(gnome-keyring, KeePassXC) in this login session and check that $DBUS_SESSION_BUS_ADDRESS names "
                f"its D-Bus; a running `credd serve` tries again on its own (`{doctor}` checks the keyring).")
    return f"Unlock the keyring or see `{doctor}`."


# What a backend raises when its service is gone: keyring's InitError, secretstorage's
# "not available", a D-Bus socket that is gone or refuses (FileNotFoundError,
# ConnectionError), a bus that hung up (EOFError), and the bus's own replies for a
# service that is not there or does not answer.
UNREACHABLE_ERRORS = {"InitError", "SecretServiceNotAvailableException", "FileNotFoundError", "ConnectionError",
                      "EOFError"}
UNREACHABLE_TEXTS = ("serviceunknown", "noreply", "not provided by any .service files", "disconnected")


def _user(source: str, kind: str) -> str:
    return f"{source}:{kind}"


def _what(kind: str) -> str:
    return {ACCESS_KEY: "access key", TOTP_SEED: "TOTP seed", SESSION: "cached session"}[kind]
