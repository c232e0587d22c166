"""Whose is the other end of a loopback TCP connection: the kernel's exact lookup (sock_diag), and its table."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from credd.endpoints import peer

FAMILIES = [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]


@contextmanager
def connection(family: int, host: str) -> Iterator[socket.socket]:
    """The server end of a real loopback connection, its client still open."""
    if not sys.platform.startswith("linux"):
        pytest.skip("sock_diag and the kernel's socket table are Linux's")
    with socket.socket(family) as server:
        try:
            server.bind((host, 0))
        except OSError:
            pytest.skip(f"no {host} here")
        server.listen()
        with socket.create_connection(server.getsockname()[:2]):
            accepted, _ = server.accept()
            with accepted:
                yield accepted


class Gone:
    """A connection's ends as `peer` reads them, naming a client port no socket has."""

    def __init__(self, real: socket.socket) -> None:
        self.family = real.family
        self._ours = real.getsockname()
        self._theirs = (real.getpeername()[0], 1)  # port 1: nothing connects from it

    def getsockname(self) -> tuple:
        return self._ours

    def getpeername(self) -> tuple:
        return self._theirs


@pytest.mark.parametrize("family, host", FAMILIES)
def test_both_lookups_name_the_owner_of_a_real_loopback_connection(family, host):
    with connection(family, host) as accepted:
        assert peer.diag_uid(accepted) == peer.table_uid(accepted) == os.getuid()
        assert peer.peer_uid(accepted) == os.getuid()
        assert peer.allowed(accepted, os.getuid())
        assert peer.allowed(accepted, 4242) is (os.getuid() == 0)  # root is let in; anyone else is not


@pytest.mark.parametrize("family, host", FAMILIES)
def test_a_client_the_kernel_does_not_know_is_refused(family, host, tmp_path):
    with connection(family, host) as accepted:
        gone = Gone(accepted)
        assert peer.diag_uid(gone) is None  # type: ignore[arg-type]
        assert not peer.allowed(gone, os.getuid())  # type: ignore[arg-type]
        (tmp_path / "tcp").write_text("header\n")  # a table without the connection's row
        (tmp_path / "tcp6").write_text("header\n")
        assert peer.table_uid(accepted, tmp_path) is None


def test_without_netlink_the_table_answers(monkeypatch, tmp_path):
    """Where netlink is refused (a sandbox), the table is read; where neither exists (macOS), the tokens decide."""
    with connection(socket.AF_INET, "127.0.0.1") as accepted:
        def refused(_sock):
            raise PermissionError("netlink refused")

        monkeypatch.setattr(peer, "diag_uid", refused)
        assert peer.peer_uid(accepted) == os.getuid()
        (tmp_path / "tcp").write_text("header\n")
        assert peer.peer_uid(accepted, tmp_path) is None and not peer.allowed(accepted, os.getuid(), tmp_path)
        monkeypatch.delattr(socket, "AF_NETLINK")
        assert peer.allowed(accepted, 4242, tmp_path / "none")
