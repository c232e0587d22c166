"""Reading the long-term key aws-vault keeps for a profile: `credd keys import --from-aws-vault`.

aws-vault (github.com/99designs/aws-vault) stores a profile's key through
github.com/99designs/keyring. In its Secret Service backend (aws-vault's default
on Linux) that is one item per profile in a collection of its own, "awsvault"
(cli/global.go, LibSecretCollectionName), found by its D-Bus path; the item has
the attribute {"profile": PROFILE} (go-libsecret's CreateItem) and its secret is
the JSON of keyring.Item, whose base64 `Data` is the JSON of aws.Credentials
(vault/credentialkeyring.go). Its other backends (macOS Keychain, KWallet,
keyctl, pass, the passphrase-encrypted file, Windows) credd does not read: it
says so and how to move the key by hand.

Nothing here formats a secret into a message; the key comes back wrapped in `Secret`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping

from credd.errors import AwsVaultError, KeyringError, SecretFormatError
from credd.model import AccessKey
from credd.secret_formats import parse_access_key

SECRET_SERVICE = "secret-service"
BACKEND_ENV = "AWS_VAULT_BACKEND"  # aws-vault's --backend
COLLECTION_ENV = "AWS_VAULT_SECRET_SERVICE_COLLECTION_NAME"  # aws-vault's --secret-service-collection
DEFAULT_COLLECTION = "awsvault"
COLLECTION_PATH = "/org/freedesktop/secrets/collection/"

# Why credd cannot read each of aws-vault's other backends (the names are keyring.BackendType's).
UNREADABLE = {
    "file": "it encrypts each key with your aws-vault passphrase in a format of its own",
    "pass": "it keeps keys in pass's gpg-encrypted store",
    "keychain": "credd does not read aws-vault's macOS Keychain (\"aws-vault\") yet",
    "kwallet": "credd does not read KWallet",
    "keyctl": "credd does not read the kernel keyring (keyctl)",
    "wincred": "credd does not read the Windows Credential Manager",
}


def aws_vault_backend(env: Mapping[str, str], platform: str) -> tuple[str, str]:
    """The backend aws-vault uses here and how it was chosen: $AWS_VAULT_BACKEND, else its first on this platform."""
    chosen = env.get(BACKEND_ENV, "").strip()
    if chosen:
        return chosen, f"${BACKEND_ENV}"
    default = {"darwin": "keychain", "win32": "wincred"}.get(platform, SECRET_SERVICE)
    return default, "aws-vault's default here"


def read_long_term_key(profile: str, env: Mapping[str, str], platform: str, set_command: str) -> AccessKey:
    """The long-term key aws-vault holds for `profile`; `set_command` is the `credd keys set` to suggest instead."""
    backend, how = aws_vault_backend(env, platform)
    if backend != SECRET_SERVICE:
        reason = UNREADABLE.get(backend, "credd knows no such aws-vault backend")
        raise AwsVaultError(
            f"cannot read aws-vault's {backend!r} backend ({how}): {reason}; credd reads only its Secret Service "
            f"backend. Print the key with `aws-vault export --no-session --format=ini {profile}` (for a profile "
            f"without role_arn that is its long-term key) and store it with `{set_command}`")
    collection = env.get(COLLECTION_ENV, "").strip() or DEFAULT_COLLECTION
    return parse_item(profile, collection, read_secret_service_item(profile, collection), set_command)


def read_secret_service_item(profile: str, collection_name: str) -> bytes:
    """The secret of aws-vault's item for `profile` in its Secret Service collection, as aws-vault finds it."""
    try:
        import secretstorage
    except ImportError as e:  # secretstorage exists only where keyring's Secret Service backend does
        raise AwsVaultError(f"cannot read aws-vault's Secret Service collection: {e}") from None
    where = f"aws-vault's Secret Service collection {collection_name!r}"
    try:
        connection = secretstorage.dbus_init()
    except Exception as e:  # noqa: BLE001  no bus, no daemon, a bad address: each its own class
        raise KeyringError(f"cannot reach the Secret Service to read {where}: {type(e).__name__}: {e}. Start the "
                           "Secret Service aws-vault uses (gnome-keyring, KeePassXC) in this login session and check "
                           "that $DBUS_SESSION_BUS_ADDRESS names its D-Bus") from None
    try:
        collection = next((c for c in secretstorage.get_all_collections(connection)
                           if decode_path(c.collection_path) == COLLECTION_PATH + collection_name), None)
        if collection is None:
            raise AwsVaultError(
                f"{where} does not exist, so aws-vault holds no key here; `aws-vault list` shows the profiles it "
                f"holds keys for (if aws-vault keeps them elsewhere, set ${BACKEND_ENV} or ${COLLECTION_ENV} here as "
                f"you set it for aws-vault)")
        # aws-vault takes the first item when several match (99designs/keyring secretservice.go Get).
        item = next(iter(collection.search_items({"profile": profile})), None)
        if item is None:
            raise AwsVaultError(f"{where} holds no key for profile {profile!r}; `aws-vault list` shows the "
                                "profiles it holds keys for")
        if item.is_locked() and item.unlock():  # unlock() asks on the desktop; True: the prompt was dismissed
            raise AwsVaultError(f"{where} is locked and was not unlocked; unlock it (for example in Seahorse) "
                                "and run this again")
        return item.get_secret()
    except AwsVaultError:
        raise
    except Exception as e:  # noqa: BLE001  D-Bus and secretstorage errors; their text holds no secret
        raise KeyringError(f"cannot read profile {profile!r} from {where}: {type(e).__name__}: {e}. Check that "
                           "the collection is unlocked (`aws-vault list` asks to unlock it) and run this again"
                           ) from None
    finally:
        connection.close()


def decode_path(path: str) -> str:
    """A D-Bus object path with gnome-keyring's `_XX` escapes decoded, as aws-vault compares them."""
    return re.sub(r"_([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), path)


def parse_item(profile: str, collection_name: str, raw: bytes, set_command: str) -> AccessKey:
    """The long-term key in the secret of aws-vault's item (JSON of keyring.Item around JSON of aws.Credentials)."""
    what = f"aws-vault's item for profile {profile!r} in collection {collection_name!r}"
    try:
        item = json.loads(raw)
        credentials = json.loads(base64.b64decode(item["Data"], validate=True))
        key_id, secret = credentials["AccessKeyID"], credentials["SecretAccessKey"]
        session_token = credentials.get("SessionToken") or ""
        if not all(isinstance(value, str) for value in (key_id, secret, session_token)):
            raise TypeError("a field is not a string")
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as e:
        # The error's class only: json's messages can quote the document, which holds the secret.
        raise AwsVaultError(f"{what} is not in the form aws-vault writes ({type(e).__name__}); store the key "
                            f"with `{set_command}`") from None
    if session_token:
        raise AwsVaultError(f"{what} holds temporary credentials (it has a session token), not the IAM user's "
                            f"long-term key credd needs; store that key with `{set_command}`")
    try:
        return parse_access_key(key_id, secret)
    except SecretFormatError as e:
        raise AwsVaultError(f"{what}: {e}; store the right key with `{set_command}`") from None
