"""The one exception hierarchy users see.

Every message names what is wrong (a file, line, key, profile or source) and
what to do about it. `cli.main` prints the message and exits with the class's
`exit_code`; anything else reaching `main` is a bug.
"""

from __future__ import annotations


class CreddError(Exception):
    """An operation failed for a reason the user can act on (exit 1)."""

    exit_code = 1


class UsageError(CreddError):
    """The command line or its input is wrong (exit 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """The configuration is invalid: names the file, the line and the key."""

    def __init__(self, path: str, line: int | None, key: str, message: str) -> None:
        self.path = path
        self.line = line
        self.key = key
        self.detail = message
        where = f"{path}:{line}" if line is not None else path
        text = f"{where}: {key}: {message}" if key else f"{where}: {message}"
        super().__init__(text)


class SecretFormatError(UsageError):
    """A key or TOTP seed the user typed in has the wrong form."""


class KeyringError(CreddError):
    """The keyring cannot be used, or refused an operation."""


class NoSecureKeyringError(KeyringError):
    """Only a plain-text keyring, or none at all, is available."""
