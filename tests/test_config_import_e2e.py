"""The import corpus end to end: the real AWS CLI v2 gets the same identities before and after `credd config import`.

For each shape of tests/test_config_import.py, in a throw-away home:
  before: the CLI with the user's original `~/.aws/config` and credentials
          file assumes every role itself, against the local STS, and asks for
          an MFA code for each role whose own section names a device (the
          CLI's own cache then serves the links below it);
  after:  `credd config import`, a daemon handed one code per source, and the
          CLI with the files as the import left them: the same roles, in the
          same accounts, now with credd's session names, with no prompt and
          no STS call of the CLI's own but GetCallerIdentity.

Debian's AWS CLI v2 (2.9.19) has no setting for an STS endpoint (that came in
2.13), so the CLI is pointed at the local STS with botocore's own data path:
`AWS_DATA_PATH` holds an STS endpoint rule set that answers every region with
the local URL. The user's files stay as they are. The CLI reads a prompted
code from stdin when it has no terminal (getpass's fallback), which is how it
is fed here: each call runs in a new session, without /dev/tty. The local STS
checks codes on GetSessionToken only; on AssumeRole it counts them.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest

from credd import awsimport
from tests.conftest import Home
from tests.sts_front import StsFront
from tests.test_config_import import CORPUS, write_private
from tests.test_serve import require_aws_v2

PROMPT = "Enter MFA code for "
# The corpus names one device of the local STS's seeds (SERIAL) and, for a second IAM user, this one.
OTHER_SERIAL = "arn:aws:iam::999999999999:mfa/me"
OTHER_SEED = "KRSXG5CTMVRXEZLUKN2XAZLDOJSXIZLO"


@dataclass(frozen=True)
class Called:
    """What one `aws sts get-caller-identity --profile P` gave: the ARN and how many codes it asked for."""

    arn: str
    prompts: int


def sts_data_path(root: Path, url: str) -> Path:
    """A botocore data directory whose STS endpoint rule set sends every STS call to `url`."""
    rules = {"version": "1.0",
             "parameters": {"Region": {"builtIn": "AWS::Region", "required": False, "type": "String"}},
             "rules": [{"conditions": [], "type": "endpoint",
                        "endpoint": {"url": url, "properties": {}, "headers": {}}}]}
    folder = root / "sts" / "2011-06-15"
    folder.mkdir(parents=True)
    (folder / "endpoint-rule-set-1.json").write_text(json.dumps(rules))
    return root


class AwsCli:
    """The real AWS CLI v2 in the test's home, its STS calls going to the local STS."""

    def __init__(self, home: Home, sts: StsFront, data: Path) -> None:
        self.aws = require_aws_v2()
        self.env = dict(home.env, AWS_DATA_PATH=str(data), AWS_EC2_METADATA_DISABLED="true", AWS_PAGER="")

    def identity(self, profile: str, code: str | None = None) -> Called:
        """The caller's ARN for `profile`; `code` is typed in if the CLI asks (no code: nothing to read)."""
        result = subprocess.run([self.aws, "sts", "get-caller-identity", "--profile", profile, "--output", "json"],
                                input=f"{code}\n" if code else "", capture_output=True, text=True, env=self.env,
                                timeout=120, start_new_session=True)  # no /dev/tty: a prompt reads stdin
        assert result.returncode == 0, f"aws --profile {profile}: {result.stderr}"
        return Called(json.loads(result.stdout)["Arn"], result.stderr.count(PROMPT))


def imported_roles(name: str) -> dict[str, dict[str, object]]:
    """The profiles credd's import takes from the shape, as it plans them (role and session name)."""
    shape = CORPUS[name]
    return awsimport.plan_import(shape.config, "aws-config", shape.credentials, "credentials").profiles


def prompts_expected(name: str, profiles: dict[str, dict[str, object]]) -> int:
    """Codes the CLI asks for: one per imported role whose own section names a device (botocore reads no
    include_profile; a chain's upper links come from the CLI's cache once assumed)."""
    sections = awsimport.profile_sections(CORPUS[name].config, "aws-config")
    return sum(1 for profile, entry in profiles.items()
               if "role_arn" in entry and "mfa_serial" in sections[profile].values())


def role_of(arn: str) -> str:
    """`arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION` -> `arn:aws:sts::ACCOUNT:assumed-role/ROLE`."""
    return arn.rsplit("/", 1)[0]


def expected_role(role_arn: str) -> str:
    """The assumed-role ARN prefix STS gives for `role_arn`: same account, same role name."""
    account, role = role_arn.split(":")[4], role_arn.rsplit("/", 1)[1]
    return f"arn:aws:sts::{account}:assumed-role/{role}"


@pytest.fixture
def aws_home(plaintext_keyring: Home, live_sts: StsFront, tmp_path: Path):
    live_sts.seeds[OTHER_SERIAL] = OTHER_SEED
    return plaintext_keyring, AwsCli(plaintext_keyring, live_sts, sts_data_path(tmp_path / "botocore-data",
                                                                                 live_sts.url))


def before(home: Home, cli: AwsCli, name: str) -> dict[str, Called]:
    """The original files, as the user has them: every imported profile through the CLI alone."""
    shape = CORPUS[name]
    write_private(home.root / ".aws" / "config", shape.config)
    write_private(home.credentials, shape.credentials)
    code = pyotp.TOTP(pyotp.random_base32()).now()  # checked by no one on AssumeRole (see the module's docstring)
    return {profile: cli.identity(profile, code) for profile in imported_roles(name)}


@pytest.mark.parametrize("name", CORPUS)
def test_the_aws_cli_gets_every_imported_identity_from_the_original_files(name: str, aws_home, live_sts) -> None:
    home, cli = aws_home
    profiles = imported_roles(name)
    got = before(home, cli, name)
    for profile, entry in profiles.items():
        if "role_arn" in entry:
            assert role_of(got[profile].arn) == expected_role(str(entry["role_arn"])), profile
        if "role_session_name" in entry:
            assert got[profile].arn.endswith(f"/{entry['role_session_name']}"), profile
    assert sum(called.prompts for called in got.values()) == prompts_expected(name, profiles)
    assert live_sts.calls["GetSessionToken"] == 0  # the CLI assumes roles with the long-term key itself
    assert live_sts.calls["AssumeRole"] >= sum("role_arn" in entry for entry in profiles.values())
