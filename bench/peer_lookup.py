"""What one client-uid lookup of the HTTP endpoints costs: the kernel's exact lookup against a scan of its table.

    .venv/bin/python bench/peer_lookup.py [--lookups 200] [--idle 0,2000,8000]

The container endpoint and IMDS look up the owner of every connection they
accept, on the daemon's event loop (`credd.endpoints.peer`). `diag_uid`: one
sock_diag netlink request naming the connection's four-tuple, which the kernel
answers from its socket hash, so its cost does not grow with the number of
sockets; what credd does. `table_uid`: a scan of /proc/self/net/tcp, which
holds every socket of the network namespace, closed ones too for 60 s
(TIME-WAIT); what credd did first, and still does where netlink is refused.
Both must name the same uid (checked). `--idle N` first opens and closes N
loopback connections (each leaves a TIME-WAIT row), as a burst of SDK clients
does; each size is measured in turn.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time
from collections.abc import Callable

import common
from common import markdown

from credd.endpoints.peer import diag_uid, table_uid


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
                if table_uid(conn) != diag_uid(conn):
                    raise SystemExit("the two lookups name different uids")
                scan = [per_lookup_ms(table_uid, conn, args.lookups) for _ in range(3)]
                diag = [per_lookup_ms(diag_uid, conn, args.lookups) for _ in range(3)]
                rows.append((f"{tcp_rows():,}", f"{statistics.median(scan):.3f}", f"{statistics.median(diag):.4f}",
                             f"{statistics.median(scan) / statistics.median(diag):,.0f}x"))
    print(f"### The HTTP endpoints' client-uid lookup\n\n{args.lookups} lookups, median of 3 runs per size; "
          f"{common.machine()}\n")
    print(markdown(("rows in /proc/net/tcp", "/proc scan (the fallback), ms", "sock_diag (credd), ms", "ratio"),
                   rows))


if __name__ == "__main__":
    main()
