"""The README's "First run" block, run as written: the README cannot drift from what works.

The commands are read out of README.md. What the test adds, each for a reason said where it is done:
the local STS's endpoint (for credd in `init`, for the AWS CLI on its command line), the long-term key
and TOTP seed on stdin (the documented non-terminal form of `keys set` and `totp set`), and `credd serve`
in the background in place of `credd service install` (no user systemd here).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from credd import paths
from tests.conftest import TEST_KEY_ID, TEST_SECRET_KEY, TEST_TOTP_SEED, assert_no_secrets, require_tool
from tests.fixtures_daemon import DaemonProcess

README = Path(__file__).resolve().parent.parent / "README.md"


def first_run_commands(text: str) -> list[list[str]]:
    """The `sh` block under "## First run": one argv per command, continuation lines joined, comments dropped."""
    section = text.split("\n## First run", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL).group(1)
    return [shlex.split(line, comments=True) for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def test_first_run_block_parses_into_the_commands_a_user_types():
    commands = first_run_commands(README.read_text())
    assert commands[0][:2] == ["credd", "init"] and commands[-1][0] == "aws"
    assert all(argv[0] in ("credd", "aws") for argv in commands)


def test_the_readmes_first_run_works_as_written(secret_service, live_sts, moto_url, tmp_path):
    home = secret_service  # a real Secret Service (gnome-keyring on a private D-Bus); nothing names a backend
    aws = require_tool("aws")
    env = dict(home.env, PATH=os.path.dirname(sys.executable) + os.pathsep + home.env.get("PATH", ""))
    socket = Path(paths.default_socket(env, sys.platform, os.getuid()))
    daemon = DaemonProcess(home, socket, tmp_path)
    daemon.env = dict(env)  # the default socket, as a user has it: no $CREDD_SOCKET
    commands = first_run_commands(README.read_text())
    try:
        for argv in commands:
            stdin = ""
            if argv[:2] == ["credd", "init"]:
                argv = [*argv, "--sts-endpoint", live_sts.url]  # credd's STS: the local one
            elif argv[:3] == ["credd", "keys", "set"]:
                stdin = f"{TEST_KEY_ID}\n{TEST_SECRET_KEY}\n"  # two lines on stdin, as documented
            elif argv[:3] == ["credd", "totp", "set"]:
                stdin = TEST_TOTP_SEED + "\n"
            elif argv[:3] == ["credd", "service", "install"]:
                # No user systemd here: the daemon the unit would start, in the background.
                daemon.start()
                daemon.wait_state("prod-admin", "fresh")  # install returns at READY=1; the first refresh follows
                continue
            elif argv[0] == "aws":
                argv = [aws, *argv[1:], "--endpoint-url", moto_url]  # the AWS CLI's STS: the local one
            result = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env, timeout=120)
            assert_no_secrets(result.stdout + result.stderr)
            assert result.returncode == 0, f"{shlex.join(argv)} failed:\n{result.stdout}{result.stderr}"
        identity = json.loads(result.stdout)
        assert re.fullmatch(r"arn:aws:sts::222222222222:assumed-role/Admin/credd-alice", identity["Arn"])
    finally:
        daemon.finish()
