"""The one exception hierarchy users see.

Every message names what is wrong (a file, line, key, profile or source) and
what to do about it. `cli.main` prints the message and exits with the class's
`exit_code`; anything else reaching `main` is a bug.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: the hook's client raises these
if TYPE_CHECKING:
    from credd.model import Failure


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


class CommandNotRunnable(CreddError):
    """`credd exec` cannot run the command: exit 127 (not found) or 126 (found, not runnable), as a shell does."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ClientError(CreddError):
    """Asking the daemon over its socket failed, or the daemon refused: the message says what to do.

    `reason`: the cause alone, without the advice, for a report that gives its own (`credd doctor`).
    """

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = message if reason is None else reason


class DaemonDown(ClientError):
    """Nothing listens at the socket: `credd env`/`exec` may then use the credentials file instead."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


class KeyringError(CreddError):
    """The keyring cannot be used, or refused an operation."""


class NoSecureKeyringError(KeyringError):
    """Only a plain-text keyring, or none at all, is available."""


class AwsVaultError(CreddError):
    """aws-vault holds no usable long-term key for a profile, or keeps it where credd cannot read it."""


class RefreshError(CreddError):
    """Credentials could not be refreshed; `failure` keeps the kind and the advice for `status`."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class StsError(RefreshError):
    """An STS call failed, or STS sent a reply credd cannot use."""


class MfaError(RefreshError):
    """No MFA code could be had, or AWS rejected the ones credd had."""


class MfaCodeUsedError(CreddError):
    """An MFA code that already went to AWS for its device, which AWS would refuse again."""


class CredentialsFileError(CreddError):
    """The shared credentials file cannot be read or safely changed: names the file, the line and the fix.

    Never quotes a line of the file: any line may hold a secret.
    """

    def __init__(self, path: str, line: int | None, message: str) -> None:
        self.path = path
        self.line = line
        self.detail = message
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")


def one_line(text: str, limit: int = 80, *, prose: bool = False) -> str:
    """`text` as a message may quote it: one line, no terminal escapes, about `limit` characters at most.

    For names and values read from hostile files: characters that are not printable become escapes
    (a newline in a key must not split a log line, an ESC must not reach a terminal). `prose`: a
    message from a server, whose line breaks and runs of spaces are layout: each run becomes one space.
    """
    if prose:
        text = " ".join(text.split())
    cut = len(text) > limit
    head = text[:limit]
    if not head.isprintable():
        escaped = "".join(c if c.isprintable() else repr(c)[1:-1] for c in head)
        cut = cut or len(escaped) > limit
        head = escaped[:limit]
    return head + "…" if cut else head
