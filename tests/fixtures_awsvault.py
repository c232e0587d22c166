"""Items in a Secret Service exactly as aws-vault's Secret Service backend writes them.

From aws-vault's source (github.com/99designs/aws-vault): vault/credentialkeyring.go stores a
profile's key as keyring.Item{Key: profile, Label: "aws-vault (PROFILE)", Data: json(aws.Credentials),
KeychainNotTrustApplication: true}; cli/global.go names the collection "awsvault"
(LibSecretCollectionName). From github.com/99designs/keyring, secretservice.go: the collection is
created with that label and found by its D-Bus path .../collection/awsvault; the item's secret is
json(keyring.Item) (Go writes []byte Data as base64) with content type "application/json". From
github.com/gsterjov/go-libsecret, collection.go CreateItem: the item's label is the profile name and
its one attribute is {"profile": PROFILE}.
"""

from __future__ import annotations

import base64
import json

AWS_VAULT_COLLECTION = "awsvault"


def aws_credentials_json(key_id: str, secret: str, session_token: str = "") -> bytes:
    """json.Marshal(aws.Credentials) as aws-sdk-go-v2 writes it."""
    return json.dumps({"AccessKeyID": key_id, "SecretAccessKey": secret, "SessionToken": session_token,
                       "Source": "", "CanExpire": bool(session_token),
                       "Expires": "2030-01-01T00:00:00Z" if session_token else "0001-01-01T00:00:00Z"},
                      separators=(",", ":")).encode()


def keyring_item_json(profile: str, data: bytes) -> bytes:
    """json.Marshal(keyring.Item) as 99designs/keyring's Secret Service backend stores it."""
    return json.dumps({"Key": profile, "Data": base64.b64encode(data).decode(), "Label": f"aws-vault ({profile})",
                       "Description": "", "KeychainNotTrustApplication": True,
                       "KeychainNotSynchronizable": False}, separators=(",", ":")).encode()


def add_aws_vault_item(profile: str, data: bytes, collection_name: str = AWS_VAULT_COLLECTION) -> None:
    """Store `data` (aws.Credentials JSON) for `profile` as `aws-vault add` does, on $DBUS_SESSION_BUS_ADDRESS."""
    import secretstorage

    connection = secretstorage.dbus_init()
    try:
        path = f"/org/freedesktop/secrets/collection/{collection_name}"
        collection = next((c for c in secretstorage.get_all_collections(connection)
                           if c.collection_path == path), None)
        if collection is None:
            collection = _create_collection(connection, collection_name)
        collection.create_item(profile, {"profile": profile}, keyring_item_json(profile, data), replace=True,
                               content_type="application/json")
    finally:
        connection.close()


def _create_collection(connection, label: str):
    """A new collection, created without a password prompt.

    `aws-vault add` creates it through the Secret Service's CreateCollection, which makes gnome-keyring ask
    for the new collection's password in a desktop prompt; a test has no desktop. gnome-keyring's own
    interface for that without a prompt (the one its tools use) takes the password instead: empty here.
    """
    from secretstorage import Collection
    from secretstorage.util import DBusAddressWrapper, format_secret, open_session

    session = open_session(connection)
    gnome_keyring = "org.gnome.keyring.InternalUnsupportedGuiltRiddenInterface"
    service = DBusAddressWrapper("/org/freedesktop/secrets", gnome_keyring, connection)
    (path,) = service.call("CreateWithMasterPassword", "a{sv}(oayays)",
                           {"org.freedesktop.Secret.Collection.Label": ("s", label)},
                           format_secret(session, b"", "text/plain"))
    return Collection(connection, path, session=session)
