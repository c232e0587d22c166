"""What one client-uid lookup of the HTTP endpoints costs: credd's /proc table scan against the kernel's exact lookup.

    .venv/bin/python bench/peer_lookup.py [--lookups 200] [--idle 0,2000,8000]

`credd.endpoints.peer.peer_uid` reads the whole of /proc/self/net/tcp for
every connection the container endpoint and IMDS accept, on the daemon's event
loop; the table holds every socket of the network namespace, closed ones too
for 60 s (TIME-WAIT). The alternative measured beside it, `diag_uid` below (a
prototype, IPv4 only, not in credd): one sock_diag netlink request that names
the connection's four-tuple, which the kernel answers from its socket hash, so
its cost does not grow with the table. Both must name the same uid (checked).
`--idle N` first opens and closes N loopback connections (each leaves a
TIME-WAIT row), as a burst of SDK clients does; each size is measured in turn.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import struct
import time
from collections.abc import Callable

import common
from common import markdown

from credd.endpoints.peer import peer_uid

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 1
INET_DIAG_NOCOOKIE = 0xFFFFFFFF


def diag_uid(conn: socket.socket) -> int | None:
    """The uid that owns the client end of `conn` (accepted, IPv4), from one sock_diag lookup; None if none."""
    (ours, our_port), (theirs, their_port) = conn.getsockname(), conn.getpeername()
    # inet_diag_req_v2: family, protocol, ext, pad, states; then inet_diag_sockid of the client's socket, whose
    # source is the connection's peer: sport, dport (network order), src, dst (16 bytes each), interface, cookie.
    request = struct.pack("=BBBxI", socket.AF_INET, socket.IPPROTO_TCP, 0, 0xFFFFFFFF)
    request += struct.pack("!HH", their_port, our_port)
    request += socket.inet_aton(theirs) + bytes(12) + socket.inet_aton(ours) + bytes(12)
    request += struct.pack("=III", 0, INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE)
    header = struct.pack("=IHHII", 16 + len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as netlink:
        netlink.send(header + request)
        reply = netlink.recv(65536)
    if struct.unpack_from("=IH", reply)[1] != SOCK_DIAG_BY_FAMILY:
        return None  # NLMSG_ERROR: no such socket
    # inet_diag_msg after the 16-byte header: 4 bytes, the 48-byte id, then expires, rqueue, wqueue, uid, inode.
    uid: int = struct.unpack_from("=IIIII", reply, 16 + 4 + 48)[3]
    return uid


def tcp_rows() -> int:
    with open("/proc/net/tcp") as handle:
        return sum(1 for _ in handle) - 1


def leave_time_waits(server: socket.socket, count: int) -> None:
    """`count` connections opened and closed by the server first, as the endpoints close: TIME-WAIT rows."""
    for _ in range(count):
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        accepted.close()
        client.close()


def per_lookup_ms(lookup: Callable[[socket.socket], int | None], conn: socket.socket, lookups: int) -> float:
    started = time.perf_counter()
    for _ in range(lookups):
        lookup(conn)
    return (time.perf_counter() - started) / lookups * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lookups", type=int, default=200)
    parser.add_argument("--idle", default="0,2000,8000", help="TIME-WAIT connections to add before each size")
    args = parser.parse_args()
    rows = []
    with socket.create_server(("127.0.0.1", 0), backlog=128) as server:
        client = socket.create_connection(server.getsockname())
        conn, _ = server.accept()
        with client, conn:
            for idle in (int(n) for n in args.idle.split(",")):
                leave_time_waits(server, idle)
                if peer_uid(conn) != diag_uid(conn):
                    raise SystemExit("the two lookups name different uids")
                scan = [per_lookup_ms(peer_uid, conn, args.lookups) for _ in range(3)]
                diag = [per_lookup_ms(diag_uid, conn, args.lookups) for _ in range(3)]
                rows.append((f"{tcp_rows():,}", f"{statistics.median(scan):.3f}", f"{statistics.median(diag):.4f}",
                             f"{statistics.median(scan) / statistics.median(diag):,.0f}x"))
    print(f"### The HTTP endpoints' client-uid lookup\n\n{args.lookups} lookups, median of 3 runs per size; "
          f"{common.machine()}\n")
    print(markdown(("rows in /proc/net/tcp", "/proc scan (credd now), ms", "sock_diag (prototype), ms", "ratio"),
                   rows))


if __name__ == "__main__":
    main()
