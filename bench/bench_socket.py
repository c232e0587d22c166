"""Socket throughput and latency of `credentials` requests, one connection per request (as the hook makes).

    .venv/bin/python bench/bench_socket.py [--rounds 15] [--requests 1000] [--clients 50]

Two loads, each against a warm `credd serve` and three baselines (bench/reply_server.py)
that answer with the same reply bytes: a minimal asyncio server (credd's server
without credd), the same plus the thread-pool hop credd makes for every
request, and a blocking accept loop (the floor of Python):
  sequential: one client, `credd.protocol.request` (the hook's own code), back to back;
  concurrent: `--clients` asyncio clients in one process, each connecting again
              for every request, back to back (a closed loop).
Every round runs every server once, in turns (credd, asyncio, blocking, ...), so
the machine's noise hits all alike. Per round: requests per second, and the
p50 and p99 latency (connect to last byte of the reply); the table gives the
median over rounds with min and max. Client and server share the 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
from common import markdown, percentile, running_daemon

from credd import protocol
from credd.commands.demo import demo_env, local_sts

PROFILE = "p"
REQUEST = {"op": "credentials", "profile": PROFILE}
HERE = Path(__file__).resolve().parent
BASELINES = (("asyncio", "minimal asyncio server"), ("asyncio-pool", "minimal asyncio + thread-pool hop"),
             ("blocking", "blocking accept loop"))


def sequential(path: str, count: int) -> tuple[float, list[float]]:
    """(elapsed s, latencies ms) of `count` requests made one after another, as the hook makes each."""
    latencies = []
    started = time.perf_counter()
    for _ in range(count):
        begun = time.perf_counter()
        reply = protocol.request(path, REQUEST, 5)
        latencies.append((time.perf_counter() - begun) * 1000)
        if not reply.get("ok"):
            raise SystemExit(f"the server refused: {reply}")
    return time.perf_counter() - started, latencies


def concurrent(path: str, count: int, clients: int) -> tuple[float, list[float]]:
    """(elapsed s, latencies ms) of `count` requests made by `clients` concurrent clients, a connection each."""
    request = protocol.encode(REQUEST)

    async def ask() -> None:
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(request)
        writer.write_eof()
        line = await reader.readline()
        writer.close()
        if not line.startswith(b'{"ok":true'):
            raise SystemExit(f"the server refused: {line[:200]!r}")

    return common.closed_loop(count, clients, ask)


def start_baseline(mode: str, path: Path, reply_file: Path) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, str(HERE / "reply_server.py"), mode, str(path), str(reply_file)],
                              stdout=subprocess.PIPE, text=True)
    if server.stdout.readline().strip() != "ready":
        raise SystemExit(f"the {mode} baseline server did not start")
    return server


def raw_reply(path: str) -> bytes:
    """One reply of the daemon, byte for byte, for the baselines to send back."""
    return protocol.encode(protocol.request(path, REQUEST, 5))


def summary(rounds: dict[str, list[tuple[float, list[float]]]], count: int, baseline: str) -> str:
    def spread(values: list[float], digits: int) -> str:
        return f"{statistics.median(values):,.{digits}f} ({min(values):,.{digits}f}–{max(values):,.{digits}f})"

    base = statistics.median(count / elapsed for elapsed, _ in rounds[baseline])
    rows = []
    for name, results in rounds.items():
        rates = [count / elapsed for elapsed, _ in results]
        rows.append((name, spread(rates, 0), f"{statistics.median(rates) / base:.2f}",
                     spread([percentile(lat, 50) for _, lat in results], 2),
                     spread([percentile(lat, 99) for _, lat in results], 2)))
    return markdown(("server", "requests/s: median (min–max)", f"ratio to {baseline}", "p50 ms", "p99 ms"),
                    rows, "l")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=1000, help="requests per round and load")
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="credd-bench-") as temp, local_sts() as endpoint:
        root = Path(temp)
        env = demo_env(root)
        with running_daemon(env, endpoint, {PROFILE: "arn:aws:iam::210987654321:role/Admin"}, write=False):
            reply_file = root / "reply"
            reply_file.write_bytes(raw_reply(env["CREDD_SOCKET"]))
            servers = {"credd serve": env["CREDD_SOCKET"]}
            baselines = []
            try:
                for mode, name in BASELINES:
                    path = root / f"{mode}.sock"
                    baselines.append(start_baseline(mode, path, reply_file))
                    servers[name] = str(path)
                loads = {"sequential": {n: [] for n in servers}, "concurrent": {n: [] for n in servers}}
                for path in servers.values():  # warm-up: connections, caches, the thread pool
                    sequential(path, 100)
                    concurrent(path, 200, args.clients)
                for _ in range(args.rounds):
                    for name, path in servers.items():
                        loads["sequential"][name].append(sequential(path, args.requests))
                        loads["concurrent"][name].append(concurrent(path, args.requests, args.clients))
            finally:
                for server in baselines:
                    server.send_signal(signal.SIGTERM)
                    server.wait(10)
    print(f"### Socket throughput and latency\n\n{args.rounds} rounds of {args.requests} `credentials` "
          f"requests per server and load, interleaved; one connection per request; {common.machine()}\n")
    print("Sequential (one client, the hook's `protocol.request`):\n")
    print(summary(loads["sequential"], args.requests, "minimal asyncio server"))
    print(f"\n{args.clients} concurrent clients (asyncio, one process, closed loop):\n")
    print(summary(loads["concurrent"], args.requests, "minimal asyncio server"))


if __name__ == "__main__":
    main()
