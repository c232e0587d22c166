"""Who is on the other end of a loopback TCP connection: another user of this machine may not read your credentials.

A Unix socket tells its peer's uid (SO_PEERCRED); TCP does not, but on Linux the kernel knows the owner of every
socket. credd asks it for the one socket it wants: a sock_diag netlink request naming the client's end of the
connection (its address and port, then ours), answered from the kernel's socket hash in ~10 µs whatever else the
machine has open. Reading /proc/self/net/tcp instead costs a scan of every socket of the network namespace, closed
ones too for a minute (TIME-WAIT): 4 to 24 ms per connection at 1,000 to 8,500 rows, on the daemon's event loop
(BENCHMARKS.md section 9). That table is kept only where netlink is refused (a seccomp sandbox).

Root (uid 0) is let in as well: it can read the daemon's memory anyway, and it is who a Docker container runs as
unless told otherwise. A client end with no owner (it has closed already and cannot read a reply) counts as the
kernel says: uid 0. Where neither lookup exists (macOS), `allowed` says True and the endpoints' tokens are the only
guard; where the kernel has no such socket, the client is refused.
"""

from __future__ import annotations

import socket
import struct
from pathlib import Path

NET = Path("/proc/self/net")
NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 1
NO_COOKIE = 0xFFFFFFFF  # INET_DIAG_NOCOOKIE: find the socket by its addresses alone
HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
UID_AT = HEADER.size + 4 + 48 + 12  # in inet_diag_msg: family..retrans, the 48-byte id, expires, rqueue, wqueue


def allowed(sock: socket.socket | None, uid: int, net: Path = NET) -> bool:
    """Whether the client on `sock` (an accepted loopback TCP connection) may be served by the daemon of `uid`."""
    if sock is None or not (hasattr(socket, "AF_NETLINK") or (net / "tcp").exists()):
        return True  # no way to ask (not Linux): the tokens decide
    owner = peer_uid(sock, net)
    return owner is not None and owner in (uid, 0)


def peer_uid(sock: socket.socket, net: Path = NET) -> int | None:
    """The uid that owns the other end of `sock`; None if the kernel knows no such socket."""
    if hasattr(socket, "AF_NETLINK"):
        try:
            return diag_uid(sock)
        except OSError:
            pass  # netlink refused here (a sandbox): the slower table
    return table_uid(sock, net)


def diag_uid(sock: socket.socket) -> int | None:
    """The owner of the client end of `sock`, from one sock_diag lookup; None if there is no such socket."""
    family = sock.family
    (theirs, their_port), (ours, our_port) = sock.getpeername()[:2], sock.getsockname()[:2]
    # inet_diag_req_v2 (family, protocol, ext, pad, states), then the client end's inet_diag_sockid: its ports
    # (network order), its address and ours (16 bytes each, an IPv4 one padded), interface, cookie.
    request = struct.pack("=BBBxI", family, socket.IPPROTO_TCP, 0, 0xFFFFFFFF)
    request += struct.pack("!HH", their_port, our_port)
    request += _padded(family, theirs) + _padded(family, ours) + struct.pack("=III", 0, NO_COOKIE, NO_COOKIE)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as netlink:
        netlink.send(HEADER.pack(HEADER.size + len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, 1, 0) + request)
        reply = netlink.recv(65536)
    if len(reply) < UID_AT + 4 or HEADER.unpack_from(reply)[1] != SOCK_DIAG_BY_FAMILY:
        return None  # NLMSG_ERROR (ENOENT): the kernel has no such socket
    uid: int = struct.unpack_from("=I", reply, UID_AT)[0]
    return uid


def table_uid(sock: socket.socket, net: Path = NET) -> int | None:
    """The owner of the other end of `sock` from the kernel's table of every socket; None if it has no row."""
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


def _padded(family: int, address: str) -> bytes:
    packed = socket.inet_pton(family, address)
    return packed + bytes(16 - len(packed))


def _entry(family: int, address: tuple) -> str:
    """An address as the kernel's table writes it: the address in 32-bit words of host byte order, in hex, then the
    port (`0100007F:1F90` for 127.0.0.1:8080 on a little-endian machine)."""
    packed = socket.inet_pton(family, address[0])
    words = struct.unpack(f"={len(packed) // 4}I", packed)
    return "".join(f"{word:08X}" for word in words) + f":{address[1]:04X}"
