"""Core dumps off in every credd command that holds a secret: the real command, waiting at a real prompt."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import TEST_KEY_ID, TEST_SECRET_KEY, TEST_TOTP_SEED, Home
from tests.socket_helpers import RunningServer
from tests.test_access import core_limit
from tests.test_hook import CREDENTIALS, Script

MFA_NEEDED = {"ok": False, "error": "mfa-required", "source": "alice", "message": "needs a code"}
# The shell in the pane raises the soft limit first: a test machine's default (often 0) would hide the fix.
UNLIMITED = ["sh", "-c", 'ulimit -S -c unlimited && exec "$@"', "sh", sys.executable, "-m", "credd"]


def credd_at_prompt(terminal, args: list[str], prompt: str) -> int:
    terminal.start([*UNLIMITED, *args])
    terminal.wait_for(prompt)
    return terminal.credd_pid()


@pytest.mark.parametrize("command,answers", [
    (["keys", "set", "alice"], [("Access key ID for alice:", TEST_KEY_ID), ("Secret access key for alice:",
                                                                             TEST_SECRET_KEY)]),
    (["totp", "set", "alice"], [("TOTP seed (base32 or otpauth:// URI) for alice:", TEST_TOTP_SEED)]),
])
def test_keyring_prompts_run_without_core_files(plaintext_keyring: Home, terminal, command, answers):
    plaintext_keyring.write_config("sources:\n  alice: {}\nprofiles:\n  p: {source: alice}\n")
    pid = credd_at_prompt(terminal, command, answers[0][0])
    assert core_limit(pid) == ["0", "unlimited"]
    for prompt, answer in answers:
        terminal.wait_for(prompt)  # a secret typed ahead would echo: the hidden prompt is not up yet
        terminal.type(answer)
    assert terminal.exit_status() == 0


@pytest.mark.parametrize("command,replies", [
    (["mfa", "alice"], [{"ok": True, "message": "source alice: new session, 2 profile(s) refreshed"}]),
    (["process", "prod-admin"], [MFA_NEEDED, {"ok": True}, {"ok": True, "credentials": CREDENTIALS}]),
    (["env", "prod-admin"], [MFA_NEEDED, {"ok": True}, {"ok": True, "credentials": CREDENTIALS}]),
])
def test_commands_asking_for_a_code_run_without_core_files(home: Home, sock_path, terminal, command, replies):
    server = RunningServer(sock_path, Script(*replies))
    try:
        terminal.env["CREDD_SOCKET"] = str(sock_path)
        pid = credd_at_prompt(terminal, command, "MFA code for alice")
        assert core_limit(pid) == ["0", "unlimited"]
        terminal.type("123456")
        assert terminal.exit_status() == 0
    finally:
        server.stop()


def test_exec_runs_without_core_files_and_gives_the_command_its_own_limit(home: Home, sock_path, terminal):
    server = RunningServer(sock_path, Script(MFA_NEEDED, {"ok": True}, {"ok": True, "credentials": CREDENTIALS}))
    try:
        terminal.env["CREDD_SOCKET"] = str(sock_path)
        out = home.root / "limit"
        pid = credd_at_prompt(terminal, ["exec", "prod-admin", "--", "sh", "-c", f"ulimit -c > {out}"],
                              "MFA code for alice")
        assert core_limit(pid) == ["0", "unlimited"]
        terminal.type("123456")
        assert terminal.exit_status() == 0
        assert out.read_text().strip() == "unlimited"
    finally:
        server.stop()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_DUMPABLE is Linux's")
@pytest.mark.parametrize("command,dumpable", [(["status"], 0), (["process", "p"], 1)])
def test_commands_but_the_hook_are_undumpable(home: Home, sock_path, command, dumpable):
    """PR_GET_DUMPABLE, asked inside the real command just before it exits (atexit)."""
    probe = ("import atexit, ctypes, runpy, sys\n"
             "atexit.register(lambda: print('dumpable', ctypes.CDLL(None).prctl(3, 0, 0, 0, 0), file=sys.stderr))\n"
             f"sys.argv = ['credd', *{command!r}]\n"
             "runpy.run_module('credd', run_name='__main__', alter_sys=True)\n")
    result = subprocess.run([sys.executable, "-c", probe], env=dict(home.env, CREDD_SOCKET=str(sock_path)),
                            capture_output=True, text=True, timeout=60)
    assert f"dumpable {dumpable}" in result.stderr, result.stderr
