"""`credd config import`: real-world `~/.aws/config` shapes become a credd config the real loader takes.

The corpus: each shape is an AWS config file (and a credentials file), and
what credd's config must then hold. Each plan is proved by the real loader;
the command runs as users run it (the real `credd`, a keyrings.alt keyring).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest

from credd import awsconfig, awsimport, credfile
from credd.config import parse_config
from credd.model import Credentials, Secret
from tests.conftest import TEST_KEY_ID, TEST_SECRET_KEY, TEST_TOTP_SEED, Home, run_credd

KEY = f"aws_access_key_id = {TEST_KEY_ID}\naws_secret_access_key = {TEST_SECRET_KEY}\n"
MFA = "arn:aws:iam::111111111111:mfa/alice"
ADMIN = "arn:aws:iam::222222222222:role/Admin"
AUDIT = "arn:aws:iam::333333333333:role/Audit"
DEEP = "arn:aws:iam::444444444444:role/Deep"
HOME_SECRET = "homeSecretKey/0000000000000000000000000000"  # a second IAM user's (a well-formed fake)


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
        f"[work]\n{KEY}[home]\naws_access_key_id = AKIAHOME000000000000\naws_secret_access_key = {HOME_SECRET}\n",
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
    "a source_profile found only in the credentials file, the device on its roles": Shape(
        f"[profile dev]\nsource_profile = base\nrole_arn = {ADMIN}\nmfa_serial = {MFA}\nregion = eu-west-1\n"
        f"[profile prod]\nsource_profile = base\nrole_arn = {AUDIT}\nmfa_serial = {MFA}\n"
        f"[profile prod-deep]\nsource_profile = prod\nrole_arn = {DEEP}\n",
        f"[base]\n{KEY}[other]\naws_access_key_id = AKIAHOME000000000000\naws_secret_access_key = {HOME_SECRET}\n",
        {"base": {"mfa_serial": MFA, "mfa": "prompt", "region": "us-east-1"}},
        {"base": {"source": "base", "role_arn": None}, "dev": {"source": "base", "role_arn": ADMIN,
                                                               "region": "eu-west-1"},
         "prod": {"source": "base", "role_arn": AUDIT},
         "prod-deep": {"source": "base", "source_profile": "prod", "role_arn": DEEP}},
        keys=("base",)),  # [other], which no profile names, stays as it is
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


CREDENTIALS_ONLY = "a source_profile found only in the credentials file, the device on its roles"


def test_a_picked_base_found_only_in_the_credentials_file_is_taken(tmp_path: Path) -> None:
    shape = CORPUS[CREDENTIALS_ONLY]
    plan = awsimport.plan_import(shape.config, "aws-config", shape.credentials, "credentials", ["base"])
    assert (plan.sources, plan.profiles) == ({"base": {}}, {"base": {"source": "base"}})
    assert plan.keys == [awsimport.KeyMove("base", "base")]
    assert plan.where("base", "aws-config") == "credentials:1"
    # [other] holds a key no profile of ~/.aws/config names: picked, it is taken the same way.
    other = awsimport.plan_import(shape.config, "aws-config", shape.credentials, "credentials", ["other"])
    assert (other.profiles, other.keys) == ({"other": {"source": "other"}}, [awsimport.KeyMove("other", "other")])


def test_a_picked_role_on_a_credentials_file_base_brings_its_base(tmp_path: Path) -> None:
    shape = CORPUS[CREDENTIALS_ONLY]
    plan = awsimport.plan_import(shape.config, "aws-config", shape.credentials, "credentials", ["prod-deep"])
    assert list(plan.profiles) == ["base", "prod", "prod-deep"]
    assert plan.sources == {"base": {"mfa_serial": MFA, "mfa": "prompt"}}
    assert plan.keys == [awsimport.KeyMove("base", "base")]


def test_a_picked_name_in_neither_file_names_both(tmp_path: Path) -> None:
    from credd.errors import UsageError

    shape = CORPUS[CREDENTIALS_ONLY]
    with pytest.raises(UsageError) as refused:
        awsimport.plan_import(shape.config, "aws-config", shape.credentials, "credentials", ["nope", "dev"])
    assert str(refused.value) == ("aws-config has no profile named 'nope', and credentials no section [nope] with a "
                                  "long-term key (profiles: base, dev, other, prod, prod-deep)")


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


def snapshot(home: Home) -> dict[str, tuple[bytes | None, int]]:
    """Every file and directory under the home: its bytes and its mtime (a file rewritten as it was shows)."""
    return {str(p): (p.read_bytes() if p.is_file() else None, p.lstat().st_mtime_ns)
            for p in sorted(home.root.rglob("*"))}


def contents(home: Home) -> dict[str, bytes]:
    """Every file under the home but the keyring's, and its bytes."""
    return {str(p.relative_to(home.root)): p.read_bytes() for p in sorted(home.root.rglob("*"))
            if p.is_file() and "keyring" not in p.name and not p.name.endswith(".lock")}


def test_dry_run_prints_the_config_and_changes_no_byte(plaintext_keyring: Home) -> None:
    aws_files(plaintext_keyring)
    before = snapshot(plaintext_keyring)
    result = run_credd(["config", "import", "--dry-run"], plaintext_keyring)
    assert result.returncode == 0, result.stderr
    assert f"role_arn: {AUDIT}" in result.stdout
    assert "source_profile: admin" in result.stdout
    assert "would move the long-term key in [base]" in result.stdout
    aws = plaintext_keyring.root / ".aws" / "config"
    assert (f"--- {aws}\n+++ {aws} (rewired)\n@@ -1,12 +1,12 @@\n [profile base]\n region = eu-west-1\n"
            f"-mfa_serial = {MFA}\n+# credd-import: mfa_serial = {MFA}\n [profile admin]\n-source_profile = base\n"
            f"-role_arn = {ADMIN}\n+# credd-import: source_profile = base\n+# credd-import: role_arn = {ADMIN}\n"
            in result.stdout)
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


def test_a_clash_with_a_base_found_only_in_the_credentials_file_names_its_section_there(
        plaintext_keyring: Home) -> None:
    aws_files(plaintext_keyring, "a source_profile found only in the credentials file, the device on its roles")
    plaintext_keyring.write_config("version: 1\nsources:\n  base: {}\nprofiles:\n  base:\n    source: base\n")
    before = snapshot(plaintext_keyring)
    result = run_credd(["config", "import"], plaintext_keyring)
    assert result.returncode == 2
    assert result.stderr == (f"credd: error: {plaintext_keyring.config}:3: sources.base: already defined here, "
                             f"differently from what profile base gives in {plaintext_keyring.credentials}:1; "
                             "rename one of them, or import the others only with --profile NAME\n")
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
    assert result.stderr == (f"credd: error: {plaintext_keyring.root}/.aws/config has no profile named 'nope', and "
                             f"{plaintext_keyring.credentials} no section [nope] with a long-term key "
                             "(profiles: admin, audit, base, deep)\n")


@pytest.mark.parametrize("picked", [["base"], ["prod-deep"]])
def test_picking_a_base_found_only_in_the_credentials_file_imports_it_and_undo_gives_back_both_files(
        picked: list[str], plaintext_keyring: Home) -> None:
    home = plaintext_keyring
    before = imported_home(home, CREDENTIALS_ONLY)
    result = run_credd(["config", "import", *(arg for name in picked for arg in ("--profile", name))], home)
    assert result.returncode == 0, result.stderr
    assert "imported access key AKIA…MPLE for source base into the keyring" in result.stdout
    assert TEST_KEY_ID not in home.credentials.read_text()
    assert "AKIAHOME000000000000" in home.credentials.read_text()  # [other], not picked, keeps its key
    keys = run_credd(["keys", "ls"], home)
    assert "base: AKIA…MPLE" in keys.stdout
    check = run_credd(["config", "check"], home)
    counts = "1 source, 1 profile" if picked == ["base"] else "1 source, 3 profiles"
    assert check.returncode == 0 and check.stdout.endswith(f": ok ({counts})\n"), check.stderr
    config = parse_config(home.config.read_text(), "c", home.config, home.env, "linux", 1000)
    assert config.profiles["base"].source == "base" and config.profiles["base"].role_arn is None
    assert picked[-1] in config.profiles

    again = snapshot(home)
    rerun = run_credd(["config", "import", *(arg for name in picked for arg in ("--profile", name))], home)
    assert rerun.returncode == 0 and "nothing changed" in rerun.stdout, rerun.stderr
    assert snapshot(home) == again

    undone = run_credd(["config", "import", "--undo"], home)
    assert undone.returncode == 0, undone.stderr
    assert contents(home) == before


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
        # The CLI reads ~/.aws/config as import rewired it: its role lines are comments now (audit names no region
        # there, before or after: botocore does not take one from a source_profile).
        assert f"# credd-import: role_arn = {AUDIT}" in (home.root / ".aws" / "config").read_text()
        env = dict(daemon.env, AWS_CONFIG_FILE=str(home.root / ".aws" / "config"),
                   AWS_EC2_METADATA_DISABLED="true", AWS_PAGER="")
        called = subprocess.run([aws, "sts", "get-caller-identity", "--profile", "audit", "--endpoint-url",
                                 live_sts.url, "--region", "us-east-1", "--output", "json"], capture_output=True,
                                text=True, env=env, timeout=120)
        assert called.returncode == 0, called.stderr
        assert ":assumed-role/Audit/" in json.loads(called.stdout)["Arn"]
        assert live_sts.calls["GetSessionToken"] == 1
        assert live_sts.calls["AssumeRole"] == 2
    finally:
        daemon.finish()


# ~/.aws/config rewired: the SDKs use what credd serves ---------------------------------------------------------------

EXPIRES = datetime(2030, 1, 1, tzinfo=timezone.utc)


def credd_hook() -> list[str]:
    """The real `credd` beside this Python (the plain script a venv install has)."""
    return [str(Path(sys.executable).parent / "credd")]


def served_by_credd(shape: Shape, tmp_path: Path, write_false: bool) -> tuple[awsimport.Plan, str, str, dict]:
    """A shape imported: the plan, ~/.aws/config rewired, and the credentials file as credd's daemon then writes it
    (keys moved out, a section per `write: true` profile); `write_false`: roles go through credential_process."""
    plan, config = load_plan(shape, tmp_path)
    served = {name: config.profiles[name].write and not (write_false and config.profiles[name].is_role)
              for name in plan.profiles}
    rewired, _ = awsconfig.rewire_text(shape.config, served, credd_hook(), "aws-config")
    credentials = shape.credentials
    for move in plan.keys:
        key = credfile.read_long_term_key(credentials, move.section)
        credentials = credfile.remove_long_term_key(credentials, move.section, key)
    written = {name: Credentials(f"ASIACREDD{index:011d}", Secret(f"secret-{name}"), Secret(f"token-{name}"),
                                 EXPIRES) for index, name in enumerate(plan.profiles) if served[name]}
    return plan, rewired, credfile.update(credentials, written), served


def botocore_credentials(config_text: str, credentials_text: str, profile: str, tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch):
    """What botocore (in this process) resolves `profile` to with these two files."""
    import botocore.session

    config, credentials = tmp_path / "aws-config-for-botocore", tmp_path / "credentials-for-botocore"
    config.write_bytes(config_text.encode())
    credentials.write_bytes(credentials_text.encode())
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("CREDD_SOCKET", str(tmp_path / "no-daemon.sock"))
    return botocore.session.Session(profile=profile).get_credentials()


@pytest.mark.parametrize("name", CORPUS)
def test_each_shape_is_rewired_so_botocore_takes_credds_credentials(name: str, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    shape = CORPUS[name]
    plan, rewired, credentials, _ = served_by_credd(shape, tmp_path, write_false=False)
    assert awsconfig.rewire_text(rewired, dict.fromkeys(plan.profiles, True), credd_hook(), "x")[0] == rewired
    assert awsconfig.original_view(rewired, "x") == shape.config  # what a second import plans from
    again = awsimport.plan_import(awsconfig.original_view(rewired, "x"), "aws-config", credentials, "credentials",
                                  known_sources=plan.sources)
    assert (again.sources, again.profiles, again.keys) == (plan.sources, plan.profiles, [])
    before = credfile.read_profiles(shape.config)
    after = credfile.read_profiles(rewired)
    imported = {awsconfig.new_section(profile) for profile in plan.profiles}
    for section, values in before.items():  # region, every key it does not move, every other profile stay
        moved = awsconfig.ROLE_KEYS if section in imported else ()
        assert {k: v for k, v in values.items() if k not in moved} == after[section], section
    for index, profile in enumerate(plan.profiles):
        if plan.profiles[profile].get("role_arn"):  # the original: botocore assumes the role itself
            original = botocore_credentials(shape.config, shape.credentials, profile, tmp_path, monkeypatch)
            assert original.method == "assume-role", profile
        got = botocore_credentials(rewired, credentials, profile, tmp_path, monkeypatch)
        assert (got.method, got.access_key) == ("shared-credentials-file", f"ASIACREDD{index:011d}"), profile


@pytest.mark.parametrize("name", ["chain of three, MFA at the base", "comments, indentation and [default]",
                                  "CRLF line endings", "no final newline",
                                  "a self-referencing profile: its own key assumes its role"])
def test_a_write_false_role_is_handed_to_credds_credential_process(name: str, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import CredentialRetrievalError

    shape = CORPUS[name]
    _, rewired, credentials, served = served_by_credd(shape, tmp_path, write_false=True)
    hooked = [profile for profile, write in served.items() if not write]
    assert hooked
    assert awsconfig.rewire_text(rewired, served, credd_hook(), "x")[0] == rewired
    for profile in hooked:
        # No daemon runs: botocore ran credd's hook (not AssumeRole), and says what credd's hook said.
        with pytest.raises(CredentialRetrievalError) as failed:
            botocore_credentials(rewired, credentials, profile, tmp_path, monkeypatch)
        assert failed.value.kwargs["provider"] == "custom-process", profile
        assert "credd" in failed.value.kwargs["error_msg"], profile


# --undo, and a crash half-way ---------------------------------------------------------------------------------------


def imported_home(home: Home, name: str) -> dict[str, bytes]:
    """The shape's files in the home; what they hold before import."""
    aws_files(home, name)
    return contents(home)


@pytest.mark.parametrize("name", CORPUS)
def test_undo_gives_back_every_byte_of_each_shape(name: str, plaintext_keyring: Home) -> None:
    home = plaintext_keyring
    before = imported_home(home, name)
    result = run_credd(["config", "import"], home)
    assert result.returncode == 0, result.stderr
    assert contents(home) != before
    undone = run_credd(["config", "import", "--undo"], home)
    assert undone.returncode == 0, undone.stderr
    assert contents(home) == before
    assert "gave back" in undone.stdout and "keys rm" in undone.stdout


def test_import_rewires_aws_config_and_says_how_to_undo(plaintext_keyring: Home) -> None:
    home = plaintext_keyring
    aws, _ = aws_files(home)
    result = run_credd(["config", "import"], home)
    assert result.returncode == 0, result.stderr
    assert aws.read_text() == (
        f"[profile base]\nregion = eu-west-1\n# credd-import: mfa_serial = {MFA}\n"
        f"[profile admin]\n# credd-import: source_profile = base\n# credd-import: role_arn = {ADMIN}\n"
        f"[profile audit]\n# credd-import: source_profile = admin\n# credd-import: role_arn = {AUDIT}\n"
        f"[profile deep]\n# credd-import: source_profile = audit\n# credd-import: role_arn = {DEEP}\n")
    assert f"admin: role_arn, source_profile in [profile admin] in {aws} now behind `# credd-import:`" in result.stdout
    record = home.root / ".local" / "state" / "credd" / "config-import-undo.json"
    assert f"`credd config import --undo` puts back every byte this changed (what it needs is in {record})" \
        in result.stdout
    assert record.stat().st_mode & 0o777 == 0o600
    assert TEST_SECRET_KEY not in record.read_text()  # the moved key is named by its source, never written


def test_a_write_false_profile_gets_credds_hook_line(plaintext_keyring: Home) -> None:
    home = plaintext_keyring
    aws, _ = aws_files(home, "CRLF line endings")
    home.write_config("version: 1\nsources:\n  base:\n    region: eu-west-2\nprofiles:\n  admin:\n    source: base\n"
                      f"    role_arn: {ADMIN}\n    write: false\n")
    result = run_credd(["config", "import"], home)
    assert result.returncode == 0, result.stderr
    hook = awsconfig.hook_line(credd_hook(), "admin")
    assert aws.read_bytes() == (f"[profile base]\r\nregion = eu-west-2\r\n[profile admin]\r\n"
                                f"credential_process = {hook}\r\n# credd-import: source_profile = base\r\n"
                                f"# credd-import: role_arn = {ADMIN}\r\n").encode()
    before = snapshot(home)
    again = run_credd(["config", "import"], home)
    assert again.returncode == 0 and "nothing changed" in again.stdout, again.stderr
    assert snapshot(home) == before


def test_undo_drops_the_sections_the_daemon_wrote_since(plaintext_keyring: Home) -> None:
    from credd.atomicfile import update_file

    home = plaintext_keyring
    before = imported_home(home, "chain of three, MFA at the base")
    assert run_credd(["config", "import"], home).returncode == 0
    session = Credentials("ASIACREDD00000000001", Secret("s"), Secret("t"), EXPIRES)
    update_file(home.credentials, lambda text: credfile.update(text, {"base": session, "audit": session}))
    undone = run_credd(["config", "import", "--undo"], home)
    assert undone.returncode == 0, undone.stderr
    assert contents(home) == before


def test_undo_refuses_to_lose_an_edit_made_after_import(plaintext_keyring: Home) -> None:
    home = plaintext_keyring
    aws, _ = aws_files(home)
    assert run_credd(["config", "import"], home).returncode == 0
    with aws.open("a") as edited:
        edited.write("[profile mine]\nregion = us-east-2\n")
    before = snapshot(home)
    undone = run_credd(["config", "import", "--undo"], home)
    assert undone.returncode == 1
    assert undone.stderr == (
        f"credd: error: nothing was undone:\n  {aws} (AWS config) changed since import wrote it, and undo would lose "
        "that change; to take import's changes back by hand, delete `# credd-import: ` where a line starts with it "
        "and the `credential_process` lines it added, or undo your change and run `credd config import --undo` "
        "again\n")
    assert snapshot(home) == before


def test_undo_takes_back_two_imports_at_once(plaintext_keyring: Home) -> None:
    home = plaintext_keyring
    before = imported_home(home, "two IAM users, one MFA each")
    assert run_credd(["config", "import", "--profile", "work-admin"], home).returncode == 0
    assert run_credd(["config", "import"], home).returncode == 0
    assert "home-admin:" in home.config.read_text()
    assert run_credd(["config", "import", "--undo"], home).returncode == 0
    assert contents(home) == before


def test_undo_with_nothing_to_undo_says_so(plaintext_keyring: Home) -> None:
    undone = run_credd(["config", "import", "--undo"], plaintext_keyring)
    assert undone.returncode == 2
    record = plaintext_keyring.root / ".local" / "state" / "credd" / "config-import-undo.json"
    assert undone.stderr == (f"credd: error: no `credd config import` to undo: {record} does not exist (import "
                             "writes it; undo removes it)\n")


def test_a_malformed_key_is_refused_before_anything_changes(plaintext_keyring: Home) -> None:
    home = plaintext_keyring
    aws_files(home, "two IAM users, one MFA each")
    home.credentials.write_text(home.credentials.read_text().replace(HOME_SECRET, "h"))
    before = snapshot(home)
    result = run_credd(["config", "import"], home)
    assert result.returncode == 2
    assert "that is not a secret access key" in result.stderr
    assert snapshot(home) == before


def other_home(home: Home, root: Path) -> Home:
    """A second throw-away home like `home`, at `root`."""
    root.mkdir()
    return Home(root, {name: value.replace(str(home.root), str(root)) for name, value in home.env.items()})


@pytest.mark.parametrize("point", ["journal", "config", "aws-config", "keys"])
def test_sigkill_during_import_leaves_old_or_new_files_that_a_rerun_completes_or_undo_restores(
        point: str, plaintext_keyring: Home, tmp_path: Path) -> None:
    name = "aws-vault include_profile and mfa_process"
    reference = other_home(plaintext_keyring, tmp_path / "reference")
    imported_home(reference, name)
    assert run_credd(["config", "import"], reference).returncode == 0
    files = (Path(".config/credd/config.yaml"), Path(".aws/config"), Path(".aws/credentials"))
    after = {str(file): (reference.root / file).read_bytes() for file in files}

    home = plaintext_keyring
    before = imported_home(home, name)
    for then in ("--undo", "again"):
        killed = run_credd(["config", "import"], home, extra_env={"CREDD_TEST_KILL_AT": point})
        assert killed.returncode == -9, killed.stderr
        for file in map(str, files):  # each file is as it was or as import writes it, never a third thing
            now = (home.root / file).read_bytes() if (home.root / file).exists() else None
            assert now in (before.get(file), after[file]), (point, file)
        if then == "again":
            again = run_credd(["config", "import"], home)
            assert again.returncode == 0, again.stderr
            assert "an earlier `credd config import` stopped half-way" in again.stdout
            assert "this run completes it" in again.stdout
            assert {file: (home.root / file).read_bytes() for file in map(str, files)} == after
        undone = run_credd(["config", "import", "--undo"], home)
        assert undone.returncode == 0, undone.stderr
        assert contents(home) == before


def test_undo_dry_run_says_what_it_would_give_back_and_touches_nothing(plaintext_keyring: Home) -> None:
    home = plaintext_keyring
    aws, _ = aws_files(home)
    assert run_credd(["config", "import"], home).returncode == 0
    before = snapshot(home)
    shown = run_credd(["config", "import", "--undo", "--dry-run"], home)
    assert shown.returncode == 0, shown.stderr
    assert f"would give back {aws} (AWS config) as it was before import" in shown.stdout
    assert f"would remove {home.config} (credd config): import created it" in shown.stdout
    assert snapshot(home) == before
    picked = run_credd(["config", "import", "--undo", "--profile", "admin"], home)
    assert picked.returncode == 2 and "leave out --from and --profile" in picked.stderr
    assert snapshot(home) == before
