"""Whose is the other end of a loopback TCP connection, read from the kernel's table (Linux)."""

from __future__ import annotations

import os
import socket
import sys

import pytest

from credd.endpoints import peer


@pytest.mark.parametrize("family, host", [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_the_owner_of_a_real_loopback_connection_is_found(family, host, tmp_path):
    if not sys.platform.startswith("linux"):
        pytest.skip("the kernel's socket table is Linux's")
    with socket.socket(family) as server:
        try:
            server.bind((host, 0))
        except OSError:
            pytest.skip(f"no {host} here")
        server.listen()
        with socket.create_connection(server.getsockname()[:2]):
            accepted, _ = server.accept()
            with accepted:
                assert peer.peer_uid(accepted) == os.getuid()
                assert peer.allowed(accepted, os.getuid())
                assert peer.allowed(accepted, 4242) is (os.getuid() == 0)  # root is let in; anyone else is not
                (tmp_path / "tcp").write_text("header\n")  # a table without the connection's row: refused
                (tmp_path / "tcp6").write_text("header\n")
                assert peer.peer_uid(accepted, tmp_path) is None and not peer.allowed(accepted, os.getuid(), tmp_path)
                assert peer.allowed(accepted, 4242, tmp_path / "none")  # no table at all (macOS): the tokens decide
