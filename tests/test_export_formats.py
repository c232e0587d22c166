"""`credd env --format`: byte for byte what the real AWS CLI v2 prints for the same credentials."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from credd import export_formats
from credd.cli import EXPORT_FORMATS
from tests.conftest import require_tool, run_credd
from tests.socket_helpers import RunningServer

DOCUMENT = {"Version": 1, "AccessKeyId": "ASIAEXAMPLEEXAMPLE12", "SecretAccessKey": "exp/ort+secret=",
            "SessionToken": "export/token+with=padding==",
            # in the future, or the AWS CLI refuses them as expired
            "Expiration": (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}
AWS_FORMATS = ("env", "env-no-export", "powershell", "windows-cmd", "process")


@pytest.fixture
def served(home, sock_path):
    server = RunningServer(sock_path, lambda request: {"ok": True, "credentials": DOCUMENT})
    yield home
    server.stop()


def test_every_format_has_a_name_the_parser_offers():
    assert set(EXPORT_FORMATS) == set(export_formats.FORMATS)


@pytest.mark.parametrize("format_name", AWS_FORMATS)
def test_the_same_bytes_as_aws_configure_export_credentials(served, sock_path, tmp_path, format_name):
    aws = require_tool("/usr/bin/aws")
    # The AWS CLI gets the same credentials the daemon serves, through a credential_process of its own.
    document = tmp_path / "doc.json"
    document.write_text(json.dumps(DOCUMENT))
    config = tmp_path / "aws-config"
    config.write_text(f"[profile p]\ncredential_process = /bin/cat {document}\n")
    env = dict(served.env, AWS_CONFIG_FILE=str(config), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    theirs = subprocess.run([aws, "configure", "export-credentials", "--profile", "p", "--format", format_name],
                            capture_output=True, text=True, env=env, timeout=60)
    assert theirs.returncode == 0, theirs.stderr
    ours = run_credd(["env", "p", "--format", format_name], served, extra_env={"CREDD_SOCKET": str(sock_path)})
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout


def test_extra_variables_pass_through_after_the_credentials():
    variables = {"AWS_ACCESS_KEY_ID": "A", "AWS_SECRET_ACCESS_KEY": "S", "AWS_SESSION_TOKEN": "T",
                 "AWS_CREDENTIAL_EXPIRATION": "2026-11-22T13:45:00Z", "AWS_REGION": "eu-west-1"}
    assert export_formats.render("env", variables).splitlines()[-1] == "export AWS_REGION=eu-west-1"
    assert export_formats.render("fish", variables).splitlines()[-1] == "set -gx AWS_REGION eu-west-1"
    assert json.loads(export_formats.render("json", variables))["AWS_CREDENTIAL_EXPIRATION"] == \
        "2026-11-22T13:45:00+00:00"
    assert "AWS_REGION" not in export_formats.render("process", variables)  # no place for it in that schema


@pytest.mark.parametrize("format_name", ["env", "env-no-export", "fish"])
def test_a_value_a_shell_would_misread_is_quoted(format_name):
    text = export_formats.render(format_name, {"AWS_REGION": "a b;$(x)"})
    assert "'a b;$(x)'" in text


def test_fish_reads_its_format(tmp_path):
    fish = require_tool("fish")
    variables = {"AWS_ACCESS_KEY_ID": "A", "AWS_REGION": "it's $odd"}
    script = export_formats.render("fish", variables) + "echo $AWS_REGION\n"
    result = subprocess.run([fish, "--no-config", "-c", script], capture_output=True, text=True, timeout=30)
    assert result.stdout == "it's $odd\n"
