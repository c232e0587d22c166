"""`credd init`'s offers: moving a long-term key into the keyring (`keys import`) and wiring
`credential_process` into ~/.aws/config, from flags, from answers, and never on a pipe unasked."""

from __future__ import annotations

import io
import shlex
import stat
import sys
from configparser import RawConfigParser
from pathlib import Path

import pytest
from botocore.compat import compat_shell_split

from credd import cli, credfile
from credd.awsconfig import hook_line, wire_text
from credd.config import load_config
from credd.context import Context
from credd.service import find_credd
from tests.conftest import TEST_KEY_ID, TEST_SECRET_KEY, Home, run_credd
from tests.fixtures_credfile import botocore_read
from tests.test_keys_import import REPO, TRICKY_AFTER, TRICKY_BEFORE, credentials, stored_key_id

ALICE = ["init", "--source", "alice", "--mfa-serial", "arn:aws:iam::111111111111:mfa/alice",
         "--role", "prod-admin=arn:aws:iam::222222222222:role/Admin",
         "--role", "default=arn:aws:iam::333333333333:role/Dev"]
CREDD = shlex.join(find_credd({}, sys.executable))
KEY = f"aws_access_key_id = {TEST_KEY_ID}\naws_secret_access_key = {TEST_SECRET_KEY}\n"

# Comments of both kinds, CRLF, an existing [default] and [profile x], no final newline.
AWS_BEFORE = ("# ~/.aws/config, kept by hand\r\n; ünïcode ☃\r\n[default]\r\nregion = eu-west-1\r\noutput = json\r\n"
              "\r\n# another tool's profile\r\n[profile x]\r\nregion = us-east-2")
AWS_AFTER = (AWS_BEFORE.replace("json\r\n", f"json\r\ncredential_process = {CREDD} process default\r\n")
             + f"\r\n\r\n[profile prod-admin]\r\ncredential_process = {CREDD} process prod-admin\r\nregion = us-east-1")
# [default] keeps the region the user set there; the new section gets the profile's (its source's, us-east-1).


def aws_config(home: Home, text: str) -> Path:
    path = home.root / ".aws" / "config"
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_bytes(text.encode())
    path.chmod(0o600)
    return path


def hooks(path: Path) -> dict[str, str]:
    """section -> credential_process, as configparser (and so botocore) reads the file."""
    parser = RawConfigParser()
    parser.read_string(path.read_bytes().decode())
    return {name: parser[name]["credential_process"] for name in parser.sections()
            if "credential_process" in parser[name]}


def test_flags_import_the_key_and_wire_the_hooked_roles(plaintext_keyring: Home) -> None:
    creds = credentials(plaintext_keyring, TRICKY_BEFORE.encode())
    config = aws_config(plaintext_keyring, AWS_BEFORE)
    flags = [*ALICE, "--hook", "--wire-aws-config", "--import-from-profile", "personal"]

    result = run_credd(flags, plaintext_keyring)

    assert result.returncode == 0, result.stderr
    assert "imported access key AKIA…MPLE for source alice" in result.stdout
    assert creds.read_bytes() == TRICKY_AFTER.encode()
    assert stored_key_id(plaintext_keyring).startswith("AKIA…MPLE")
    assert config.read_bytes() == AWS_AFTER.encode()
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert hooks(config) == {"default": f"{CREDD} process default", "profile prod-admin": f"{CREDD} process prod-admin"}
    assert compat_shell_split(hooks(config)["default"])[1:] == ["process", "default"]
    profiles = load_config(plaintext_keyring.config, plaintext_keyring.env, "linux", 1000).profiles
    assert [p.write for p in profiles.values()] == [False, False]
    assert "credd keys set" not in result.stdout and "credd service install" in result.stdout

    before = config.stat()
    again = run_credd([*ALICE, "--force", "--hook", "--wire-aws-config"], plaintext_keyring)
    assert again.returncode == 0, again.stderr
    assert "prod-admin is already wired" in again.stdout and "default is already wired" in again.stdout
    after = config.stat()
    assert config.read_bytes() == AWS_AFTER.encode() and (after.st_ino, after.st_mtime_ns) == (
        before.st_ino, before.st_mtime_ns)


def test_never_overwrites_another_credential_process(home: Home) -> None:
    text = ("[profile prod-admin]\nregion = us-east-1\ncredential_process = vault-tool --token s3cr3t\n"
            "[default]\ncredential_process = credd process default\n")
    config = aws_config(home, text)

    result = run_credd([*ALICE, "--hook", "--wire-aws-config"], home)

    assert result.returncode == 0, result.stderr
    assert config.read_text() == text
    assert (f"config:3: [profile prod-admin] already has another credential_process, which credd leaves alone; "
            f"for credd to serve prod-admin, change that line to `credential_process = {CREDD} process prod-admin`"
            in result.stderr)
    assert "s3cr3t" not in result.stdout + result.stderr  # the other line is never quoted
    assert "default is already wired" in result.stdout  # credd on PATH serves it too


def test_a_keyring_that_refuses_the_key_keeps_the_config_and_exits_1(home: Home) -> None:
    creds = credentials(home, TRICKY_BEFORE.encode())
    env = {"PYTHON_KEYRING_BACKEND": "tests.fixtures_credfile.FailingKeyring", "PYTHONPATH": str(REPO)}

    result = run_credd(["init", "--source", "alice", "--import-from-profile", "personal"], home, extra_env=env)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"credd: error: {home.config} is written, but the key in [personal] of "
                                    "~/.aws/credentials was not moved into the keyring: cannot store the access key")
    assert result.stderr.rstrip().endswith("once that is fixed, run `credd keys import alice --from-profile personal`")
    assert creds.read_bytes() == TRICKY_BEFORE.encode()
    assert "alice" in load_config(home.config, home.env, "linux", 1000).sources


def test_on_a_pipe_without_flags_nothing_is_offered_but_the_next_steps_are_named(home: Home) -> None:
    creds = credentials(home, f"[personal]\n{KEY}".encode())

    result = run_credd([*ALICE, "--hook"], home)

    assert result.returncode == 0, result.stderr
    assert creds.read_text() == f"[personal]\n{KEY}" and not (home.root / ".aws" / "config").exists()
    assert "credd keys import alice --from-profile personal" in result.stdout
    assert f"  [profile prod-admin]\n  credential_process = {CREDD} process prod-admin\n" in result.stdout
    assert "?" not in result.stdout  # no question asked


@pytest.mark.parametrize("before, section", [
    ('[profile "prod-admin"]\nregion = r\n', 'profile "prod-admin"'),
    ("[profile  prod-admin]\n[profile prod-admin]\nregion = r\n", "profile prod-admin"),
    ("[profile default]\n", "profile default"),
], ids=["quoted name", "the later of two", "[profile default]"])
def test_wiring_uses_the_section_botocore_reads(before: str, section: str) -> None:
    profile = section.rsplit(maxsplit=1)[-1].strip('"')
    text, [outcome] = wire_text(before, [profile], ["credd"], "config")
    assert (outcome.state, outcome.section) == ("added", section)
    assert botocore_read(text)[section]["credential_process"] == f"credd process {profile}"
    assert wire_text(text, [profile], ["credd"], "config")[0] == text


def test_the_hook_line_survives_botocores_split() -> None:
    line = hook_line(["/home/me/my tools/bin/credd", "--config", "/c $HOME/c.yaml"], "p")
    assert compat_shell_split(line) == ["/home/me/my tools/bin/credd", "--config", "/c $HOME/c.yaml", "process", "p"]


def test_wiring_warns_when_botocore_would_assume_the_role_itself(home: Home) -> None:
    aws_config(home, "[profile prod-admin]\nrole_arn = arn:aws:iam::1:role/A\nsource_profile = base\n")
    result = run_credd([*ALICE, "--hook", "--wire-aws-config"], home)
    assert result.returncode == 0, result.stderr
    assert ("[profile prod-admin] in ~/.aws/config also sets role_arn and source_profile, which botocore uses "
            "before") in result.stderr


class _Keyboard(io.StringIO):
    """Typed answers on what init takes for a terminal."""

    def isatty(self) -> bool:
        return True


def test_answers_decline_the_key_and_accept_the_hook_and_the_wiring(plaintext_keyring: Home) -> None:
    creds = credentials(plaintext_keyring, f"[personal]\n{KEY}".encode())
    answers = "alice\n\nus-east-1\n\nprod-admin\narn:aws:iam::222222222222:role/Admin\n\nyes\nn\ny\n"
    out = io.StringIO()
    ctx = Context(env=plaintext_keyring.env, stdin=_Keyboard(answers), stdout=out, stderr=out)

    assert cli.main(["init"], ctx) == 0, out.getvalue()

    shown = out.getvalue()
    assert ("Found a long-term key (AKIA…MPLE) in [personal] of ~/.aws/credentials. Move it into the keyring for "
            "source alice? [Y/n]:") in shown
    assert creds.read_text() == f"[personal]\n{KEY}"
    assert hooks(plaintext_keyring.root / ".aws" / "config") == {
        "profile prod-admin": f"{CREDD} process prod-admin"}
    assert "credd keys import alice --from-profile personal" in shown


def test_interactive_in_a_terminal_picks_one_of_two_keys_and_wires(plaintext_keyring: Home, terminal) -> None:
    old = f"[old]\n{KEY.replace('EXAMPLE', 'OLDKEY0')}"
    creds = credentials(plaintext_keyring, f"{old}\n[personal]\n{KEY}".encode())
    terminal.credd("init")
    for prompt, answer in [("Name for your IAM user", "alice"), ("MFA device ARN", ""), ("STS region", ""),
                           ("Profile name for the session itself", ""), ("Role profile name", "prod-admin"),
                           ("Role ARN for prod-admin", "arn:aws:iam::222222222222:role/Admin")]:
        terminal.wait_for(prompt)
        terminal.type(answer)
    terminal.type("")  # no more roles
    terminal.wait_for("Serve roles through credential_process instead of writing them into the credentials file? [y/N]")
    terminal.type("y")
    terminal.wait_for("Found long-term keys in ~/.aws/credentials: [old] (AKIA…KEY0), [personal] (AKIA…MPLE)")
    terminal.wait_for("Which one should move into the keyring for source alice? A section name, or none [old]")
    terminal.type("personal")
    terminal.wait_for("Add credential_process lines for prod-admin to ~/.aws/config? [y/N]")
    terminal.type("y")
    assert terminal.exit_status() == 0, terminal.screen()
    assert creds.read_text() == old
    assert stored_key_id(plaintext_keyring).startswith("AKIA…MPLE")
    config = plaintext_keyring.root / ".aws" / "config"
    assert hooks(config) == {"profile prod-admin": f"{CREDD} process prod-admin"}
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert credfile.read_profiles(config.read_text())  # and credd's own reader agrees


def test_wiring_gives_every_profile_its_region(home: Home) -> None:
    """The SDKs find no region in the credentials file: without one in ~/.aws/config, `aws` refuses to run."""
    config = aws_config(home, "[profile alice-session]\nregion = sa-east-1\n")
    flags = [*ALICE[:5], "--region", "eu-west-1", "--session-profile", "alice-session",
             "--role", "prod-admin=arn:aws:iam::222222222222:role/Admin", "--role",
             "audit=arn:aws:iam::333333333333:role/Audit", "--hook", "--wire-aws-config"]

    result = run_credd(flags, home)

    assert result.returncode == 0, result.stderr
    read = botocore_read(config.read_text())
    assert read["profile prod-admin"] == {"credential_process": f"{CREDD} process prod-admin", "region": "eu-west-1"}
    assert read["profile audit"]["region"] == "eu-west-1"
    assert read["profile alice-session"] == {"region": "sa-east-1"}  # the user's own region stays
    assert f"wired prod-admin: [profile prod-admin] in ~/.aws/config now has credential_process = {CREDD} process " \
           "prod-admin and region = eu-west-1" in result.stdout


@pytest.mark.parametrize("before", ["", "[profile prod-admin]\noutput = json\n"], ids=["new section", "existing"])
def test_wire_text_adds_a_region_only_where_none_is_set(before: str) -> None:
    regions = {"prod-admin": "eu-west-1", "alice-session": "eu-west-1"}
    text, outcomes = wire_text(before, ["prod-admin"], ["credd"], "config", regions)
    read = botocore_read(text)
    assert read["profile prod-admin"]["region"] == "eu-west-1"
    assert read["profile alice-session"] == {"region": "eu-west-1"}  # written to the file, not hooked: region only
    assert [(o.profile, o.state, o.region) for o in outcomes] == [("prod-admin", "added", "eu-west-1"),
                                                                  ("alice-session", "none", "eu-west-1")]
    assert wire_text(text, ["prod-admin"], ["credd"], "config", regions)[0] == text
