"""`credd process`, the real command, against a real socket server with scripted replies."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.conftest import Home, run_credd, wait_for
from tests.socket_helpers import RunningServer

CREDENTIALS = {
    "Version": 1,
    "AccessKeyId": "ASIAEXAMPLEEXAMPLE12",
    "SecretAccessKey": "hook-test-secret",
    "SessionToken": "hook-test-token",
    "Expiration": "2026-11-22T13:45:00Z",
}


NEEDS_CODE = {"ok": False, "error": "mfa-required", "source": "alice", "message": "needs a code"}


class Script:
    """The daemon's side: replies chosen by the test, requests recorded."""

    def __init__(self, *replies: dict, delay: float = 0.0) -> None:
        self.replies = list(replies)
        self.requests: list[dict] = []
        self.delay = delay

    def __call__(self, request: dict) -> dict:
        self.requests.append(request)
        time.sleep(self.delay)
        return self.replies.pop(0)


@pytest.fixture
def daemon(sock_path):
    servers = []

    def start(*replies: dict, delay: float = 0.0) -> Script:
        script = Script(*replies, delay=delay)
        servers.append(RunningServer(sock_path, script))
        return script

    yield start
    for server in servers:
        server.stop()


def hook(home: Home, sock_path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_credd(["process", *args], home, extra_env={"CREDD_SOCKET": str(sock_path), **env})


def start_hook_as_the_aws_cli_does(terminal, home: Home, sock_path) -> None:
    """`credd process prod-admin` with stdout a pipe (to out.json) and the terminal only its controlling tty."""
    terminal.env["CREDD_SOCKET"] = str(sock_path)
    terminal.start(["sh", "-c", f"{sys.executable} -m credd process prod-admin | cat > {home.root}/out.json"])


def test_prints_exactly_the_credential_process_json(home, daemon, sock_path):
    script = daemon({"ok": True, "credentials": dict(CREDENTIALS, Extra="dropped")})
    result = hook(home, sock_path, "prod-admin")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == CREDENTIALS
    assert list(json.loads(result.stdout)) == ["Version", "AccessKeyId", "SecretAccessKey", "SessionToken",
                                              "Expiration"]
    assert result.stderr == ""
    assert script.requests == [{"op": "credentials", "profile": "prod-admin"}]


def test_daemon_error_is_one_line_on_stderr(home, daemon, sock_path):
    daemon({"ok": False, "error": "failed", "message": "profile 'x' is not in /c.yaml; add it under profiles:"})
    result = hook(home, sock_path, "x")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == "credd: profile 'x' is not in /c.yaml; add it under profiles:\n"


def test_daemon_not_running(home, sock_path):
    result = hook(home, sock_path, "p")
    assert result.returncode == 1
    assert result.stderr == (f"credd: the credd daemon is not running (nothing listens at {sock_path}); start it "
                             "with `credd service install` (starts at login) or `credd serve` (in a terminal)\n")


def test_bounded_wait(home, daemon, sock_path):
    daemon({"ok": True, "credentials": CREDENTIALS}, delay=3)
    started = time.monotonic()
    result = hook(home, sock_path, "p", CREDD_PROCESS_TIMEOUT="1")
    assert time.monotonic() - started < 2.5
    assert result.returncode == 1 and "did not answer within 1 s" in result.stderr


@pytest.mark.parametrize("credentials", [
    None, {}, dict(CREDENTIALS, Version=2), dict(CREDENTIALS, SessionToken=""), dict(CREDENTIALS, Expiration=5),
])
def test_never_half_a_credential(home, daemon, sock_path, credentials):
    daemon({"ok": True, "credentials": credentials})
    result = hook(home, sock_path, "p")
    assert result.returncode == 1 and result.stdout == ""
    assert "credentials" in result.stderr


def test_mfa_needed_without_a_terminal_says_what_to_run(home, daemon, sock_path):
    daemon(NEEDS_CODE)
    result = subprocess.run([sys.executable, "-m", "credd", "process", "prod-admin"], capture_output=True, text=True,
                            env=dict(home.env, CREDD_SOCKET=str(sock_path)), start_new_session=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr == ("credd: profile prod-admin needs an MFA code for source alice: run `credd mfa alice` in a "
                             "terminal, then try again\n")


def test_mfa_prompt_on_the_terminal(home, daemon, sock_path, terminal):
    script = daemon(NEEDS_CODE,
                    {"ok": True}, {"ok": True, "credentials": CREDENTIALS})
    terminal.env["CREDD_SOCKET"] = str(sock_path)
    # As the AWS CLI runs it: stdout is a pipe, the terminal is only the controlling tty.
    terminal.start(["sh", "-c", f"{sys.executable} -m credd process prod-admin | cat > {home.root}/out.json"])
    terminal.wait_for("credd: MFA code for alice (profile prod-admin):")
    terminal.type("123456")
    assert terminal.exit_status() == 0
    assert json.loads((home.root / "out.json").read_text()) == CREDENTIALS
    assert script.requests[1] == {"op": "mfa", "source": "alice", "code": "123456"}
    assert "123456" not in terminal.screen()  # not echoed, as `credd mfa` and the AWS CLI do not


def test_mfa_prompt_asks_again_after_a_typo(home, daemon, sock_path, terminal):
    script = daemon(NEEDS_CODE,
                    {"ok": True}, {"ok": True, "credentials": CREDENTIALS})
    start_hook_as_the_aws_cli_does(terminal, home, sock_path)
    terminal.wait_for("credd: MFA code for alice (profile prod-admin):")
    terminal.type("12ab")
    terminal.wait_for("credd: that is not an MFA code: expected 6 digits, got 4 characters")
    terminal.type("")
    terminal.wait_for("credd: that is not an MFA code: expected 6 digits, got 0 characters")
    terminal.type("654321")
    assert terminal.exit_status() == 0
    assert json.loads((home.root / "out.json").read_text()) == CREDENTIALS
    assert script.requests[1] == {"op": "mfa", "source": "alice", "code": "654321"}
    screen = terminal.screen()
    assert screen.count("credd: MFA code for alice (profile prod-admin):") == 3
    assert "12ab" not in screen and "654321" not in screen


def test_mfa_prompt_gives_up_after_three_typos(home, daemon, sock_path, terminal):
    script = daemon(NEEDS_CODE)
    terminal.env["CREDD_SOCKET"] = str(sock_path)
    terminal.start([sys.executable, "-m", "credd", "process", "prod-admin"])
    for asked, typo in enumerate(("1", "12345", "1234567"), start=1):
        wait_for_prompt(terminal, asked)
        terminal.type(typo)
    assert terminal.exit_status() == 1
    assert ("credd: no 6-digit MFA code in 3 tries; run `credd mfa alice` in a terminal, then try again"
            in terminal.screen().replace("\n", ""))
    assert len(script.requests) == 1  # no code was handed in


def wait_for_prompt(terminal, times: int) -> None:
    """Until the prompt has been shown `times` times: typing sooner would go to a terminal not yet hidden."""
    prompt = "credd: MFA code for alice (profile prod-admin):"
    wait_for(f"prompt number {times}", lambda: terminal.screen().count(prompt) >= times, log=terminal.screen)


USED = {"ok": False, "error": "mfa-code-used", "message": "source alice: that MFA code was already sent to AWS for "
        "arn:aws:iam::111111111111:mfa/alice 12 s ago, and AWS accepts each code only once; wait for your device "
        "to show the next code, then run `credd mfa alice` with it"}


def test_mfa_prompt_asks_for_the_next_code_after_one_aws_took_already(home, daemon, sock_path, terminal):
    script = daemon(NEEDS_CODE, USED, NEEDS_CODE, {"ok": True}, {"ok": True, "credentials": CREDENTIALS})
    start_hook_as_the_aws_cli_does(terminal, home, sock_path)
    terminal.wait_for("credd: MFA code for alice (profile prod-admin):")
    terminal.type("123456")
    terminal.wait_for("credd: that code was already sent to AWS, which takes each code once; type the next one")
    terminal.type("654321")
    assert terminal.exit_status() == 0
    assert json.loads((home.root / "out.json").read_text()) == CREDENTIALS
    assert [r.get("code") for r in script.requests if r["op"] == "mfa"] == ["123456", "654321"]
    assert "654321" not in terminal.screen()


def test_a_used_code_handed_in_by_another_prompt_still_gets_credentials(home, daemon, sock_path, terminal):
    """Two `aws` calls prompted at once and the same code typed in both: the second finds the session made."""
    script = daemon(NEEDS_CODE, USED, {"ok": True, "credentials": CREDENTIALS})
    start_hook_as_the_aws_cli_does(terminal, home, sock_path)
    terminal.wait_for("credd: MFA code for alice (profile prod-admin):")
    terminal.type("123456")
    assert terminal.exit_status() == 0
    assert json.loads((home.root / "out.json").read_text()) == CREDENTIALS
    assert len(script.requests) == 3  # no second prompt, no second code


def test_used_codes_three_times_end_with_what_the_daemon_said(home, daemon, sock_path, terminal):
    script = daemon(NEEDS_CODE, USED, NEEDS_CODE, USED, NEEDS_CODE, USED, NEEDS_CODE)
    terminal.env["CREDD_SOCKET"] = str(sock_path)
    terminal.start([sys.executable, "-m", "credd", "process", "prod-admin"])
    for asked, code in enumerate(("111111", "222222", "333333"), start=1):
        wait_for_prompt(terminal, asked)
        terminal.type(code)
    assert terminal.exit_status() == 1
    assert [r.get("code") for r in script.requests if r["op"] == "mfa"] == ["111111", "222222", "333333"]
    assert terminal.screen().count("credd: MFA code for alice (profile prod-admin):") == 3
    wanted = "AWS accepts each code only once; wait for your device to show the next code, then run `credd mfa alice`"
    assert "".join(wanted.split()) in "".join(terminal.screen().split())  # the terminal wraps at any column


def test_socket_from_the_config_file(home, daemon, sock_path):
    home.write_config(f"version: 1\nsocket: '{sock_path}'   # mine\nsources: {{a: {{}}}}\n")
    daemon({"ok": True, "credentials": CREDENTIALS})
    result = run_credd(["process", "p"], home)
    assert result.returncode == 0, result.stderr


def test_imports_only_the_standard_library(home, sock_path):
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "credd", "process", "p"], capture_output=True,
                            text=True, env=dict(home.env, CREDD_SOCKET=str(sock_path)), timeout=30)
    modules = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    top_level = {name.split(".")[0] for name in modules} - {"imported package", ""}
    third_party = {name for name in top_level if name not in sys.stdlib_module_names and name != "credd"
                   and not name.startswith(("__editable__", "_distutils_hack", "sitecustomize", "_virtualenv"))}
    assert third_party == set()
    assert "credd.hook" in modules
    assert not {"credd.cli", "argparse", "pathlib", "yaml", "keyring", "boto3"} & modules - _site_imports()


def _site_imports() -> set[str]:
    """What this interpreter imports before running any code (an editable install adds pathlib there)."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", "pass"], capture_output=True, text=True)
    return {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}


def test_hints_carry_the_config_the_user_runs_with(home: Home, tmp_path):
    """`credd process` (its config from its own argv), `status` and `env` name commands with the user's --config."""
    config = tmp_path / "my configs" / "c.yaml"
    config.parent.mkdir()
    config.write_text("version: 1\nsources:\n  alice: {}\nprofiles:\n  p:\n    source: alice\n")
    quoted = f"'{config}'"  # shell-quoted: the path has a space
    hook = run_credd(["process", "--config", str(config), "p"], home)
    status = run_credd(["--config", str(config), "status"], home)
    env = run_credd(["env", "--config", str(config), "p"], home)
    for result in (hook, status, env):
        assert result.returncode == 1
        assert (f"start it with `credd --config {quoted} service install` (starts at login) or "
                f"`credd --config {quoted} serve` (in a terminal)") in result.stderr, result.stderr
    plain = run_credd(["process", "p"], home)
    assert "start it with `credd service install`" in plain.stderr


def test_credd_mfa_prompt_asks_again_after_a_typo_too(home, daemon, sock_path, terminal):
    script = daemon({"ok": True, "message": "source alice: new session, 2 profile(s) refreshed"})
    terminal.env["CREDD_SOCKET"] = str(sock_path)
    terminal.credd("mfa", "alice")
    terminal.wait_for("MFA code for alice:")
    terminal.type("12ab")
    terminal.wait_for("credd: that is not an MFA code: expected 6 digits, got 4 characters; try again")
    terminal.type("123456")
    assert terminal.exit_status() == 0
    assert script.requests == [{"op": "mfa", "source": "alice", "code": "123456"}]
    assert "12ab" not in terminal.screen() and "123456" not in terminal.screen()
