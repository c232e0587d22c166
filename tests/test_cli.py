"""The real `credd` command in a subprocess: exit codes, messages, stdin handling, the keyring."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import typing

import pytest

from credd import __version__, cli, protocol
from tests.conftest import TEST_KEY_ID, TEST_SECRET_KEY, TEST_TOTP_SEED, Home, run_credd

CONFIG = """\
version: 1
sources:
  alice:
    mfa_serial: arn:aws:iam::111111111111:mfa/alice
    mfa: totp
profiles:
  alice-session:
    source: alice
"""
KEY_LINES = f"{TEST_KEY_ID}\n{TEST_SECRET_KEY}\n"


def test_version_and_help(home: Home):
    assert run_credd(["--version"], home).stdout.strip() == (
        f"credd {__version__} (socket protocol {protocol.PROTOCOL_VERSION})")
    result = run_credd(["--help"], home)
    assert result.returncode == 0
    for command in ("init", "config", "keys", "totp", "demo"):
        assert command in result.stdout


def test_mfa_code_on_the_command_line_is_documented_as_visible_in_ps(home: Home):
    from pathlib import Path

    help_text = " ".join(run_credd(["mfa", "--help"], home).stdout.split())
    assert "visible to other processes (`ps`)" in help_text and "type it at the prompt" in help_text
    readme = " ".join((Path(__file__).parents[1] / "README.md").read_text().split())
    assert "`credd mfa SOURCE [CODE]` (hand in a code for an `mfa: prompt` source; leave CODE out and type it at the " \
           "prompt, which does not echo it: a CODE on the command line is visible to other processes in `ps`" in readme


def test_no_command_is_a_usage_error(home: Home):
    assert run_credd([], home).returncode == 2
    assert run_credd(["keys"], home).returncode == 2
    result = run_credd(["frobnicate"], home)
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_config_check_ok(home: Home):
    path = home.write_config(CONFIG)
    result = run_credd(["config", "check"], home)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{path}: ok (1 source, 1 profile)\n"


def test_config_check_error_names_file_line_key(home: Home):
    path = home.write_config(CONFIG.replace("source: alice", "source: alcie"))
    result = run_credd(["config", "check"], home)
    assert result.returncode == 2
    assert result.stderr == (f"credd: error: {path}:8: profiles.alice-session.source: "
                             "no source named 'alcie' (did you mean 'alice'?)\n")
    assert result.stdout == ""


def test_config_path_order(home: Home, tmp_path):
    home.write_config("not: [valid")
    other = tmp_path / "other.yaml"
    other.write_text(CONFIG)
    assert run_credd(["config", "check"], home).returncode == 2
    assert run_credd(["config", "check"], home, extra_env={"CREDD_CONFIG": str(other)}).returncode == 0
    assert run_credd(["--config", str(other), "config", "check"], home).returncode == 0
    assert run_credd(["config", "check", "--config", str(other)], home).returncode == 0


def test_config_warnings_go_to_stderr(home: Home):
    path = home.write_config(CONFIG + "refresh_before: 5m\n")
    result = run_credd(["config", "check"], home)
    assert result.returncode == 0
    # Like an error, a warning names the file and the line, once.
    assert f"credd: warning: {path}:9: refresh_before: 5m is under 15m" in result.stderr
    assert result.stderr.count(str(path)) == 1


def test_keys_set_from_stdin_in_a_real_secret_service(secret_service: Home):
    home = secret_service
    home.write_config(CONFIG)
    result = run_credd(["keys", "set", "alice"], home, input=KEY_LINES)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ("stored access key AKIA…MPLE for source alice in the keyring "
                             "(keyring.backends.SecretService.Keyring)\n")
    assert TEST_KEY_ID not in result.stdout + result.stderr

    # Read it back through the Secret Service directly, not through credd.
    import secretstorage

    connection = secretstorage.dbus_init()
    items = list(secretstorage.search_items(connection, {"service": "credd", "username": "alice:access-key"}))
    assert len(items) == 1
    assert TEST_SECRET_KEY in items[0].get_secret().decode()
    connection.close()

    listing = run_credd(["keys", "ls"], home)
    assert "alice: AKIA…MPLE" in listing.stdout


def test_keys_set_rm_round_trip(any_keyring: Home):
    home = any_keyring
    home.write_config(CONFIG)
    assert run_credd(["keys", "set", "alice"], home, input=KEY_LINES).returncode == 0
    assert run_credd(["totp", "set", "alice"], home, input=TEST_TOTP_SEED + "\n").returncode == 0
    assert "alice: AKIA…MPLE; TOTP seed" in run_credd(["keys", "ls"], home).stdout
    removed = run_credd(["keys", "rm", "alice"], home)
    assert removed.stdout == "removed from the keyring for source alice: access-key, totp-seed\n"
    assert "alice: no key (credd keys set alice)" in run_credd(["keys", "ls"], home).stdout
    assert run_credd(["keys", "rm", "alice"], home).stdout == "the keyring held nothing for source alice\n"


def test_keys_set_warns_about_a_plaintext_backend_the_user_chose(plaintext_keyring: Home):
    plaintext_keyring.write_config(CONFIG)
    result = run_credd(["keys", "set", "alice"], plaintext_keyring, input=KEY_LINES)
    assert result.returncode == 0
    assert "keeps secrets in plain text on disk; you chose it" in result.stderr


def test_keys_set_refuses_a_plaintext_backend_nobody_chose(home: Home):
    home.write_config(CONFIG)
    result = run_credd(["keys", "set", "alice"], home, input=KEY_LINES)
    assert result.returncode == 1
    assert "no secure keyring is available" in result.stderr and "gnome-keyring" in result.stderr
    assert not (home.root / ".local" / "share" / "python_keyring").exists()


@pytest.mark.parametrize("stdin, message", [
    ("", "expected 2 line(s) on standard input (access key id, then secret access key); access key id is missing"),
    (f"{TEST_KEY_ID}\n", "secret access key is missing"),
    (f"{TEST_KEY_ID}\nshort\n", "that is not a secret access key"),
    (f"{TEST_SECRET_KEY}\n{TEST_KEY_ID}\n", "that is not an access key id"),
])
def test_keys_set_bad_input(plaintext_keyring: Home, stdin, message):
    plaintext_keyring.write_config(CONFIG)
    result = run_credd(["keys", "set", "alice"], plaintext_keyring, input=stdin)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_keys_set_unknown_source(plaintext_keyring: Home):
    plaintext_keyring.write_config(CONFIG)
    result = run_credd(["keys", "set", "bob"], plaintext_keyring, input=KEY_LINES)
    assert result.returncode == 2
    assert "no source named 'bob'" in result.stderr and "(sources: alice)" in result.stderr


def test_keys_set_needs_a_config(plaintext_keyring: Home):
    result = run_credd(["keys", "set", "alice"], plaintext_keyring, input=KEY_LINES)
    assert result.returncode == 2
    assert "no such file; run `credd init`" in result.stderr


def test_totp_set_validates_and_warns_for_other_methods(plaintext_keyring: Home):
    plaintext_keyring.write_config(CONFIG.replace("mfa: totp", "mfa: prompt"))
    bad = run_credd(["totp", "set", "alice"], plaintext_keyring, input="JBSWY3DPEHPK3PXP\n")
    assert bad.returncode == 2 and "holds 80 bits; at least 128 are needed" in bad.stderr
    uri = f"otpauth://totp/AWS:alice?secret={TEST_TOTP_SEED}&issuer=AWS\n"
    good = run_credd(["totp", "set", "alice"], plaintext_keyring, input=uri)
    assert good.returncode == 0
    assert "source alice has mfa: prompt; set `mfa: totp`" in good.stderr


def test_keys_set_replaces_the_cached_session(plaintext_keyring: Home):
    from credd.model import Secret
    from credd.store import Store, select_backend

    plaintext_keyring.write_config(CONFIG)
    store = Store(select_backend(plaintext_keyring.env).backend, "credd")
    store.set_session("alice", Secret("{}"))
    assert run_credd(["keys", "set", "alice"], plaintext_keyring, input=KEY_LINES).returncode == 0
    assert store.get_session("alice") is None


def test_keys_ls_json_says_what_each_source_holds_masked(plaintext_keyring: Home):
    import json

    from credd.model import Secret
    from credd.store import Store

    home = plaintext_keyring
    home.write_config(CONFIG.replace("profiles:", "  bob:\n    mfa_serial: arn:aws:iam::111111111111:mfa/bob\n"
                                                   "    mfa: prompt\nprofiles:"))
    assert run_credd(["keys", "set", "alice"], home, input=KEY_LINES).returncode == 0
    assert run_credd(["totp", "set", "alice"], home, input=TEST_TOTP_SEED + "\n").returncode == 0
    import keyring

    Store(keyring.get_keyring(), "credd").set_session("alice", Secret('{"made": "by the test"}'))
    result = run_credd(["keys", "ls", "--json"], home)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "keyring": "keyrings.alt.file.PlaintextKeyring",
        "service": "credd",
        "sources": {
            "alice": {"access_key_id": "AKIA…MPLE", "totp_seed": True, "cached_session": True},
            "bob": {"access_key_id": None, "totp_seed": False, "cached_session": False},
        },
    }
    assert TEST_KEY_ID not in result.stdout


def leaf_parsers(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every command's own parser, by the words that run it (`keys set`)."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(leaf_parsers(sub, f"{prefix}{name} ") or {f"{prefix}{name}": sub})
    return found


def test_every_command_in_the_table_loads_a_handler_for_its_parameters():
    """A handler renamed, moved or typed for other parameters fails here, not when a user runs the command."""
    assert set(leaf_parsers(cli.build_parser())) == set(cli.COMMANDS)
    for words, command in cli.COMMANDS.items():
        handler = command.load()
        assert callable(handler), words
        hints = typing.get_type_hints(handler)
        assert list(hints) == ["ctx", "args", "return"], words
        assert hints["args"] is command.params, words


def test_each_command_takes_exactly_the_options_its_parser_fills_in():
    """A flag added to the parser but not to the command's parameters (or the other way round) fails here."""
    for words, parser in leaf_parsers(cli.build_parser()).items():
        options = {action.dest for action in parser._actions} - {"help", "config"}
        params = {field.name for field in dataclasses.fields(cli.COMMANDS[words].params)}
        assert options == params, words


@pytest.mark.parametrize("argv, loaded", [
    (["config", "check"], {"credd.commands.config_check"}),
    (["__complete", "bash", "", "exec"], {"credd.commands.completion"}),
    (["--help"], set()),
    (["process", "alice-session"], None),  # the hook: not even the table's parameters
])
def test_a_command_module_is_imported_only_when_its_command_runs(home: Home, argv, loaded):
    home.write_config(CONFIG)
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "credd", *argv], env=home.env,
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)
    modules = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    commands = {name for name in modules if name.startswith("credd.commands")}
    if loaded is None:
        assert commands == set() and "credd.cli" not in modules
    else:
        assert commands == {"credd.commands", "credd.commands.args", *loaded}
