"""sd_notify against real datagram sockets: a path, the abstract namespace, none at all."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from credd.systemd import notify


@pytest.fixture
def listener(sock_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket where systemd's would be, and the NOTIFY_SOCKET value that names it."""
    sock_path.parent.mkdir()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(5)
        yield sock, str(sock_path)


def test_sends_one_datagram_to_the_socket(listener):
    sock, address = listener
    assert notify("READY=1", {"NOTIFY_SOCKET": address}) is True
    assert sock.recv(4096) == b"READY=1"
    assert notify("RELOADING=1\nSTATUS=reloading the config", {"NOTIFY_SOCKET": address}) is True
    assert sock.recv(4096) == b"RELOADING=1\nSTATUS=reloading the config"


def test_abstract_namespace_address():
    name = f"credd-test-{os.getpid()}-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert notify("STOPPING=1", {"NOTIFY_SOCKET": "@" + name}) is True
        assert sock.recv(4096) == b"STOPPING=1"


def test_outside_systemd_it_does_nothing():
    assert notify("READY=1", {}) is False
    assert notify("READY=1", {"NOTIFY_SOCKET": ""}) is False


def test_a_socket_that_is_gone_is_logged_not_raised(sock_path: Path, caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING, logger="credd.systemd"):
        assert notify("READY=1", {"NOTIFY_SOCKET": str(sock_path)}) is False
    assert "could not tell systemd 'READY=1'" in caplog.text


def test_an_address_that_is_not_a_unix_socket_is_ignored(caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING, logger="credd.systemd"):
        assert notify("READY=1", {"NOTIFY_SOCKET": "vsock:2:1234"}) is False
    assert "not a Unix socket address" in caplog.text
