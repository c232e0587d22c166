"""Fixtures for the credentials-file editor: fake STS credentials, botocore as the judge of a
file, a config with one source, and a keyring backend that refuses every write."""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta, timezone

import pytest

from credd.model import Credentials, Secret

EPOCH = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

SOURCE_CONFIG = """\
version: 1
sources:
  alice:
    region: us-east-1
profiles:
  alice-session:
    source: alice
"""


def make_credentials(n: int = 0) -> Credentials:
    """Distinct, recognisable temporary credentials for number `n`."""
    return Credentials(
        access_key_id=f"ASIATEST{n:012d}",
        secret_access_key=Secret(f"test/secret+{n:08d}"),
        session_token=Secret(f"test-session-token-{n:08d}=="),
        expiration=EPOCH + timedelta(seconds=n),
    )


def botocore_read(text: str) -> dict:
    """What botocore itself reads from a credentials file holding exactly these bytes.

    botocore opens the file by path, so the bytes go through a real file; it
    raises `botocore.exceptions.ConfigParseError` for a file it refuses.
    """
    from botocore.configloader import raw_config_parse

    fd, name = tempfile.mkstemp(prefix="credd-botocore-", suffix=".ini")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8", "surrogateescape"))
        return raw_config_parse(name)
    finally:
        os.unlink(name)


@pytest.fixture
def source_config(plaintext_keyring):
    """A home with keyrings.alt chosen and a config with one source, `alice`."""
    plaintext_keyring.write_config(SOURCE_CONFIG)
    return plaintext_keyring


def __getattr__(name: str):
    # `PYTHON_KEYRING_BACKEND=tests.fixtures_credfile.FailingKeyring` in a subprocess.
    # Built on first access, so the pytest process itself never registers it with
    # keyring's automatic backend choice (every KeyringBackend subclass joins it).
    if name == "FailingKeyring":
        return _failing_keyring()
    raise AttributeError(name)


def _failing_keyring() -> type:
    from keyring.backend import KeyringBackend
    from keyring.errors import PasswordDeleteError, PasswordSetError

    class FailingKeyring(KeyringBackend):
        """A keyring that is there but refuses every write, as a locked collection does."""

        priority = 1

        def get_password(self, service, username):
            return None

        def set_password(self, service, username, password):
            raise PasswordSetError("the collection is locked")

        def delete_password(self, service, username):
            raise PasswordDeleteError("the collection is locked")

    FailingKeyring.__module__, FailingKeyring.__qualname__ = __name__, "FailingKeyring"
    globals()["FailingKeyring"] = FailingKeyring
    return FailingKeyring
