"""`credd keys import`, run as users run it: the key moves to the keyring, the rest of the file stays
byte for byte, and nothing leaves the file before the keyring has the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TEST_KEY_ID, TEST_SECRET_KEY, Home, run_credd
from tests.fixtures_credfile import SOURCE_CONFIG

REPO = Path(__file__).resolve().parent.parent
KEY = f"aws_access_key_id = {TEST_KEY_ID}\r\naws_secret_access_key = {TEST_SECRET_KEY}\r\n"

# CRLF, comments of both kinds and indented, unicode, no final newline, a [DEFAULT], a nested
# block, and the key in a section between others, with a comment inside it.
TRICKY_BEFORE = (
    "; ~/.aws/credentials, kept by hand — ünïcode ☃\r\n"
    "[DEFAULT]\r\nregion = eu-west-1\r\n\r\n"
    "[work]\r\naws_access_key_id = ASIAWORK000000000000\r\naws_secret_access_key = w\r\naws_session_token = t\r\n"
    "s3 =\r\n    addressing_style = path\r\n\r\n"
    "   # my own IAM user\r\n"
    "[personal]\r\n# created 2019, rotate!\r\n" + KEY + "\r\n"
    "# the rest\r\n[other]\r\noutput = json"
)
TRICKY_AFTER = (
    "; ~/.aws/credentials, kept by hand — ünïcode ☃\r\n"
    "[DEFAULT]\r\nregion = eu-west-1\r\n\r\n"
    "[work]\r\naws_access_key_id = ASIAWORK000000000000\r\naws_secret_access_key = w\r\naws_session_token = t\r\n"
    "s3 =\r\n    addressing_style = path\r\n\r\n"
    "   # my own IAM user\r\n"
    "# the rest\r\n[other]\r\noutput = json"
)


def credentials(home: Home, data: bytes) -> Path:
    path = home.credentials
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def import_key(home: Home, *extra: str, profile: str = "personal", env: dict[str, str] | None = None):
    return run_credd(["keys", "import", "alice", "--from-profile", profile, *extra], home, extra_env=env)


def stored_key_id(home: Home) -> str:
    listing = run_credd(["keys", "ls"], home)
    assert listing.returncode == 0, listing.stderr
    alice = next(line for line in listing.stdout.splitlines() if line.strip().startswith("alice:"))
    return alice.split(":", 1)[1].strip()


def test_moves_the_key_and_keeps_every_other_byte(any_keyring: Home) -> None:
    any_keyring.write_config(SOURCE_CONFIG)
    path = credentials(any_keyring, TRICKY_BEFORE.encode())

    result = import_key(any_keyring)

    assert result.returncode == 0, result.stderr
    assert "imported access key AKIA…MPLE for source alice" in result.stdout
    assert path.read_bytes() == TRICKY_AFTER.encode()
    assert stored_key_id(any_keyring).startswith("AKIA…MPLE")


def test_keeps_a_section_that_holds_other_keys(source_config: Home) -> None:
    before = f"[personal]\nregion = eu-north-1\n{KEY}output = json\n[work]\nk = v\n".replace("\r\n", "\n")
    path = credentials(source_config, before.encode())
    assert import_key(source_config).returncode == 0
    assert path.read_text() == "[personal]\nregion = eu-north-1\noutput = json\n[work]\nk = v\n"


def test_a_keyring_that_refuses_the_key_leaves_the_file_untouched(source_config: Home) -> None:
    path = credentials(source_config, TRICKY_BEFORE.encode())
    before = path.stat()
    env = {"PYTHON_KEYRING_BACKEND": "tests.fixtures_credfile.FailingKeyring", "PYTHONPATH": str(REPO)}

    result = import_key(source_config, env=env)

    assert result.returncode == 1
    assert result.stderr.startswith("credd: error: cannot store the access key of source 'alice' in the keyring "
                                    "(tests.fixtures_credfile.FailingKeyring): PasswordSetError: the collection "
                                    "is locked")
    assert "Traceback" not in result.stderr
    assert path.read_bytes() == TRICKY_BEFORE.encode()
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


@pytest.mark.parametrize("text, profile, code, message", [
    ("[work]\nk = v\n", "personal", 1, "there is no section [personal] (sections: [work])"),
    ("[personal]\naws_access_key_id = ASIAX\naws_secret_access_key = s\naws_session_token = t\n", "personal", 1,
     "holds temporary credentials"),
    ("[personal]\nk = 1\n[personal]\nk = 2\n", "personal", 1, "credentials:3: section [personal] appears a second"),
    ("[personal]\naws_access_key_id = not-a-key\naws_secret_access_key = s\n", "personal", 2,
     "that is not an access key id"),
], ids=["no such section", "temporary credentials", "file botocore refuses", "not a key"])
def test_refuses_and_leaves_the_file_alone(source_config: Home, text: str, profile: str, code: int,
                                           message: str) -> None:
    path = credentials(source_config, text.encode())
    result = import_key(source_config, profile=profile)
    assert (result.returncode, path.read_text()) == (code, text)
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_no_credentials_file(source_config: Home) -> None:
    result = import_key(source_config)
    assert result.returncode == 1
    assert "there is no such file" in result.stderr
    assert not source_config.credentials.parent.exists()


def test_does_not_replace_another_key_unless_asked(source_config: Home) -> None:
    other = "AKIAOTHERKEY00000000"
    stored = run_credd(["keys", "set", "alice"], source_config, input=f"{other}\n{TEST_SECRET_KEY}\n")
    assert stored.returncode == 0, stored.stderr
    text = f"[personal]\n{KEY}".replace("\r\n", "\n")
    path = credentials(source_config, text.encode())

    refused = import_key(source_config)
    assert refused.returncode == 2
    assert "already holds another access key (AKIA…0000)" in refused.stderr and "--replace" in refused.stderr
    assert path.read_text() == text and stored_key_id(source_config).startswith("AKIA…0000")

    replaced = import_key(source_config, "--replace")
    assert replaced.returncode == 0, replaced.stderr
    assert path.read_text() == "" and stored_key_id(source_config).startswith("AKIA…MPLE")


def test_no_credentials_file_names_keys_set_with_the_users_config(source_config: Home, tmp_path: Path) -> None:
    config = tmp_path / "my config.yaml"
    config.write_text(source_config.config.read_text())
    result = run_credd(["--config", str(config), "keys", "import", "alice", "--from-profile", "personal"],
                       source_config)
    assert result.returncode == 1
    assert f"store the key with `credd --config '{config}' keys set alice`" in result.stderr
