"""`credd init` from flags and through a real terminal; `keys set` prompts without echo."""

from __future__ import annotations

import stat

import pytest

from credd.config import load_config
from tests.conftest import TEST_KEY_ID, TEST_SECRET_KEY, Home, run_credd, wait_for


def load(home: Home):
    return load_config(home.config, home.env, "linux", 1000)


def test_init_from_flags_writes_a_valid_private_config(home: Home):
    result = run_credd(["init", "--source", "alice", "--mfa-serial", "arn:aws:iam::111111111111:mfa/alice",
                        "--mfa", "totp", "--role", "prod-admin=arn:aws:iam::222222222222:role/Admin",
                        "--role", "dev=arn:aws:iam::333333333333:role/Dev"], home)
    assert result.returncode == 0, result.stderr
    assert f"wrote {home.config}" in result.stdout and "credd totp set alice" in result.stdout
    config = load(home)
    assert config.sources["alice"].mfa == "totp"
    assert {name: p.role_arn for name, p in config.profiles.items()} == {
        "prod-admin": "arn:aws:iam::222222222222:role/Admin", "dev": "arn:aws:iam::333333333333:role/Dev"}
    assert stat.S_IMODE(home.config.stat().st_mode) == 0o600
    assert stat.S_IMODE(home.config.parent.stat().st_mode) == 0o700
    assert run_credd(["config", "check"], home).returncode == 0


def test_init_with_config_names_it_in_every_next_step(home: Home):
    """The steps init prints and the comment atop the file it writes carry the user's own --config."""
    config = home.root / "my configs" / "credd.yaml"
    result = run_credd(["--config", str(config), "init", "--source", "alice"], home)
    assert result.returncode == 0, result.stderr
    quoted = f"'{config}'"
    assert f"credd --config {quoted} service install" in result.stdout
    assert f"credd --config {quoted} serve" in result.stdout
    assert f"# Check it with `credd --config {quoted} config check` after every edit." in config.read_text()
    assert run_credd(["--config", str(config), "config", "check"], home).returncode == 0


def test_init_without_roles_makes_a_session_profile(home: Home):
    assert run_credd(["init", "--source", "bob"], home).returncode == 0
    config = load(home)
    assert config.sources["bob"].mfa is None
    assert list(config.profiles) == ["bob-session"]


def test_init_command_mfa(home: Home):
    result = run_credd(["init", "--source", "a", "--mfa-serial", "arn:aws:iam::111111111111:mfa/a", "--mfa",
                        "command", "--mfa-command", "ykman oath accounts code --single 'my aws'"], home)
    assert result.returncode == 0, result.stderr
    assert load(home).sources["a"].mfa_command == ("ykman", "oath", "accounts", "code", "--single", "my aws")


def test_init_keeps_an_existing_config(home: Home):
    home.write_config("# mine\n")
    result = run_credd(["init", "--source", "alice"], home)
    assert result.returncode == 1 and "already exists" in result.stderr
    assert home.config.read_text() == "# mine\n"
    assert run_credd(["init", "--source", "alice", "--force"], home).returncode == 0
    assert "alice" in load(home).sources


@pytest.mark.parametrize("args, message", [
    (["--source", "al ice"], "sources.al ice: a name may have up to 64"),
    (["--source", "a", "--role", "nope"], "--role takes PROFILE=ARN"),
    (["--source", "a", "--role", "p=Admin"], "profiles.p.role_arn: expected a role ARN"),
    (["--source", "a", "--mfa-serial", "arn:aws:iam::12345:mfa/alice"],
     "sources.a.mfa_serial: expected the MFA device's ARN, like arn:aws:iam::111111111111:mfa/alice, "
     "got 'arn:aws:iam::12345:mfa/alice'"),
    (["--source", "a", "--mfa", "totp"], "--mfa needs --mfa-serial"),
    (["--source", "a", "--mfa-serial", "arn:aws:iam::111111111111:mfa/a", "--mfa", "command"], "needs --mfa-command"),
    (["--source", "a", "--hook"], "--hook serves role profiles through credential_process; add --role"),
    (["--source", "a", "--role", "p=arn:aws:iam::222222222222:role/A", "--wire-aws-config"], "add --hook"),
    (["--source", "a", "--import-from-profile", "p"], "--import-from-profile p: "),
])
def test_init_bad_flags_write_nothing(home: Home, args, message):
    result = run_credd(["init", *args], home)
    assert result.returncode == 2
    assert message in result.stderr
    assert not home.config.exists()


def test_init_help_shows_every_flag(home: Home):
    result = run_credd(["init", "--help"], home)
    assert result.returncode == 0
    assert "--sts-endpoint URL" in result.stdout and "the STS endpoint" in result.stdout


def test_init_sts_endpoint_is_written(home: Home):
    result = run_credd(["init", "--source", "a", "--sts-endpoint", "https://sts.eu-west-1.amazonaws.com"], home)
    assert result.returncode == 0, result.stderr
    assert load(home).sources["a"].sts_endpoint == "https://sts.eu-west-1.amazonaws.com"


def test_init_without_a_terminal_needs_flags(home: Home):
    result = run_credd(["init"], home)
    assert result.returncode == 2 and "not a terminal: pass at least --source NAME" in result.stderr


def test_init_interactive_in_a_terminal(home: Home, terminal):
    terminal.credd("init")
    terminal.wait_for("Name for your IAM user (the source)")
    terminal.type("alice")
    terminal.wait_for("MFA device ARN")
    terminal.type("not-an-arn!")  # refused, asked again
    refused = "that does not look like an MFA device ARN"
    terminal.wait_for(refused)
    terminal.type("arn:aws:iam::12345:mfa/alice")  # a 5-digit account: refused too
    wait_for("the second refusal", lambda: terminal.screen().count(refused) == 2, log=terminal.screen)
    terminal.type("arn:aws:iam::111111111111:mfa/alice")
    terminal.wait_for("How should credd get MFA codes")
    terminal.type("")  # the default: prompt
    terminal.wait_for("STS region [us-east-1]")
    terminal.type("eu-west-1")
    terminal.wait_for("Profile name for the session itself (empty for none) [alice-session]")
    terminal.type("")
    terminal.wait_for("Role profile name (empty to finish)")
    terminal.type("prod-admin")
    terminal.wait_for("Role ARN for prod-admin")
    terminal.type("arn:aws:iam::222222222222:role/Admin")
    terminal.type("")
    terminal.wait_for("Serve roles through credential_process instead of writing them into the credentials file? [y/N]")
    terminal.type("")  # the default: no, credd writes them into the credentials file
    assert terminal.exit_status() == 0
    config = load(home)
    alice = config.sources["alice"]
    assert (alice.mfa_serial, alice.mfa, alice.region) == ("arn:aws:iam::111111111111:mfa/alice", "prompt", "eu-west-1")
    assert config.profiles["prod-admin"].role_arn == "arn:aws:iam::222222222222:role/Admin"
    assert config.profiles["alice-session"].source == "alice"
    assert set(config.profiles) == {"alice-session", "prod-admin"}
    assert config.profiles["prod-admin"].write


def test_keys_set_shows_the_key_id_hides_the_secret_and_asks_again_after_a_typo(plaintext_keyring: Home, terminal):
    plaintext_keyring.write_config("sources:\n  alice: {}\nprofiles:\n  p: {source: alice}\n")
    terminal.credd("keys", "set", "alice")
    terminal.wait_for("Access key ID for alice:")
    terminal.type("AKIAIOSFODNN7")  # cut short: refused at once, before the secret is asked
    terminal.wait_for("credd: that is not an access key id: expected AKIA and 16 capital letters and digits, 20 in "
                      "all (like AKIAIOSFODNN7EXAMPLE), got 13 characters; try again")
    assert "Secret access key" not in terminal.screen()
    terminal.type(TEST_KEY_ID)
    terminal.wait_for("Secret access key for alice:")
    terminal.type("tooShort7")
    terminal.wait_for("credd: that is not a secret access key: expected 16 to 128 characters of A-Z a-z 0-9 / + = "
                      "(usually 40), got 9 characters; try again")
    terminal.type(TEST_SECRET_KEY)
    assert terminal.exit_status() == 0
    screen = terminal.screen()
    assert f"Access key ID for alice: {TEST_KEY_ID}" in screen  # the id echoes, so a paste can be checked
    assert TEST_SECRET_KEY not in screen and "tooShort7" not in screen  # the secret never does, typo or not
    assert screen.count("Access key ID for alice:") == 2 and screen.count("Secret access key for alice:") == 2
    assert "stored access key AKIA…MPLE for source alice" in screen


def test_keys_set_gives_up_after_three_typos(plaintext_keyring: Home, terminal):
    plaintext_keyring.write_config("sources:\n  alice: {}\nprofiles:\n  p: {source: alice}\n")
    terminal.credd("keys", "set", "alice")
    for _ in range(3):
        terminal.wait_for("Access key ID for alice:")
        terminal.type("ASIAIOSFODNN7EXAMPLE")
    assert terminal.exit_status() == 2
    screen = terminal.screen()
    assert screen.count("starts with ASIA, which marks temporary credentials") == 3
    assert "(3 tries; nothing was changed)" in screen.replace("\n", "") and screen.count("; try again") == 2
