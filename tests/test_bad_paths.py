"""Every command against paths and environments a user can get wrong: a message and exit 1 or 2, never a crash.

Each case runs every command of `credd --help` (with the fewest arguments it
takes) in-process through `credd.cli.main`, which is fast; a few run through
the real `credd` command as well. Nothing here may print "internal error" or
a traceback, and every run is bounded: `serve` only meets cases in which it
cannot start, `service install`/`uninstall` run with `--dry-run`, and `demo`
is left out (it makes its own throw-away home, config and environment and
reads none of the user's; tests/test_demo.py runs it).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from credd import client
from credd.cli import build_parser, main
from credd.context import Context
from credd.errors import CreddError
from tests.conftest import Home, run_credd, wait_for

CONFIG = """\
version: 1
sources:
  alice:
    sts_endpoint: http://127.0.0.1:9
profiles:
  alice-session:
    source: alice
"""

# The fewest arguments each command takes: a new command without an entry here fails `test_every_command_is_covered`.
COMMANDS: dict[str, list[str]] = {
    "process": ["process", "alice-session"],
    "serve": ["serve"],
    "status": ["status"],
    "refresh": ["refresh"],
    "mfa": ["mfa", "alice", "123456"],
    "env": ["env", "alice-session"],
    "exec": ["exec", "alice-session", "--", "true"],
    "config check": ["config", "check"],
    "config import": ["config", "import", "--dry-run"],
    "keys set": ["keys", "set", "alice"],
    "keys import": ["keys", "import", "alice", "--from-profile", "old"],
    "keys rm": ["keys", "rm", "alice"],
    "keys ls": ["keys", "ls"],
    "totp set": ["totp", "set", "alice"],
    "doctor": ["doctor"],
    "completion": ["completion", "bash"],
    "service install": ["service", "install", "--dry-run"],
    "service uninstall": ["service", "uninstall", "--dry-run"],
    "service status": ["service", "status"],
    "token issue": ["token", "issue", "alice-session"],
    "token rotate": ["token", "rotate", "0123abcd"],
    "token revoke": ["token", "revoke", "0123abcd"],
    "init": ["init", "--source", "bob"],  # last: where the path is merely missing, it writes a good config there
}
# A command's other forms that read more than its fewest arguments do: run with every case as well.
FORMS: dict[str, list[str]] = {
    "keys import --from-aws-vault": ["keys", "import", "alice", "--from-aws-vault", "alice"],  # D-Bus, $AWS_VAULT_*
}
NOT_RUN = {"demo": "its own throw-away home and environment; tests/test_demo.py"}
STARTS = {"serve"}  # runs only where it cannot start, in a subprocess with a deadline
# They read no config, so a bad one is no error to them; `init` writes one where none is.
MAY_PASS = {"service uninstall", "service status", "init", "completion"}
# Exit codes a command has beyond 0, 1 and 2, each documented: `service status` says 3 for "not running", as systemctl.
OWN_EXIT_CODES = {"service status": {3}}


def leaf_commands(parser: argparse.ArgumentParser, prefix: str = "") -> list[str]:
    names = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                names += leaf_commands(sub, f"{prefix}{name} ") or [f"{prefix}{name}"]
    return names


def test_every_command_is_covered():
    assert sorted(leaf_commands(build_parser())) == sorted([*COMMANDS, *NOT_RUN])


# Cases --------------------------------------------------------------------------------------------------------------
# Each makes its fault under `root` (the test's tmp dir) and returns the environment changes it needs; `config` is the
# --config argument to give (None: none, so the environment decides).


def a_file(root: Path) -> Path:
    path = root / "afile"
    path.write_text("not a directory\n")
    return path


def a_socket(root: Path) -> Path:
    path = root / "s"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()
    return path


def a_fifo(root: Path) -> Path:
    path = root / "fifo.yaml"
    os.mkfifo(path)
    return path


def unreadable(root: Path) -> Path:
    path = root / "unreadable.yaml"
    path.write_text(CONFIG)
    path.chmod(0)  # root reads it anyway: then it is a good config in a file no one else may read
    return path


def dangling(root: Path) -> Path:
    path = root / "dangling.yaml"
    path.symlink_to(root / "nowhere" / "config.yaml")
    return path


def non_utf8(root: Path) -> Path:
    path = Path(os.fsdecode(bytes(root) + b"/\xff\xfe.yaml"))
    path.write_text(CONFIG)
    path.chmod(0o600)
    return path


BAD_CONFIG_PATHS: dict[str, Callable[[Path], str]] = {
    "unset variable": lambda root: "$NOPE/x.yaml",
    "unset variable in braces": lambda root: "${NOPE}/x.yaml",
    "through a file": lambda root: f"{a_file(root)}/c.yaml",
    "relative through a file": lambda root: (a_file(root), "afile/c.yaml")[1],
    "a directory": lambda root: str(root),  # noqa: PLW0108  a row like the others
    "a socket": lambda root: str(a_socket(root)),
    "a fifo": lambda root: str(a_fifo(root)),
    "unreadable": lambda root: str(unreadable(root)),
    "dangling symlink": lambda root: str(dangling(root)),
    "symlink loop": lambda root: (os.symlink(root / "loop", root / "loop"), str(root / "loop"))[1],
    "non-UTF-8 bytes": lambda root: str(non_utf8(root)),
    "a long name": lambda root: str(root / ("n" * 300) / "c.yaml"),
    "a long path": lambda root: "/" + "/".join(["d" * 200] * 30) + "/c.yaml",
    "a NUL-free control character": lambda root: str(root / "a\x1bb.yaml"),
    "group-writable": lambda root: str(_with_mode(root, 0o664)),
    "in an open directory": lambda root: str(_in_open_directory(root)),
}


def _with_mode(root: Path, mode: int) -> Path:
    path = root / "config.yaml"
    path.write_text(CONFIG)
    path.chmod(mode)
    return path


def _in_open_directory(root: Path) -> Path:
    directory = root / "open"
    directory.mkdir()
    directory.chmod(0o777)
    path = directory / "config.yaml"
    path.write_text(CONFIG)
    path.chmod(0o600)
    return path


def _unset(name: str) -> Callable[[Path], dict[str, str | None]]:
    return lambda root: {name: None}


BAD_ENVIRONMENTS: dict[str, Callable[[Path], dict[str, str | None]]] = {
    "HOME unset": lambda root: {"HOME": None},
    "HOME empty": lambda root: {"HOME": ""},
    "HOME relative": lambda root: {"HOME": "rel/home"},
    "HOME a file": lambda root: {"HOME": str(a_file(root))},
    "XDG_CONFIG_HOME a file": lambda root: {"XDG_CONFIG_HOME": str(a_file(root))},
    "XDG_CONFIG_HOME relative": lambda root: {"XDG_CONFIG_HOME": "rel"},
    "XDG_RUNTIME_DIR a file": lambda root: {"XDG_RUNTIME_DIR": str(a_file(root))},
    "XDG_RUNTIME_DIR long": lambda root: {"XDG_RUNTIME_DIR": str(root / ("r" * 200))},
    "XDG_STATE_HOME a file": lambda root: {"XDG_STATE_HOME": str(a_file(root))},
    "XDG_DATA_HOME a file": lambda root: {"XDG_DATA_HOME": str(a_file(root))},
    "CREDD_CONFIG unset variable": lambda root: {"CREDD_CONFIG": "$NOPE/x.yaml"},
    "CREDD_CONFIG through a file": lambda root: {"CREDD_CONFIG": f"{a_file(root)}/c.yaml"},
    "CREDD_SOCKET relative": lambda root: {"CREDD_SOCKET": "rel.sock"},
    "CREDD_SOCKET unset variable": lambda root: {"CREDD_SOCKET": "$NOPE/s.sock"},
    "CREDD_SOCKET through a file": lambda root: {"CREDD_SOCKET": f"{a_file(root)}/s.sock"},
    "CREDD_SOCKET a directory": lambda root: {"CREDD_SOCKET": str(root)},
    "CREDD_SOCKET too long": lambda root: {"CREDD_SOCKET": "/tmp/" + "s" * 200},
    "CREDD_SOCKET a regular file": lambda root: {"CREDD_SOCKET": str(a_file(root))},
    "AWS_SHARED_CREDENTIALS_FILE unset variable": lambda root: {"AWS_SHARED_CREDENTIALS_FILE": "$NOPE/c"},
    "AWS_SHARED_CREDENTIALS_FILE relative": lambda root: {"AWS_SHARED_CREDENTIALS_FILE": "creds"},
    "AWS_SHARED_CREDENTIALS_FILE through a file": lambda root: {"AWS_SHARED_CREDENTIALS_FILE": f"{a_file(root)}/c"},
    "AWS_SHARED_CREDENTIALS_FILE a directory": lambda root: {"AWS_SHARED_CREDENTIALS_FILE": str(root)},
    "AWS_SHARED_CREDENTIALS_FILE non-UTF-8": lambda root: {
        "AWS_SHARED_CREDENTIALS_FILE": os.fsdecode(bytes(root) + b"/\xff")},
    "AWS_CONFIG_FILE unset variable": lambda root: {"AWS_CONFIG_FILE": "$NOPE/config"},
    "AWS_CONFIG_FILE through a file": lambda root: {"AWS_CONFIG_FILE": f"{a_file(root)}/config"},
    "AWS_VAULT_BACKEND unknown": lambda root: {"AWS_VAULT_BACKEND": "nope"},
    "AWS_VAULT_SECRET_SERVICE_COLLECTION_NAME a path": lambda root: {
        "AWS_VAULT_SECRET_SERVICE_COLLECTION_NAME": "../../x\x1b"},
    "DBUS_SESSION_BUS_ADDRESS nowhere": lambda root: {"DBUS_SESSION_BUS_ADDRESS": f"unix:path={root}/no-bus"},
    "DBUS_SESSION_BUS_ADDRESS garbage": lambda root: {"DBUS_SESSION_BUS_ADDRESS": "not an address"},
}
# Cases that end in a good config after all: `config check` passes there. Root reads a file of mode 000.
GOOD_CONFIGS = {"non-UTF-8 bytes", *(["unreadable"] if os.geteuid() == 0 else [])}
# Where a bad socket keeps the daemon from starting, `serve` is run too.
SERVE_CANNOT_START = {name for name in BAD_ENVIRONMENTS if name.startswith("CREDD_SOCKET")}


@pytest.fixture
def user(plaintext_keyring: Home, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Home:
    """A home with a good config, a keyring in it and a scratch directory (`root`) for the faults."""
    plaintext_keyring.write_config(CONFIG)
    (tmp_path / "faults").mkdir(mode=0o700)
    monkeypatch.chdir(tmp_path / "faults")
    return plaintext_keyring


def run_in_process(args: list[str], env: dict[str, str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    context = Context(env=dict(env), stdin=io.StringIO(""), stdout=out, stderr=err)
    try:
        status = main(args, context)
    except SystemExit as e:  # argparse
        status = e.code if isinstance(e.code, int) else 2
    captured = capsys.readouterr()
    return status, out.getvalue() + err.getvalue() + captured.out + captured.err


def judged(name: str, status: int, output: str, allowed: set[int]) -> list[str]:
    problems = []
    allowed = allowed | OWN_EXIT_CODES.get(name, set())
    if "internal error" in output or "Traceback" in output:
        problems.append(f"{name}: crashed: {output.strip()[-400:]}")
    elif status not in allowed:
        problems.append(f"{name}: exit {status}, expected one of {sorted(allowed)}: {output.strip()[-300:]}")
    elif status and "credd" not in output:
        problems.append(f"{name}: exit {status} without a message")
    return problems


def serve_with_deadline(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """`credd serve` in a subprocess, with a deadline of 20 s: its exit status and output if it refused to start;
    0 and "serve started" once its socket takes a connection (then it is stopped), or when the deadline passes."""
    config = args[args.index("--config") + 1] if "--config" in args else None
    try:
        sock: str | None = client.socket_path(env, config)
    except CreddError:
        sock = None  # serve must refuse such a socket: the deadline is the judge
    process = subprocess.Popen([sys.executable, "-m", "credd", *args], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    with contextlib.suppress(AssertionError):  # the deadline passed: judged below as a start
        wait_for("serve to refuse or start", lambda: process.poll() is not None or _answers(sock), timeout=20)
    if process.poll() is None:
        process.terminate()
        process.communicate(timeout=20)
        return 0, "serve started instead of refusing"
    output, _ = process.communicate()
    return process.returncode, output


def _answers(sock: str | None) -> bool:
    if sock is None:
        return False
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(sock)
        except OSError:
            return False
    return True


@pytest.mark.parametrize("how", ["--config", "CREDD_CONFIG"])
@pytest.mark.parametrize("case", list(BAD_CONFIG_PATHS))
def test_bad_config_path(user: Home, capsys, monkeypatch, tmp_path: Path, case: str, how: str):
    config = BAD_CONFIG_PATHS[case](tmp_path / "faults")
    env = dict(user.env)
    if how == "CREDD_CONFIG":
        env["CREDD_CONFIG"] = config
        monkeypatch.setenv("CREDD_CONFIG", config)
    problems = []
    for name, args in {**COMMANDS, **FORMS}.items():
        argv = ["--config", config, *args] if how == "--config" else args
        if name in STARTS:
            status, output = serve_with_deadline(argv, env)
        else:
            status, output = run_in_process(argv, env, capsys)
        problems += judged(name, status, output, {0, 1, 2} if case in GOOD_CONFIGS or name in MAY_PASS else {1, 2})
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("case", list(BAD_ENVIRONMENTS))
def test_bad_environment(user: Home, capsys, monkeypatch, tmp_path: Path, case: str):
    changes = BAD_ENVIRONMENTS[case](tmp_path / "faults")
    env = dict(user.env)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
            monkeypatch.delenv(name, raising=False)
        else:
            env[name] = value
            monkeypatch.setenv(name, value)
    # What the user's machine would hold outside the test's home stays out of reach.
    env.setdefault("AWS_CONFIG_FILE", str(user.root / ".aws" / "config"))
    problems = []
    for name, args in {**COMMANDS, **FORMS}.items():
        if name in STARTS:
            if case in SERVE_CANNOT_START:
                status, output = serve_with_deadline(args, env)
                problems += judged(name, status, output, {1, 2})
            continue
        status, output = run_in_process(args, env, capsys)
        problems += judged(name, status, output, {0, 1, 2})
    assert not problems, "\n".join(problems)


# The issue's own examples, through the real command ------------------------------------------------------------------


def test_unset_variable_in_config_path_is_a_usage_error(user: Home):
    result = run_credd(["--config", "$NOPE/x.yaml", "config", "check"], user)
    assert result.returncode == 2
    assert result.stderr == ("credd: error: --config $NOPE/x.yaml: $NOPE is not set in the environment; set it, "
                             "or give the path without it\n")


def test_config_path_through_a_file_is_named(user: Home, tmp_path: Path):
    a_file(tmp_path)
    result = run_credd(["--config", "afile/c.yaml", "init", "--source", "a"], user, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == ("credd: error: cannot write afile/c.yaml: afile is not a directory; give --config a "
                             "path in a directory\n")


def test_non_utf8_config_path_through_the_real_command(user: Home, tmp_path: Path):
    path = non_utf8(tmp_path)
    result = subprocess.run([sys.executable, "-m", "credd", "--config", bytes(path), "config", "check"],
                            env=user.env, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(b": ok (1 source, 1 profile)\n")
    assert b"internal error" not in result.stdout + result.stderr


@pytest.mark.parametrize("case", ["a fifo", "a socket", "dangling symlink", "a long path"])
def test_real_command_on_bad_config_paths(user: Home, tmp_path: Path, case: str):
    config = BAD_CONFIG_PATHS[case](tmp_path)
    result = run_credd(["--config", config, "config", "check"], user, timeout=20)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("credd: error: ") and "internal error" not in result.stderr
    assert stat.S_ISREG(user.config.stat().st_mode)  # the good config was not touched


def test_serve_never_removes_a_file_at_the_socket_path(user: Home, tmp_path: Path):
    keep = tmp_path / "faults" / "precious"
    keep.write_text("mine\n")
    result = run_credd(["serve"], user, extra_env={"CREDD_SOCKET": str(keep)}, timeout=20)
    assert result.returncode == 1
    assert f"credd: error: {keep} is a file that is not a socket, which credd does not remove" in result.stderr
    assert keep.read_text() == "mine\n"
