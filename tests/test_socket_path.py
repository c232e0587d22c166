"""Where the socket is: one answer for the daemon, the hook and every command that asks it.

The daemon takes `socket:` from the YAML; `credd process` and the other
clients read the same line without YAML (`paths.socket_file`). The config
loader refuses a form the two would read differently, and every client asks
the one resolver.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from credd import client, paths
from credd.commands import control
from credd.commands import doctor as doctor_command
from credd.config import load_config
from credd.context import Context
from credd.errors import ConfigError, UsageError
from tests.conftest import Home, run_credd

START = "version: 1\nsources: {alice: {}}\nprofiles: {p: {source: alice}}\n"

# `socket:` forms YAML reads as one path and the line scan as another (or as none).
MISREAD = {
    "doubled quotes": ("socket: '/tmp/it''s/x.sock'\n", 4, "\"/tmp/it''s/x.sock\"", "\"/tmp/it's/x.sock\""),
    "folded block": ("socket: >-\n  /tmp/x.sock\n", 4, "'>-'", "'/tmp/x.sock'"),
    "literal block": ("socket: |-\n  /tmp/x.sock\n", 4, "'|-'", "'/tmp/x.sock'"),
    "escape in double quotes": ('socket: "/tmp/\\x41.sock"\n', 4, "'/tmp/\\\\x41.sock'", "'/tmp/A.sock'"),
    "on the next line": ("socket:\n  /tmp/x.sock\n", 4, "no `socket: PATH` line", "'/tmp/x.sock'"),
    "a tag": ("socket: !!str /tmp/x.sock\n", 4, "'!!str /tmp/x.sock'", "'/tmp/x.sock'"),
    "a quote at the end": ("socket: /tmp/x.sock'\n", 4, "'/tmp/x.sock'", "\"/tmp/x.sock'\""),
    "quoted key": ('"socket": /tmp/x.sock\n', 4, "no `socket: PATH` line", "'/tmp/x.sock'"),
}
# Forms both read alike: the path each gives, with HOME=/home/u.
AGREED = {
    "plain": ("socket: /tmp/x.sock\n", "/tmp/x.sock"),
    "comment": ("socket: /tmp/x.sock   # mine\n", "/tmp/x.sock"),
    "single quotes": ("socket: '/tmp/a b.sock' # mine\n", "/tmp/a b.sock"),
    "double quotes": ('socket: "/tmp/a b.sock"\n', "/tmp/a b.sock"),
    "hash in the path": ("socket: /tmp/x#y.sock\n", "/tmp/x#y.sock"),
    "home": ("socket: ~/run/credd.sock\n", "{home}/run/credd.sock"),
    "variable": ("socket: ${HOME}/run/credd.sock\n", "{home}/run/credd.sock"),
    "CRLF": ("socket: /tmp/x.sock\r\n", "/tmp/x.sock"),
    "none": ("", "{runtime}/credd/credd.sock"),
}


def _config(home: Home, tail: str) -> Path:
    return home.write_config(START + tail)


@pytest.mark.parametrize("case", list(MISREAD))
def test_the_config_refuses_a_socket_the_clients_would_read_otherwise(home: Home, case: str):
    tail, line, scanned, written = MISREAD[case]
    path = _config(home, tail)
    with pytest.raises(ConfigError) as raised:
        load_config(path, home.env, "linux", home.root.stat().st_uid)
    message = str(raised.value)
    assert message.startswith(f"{path}:{line}: socket: credd's clients ")
    assert scanned in message and written in message, message
    assert "write it on one line as `socket: PATH`" in message


def test_a_socket_path_ending_in_a_slash_is_refused(home: Home):
    """The daemon's Path drops the `/`; a client's connect() does not, and finds a directory where a socket is."""
    path = _config(home, "socket: /tmp/x.sock/   # mine\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path, home.env, "linux", home.root.stat().st_uid)
    assert str(raised.value) == (f"{path}:4: socket: the socket path '/tmp/x.sock/' ends in `/`, which clients would "
                                 "connect to as a directory; remove the `/` at its end")


def test_a_misread_socket_is_refused_even_where_CREDD_SOCKET_decides_today(home: Home):
    """The file is read elsewhere too (a service without the variable): what it says must be one path."""
    path = _config(home, MISREAD["doubled quotes"][0])
    with pytest.raises(ConfigError, match=r":4: socket: credd's clients "):
        load_config(path, {**home.env, "CREDD_SOCKET": "/tmp/elsewhere.sock"}, "linux", home.root.stat().st_uid)


def test_config_check_names_the_line_and_exits_2(home: Home):
    path = _config(home, MISREAD["folded block"][0])
    result = run_credd(["config", "check"], home)
    assert result.returncode == 2
    assert result.stderr.startswith(f"credd: error: {path}:4: socket: credd's clients read this line without YAML "
                                    "and find the path '>-', not '/tmp/x.sock'"), result.stderr


@pytest.mark.parametrize("case", list(AGREED))
def test_daemon_and_every_client_find_one_socket(home: Home, case: str):
    tail, expected = AGREED[case]
    expected = expected.format(home=home.root, runtime=home.env["XDG_RUNTIME_DIR"])
    path = _config(home, tail)
    uid = home.root.stat().st_uid
    assert str(load_config(path, home.env, "linux", uid).socket) == expected  # the daemon binds here
    assert paths.socket_file(home.env, None, "linux", uid) == expected  # the hook's fast path
    assert client.socket_path(home.env, None, "linux", uid) == expected  # the full hook, env, exec
    ctx = Context(env=dict(home.env), stderr=io.StringIO(), platform="linux", uid=uid)
    assert control.socket_path(ctx) == expected  # status, refresh, mfa
    assert doctor_command._socket(ctx).path == expected


def test_a_relative_socket_is_refused_alike_by_every_client(home: Home):
    """The daemon refuses one (it would mean another socket in every directory); so does each client, in one way."""
    message = "the socket path 'rel.sock' is relative; set $CREDD_SOCKET (or `socket:`) to an absolute path"
    env = {**home.env, "CREDD_SOCKET": "rel.sock"}
    hook = run_credd(["process", "p"], home, extra_env={"CREDD_SOCKET": "rel.sock"})
    assert (hook.returncode, hook.stderr) == (1, f"credd: {message}\n")
    ctx = Context(env=env, stderr=io.StringIO())
    with pytest.raises(UsageError) as raised:
        control.socket_path(ctx)
    assert str(raised.value) == message
    assert doctor_command._socket(ctx).dir_problem == message
    status = run_credd(["status"], home, extra_env={"CREDD_SOCKET": "rel.sock"})
    env_command = run_credd(["env", "p"], home, extra_env={"CREDD_SOCKET": "rel.sock"})
    for result in (status, env_command):
        assert result.returncode == 2 and f"credd: error: {message}\n" in result.stderr, result.stderr
