"""The socket server under abuse: garbage, huge lines, idle and half-closed clients, crowds, strangers."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from credd import protocol
from credd.endpoints.unix_socket import Listener, SocketInUse, prepare_directory
from credd.errors import CreddError
from tests.conftest import wait_for
from tests.socket_helpers import RunningServer, as_user, exchange, raw_request


def echo(request: dict) -> dict:
    if request["op"] == "credentials" and request["profile"] == "boom":
        raise RuntimeError("secret-looking internals")
    if request["op"] == "credentials" and request["profile"] == "slow":
        time.sleep(0.5)
    return {"ok": True, "echo": request}


@pytest.fixture
def server(sock_path):
    running = RunningServer(sock_path, echo, read_timeout=0.5)
    yield running
    running.stop()


def ask(path: Path, message: dict, timeout: float = 5) -> dict:
    return protocol.request(str(path), message, timeout)


def test_request_reply(server, sock_path):
    assert ask(sock_path, {"op": "ping"}) == {"ok": True, "echo": {"op": "ping"}}


def test_modes(server, sock_path):
    assert stat.S_IMODE(os.stat(sock_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(sock_path.parent).st_mode) == 0o700


@pytest.mark.parametrize("payload, error", [
    (b"garbage\n", "request is not JSON"),
    (b"[1,2]\n", "request is not a JSON object"),
    (b'{"op": "steal"}\n', "unknown op"),
    (b'{"op": "credentials"}\n', "credentials needs 'profile'"),
    (b'{"op": "mfa", "source": "a", "code": 123456}\n', "mfa needs 'code'"),
    (b'{"op": "refresh", "profiles": [1]}\n', "list of names"),
    (b"\xff\xfe\x00\n", "request is not JSON"),
    (b"[" * 20000 + b"\n", "request longer than|request is not JSON"),
])
def test_garbage_gets_an_error(server, sock_path, payload, error):
    reply = json.loads(exchange(sock_path, payload))
    assert reply["ok"] is False and reply["error"] == "bad-request"
    assert __import__("re").search(error, reply["message"])
    assert ask(sock_path, {"op": "ping"})["ok"]


def test_ten_megabyte_line(server, sock_path):
    data = exchange(sock_path, b"x" * (10 * 1024 * 1024))
    if data:  # the server may close before the client has finished sending
        assert json.loads(data)["error"] == "bad-request"
    assert ask(sock_path, {"op": "ping"})["ok"]


def test_half_closed_without_newline_still_answered(server, sock_path):
    reply = json.loads(exchange(sock_path, b'{"op": "ping"}'))
    assert reply["ok"] is True


def test_idle_clients_time_out_and_do_not_block_others(server, sock_path):
    idle = []
    for _ in range(20):
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(str(sock_path))
        client.sendall(b'{"op": "pi')  # never finished
        idle.append(client)
    started = time.monotonic()
    assert ask(sock_path, {"op": "ping"})["ok"]
    assert time.monotonic() - started < 0.4  # not queued behind the idle ones
    idle[0].settimeout(5)
    reply = json.loads(idle[0].recv(65536))
    assert reply["error"] == "timeout"
    for client in idle:
        client.close()


def test_a_client_that_sends_nothing_gets_a_shorter_deadline_than_a_slow_one(sock_path):
    running = RunningServer(sock_path, echo, read_timeout=3, first_byte_timeout=0.2)
    try:
        silent, slow = (socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(2))
        for client in (silent, slow):
            client.settimeout(5)
            client.connect(str(sock_path))
        slow.sendall(b'{"op": ')
        started = time.monotonic()
        assert json.loads(silent.recv(65536)) == {"ok": False, "error": "timeout",
                                                  "message": "no request within 0.2 s"}
        assert time.monotonic() - started < 1.5
        slow.sendall(b'"ping"}\n')  # past the first-byte deadline, within the request's: served
        assert json.loads(slow.recv(65536))["ok"]
    finally:
        silent.close()
        slow.close()
        running.stop()


def test_over_the_cap_a_connection_is_closed_unread_and_credds_client_tries_again(sock_path):
    running = RunningServer(sock_path, echo, read_timeout=3, first_byte_timeout=0.5, max_clients=2)
    idle = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(2)]
    try:
        for client in idle:
            client.connect(str(sock_path))
        time.sleep(0.1)  # both accepted: every slot taken
        third = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        third.settimeout(2)
        third.connect(str(sock_path))
        started = time.monotonic()
        try:
            got = third.recv(65536)
        except ConnectionResetError:
            got = b""
        assert got == b"" and time.monotonic() - started < 0.3  # closed without a word, at once
        third.close()
        started = time.monotonic()
        assert ask(sock_path, {"op": "ping"})["ok"]  # once the idle ones' first-byte deadline frees a slot
        assert time.monotonic() - started < 2
    finally:
        for client in idle:
            client.close()
        running.stop()


def test_connect_and_close_without_a_word(server, sock_path):
    for _ in range(50):
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(str(sock_path))
        client.close()
    assert ask(sock_path, {"op": "ping"})["ok"]


def test_a_hundred_concurrent_clients(server, sock_path):
    def one(i: int) -> dict:
        return ask(sock_path, {"op": "credentials", "profile": f"p{i}"})

    with ThreadPoolExecutor(100) as pool:
        replies = list(pool.map(one, range(100)))
    assert [r["echo"]["profile"] for r in replies] == [f"p{i}" for i in range(100)]


def test_slow_handler_does_not_block_others(server, sock_path):
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(ask, sock_path, {"op": "credentials", "profile": "slow"})
        time.sleep(0.05)
        started = time.monotonic()
        assert ask(sock_path, {"op": "ping"})["ok"]
        assert time.monotonic() - started < 0.3
        assert slow.result()["ok"]


def test_handler_bug_is_an_error_reply_without_internals(server, sock_path):
    reply = ask(sock_path, {"op": "credentials", "profile": "boom"})
    assert reply == {"ok": False, "error": "internal", "message": "internal error (RuntimeError); see the daemon's log"}
    assert ask(sock_path, {"op": "ping"})["ok"]


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to become another user (CI runs as root)")
def test_a_client_of_another_user_is_refused(server, sock_path):
    # Let the stranger reach the socket at all: the peer check must hold on its own.
    os.chmod(sock_path.parent.parent, 0o755)
    os.chmod(sock_path.parent, 0o755)
    os.chmod(sock_path, 0o666)
    reply = as_user(65534, lambda: raw_request(sock_path, {"op": "credentials", "profile": "p"}))
    assert reply == {"ok": False, "error": "forbidden", "message": "this credd serves another user"}
    assert ask(sock_path, {"op": "ping"})["ok"]


def test_second_server_on_the_same_socket_is_refused(server, sock_path):
    with pytest.raises(SocketInUse, match=rf"another `credd serve` \(pid {os.getpid()}\) is already serving"):
        Listener(sock_path, os.getuid())
    assert ask(sock_path, {"op": "ping"})["ok"]  # the first one keeps its socket


def test_a_second_server_is_told_how_to_find_the_first_with_its_config(server, sock_path):
    with pytest.raises(SocketInUse) as caught:
        Listener(sock_path, os.getuid(), "/home/you/my config.yaml")
    assert "stop it first (`credd --config '/home/you/my config.yaml' service status`)" in str(caught.value)


def test_stale_socket_file_is_replaced(sock_path):
    sock_path.parent.mkdir(mode=0o700)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sock_path))
    stale.close()  # the file stays, nobody listens: a daemon that died by SIGKILL
    running = RunningServer(sock_path, echo)
    try:
        assert ask(sock_path, {"op": "ping"})["ok"]
    finally:
        running.stop()
    assert not sock_path.exists()


def test_unreachable_daemon(sock_path):
    with pytest.raises(protocol.DaemonUnreachable):
        ask(sock_path, {"op": "ping"})


def test_directory_checks(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(CreddError, match="is not a directory"):
        prepare_directory(link, os.getuid())
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    with pytest.raises(CreddError, match="open to other users"):
        prepare_directory(open_dir, os.getuid())
    with pytest.raises(CreddError, match="belongs to uid"):
        prepare_directory(target, os.getuid() + 1)


def test_quick_answers_on_the_event_loop_and_the_rest_goes_to_the_pool(sock_path):
    threads = {}

    def quick(request: dict) -> dict | None:
        if request["op"] == "credentials" and request["profile"] == "boom-quick":
            raise RuntimeError("secret-looking internals")
        if request["op"] == "credentials" and request["profile"] == "cached":
            threads["quick"] = threading.current_thread().name
            return {"ok": True, "from": "quick"}
        return None

    def handler(request: dict) -> dict:
        threads["pool"] = threading.current_thread().name
        return {"ok": True, "from": "pool"}

    running = RunningServer(sock_path, handler, quick=quick)
    try:
        assert ask(sock_path, {"op": "credentials", "profile": "cached"}) == {"ok": True, "from": "quick"}
        assert ask(sock_path, {"op": "credentials", "profile": "other"}) == {"ok": True, "from": "pool"}
        assert ask(sock_path, {"op": "credentials", "profile": "boom-quick"}) == {
            "ok": False, "error": "internal", "message": "internal error (RuntimeError); see the daemon's log"}
    finally:
        running.stop()
    assert threads["quick"] == running.thread.name  # the loop's own thread: no hop
    assert threads["pool"].startswith("credd-request")


def test_a_client_that_does_not_read_its_big_reply_is_dropped_and_others_are_served(sock_path):
    running = RunningServer(sock_path, lambda request: {"ok": True, "big": "x" * (2 << 20)}, read_timeout=0.5)
    try:
        lazy = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lazy.connect(str(sock_path))
        lazy.sendall(b'{"op":"status"}\n')  # and never reads: 2 MiB cannot fit in the socket's buffers
        started = time.monotonic()
        assert len(ask(sock_path, {"op": "status"})["big"]) == 2 << 20  # another client, served meanwhile
        wait_for("the lazy client given up on", lambda: running.server.limits.clients == 0, timeout=10)
        assert time.monotonic() - started < 5
        lazy.close()
    finally:
        running.stop()
