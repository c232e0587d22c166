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
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest
import yaml

from credd import awsimport, credfile
from credd.config import parse_config
from credd.model import Config
from tests import known_secrets
from tests.conftest import TEST_TOTP_SEED, Home, run_credd
from tests.fixtures_daemon import DaemonProcess, current_code
from tests.fixtures_sts import SERIAL
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

    def __init__(self, home: Home, data: Path) -> None:
        self.aws = require_aws_v2()
        self.env = dict(home.env, AWS_DATA_PATH=str(data), AWS_EC2_METADATA_DISABLED="true", AWS_PAGER="")

    def identity(self, profile: str, code: str | None = None) -> Called:
        """The caller's ARN for `profile`; `code` is typed in if the CLI asks (no code: nothing to read)."""
        result = subprocess.run([self.aws, "sts", "get-caller-identity", "--profile", profile, "--output", "json"],
                                input=f"{code}\n" if code else "", capture_output=True, text=True, env=self.env,
                                timeout=120, start_new_session=True)  # no /dev/tty: a prompt reads stdin
        assert result.returncode == 0, f"aws --profile {profile}: {result.stderr}"
        return Called(json.loads(result.stdout)["Arn"], result.stderr.count(PROMPT))


def imported_profiles(name: str) -> dict[str, dict[str, object]]:
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
    return plaintext_keyring, AwsCli(plaintext_keyring, sts_data_path(tmp_path / "botocore-data", live_sts.url))


def before(home: Home, cli: AwsCli, name: str) -> dict[str, Called]:
    """The original files, as the user has them: every imported profile through the CLI alone."""
    shape = CORPUS[name]
    for values in credfile.read_profiles(shape.credentials).values():  # scanned for in every stream, as the
        for key in ("aws_secret_access_key", "aws_session_token"):     # test key is
            if len(str(values.get(key, ""))) >= known_secrets.MIN_LENGTH:
                known_secrets.remember(str(values[key]), f"the {key} of the import corpus")
    write_private(home.root / ".aws" / "config", shape.config)
    write_private(home.credentials, shape.credentials)
    code = pyotp.TOTP(pyotp.random_base32()).now()  # checked by no one on AssumeRole (see the module's docstring)
    return {profile: cli.identity(profile, code) for profile in imported_profiles(name)}


def serve_from_the_local_sts(home: Home, url: str) -> Config:
    """credd's config as the import wrote it, with each source pointed at the local STS and asking for its code.

    `~/.aws/config` cannot say where credd's STS is; and an aws-vault `mfa_process` (ykman) has no device
    here, so its source takes the code from `credd mfa` as a `mfa: prompt` source does.
    """
    written = yaml.safe_load(home.config.read_text())
    for source in written["sources"].values():
        source["sts_endpoint"] = url
        if "mfa_serial" in source:
            source["mfa"] = "prompt"
            source.pop("mfa_command", None)
    home.write_config(yaml.safe_dump(written, sort_keys=False))
    return parse_config(home.config.read_text(), str(home.config), home.config, home.env, "linux", os.getuid())


@pytest.mark.parametrize("name", CORPUS)
def test_after_import_the_aws_cli_gets_the_same_identities_from_credd_with_one_code_per_source(
        name: str, aws_home, live_sts: StsFront, sock_path: Path, tmp_path: Path) -> None:
    home, cli = aws_home
    profiles = imported_profiles(name)
    original = before(home, cli, name)
    for profile, entry in profiles.items():
        if "role_arn" in entry:
            assert role_of(original[profile].arn) == expected_role(str(entry["role_arn"])), profile
        if "role_session_name" in entry:
            assert original[profile].arn.endswith(f"/{entry['role_session_name']}"), profile
    assert sum(called.prompts for called in original.values()) == prompts_expected(name, profiles)
    assert live_sts.calls["GetSessionToken"] == 0  # the CLI assumed every role with the long-term key itself

    imported = run_credd(["config", "import"], home)
    assert imported.returncode == 0, imported.stderr
    config = serve_from_the_local_sts(home, live_sts.url)
    assert set(config.profiles) == set(profiles)
    # The CLI's cache of the roles it assumed above goes: what answers below can only be credd.
    shutil.rmtree(home.root / ".aws" / "cli" / "cache", ignore_errors=True)
    daemon = DaemonProcess(home, sock_path, tmp_path)
    try:
        daemon.start()
        codes = 0
        for source in config.sources.values():
            if source.mfa_serial is not None:
                seed = {SERIAL: TEST_TOTP_SEED, OTHER_SERIAL: OTHER_SEED}[source.mfa_serial]
                daemon.wait_state(source.name, "needs-mfa")  # its session profile: the daemon waits for a code
                handed = daemon.credd("mfa", source.name, current_code(seed))
                assert handed.returncode == 0, handed.stderr
                codes += 1
        for profile in profiles:
            daemon.wait_state(profile, "fresh")
        assumed = live_sts.calls["AssumeRole"]
        after = {profile: cli.identity(profile) for profile in profiles}
        assert live_sts.calls["AssumeRole"] == assumed  # the CLI assumed no role itself
        assert live_sts.calls["GetSessionToken"] == len(config.sources)  # one session, one code, per source
        assert len(live_sts.accepted_codes) == codes  # STS took every code handed in, and no other
    finally:
        daemon.finish()
    for profile, entry in profiles.items():
        assert after[profile].prompts == 0, profile
        if "role_arn" in entry:  # the same role in the same account; the session name is credd's now
            session_name = config.profiles[profile].role_session_name
            assert after[profile].arn == f"{role_of(original[profile].arn)}/{session_name}", profile
        else:  # a source's session: moto names every key it did not issue itself alike
            assert after[profile].arn == original[profile].arn, profile
