"""The keyring store, against keyrings.alt and against a real Secret Service (gnome-keyring)."""

from __future__ import annotations

import subprocess
import sys

import keyring.backend
import pytest

from credd.errors import KeyringError, NoSecureKeyringError
from credd.model import AccessKey, Secret
from credd.store import ACCESS_KEY, MAX_REASON, SESSION, TOTP_SEED, Store, advice, select_backend
from tests.conftest import TEST_KEY_ID, TEST_SECRET_KEY, TEST_TOTP_SEED, require_tool, run_credd


@pytest.fixture
def store(any_keyring) -> Store:
    return Store(select_backend(any_keyring.env).backend, "credd-test")


def test_round_trip(store: Store):
    assert store.get_access_key("alice") is None
    store.set_access_key("alice", AccessKey(TEST_KEY_ID, Secret(TEST_SECRET_KEY)))
    store.set_totp_seed("alice", Secret(TEST_TOTP_SEED))
    store.set_session("alice", Secret('{"token": "x"}'))

    key = store.get_access_key("alice")
    assert key is not None and key.key_id == TEST_KEY_ID and key.secret.reveal() == TEST_SECRET_KEY
    assert store.get_totp_seed("alice").reveal() == TEST_TOTP_SEED
    assert store.get_session("alice").reveal() == '{"token": "x"}'
    assert store.get_access_key("bob") is None  # sources do not see each other's entries

    assert [store.delete("alice", kind) for kind in (ACCESS_KEY, TOTP_SEED, SESSION)] == [True, True, True]
    assert store.get_access_key("alice") is None and store.get_totp_seed("alice") is None
    assert store.delete("alice", ACCESS_KEY) is False


def test_services_are_separate(any_keyring):
    backend = select_backend(any_keyring.env).backend
    Store(backend, "one").set_totp_seed("alice", Secret(TEST_TOTP_SEED))
    assert Store(backend, "two").get_totp_seed("alice") is None


def test_damaged_entry_says_how_to_fix(store: Store):
    store.backend.set_password("credd-test", "alice:access-key", "not json")
    with pytest.raises(KeyringError, match=r"damaged; store it again with `credd keys set alice`"):
        store.get_access_key("alice")


def test_what_a_store_says_to_run_carries_the_users_config(store: Store):
    hinted = Store(store.backend, "credd-test", hint_config="/home/you/my config.yaml")
    store.backend.set_password("credd-test", "alice:access-key", "not json")
    with pytest.raises(KeyringError) as caught:
        hinted.get_access_key("alice")
    assert str(caught.value).endswith("store it again with `credd --config '/home/you/my config.yaml' keys set alice`")
    assert advice(RuntimeError("odd"), "/home/you/my config.yaml") == (
        "Unlock the keyring or see `credd --config '/home/you/my config.yaml' doctor`.")


def test_secrets_do_not_show_in_repr():
    key = AccessKey(TEST_KEY_ID, Secret(TEST_SECRET_KEY))
    for text in (repr(key), str(key.secret), f"{key.secret}", repr([key.secret])):
        assert TEST_SECRET_KEY not in text and TEST_KEY_ID not in text
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(key.secret)


def test_secret_service_is_found_without_being_named(secret_service):
    choice = select_backend(secret_service.env)
    assert choice.name == "keyring.backends.SecretService.Keyring"
    assert not choice.explicit


def test_plaintext_backend_chosen_by_keyring_itself_is_refused(home):
    # No Secret Service, keyrings.alt installed: keyring would pick the plain-text file on its own.
    with pytest.raises(NoSecureKeyringError) as caught:
        select_backend(home.env)
    message = str(caught.value)
    assert "no secure keyring is available" in message and "plain text" in message
    assert "gnome-keyring" in message and "PYTHON_KEYRING_BACKEND" in message


NO_BUS_FIX = ("credd: error: no secure keyring is available; start and unlock gnome-keyring: "
              "dbus-run-session -- sh -c 'gnome-keyring-daemon --unlock --components=secrets && exec \"$SHELL\"'")
NOT_IN_PLAIN_TEXT = ("  credd does not fall back to a keyring that keeps secrets in plain text on disk; to choose "
                     "another backend knowingly, name it in $PYTHON_KEYRING_BACKEND or in keyring's keyringrc.cfg "
                     "(`python -m keyring diagnose` shows where)")


def test_no_keyring_on_headless_linux_says_the_fix_first_then_each_backend_on_its_line(home):
    home.write_config("version: 1\nsources:\n  alice: {}\n")
    result = run_credd(["keys", "ls"], home)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[:6] == [
        NO_BUS_FIX,
        "  there is no D-Bus session bus ($DBUS_SESSION_BUS_ADDRESS is unset): dbus-run-session starts one for the "
        "shell it runs (with systemd, the dbus-user-session package gives every login one)",
        "  gnome-keyring-daemon --unlock reads the keyring's password from its input: type it, then Ctrl-D",
        NOT_IN_PLAIN_TEXT,
        "  backends tried:",
        "    SecretService: Unable to initialize SecretService: Environment variable DBUS_SESSION_BUS_ADDRESS is unset",
    ]
    assert [line.split(":")[0] for line in lines[5:]] == ["    SecretService", "    kwallet"]
    assert all(len(line) <= 4 + MAX_REASON + 1 for line in lines[5:])


def test_no_keyring_with_a_session_bus_and_on_macos(home):
    dead_bus = dict(home.env, DBUS_SESSION_BUS_ADDRESS="unix:path=/nonexistent/bus")
    with pytest.raises(NoSecureKeyringError) as caught:
        select_backend(dead_bus)
    lines = str(caught.value).splitlines()
    assert lines[0] == ("no secure keyring is available; start and unlock gnome-keyring: "
                        "gnome-keyring-daemon --unlock --components=secrets")
    assert lines[1:3] == ["  it reads the keyring's password from its input: type it, then Ctrl-D (KeePassXC's Secret "
                          "Service integration works too)", NOT_IN_PLAIN_TEXT]
    with pytest.raises(NoSecureKeyringError) as caught:
        select_backend(home.env, platform="darwin")
    lines = str(caught.value).splitlines()
    assert lines[0] == ("no secure keyring is available; unlock your login Keychain: "
                        "security unlock-keychain ~/Library/Keychains/login.keychain-db")
    assert lines[2:4] == [NOT_IN_PLAIN_TEXT, "  backends tried:"]
    assert lines[4].startswith("    macOS: ") and len(lines) == 5


def test_the_printed_fix_works_as_written(home, tmp_path):
    """The first line's command, run as printed (the password on its input, `credd keys ls` as $SHELL)."""
    require_tool("dbus-run-session")
    require_tool("gnome-keyring-daemon")
    home.write_config("version: 1\nsources:\n  alice: {}\n")
    command = run_credd(["keys", "ls"], home).stderr.splitlines()[0].split("gnome-keyring: ", 1)[1]
    shell = tmp_path / "shell"
    shell.write_text(f"#!/bin/sh\nexec {sys.executable} -m credd keys ls\n")
    shell.chmod(0o700)
    result = subprocess.run(["sh", "-c", command], input="test-login-password", capture_output=True, text=True,
                            env=dict(home.env, SHELL=str(shell)), timeout=60)
    assert "keyring: keyring.backends.SecretService.Keyring, service 'credd'" in result.stdout, result.stderr
    # gnome-keyring-daemon ends with the bus dbus-run-session started, when the shell does.


def test_plaintext_backend_chosen_in_keyring_config_is_accepted(home):
    config = home.root / ".config" / "python_keyring" / "keyringrc.cfg"
    config.parent.mkdir(parents=True)
    config.write_text("[backend]\ndefault-keyring = keyrings.alt.file.PlaintextKeyring\n")
    choice = select_backend(home.env)
    assert choice.explicit and choice.name == "keyrings.alt.file.PlaintextKeyring"


def test_no_backend_at_all(home):
    env = dict(home.env, PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    with pytest.raises(NoSecureKeyringError, match="stores nothing"):
        select_backend(env)


def test_unloadable_backend(home):
    env = dict(home.env, PYTHON_KEYRING_BACKEND="no.such.Backend")
    with pytest.raises(KeyringError, match="cannot load the keyring backend"):
        select_backend(env)


class BrokenBackend(keyring.backend.KeyringBackend):
    priority = -1  # never picked by keyring's own detection in this process

    def get_password(self, service, username):
        return None

    def set_password(self, service, username, password):
        raise keyring.errors.PasswordSetError("collection is locked")

    def delete_password(self, service, username):
        raise keyring.errors.PasswordDeleteError("nothing")


class ForgetfulBackend(BrokenBackend):
    def set_password(self, service, username, password):
        pass  # accepts the write and keeps nothing


def test_backend_errors_become_messages_without_the_secret():
    with pytest.raises(KeyringError) as caught:
        Store(BrokenBackend(), "credd").set_totp_seed("alice", Secret(TEST_TOTP_SEED))
    assert "cannot store the TOTP seed of source 'alice'" in str(caught.value)
    assert "collection is locked" in str(caught.value)
    assert TEST_TOTP_SEED not in str(caught.value)


def test_a_write_that_does_not_read_back_is_an_error():
    with pytest.raises(KeyringError, match="accepted the access key of source 'alice' but does not return it"):
        Store(ForgetfulBackend(), "credd").set_access_key("alice", AccessKey(TEST_KEY_ID, Secret(TEST_SECRET_KEY)))
