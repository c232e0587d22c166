"""`credd config import`: real-world `~/.aws/config` shapes become a credd config the real loader takes.

The corpus: each shape is an AWS config file (and a credentials file), and
what credd's config must then hold. Each plan is proved by the real loader;
the command runs as users run it (the real `credd`, a keyrings.alt keyring).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from credd import awsimport
from credd.config import parse_config
from tests.conftest import TEST_KEY_ID, TEST_SECRET_KEY, TEST_TOTP_SEED, Home, run_credd

KEY = f"aws_access_key_id = {TEST_KEY_ID}\naws_secret_access_key = {TEST_SECRET_KEY}\n"
MFA = "arn:aws:iam::111111111111:mfa/alice"
ADMIN = "arn:aws:iam::222222222222:role/Admin"
AUDIT = "arn:aws:iam::333333333333:role/Audit"
DEEP = "arn:aws:iam::444444444444:role/Deep"


@dataclass(frozen=True)
class Shape:
    config: str
    credentials: str
    sources: dict[str, dict[str, object]]  # name -> what the loaded Source must have (attribute -> value)
    profiles: dict[str, dict[str, object]]  # name -> what the loaded Profile must have
    skipped: dict[str, str] = field(default_factory=dict)  # profile -> a part of the reason
    keys: tuple[str, ...] = ()  # credentials-file sections whose key moves


CORPUS: dict[str, Shape] = {
    "chain of three, MFA at the base": Shape(
        f"[profile base]\nregion = eu-west-1\nmfa_serial = {MFA}\n"
        f"[profile admin]\nsource_profile = base\nrole_arn = {ADMIN}\n"
        f"[profile audit]\nsource_profile = admin\nrole_arn = {AUDIT}\n"
        f"[profile deep]\nsource_profile = audit\nrole_arn = {DEEP}\n",
        f"[base]\n{KEY}",
        {"base": {"mfa_serial": MFA, "mfa": "prompt", "region": "eu-west-1"}},
        {"base": {"source": "base", "role_arn": None}, "admin": {"source": "base", "role_arn": ADMIN},
         "audit": {"source": "base", "source_profile": "admin", "role_arn": AUDIT},
         "deep": {"source": "base", "source_profile": "audit", "role_arn": DEEP}},
        keys=("base",)),
    "MFA declared on a middle hop": Shape(
        f"[profile base]\n[profile admin]\nsource_profile = base\nrole_arn = {ADMIN}\nmfa_serial = {MFA}\n"
        f"[profile audit]\nsource_profile = admin\nrole_arn = {AUDIT}\n",
        f"[base]\n{KEY}",
        {"base": {"mfa_serial": MFA}},
        {"admin": {"source": "base"}, "audit": {"source_profile": "admin"}},
        keys=("base",)),
    "role options: external_id, session name, duration_seconds, region": Shape(
        f"[profile base]\n[profile vendor]\nsource_profile = base\nrole_arn = {ADMIN}\nexternal_id = vendor-42\n"
        "role_session_name = alice\nduration_seconds = 1800\nregion = ap-south-1\n",
        f"[base]\n{KEY}",
        {"base": {"mfa_serial": None, "region": "us-east-1"}},
        {"vendor": {"external_id": "vendor-42", "role_session_name": "alice", "duration": 1800,
                    "region": "ap-south-1"}},
        keys=("base",)),
    "aws-vault include_profile and mfa_process": Shape(
        f"[profile common]\nregion = eu-central-1\nmfa_serial = {MFA}\n"
        "[profile base]\ninclude_profile = common\nmfa_process = ykman oath accounts code --single aws\n"
        f"[profile admin]\ninclude_profile = common\nsource_profile = base\nrole_arn = {ADMIN}\n",
        f"[base]\n{KEY}",
        {"base": {"mfa_serial": MFA, "mfa": "command", "region": "eu-central-1",
                  "mfa_command": ("sh", "-c", "ykman oath accounts code --single aws")}},
        {"admin": {"source": "base", "region": "eu-central-1"}},
        skipped={"common": "no long-term key"}, keys=("base",)),
    "SSO and credential_process profiles left alone": Shape(
        "[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = us-east-1\n"
        "[profile sso]\nsso_session = corp\nsso_account_id = 111111111111\nsso_role_name = Dev\n"
        "[profile legacy-sso]\nsso_start_url = https://corp.awsapps.com/start\n"
        "[profile vault]\ncredential_process = aws-vault export --format=json vault\n"
        f"[profile base]\n[profile admin]\nsource_profile = base\nrole_arn = {ADMIN}\n"
        f"[profile via-sso]\nsource_profile = sso\nrole_arn = {AUDIT}\n",
        f"[base]\n{KEY}",
        {"base": {}}, {"base": {}, "admin": {}},
        skipped={"sso": "SSO profile", "legacy-sso": "SSO profile", "vault": "credential_process",
                 "via-sso": "needs profile sso"}, keys=("base",)),
    "credential_source refused, saying why": Shape(
        f"[profile ec2]\ncredential_source = Ec2InstanceMetadata\nrole_arn = {ADMIN}\n"
        f"[profile env]\ncredential_source = Environment\nrole_arn = {ADMIN}\n"
        f"[profile ecs]\ncredential_source = EcsContainer\nrole_arn = {ADMIN}\n"
        "[profile base]\n",
        f"[base]\n{KEY}",
        {"base": {}}, {"base": {}},
        skipped={"ec2": "only a process on that instance", "env": "AWS_* variables", "ecs": "ECS task"},
        keys=("base",)),
    "comments, indentation and [default]": Shape(
        "# my AWS config\n; kept by hand\n[default]\nregion = us-west-2  \n# the default is my IAM user\n"
        f"mfa_serial = {MFA}\n\n[profile admin]\n  # assumed from default\nsource_profile = default\n"
        f"role_arn = {ADMIN}\n[preview]\ncloudfront = true\n",
        f"[default]\n{KEY}",
        {"default": {"mfa_serial": MFA, "region": "us-west-2"}},
        {"default": {"source": "default"}, "admin": {"source": "default", "region": "us-west-2"}},
        keys=("default",)),
    "CRLF line endings": Shape(
        f"[profile base]\r\nregion = eu-west-2\r\n[profile admin]\r\nsource_profile = base\r\nrole_arn = {ADMIN}\r\n",
        f"[base]\r\n{KEY}".replace("\n", "\r\n"),
        {"base": {"region": "eu-west-2"}}, {"admin": {"role_arn": ADMIN}}, keys=("base",)),
    "no final newline": Shape(
        f"[profile base]\n[profile admin]\nsource_profile = base\nrole_arn = {ADMIN}",
        f"[base]\n{KEY}".rstrip("\n"),
        {"base": {}}, {"admin": {"role_arn": ADMIN}}, keys=("base",)),
    "two IAM users, one MFA each": Shape(
        f"[profile work]\nmfa_serial = {MFA}\n[profile home]\nmfa_serial = arn:aws:iam::999999999999:mfa/me\n"
        f"[profile work-admin]\nsource_profile = work\nrole_arn = {ADMIN}\n"
        f"[profile home-admin]\nsource_profile = home\nrole_arn = arn:aws:iam::999999999999:role/Admin\n",
        f"[work]\n{KEY}[home]\naws_access_key_id = AKIAHOME000000000000\n"
        "aws_secret_access_key = hOmE/sEcReT+kEy0fTh3s3c0ndUs3r0000000000\n",
        {"work": {"mfa_serial": MFA}, "home": {"mfa_serial": "arn:aws:iam::999999999999:mfa/me"}},
        {"work-admin": {"source": "work"}, "home-admin": {"source": "home"}}, keys=("work", "home")),
    "a cycle, a missing link, a role without credentials, a key-less base": Shape(
        f"[profile a]\nsource_profile = b\nrole_arn = {ADMIN}\n[profile b]\nsource_profile = a\nrole_arn = {AUDIT}\n"
        f"[profile lost]\nsource_profile = nowhere\nrole_arn = {ADMIN}\n[profile bare]\nrole_arn = {ADMIN}\n"
        "[profile empty]\nregion = us-east-2\n[profile base]\n",
        f"[base]\n{KEY}[empty]\naws_access_key_id = ASIATEMP000000000000\n"
        "aws_secret_access_key = tEmPoRaRy/sEcReT+0fAnOlDsEsSi0n000000000\naws_session_token = FwoGtEmPoRaRyT0kEn00\n",
        {"base": {}}, {"base": {}},
        skipped={"a": "circle", "b": "circle", "lost": "'nowhere' is not a profile", "bare": "role_arn without",
                 "empty": "no long-term key"},
        keys=("base",)),
    "two MFA devices in one chain": Shape(
        f"[profile base]\nmfa_serial = {MFA}\n"
        f"[profile admin]\nsource_profile = base\nrole_arn = {ADMIN}\nmfa_serial = arn:aws:iam::111111111111:mfa/bob\n",
        f"[base]\n{KEY}",
        {"base": {"mfa_serial": MFA}}, {"base": {}}, skipped={"admin": "one MFA device per source"}, keys=("base",)),
    "a self-referencing profile: its own key assumes its role": Shape(
        f"[profile ops]\nsource_profile = ops\nrole_arn = {ADMIN}\n[profile ops-audit]\nsource_profile = ops\n"
        f"role_arn = {AUDIT}\n",
        f"[ops]\n{KEY}",
        {"ops": {}}, {"ops": {"source": "ops", "role_arn": ADMIN},
                      "ops-audit": {"source": "ops", "source_profile": "ops", "role_arn": AUDIT}}, keys=("ops",)),
    "duration_seconds out of AssumeRole's range": Shape(
        f"[profile base]\n[profile long]\nsource_profile = base\nrole_arn = {ADMIN}\nduration_seconds = 86400\n"
        f"[profile odd]\nsource_profile = base\nrole_arn = {ADMIN}\nduration_seconds = 1h\n",
        f"[base]\n{KEY}",
        {"base": {}}, {"base": {}}, skipped={"long": "900 to 43200 seconds", "odd": "1h is not"}, keys=("base",)),
    "aws-vault's layout: the device on every role, nested s3 settings, [services], a key-less [default]": Shape(
        "[default]\nregion = us-east-1\noutput = json\n\n"
        f"[profile jon]\ns3 =\n  max_concurrent_requests = 20\n  multipart_threshold = 64MB\nmfa_serial = {MFA}\n\n"
        f"[profile dev]\nsource_profile = jon\nrole_arn = {ADMIN}\nmfa_serial = {MFA}\n\n"
        f"[profile prod]\nsource_profile = jon\nrole_arn = {AUDIT}\nmfa_serial = {MFA}\n\n"
        "[services local]\nsts =\n  endpoint_url = http://localhost:4566\n",
        f"[jon]\n{KEY}",
        {"jon": {"mfa_serial": MFA, "mfa": "prompt"}},
        {"jon": {"source": "jon", "role_arn": None}, "dev": {"source": "jon", "role_arn": ADMIN},
         "prod": {"source": "jon", "role_arn": AUDIT}},
        skipped={"default": "no long-term key"}, keys=("jon",)),
}


def load_plan(shape: Shape, tmp_path: Path):
    plan = awsimport.plan_import(shape.config, "aws-config", shape.credentials, "credentials")
    text = awsimport.render_config(plan)
    config = parse_config(text, "imported.yaml", tmp_path / "imported.yaml", {"HOME": str(tmp_path)}, "linux",
                          1000)
    return plan, config


@pytest.mark.parametrize("name", CORPUS)
def test_each_shape_becomes_a_config_the_loader_takes(name: str, tmp_path: Path) -> None:
    shape = CORPUS[name]
    plan, config = load_plan(shape, tmp_path)
    assert set(config.sources) == set(shape.sources)
    for source, wanted in shape.sources.items():
        for attribute, value in wanted.items():
            got = getattr(config.sources[source], attribute)
            assert (tuple(got) if isinstance(got, list) else got) == value, (source, attribute)
    assert set(shape.profiles) <= set(config.profiles)
    for profile, wanted in shape.profiles.items():
        for attribute, value in wanted.items():
            assert getattr(config.profiles[profile], attribute) == value, (profile, attribute)
    skipped = {item.profile: item.reason for item in plan.skipped}
    assert set(skipped) == set(shape.skipped)
    for profile, reason in shape.skipped.items():
        assert reason in skipped[profile], (profile, skipped[profile])
    assert set(config.profiles) | set(skipped) >= {p for p in awsimport.profile_sections(shape.config, "x")}
    assert tuple(move.section for move in plan.keys) == shape.keys


def test_picked_profiles_bring_the_links_their_chains_need(tmp_path: Path) -> None:
    shape = CORPUS["chain of three, MFA at the base"]
    plan = awsimport.plan_import(shape.config, "aws-config", shape.credentials, "credentials", ["audit"])
    assert list(plan.profiles) == ["base", "admin", "audit"]


# The command, run as users run it ------------------------------------------------------------------------------------


def write_private(path: Path, text: str) -> Path:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_bytes(text.encode())
    path.chmod(0o600)
    return path


def aws_files(home: Home, name: str = "chain of three, MFA at the base") -> tuple[Path, Path]:
    shape = CORPUS[name]
    return (write_private(home.root / ".aws" / "config", shape.config),
            write_private(home.credentials, shape.credentials))


def snapshot(home: Home) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(home.root.rglob("*")) if p.is_file()}


def test_dry_run_prints_the_config_and_changes_no_byte(plaintext_keyring: Home) -> None:
    aws_files(plaintext_keyring)
    before = snapshot(plaintext_keyring)
    result = run_credd(["config", "import", "--dry-run"], plaintext_keyring)
    assert result.returncode == 0, result.stderr
    assert f"role_arn: {AUDIT}" in result.stdout
    assert "source_profile: admin" in result.stdout
    assert "would move the long-term key in [base]" in result.stdout
    assert "dry run: nothing was changed" in result.stdout
    assert snapshot(plaintext_keyring) == before


def test_import_moves_keys_and_a_second_run_changes_nothing(plaintext_keyring: Home) -> None:
    _, credentials = aws_files(plaintext_keyring)
    result = run_credd(["config", "import"], plaintext_keyring)
    assert result.returncode == 0, result.stderr
    assert "added 1 source(s) and 4 profile(s)" in result.stdout
    assert "imported access key AKIA…MPLE for source base into the keyring" in result.stdout
    assert TEST_KEY_ID not in credentials.read_text()
    check = run_credd(["config", "check"], plaintext_keyring)
    assert check.returncode == 0 and check.stdout.endswith(": ok (1 source, 4 profiles)\n"), check.stderr
    keys = run_credd(["keys", "ls"], plaintext_keyring)
    assert "base: AKIA…MPLE" in keys.stdout

    before = snapshot(plaintext_keyring)
    again = run_credd(["config", "import"], plaintext_keyring)
    assert again.returncode == 0, again.stderr
    assert "already has every profile" in again.stdout and "nothing changed" in again.stdout
    assert snapshot(plaintext_keyring) == before


def test_import_merges_into_an_existing_config_keeping_its_lines(plaintext_keyring: Home) -> None:
    aws_files(plaintext_keyring, "CRLF line endings")
    own = ("version: 1\n# my sources\nsources:\n    alice:\n        region: eu-west-1  # mine\n\n"
           "# my profiles, below\nprofiles:\n    alice-session:\n        source: alice\n")
    plaintext_keyring.write_config(own)
    result = run_credd(["config", "import"], plaintext_keyring)
    assert result.returncode == 0, result.stderr
    text = plaintext_keyring.config.read_text()
    assert text == ("version: 1\n# my sources\nsources:\n    alice:\n        region: eu-west-1  # mine\n"
                    "    base:\n      region: eu-west-2\n\n"
                    "# my profiles, below\nprofiles:\n    alice-session:\n        source: alice\n"
                    "    base:\n      source: base\n"
                    f"    admin:\n      source: base\n      role_arn: {ADMIN}\n")
    check = run_credd(["config", "check"], plaintext_keyring)
    assert check.stdout.endswith(": ok (2 sources, 3 profiles)\n"), check.stderr


def test_a_clash_names_both_places_and_writes_nothing(plaintext_keyring: Home) -> None:
    aws_files(plaintext_keyring)
    plaintext_keyring.write_config(f"version: 1\nsources:\n  base:\n    mfa_serial: {MFA}\n    region: eu-west-1\n"
                                   "profiles:\n  admin:\n    source: base\n"
                                   f"    role_arn: {AUDIT}\n")
    before = snapshot(plaintext_keyring)
    result = run_credd(["config", "import"], plaintext_keyring)
    assert result.returncode == 2
    config = plaintext_keyring.config
    assert result.stderr == (f"credd: error: {config}:7: profiles.admin: already defined here, differently from "
                             f"what profile admin gives in {plaintext_keyring.root}/.aws/config:4; rename one of "
                             "them, or import the others only with --profile NAME\n")
    assert snapshot(plaintext_keyring) == before


def test_left_alone_profiles_are_listed_with_the_reason(plaintext_keyring: Home) -> None:
    aws_files(plaintext_keyring, "SSO and credential_process profiles left alone")
    result = run_credd(["config", "import", "--dry-run"], plaintext_keyring)
    assert result.returncode == 0, result.stderr
    aws = plaintext_keyring.root / ".aws" / "config"
    assert f"left alone: {aws}:4 [sso]: an SSO profile: credd has no SSO source yet" in result.stdout
    assert (f"left alone: {aws}:10 [vault]: it runs its own credential_process, which keeps serving it"
            in result.stdout)


def test_from_a_missing_file_says_how_to_give_one(plaintext_keyring: Home) -> None:
    result = run_credd(["config", "import", "--from", "/nonexistent/config"], plaintext_keyring)
    assert result.returncode == 2
    assert result.stderr == ("credd: error: /nonexistent/config: no such file to import; give the AWS config file "
                             "with --from PATH\n")


def test_an_unknown_picked_profile_is_named(plaintext_keyring: Home) -> None:
    aws_files(plaintext_keyring)
    result = run_credd(["config", "import", "--profile", "nope", "--dry-run"], plaintext_keyring)
    assert result.returncode == 2
    assert "has no profile named 'nope' (profiles: admin, audit, base, deep)" in result.stderr


def test_imported_chain_is_served_to_the_aws_cli_with_one_session(plaintext_keyring: Home, live_sts,
                                                                  sock_path: Path, tmp_path: Path) -> None:
    from tests.fixtures_daemon import DaemonProcess
    from tests.fixtures_sts import SERIAL
    from tests.test_serve import require_aws_v2

    aws = require_aws_v2()
    home = plaintext_keyring
    write_private(home.root / ".aws" / "config",
                  f"[profile base]\nregion = us-east-1\nmfa_serial = {SERIAL}\n"
                  f"[profile admin]\nsource_profile = base\nrole_arn = {ADMIN}\n"
                  f"[profile audit]\nsource_profile = admin\nrole_arn = {AUDIT}\n")
    write_private(home.credentials, f"[base]\n{KEY}")
    result = run_credd(["config", "import"], home)
    assert result.returncode == 0, result.stderr
    # ~/.aws/config cannot say where credd's STS is: point the imported source at the local one, with a TOTP seed.
    text = home.config.read_text()
    assert "    mfa: prompt\n" in text
    home.config.write_text(text.replace("    mfa: prompt\n", f"    mfa: totp\n    sts_endpoint: {live_sts.url}\n"))
    assert run_credd(["totp", "set", "base"], home, input=TEST_TOTP_SEED + "\n").returncode == 0
    daemon = DaemonProcess(home, sock_path, tmp_path)
    try:
        daemon.start()
        daemon.wait_state("audit", "fresh")
        # The original ~/.aws/config still has the role lines, which botocore would use before the credentials
        # file (issue 15 item 2 rewires them): the CLI here reads a config with the regions only.
        plain = write_private(tmp_path / "aws-config", "[profile audit]\nregion = us-east-1\n")
        env = dict(daemon.env, AWS_CONFIG_FILE=str(plain), AWS_EC2_METADATA_DISABLED="true", AWS_PAGER="")
        called = subprocess.run([aws, "sts", "get-caller-identity", "--profile", "audit", "--endpoint-url",
                                 live_sts.url, "--output", "json"], capture_output=True, text=True, env=env,
                                timeout=120)
        assert called.returncode == 0, called.stderr
        assert ":assumed-role/Audit/" in json.loads(called.stdout)["Arn"]
        assert live_sts.calls["GetSessionToken"] == 1
        assert live_sts.calls["AssumeRole"] == 2
    finally:
        daemon.finish()
