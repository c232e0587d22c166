"""`credd keys import SOURCE --from-aws-vault PROFILE`, run as users run it, against a real gnome-keyring
on a private D-Bus that holds items exactly as aws-vault writes them (tests/fixtures_awsvault.py)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import TEST_KEY_ID, TEST_SECRET_KEY, Home, run_credd
from tests.fixtures_awsvault import add_aws_vault_item, aws_credentials_json, keyring_item_json
from tests.fixtures_credfile import SOURCE_CONFIG

SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN"


@pytest.fixture
def vault_home(secret_service: Home) -> Home:
    secret_service.write_config(SOURCE_CONFIG)
    return secret_service


def import_key(home: Home, *extra: str, profile: str = "alice", env: dict[str, str] | None = None):
    return run_credd(["keys", "import", "alice", "--from-aws-vault", profile, *extra], home, extra_env=env)


def credd_entry() -> dict[str, str] | None:
    """What credd's own keyring entry for alice's key holds, read straight from the Secret Service.

    Searched for by keyring's attributes rather than through keyring, which would create its collection when
    there is none (and gnome-keyring would then ask for a password on a desktop the test does not have).
    """
    import secretstorage

    connection = secretstorage.dbus_init()
    try:
        found = [item.get_secret() for item in
                 secretstorage.search_items(connection, {"service": "credd", "username": "alice:access-key"})]
    finally:
        connection.close()
    assert len(found) <= 1, "credd stored alice's key twice"
    return json.loads(found[0]) if found else None


def aws_vault_items() -> list[bytes]:
    import secretstorage

    connection = secretstorage.dbus_init()
    try:
        return [item.get_secret() for collection in secretstorage.get_all_collections(connection)
                if collection.get_label() == "awsvault" for item in collection.get_all_items()]
    finally:
        connection.close()


def test_copies_the_key_aws_vault_holds_into_credds_entry(vault_home: Home) -> None:
    add_aws_vault_item("bob", aws_credentials_json("AKIAOTHERKEY00000000", "o" * 40))
    add_aws_vault_item("alice", aws_credentials_json(TEST_KEY_ID, TEST_SECRET_KEY))
    before = aws_vault_items()

    result = import_key(vault_home)

    assert result.returncode == 0, result.stderr
    assert result.stdout == ("imported access key AKIA…MPLE for source alice from aws-vault profile alice into the "
                             "keyring (keyring.backends.SecretService.Keyring); aws-vault still holds it "
                             "(`aws-vault remove alice` removes it there)\n")
    assert result.stderr == ""
    assert credd_entry() == {"AccessKeyId": TEST_KEY_ID, "SecretAccessKey": TEST_SECRET_KEY}
    assert aws_vault_items() == before  # aws-vault's items are its own: left as they were


def test_reads_the_collection_aws_vault_was_told_to_use(vault_home: Home) -> None:
    add_aws_vault_item("alice", aws_credentials_json(TEST_KEY_ID, TEST_SECRET_KEY), collection_name="work-vault")
    result = import_key(vault_home, env={"AWS_VAULT_SECRET_SERVICE_COLLECTION_NAME": "work-vault"})
    assert result.returncode == 0, result.stderr
    assert credd_entry() == {"AccessKeyId": TEST_KEY_ID, "SecretAccessKey": TEST_SECRET_KEY}


def test_does_not_replace_another_key_unless_asked(vault_home: Home) -> None:
    stored = run_credd(["keys", "set", "alice"], vault_home, input=f"AKIAOTHERKEY00000000\n{TEST_SECRET_KEY}\n")
    assert stored.returncode == 0, stored.stderr
    add_aws_vault_item("alice", aws_credentials_json(TEST_KEY_ID, TEST_SECRET_KEY))

    refused = import_key(vault_home)
    assert refused.returncode == 2
    assert "already holds another access key (AKIA…0000)" in refused.stderr and "--replace" in refused.stderr
    assert credd_entry()["AccessKeyId"] == "AKIAOTHERKEY00000000"

    replaced = import_key(vault_home, "--replace")
    assert replaced.returncode == 0, replaced.stderr
    assert credd_entry() == {"AccessKeyId": TEST_KEY_ID, "SecretAccessKey": TEST_SECRET_KEY}


@pytest.mark.parametrize("item, profile, message", [
    (None, "alice",
     "aws-vault's Secret Service collection 'awsvault' does not exist, so aws-vault holds no key here; `aws-vault "
     "list` shows the profiles it holds keys for (if aws-vault keeps them elsewhere, set $AWS_VAULT_BACKEND or "
     "$AWS_VAULT_SECRET_SERVICE_COLLECTION_NAME here as you set it for aws-vault)"),
    (aws_credentials_json(TEST_KEY_ID, TEST_SECRET_KEY), "carol",
     "aws-vault's Secret Service collection 'awsvault' holds no key for profile 'carol'; `aws-vault list` shows "
     "the profiles it holds keys for"),
    (aws_credentials_json("ASIAIOSFODNN7EXAMPLE", TEST_SECRET_KEY, SESSION_TOKEN), "alice",
     "aws-vault's item for profile 'alice' in collection 'awsvault' holds temporary credentials (it has a session "
     "token), not the IAM user's long-term key credd needs; store that key with `credd keys set alice`"),
    (b'{"AccessKeyID": "' + TEST_KEY_ID.encode() + b'", "SecretAccessKey": "' + b"d" * 40 + b'"',
     "alice", "aws-vault's item for profile 'alice' in collection 'awsvault' is not in the form aws-vault writes "
              "(JSONDecodeError); store the key with `credd keys set alice`"),
], ids=["no collection", "no such profile", "session token", "damaged"])
def test_refuses_what_it_cannot_import(vault_home: Home, item: bytes | None, profile: str, message: str) -> None:
    if item is not None:
        add_aws_vault_item("alice", item)
    result = import_key(vault_home, profile=profile)
    assert result.returncode == 1
    assert result.stderr == f"credd: error: {message}\n"
    assert credd_entry() is None


@pytest.mark.parametrize("backend, reason", [
    ("file", "it encrypts each key with your aws-vault passphrase in a format of its own"),
    ("pass", "it keeps keys in pass's gpg-encrypted store"),
    ("kwallet", "credd does not read KWallet"),
])
def test_says_which_aws_vault_backends_it_cannot_read(vault_home: Home, tmp_path, backend: str, reason: str) -> None:
    add_aws_vault_item("alice", aws_credentials_json(TEST_KEY_ID, TEST_SECRET_KEY))
    config = tmp_path / "my config.yaml"
    config.write_text(SOURCE_CONFIG)
    result = run_credd(["--config", str(config), "keys", "import", "alice", "--from-aws-vault", "alice"], vault_home,
                       extra_env={"AWS_VAULT_BACKEND": backend})
    assert result.returncode == 1
    assert result.stderr == (
        f"credd: error: cannot read aws-vault's {backend!r} backend ($AWS_VAULT_BACKEND): {reason}; credd reads "
        "only its Secret Service backend. Print the key with `aws-vault export --no-session --format=ini alice` "
        f"(for a profile without role_arn that is its long-term key) and store it with "
        f"`credd --config '{config}' keys set alice`\n")
    assert credd_entry() is None


def test_says_when_the_secret_service_cannot_be_reached(plaintext_keyring: Home, tmp_path) -> None:
    plaintext_keyring.write_config(SOURCE_CONFIG)
    result = import_key(plaintext_keyring, env={"DBUS_SESSION_BUS_ADDRESS": f"unix:path={tmp_path}/no-bus"})
    assert result.returncode == 1
    assert result.stderr.startswith("credd: error: cannot reach the Secret Service to read aws-vault's Secret "
                                    "Service collection 'awsvault': ")
    assert result.stderr.endswith(". Start the Secret Service aws-vault uses (gnome-keyring, KeePassXC) in this "
                                  "login session and check that $DBUS_SESSION_BUS_ADDRESS names its D-Bus\n")
    assert "Traceback" not in result.stderr


def test_the_two_origins_exclude_each_other(vault_home: Home) -> None:
    result = run_credd(["keys", "import", "alice", "--from-profile", "p", "--from-aws-vault", "alice"], vault_home)
    assert result.returncode == 2
    assert "not allowed with argument" in result.stderr
    neither = run_credd(["keys", "import", "alice"], vault_home)
    assert neither.returncode == 2
    assert "one of the arguments --from-profile --from-aws-vault is required" in neither.stderr


def test_the_fixture_writes_what_aws_vault_writes() -> None:
    # Go's json.Marshal of keyring.Item: []byte Data is base64, field names as declared.
    item = json.loads(keyring_item_json("alice", b'{"k":1}'))
    assert item == {"Key": "alice", "Data": "eyJrIjoxfQ==", "Label": "aws-vault (alice)", "Description": "",
                    "KeychainNotTrustApplication": True, "KeychainNotSynchronizable": False}
