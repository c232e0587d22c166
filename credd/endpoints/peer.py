"""Who is on the other end of a loopback TCP connection: another user of this machine may not read your credentials.

A Unix socket tells its peer's uid (SO_PEERCRED); TCP does not, but on Linux the kernel lists every socket of the
network namespace with its owner's uid in /proc/self/net/tcp and tcp6. The client's socket is the row whose local
address is the connection's peer and whose remote address is ours. Root (uid 0) is let in as well: it can read the
daemon's memory anyway, and it is who a Docker container runs as unless told otherwise. Where there is no such list
(macOS), `peer_uid` says None and the endpoints' tokens are the only guard; where the list has no row for the
connection (the client has gone already), it is refused.
"""

from __future__ import annotations

import socket
import struct
from pathlib import Path

NET = Path("/proc/self/net")


def allowed(sock: socket.socket | None, uid: int, net: Path = NET) -> bool:
    """Whether the client on `sock` (an accepted loopback TCP connection) may be served by the daemon of `uid`."""
    if sock is None or not (net / "tcp").exists():
        return True  # no list to look in (not Linux): the tokens decide
    owner = peer_uid(sock, net)
    return owner is not None and owner in (uid, 0)


def peer_uid(sock: socket.socket, net: Path = NET) -> int | None:
    """The uid that owns the other end of `sock`, from the kernel's table; None if it has no row."""
    family = "tcp6" if sock.family == socket.AF_INET6 else "tcp"
    theirs, ours = _entry(sock.family, sock.getpeername()), _entry(sock.family, sock.getsockname())
    try:
        lines = (net / family).read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) > 7 and fields[1] == theirs and fields[2] == ours:
            return int(fields[7])
    return None


def _entry(family: int, address: tuple) -> str:
    """An address as the kernel's table writes it: the address in 32-bit words of host byte order, in hex, then the
    port (`0100007F:1F90` for 127.0.0.1:8080 on a little-endian machine)."""
    packed = socket.inet_pton(family, address[0])
    words = struct.unpack(f"={len(packed) // 4}I", packed)
    return "".join(f"{word:08X}" for word in words) + f":{address[1]:04X}"
