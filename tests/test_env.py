"""`credd env` and `credd exec`: the region the SDKs need, the credentials file when no daemon runs, and a
command that cannot run exiting as a shell's would (127, 126)."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone

from credd.commands.env import file_credentials
from credd.credfile import credential_values, update
from tests.fixtures_credfile import make_credentials

REGION_CONFIG = "  eu:\n    source: alice\n    region: eu-west-3\n"


def _shell(exports: str, expression: str) -> str:
    return subprocess.run(["sh", "-c", exports + f'echo "{expression}"'], capture_output=True, text=True,
                          timeout=30).stdout.strip()


def test_env_and_exec_export_the_profiles_region_under_both_names(daemon):
    config = daemon.home.config
    config.write_text(config.read_text() + REGION_CONFIG)
    daemon.start()
    session = daemon.credd("env", "alice-session")  # no region of its own: its source's (us-east-1)
    assert session.returncode == 0, session.stderr
    assert _shell(session.stdout, "$AWS_REGION $AWS_DEFAULT_REGION") == "us-east-1 us-east-1"
    own = subprocess.run([sys.executable, "-m", "credd", "exec", "eu", "--", "sh", "-c",
                          'echo "$AWS_REGION $AWS_DEFAULT_REGION"'], env=daemon.env, capture_output=True, text=True,
                         timeout=60)
    assert own.returncode == 0, own.stderr
    assert own.stdout.strip() == "eu-west-3 eu-west-3"


def test_with_the_daemon_down_env_and_exec_use_the_credentials_credd_wrote(daemon):
    daemon.start()
    daemon.wait_state("alice-session", "fresh")
    written = daemon.ask({"op": "credentials", "profile": "alice-session"})["credentials"]
    assert daemon.stop() == 0

    result = daemon.credd("env", "alice-session")

    assert result.returncode == 0, result.stderr
    assert _shell(result.stdout, "$AWS_ACCESS_KEY_ID $AWS_CREDENTIAL_EXPIRATION $AWS_REGION") == (
        f"{written['AccessKeyId']} {written['Expiration']} us-east-1")
    assert (f"credd: warning: the credd daemon is not running (nothing listens at {daemon.socket}); using "
            f"alice-session's credentials from {daemon.home.credentials}, which credd wrote there (valid until "
            f"{written['Expiration']})") in result.stderr
    run = subprocess.run([sys.executable, "-m", "credd", "exec", "alice-session", "--", "sh", "-c",
                          'test "$AWS_SESSION_TOKEN" = "$EXPECTED"'], capture_output=True, text=True, timeout=60,
                         env=dict(daemon.env, EXPECTED=written["SessionToken"]))
    assert run.returncode == 0, run.stderr
    assert "the credd daemon is not running" in run.stderr
    # A write: false profile is never in the file: the daemon alone serves it, and says how to start it.
    hooked = daemon.credd("env", "prod-admin")
    assert hooked.returncode == 1 and "the credd daemon is not running" in hooked.stderr
    assert "`credd service install`" in hooked.stderr and hooked.stdout == ""


def test_file_credentials_only_unexpired_ones_credd_wrote():
    now = datetime(2030, 6, 1, 12, 0, tzinfo=timezone.utc)
    creds = make_credentials()
    text = update("[mine]\naws_access_key_id = AKIAHANDWRITTEN00001\naws_session_token = x\n"
                  "aws_secret_access_key = y\n", {"p": creds})
    found = file_credentials(text, "credentials", "p", creds.expiration - timedelta(seconds=1))
    assert found is not None and found["AccessKeyId"] == creds.access_key_id
    assert found["Expiration"] == credential_values(creds)["x_credd_expiration"]
    assert file_credentials(text, "credentials", "p", creds.expiration) is None  # expired
    assert file_credentials(text, "credentials", "mine", now) is None  # not credd's: no x_credd_expiration
    assert file_credentials(text, "credentials", "absent", now) is None


def test_exec_of_a_command_that_cannot_run_exits_as_a_shell_does(daemon, tmp_path):
    daemon.start()
    not_executable = tmp_path / "script.sh"
    not_executable.write_text("#!/bin/sh\necho hi\n")
    not_executable.chmod(0o644)
    missing = daemon.credd("exec", "prod-admin", "--", "no-such-command-credd")
    denied = daemon.credd("exec", "prod-admin", "--", str(not_executable))
    directory = daemon.credd("exec", "prod-admin", "--", str(tmp_path))
    assert (missing.returncode, missing.stderr) == (127, "credd: error: no-such-command-credd: command not found\n")
    assert (denied.returncode, denied.stderr) == (126, f"credd: error: {not_executable}: cannot run it: "
                                                       "Permission denied\n")
    assert directory.returncode == 126 and directory.stderr.count("\n") == 1
