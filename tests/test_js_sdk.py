"""A second SDK: the AWS SDK for JavaScript v3, run by node, getting the assumed role from a real `credd serve`.

`tests/js/caller.mjs` calls STS GetCallerIdentity against the local STS and
prints the ARN; the SDK packages are those `tests/js/package-lock.json` pins
(`make test` runs `npm ci --prefix tests/js`). Each path a user wires is
taken as the SDK takes it: the container endpoint through the default
provider chain (no profile, no keys), IMDS the same way, `fromProcess` and
the default chain through credd's `credential_process` hook, and `fromIni`
through the credentials file credd writes; and what the SDK shows when
credd refuses or cannot serve.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.conftest import IN_CI, assert_no_secrets, require_tool
from tests.fixtures_daemon import ROLE_ARN, daemon_config
from tests.test_container import ENDPOINT, caller_env, issue
from tests.test_imds import ENDPOINT as IMDS_ENDPOINT
from tests.test_imds import start as start_imds

JS = Path(__file__).resolve().parent / "js"
CALLER = JS / "caller.mjs"
ASSUMED = ":assumed-role/Admin/"
FILE_PROFILE = f"""\
  prod-file:
    source: alice
    role_arn: {ROLE_ARN}
"""  # write: true (the default): credd keeps [prod-file] in the credentials file


NODE_MAJOR = 20  # what the SDK's packages declare (`engines`); its releases after early 2027 want 22
QUIET = {"AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED": "true"}  # that notice, on every run, on node 20


def node_caller() -> list[str]:
    """`node caller.mjs`; like `require_tool`, a missing node, an old one or no SDK skips locally and fails in CI."""
    node = require_tool("node")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    missing = None
    if int(version.lstrip("v").split(".")[0] or 0) < NODE_MAJOR:
        missing = f"node {version} is older than the JavaScript SDK's {NODE_MAJOR}"
    elif not (JS / "node_modules" / "@aws-sdk" / "client-sts").is_dir():
        missing = "the JavaScript SDK is not installed in tests/js (make test runs `npm ci --prefix tests/js`)"
    if missing and IN_CI:
        pytest.fail(missing)
    if missing:
        pytest.skip(missing)
    return [node, str(CALLER)]


def run_node(args: list[str], env: dict[str, str], via: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    """`caller.mjs ARGS`, under `via` (`credd exec --server P --`, say); node finds the SDK beside caller.mjs."""
    result = subprocess.run([*via, *node_caller(), *args], capture_output=True, text=True, env=env, timeout=120)
    assert_no_secrets(result.stdout + result.stderr)
    return result


def sdk_env(daemon, sts_url: str, **extra: str) -> dict[str, str]:
    """The daemon's home, the SDK pointed at the local STS, and no instance metadata to wait for."""
    return dict(daemon.env, AWS_ENDPOINT_URL_STS=sts_url, AWS_EC2_METADATA_DISABLED="true", **QUIET, **extra)


def exec_server(profile: str) -> list[str]:
    return [sys.executable, "-m", "credd", "exec", "--server", profile, "--"]


@pytest.fixture
def served(daemon, live_sts):
    """The daemon with both HTTP endpoints on (IMDS for prod-admin) and a `write: true` role profile, all fresh."""
    daemon.home.write_config(daemon_config(live_sts.url, extra_profiles=FILE_PROFILE) + ENDPOINT
                             + IMDS_ENDPOINT.removeprefix("endpoints:\n"))
    daemon.start()
    daemon.wait_state("prod-admin", "fresh")
    daemon.wait_state("prod-file", "fresh")
    return daemon


def container_tokens(daemon) -> list[dict]:
    return daemon.ask({"op": "status"})["endpoints"]["container"]["tokens"]


# The container endpoint -------------------------------------------------------------------------------------------

def test_the_default_chain_gets_the_role_from_the_endpoint_through_exec_server(served, live_sts):
    # caller_env puts a profile and static keys in the caller's environment: exec --server must clear them.
    env = caller_env(served, AWS_ENDPOINT_URL_STS=live_sts.url, **QUIET)
    result = run_node(["chain"], env, via=exec_server("prod-admin"))
    assert result.returncode == 0, result.stderr + served.log()
    assert ASSUMED in result.stdout
    assert container_tokens(served) == []  # revoked when node exited
    assert "served profile prod-admin" in served.log()


def test_the_default_chain_reads_an_issued_token_from_a_token_file(served, live_sts, tmp_path):
    # The file is the test's: `credd exec --server` sets AWS_CONTAINER_AUTHORIZATION_TOKEN (the AWS CLI v2.9 reads
    # no file); this is the SDK's reading of the file a user fills from `credd token issue`.
    issued = issue(served, "prod-admin")
    token_file = tmp_path / "token"
    token_file.write_text(issued["token"])
    token_file.chmod(0o600)
    env = sdk_env(served, live_sts.url, AWS_CONTAINER_CREDENTIALS_FULL_URI=issued["url"] + "prod-admin",
                  AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=str(token_file))
    result = run_node(["chain"], env)
    assert result.returncode == 0, result.stderr + served.log()
    assert ASSUMED in result.stdout


def test_a_revoked_token_fails_the_sdk_and_the_endpoint_provider_carries_credds_refusal(served, live_sts):
    issued = issue(served, "prod-admin")
    assert served.ask({"op": "token-revoke", "id": issued["id"]})["ok"]
    env = sdk_env(served, live_sts.url, AWS_CONTAINER_CREDENTIALS_FULL_URI=issued["url"] + "prod-admin",
                  AWS_CONTAINER_AUTHORIZATION_TOKEN=issued["token"])
    through_chain = run_node(["chain"], env)
    assert through_chain.returncode == 1  # the default chain says only that no provider gave credentials
    assert "CredentialsProviderError: Could not load credentials from any providers" in through_chain.stderr
    named = run_node(["http"], env)  # an application that names the provider sees what credd answered
    assert named.returncode == 1
    assert "Server responded with status: 401 (Unauthorized: unauthorized)" in named.stderr, named.stderr
    assert issued["token"] not in through_chain.stderr + named.stderr
    assert "refused a request without a valid token" in served.log()


def test_a_token_for_another_profile_fails_the_sdk_with_credds_refusal(served, live_sts):
    issued = issue(served, "alice-session")
    env = sdk_env(served, live_sts.url, AWS_CONTAINER_CREDENTIALS_FULL_URI=issued["url"] + "prod-admin",
                  AWS_CONTAINER_AUTHORIZATION_TOKEN=issued["token"])
    result = run_node(["http"], env)
    assert result.returncode == 1
    assert "Server responded with status: 403 (Forbidden: forbidden)" in result.stderr, result.stderr
    assert "does not grant the profile asked for" in served.log()


# IMDSv2 -----------------------------------------------------------------------------------------------------------

def test_the_default_chain_gets_the_role_from_imds_with_no_profile(served, live_sts):
    (listener,) = served.ask({"op": "status"})["endpoints"]["imds"]
    env = sdk_env(served, live_sts.url, AWS_EC2_METADATA_SERVICE_ENDPOINT=f"http://{listener['address']}/")
    del env["AWS_EC2_METADATA_DISABLED"]
    result = run_node(["chain"], env)
    assert result.returncode == 0, result.stderr + served.log()
    assert ASSUMED in result.stdout
    assert f"imds {listener['address']}: served profile prod-admin (200)" in served.log()


def test_imds_without_fresh_credentials_fails_the_sdk_at_once_with_its_own_words(daemon, live_sts):
    address = start_imds(daemon, live_sts, mfa="prompt", fresh=False)  # no code comes: prod-admin needs MFA
    daemon.wait_state("prod-admin", "needs-mfa")
    env = sdk_env(daemon, live_sts.url, AWS_EC2_METADATA_SERVICE_ENDPOINT=f"http://127.0.0.1:{address[1]}/")
    del env["AWS_EC2_METADATA_DISABLED"]
    through_chain = run_node(["chain"], env)
    assert through_chain.returncode == 1
    assert "Could not load credentials from any providers" in through_chain.stderr
    named = run_node(["imds"], env)  # the SDK keeps no word of the 503's body: its own message only
    assert named.returncode == 1
    assert "Error response received from instance metadata service" in named.stderr, named.stderr
    assert "profile prod-admin has no fresh credentials" in daemon.log()


# credential_process: fromProcess, and the default chain with AWS_PROFILE -------------------------------------------

def wire_hook(daemon, *profiles: str) -> None:
    """`~/.aws/config` as a user wires it: `credential_process = credd process NAME` (.venv's `credd`)."""
    credd = Path(sys.executable).parent / "credd"
    aws_dir = daemon.home.root / ".aws"
    aws_dir.mkdir(exist_ok=True)
    (aws_dir / "config").write_text("".join(f"[profile {name}]\ncredential_process = {credd} process {name}\n"
                                            for name in profiles))


def test_from_process_and_the_default_chain_get_the_role_through_the_hook(served, live_sts):
    wire_hook(served, "prod-admin")
    env = sdk_env(served, live_sts.url)
    through_process = run_node(["process", "prod-admin"], env)
    assert through_process.returncode == 0, through_process.stderr + served.log()
    assert ASSUMED in through_process.stdout
    through_chain = run_node(["chain"], dict(env, AWS_PROFILE="prod-admin"))
    assert through_chain.returncode == 0, through_chain.stderr + served.log()
    assert ASSUMED in through_chain.stdout
    assert live_sts.count("GetSessionToken") == 1  # both answered from the daemon's memory


def test_from_process_surfaces_the_hooks_message_when_the_daemon_is_down(served, live_sts):
    wire_hook(served, "prod-admin")
    assert served.stop() == 0
    env = sdk_env(served, live_sts.url)
    result = run_node(["process", "prod-admin"], env)
    assert result.returncode == 1
    assert "CredentialsProviderError: Command failed: " in result.stderr
    assert "the credd daemon is not running" in result.stderr, result.stderr
    through_chain = run_node(["chain"], dict(env, AWS_PROFILE="prod-admin"))  # the chain keeps no provider's reason
    assert through_chain.returncode == 1
    assert "Could not load credentials from any providers" in through_chain.stderr
    assert "the credd daemon is not running" not in through_chain.stderr


def test_from_process_surfaces_the_hooks_message_for_a_profile_credd_does_not_serve(served, live_sts):
    wire_hook(served, "prod-admni")
    result = run_node(["process", "prod-admni"], sdk_env(served, live_sts.url))
    assert result.returncode == 1
    assert "credd: profile 'prod-admni' is not in " in result.stderr, result.stderr  # the hook's own line


# The credentials file: fromIni ------------------------------------------------------------------------------------

def test_from_ini_reads_the_role_credd_wrote_into_the_credentials_file(served, live_sts):
    served.wait_until("[prod-file] in the credentials file",
                      lambda: served.home.credentials.exists() and "[prod-file]" in served.home.credentials.read_text())
    env = sdk_env(served, live_sts.url)
    result = run_node(["ini", "prod-file"], env)
    assert result.returncode == 0, result.stderr + served.log()
    assert ASSUMED in result.stdout
    through_chain = run_node(["chain"], dict(env, AWS_PROFILE="prod-file"))
    assert through_chain.returncode == 0 and ASSUMED in through_chain.stdout, through_chain.stderr
    assert os.stat(served.home.credentials).st_mode & 0o077 == 0
