"""The HTTP endpoints (container, IMDS): throughput and latency beside the Unix socket; the JS SDK end to end.

    .venv/bin/python bench/bench_endpoints.py [--rounds 7] [--requests 500] [--clients 50] [--js-runs 20]

Part 1, one warm `credd serve` with both HTTP endpoints on (loopback, port 0)
and four servers, every one asked for the same profile's credentials, one
connection per request (as the SDKs and the hook make them):
  credd's container endpoint: `GET /v1/credentials/p` with a token, as an SDK sends it;
  credd's IMDS: `GET /latest/meta-data/iam/security-credentials/p` with a session
    token taken once (an SDK's fetch adds a PUT for the token and a GET of the
    role's name: three such requests);
  credd's Unix socket: a `credentials` request, the hook's own client code (bench_socket.py's);
  a minimal asyncio HTTP server (bench/http_reply_server.py) answering the
    endpoint's own reply bytes: the endpoint without credd.
Two loads: sequential (one client, a blocking socket; `protocol.request` for
the Unix socket) and `--clients` concurrent asyncio clients in one process (a
closed loop). Every round runs every server once, in turns, so the noise of
the shared machine hits all alike; the table gives the median over rounds of
requests/s, p50 and p99 (connect to the reply's last byte), with min and max.
botocore gives the endpoint 2 s (and instance metadata 1 s); the JS SDK 1 s.

Part 2, the AWS SDK for JavaScript v3 (tests/js: `node caller.mjs`, STS
GetCallerIdentity against the local STS) with the same credentials reached
three ways, the default provider chain choosing by the environment:
  static keys: AWS_PROFILE=p, which credd keeps in the credentials file;
  the hook: AWS_PROFILE=p-hook, `credential_process = credd process p`;
  the container endpoint: AWS_CONTAINER_CREDENTIALS_FULL_URI and a token, no profile;
  IMDS: AWS_EC2_METADATA_SERVICE_ENDPOINT, no profile.
(a) a node process per call, interleaved (what a command-line tool pays);
(b) in one node process, a new client per call, so every call fetches its
    credentials again (what a long-running program pays per fetch); the
    first call of each process (module loading) is left out.
Part 2 is left out, with the reason, where node or tests/js/node_modules is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
from bench_socket import concurrent as socket_concurrent
from bench_socket import sequential as socket_sequential
from bench_socket import summary
from common import CREDD_SCRIPT, markdown, percentile, running_daemon, time_commands, timing_table

from credd import protocol
from credd.commands.demo import demo_env, local_sts

PROFILE = "p"
HERE = Path(__file__).resolve().parent
JS = HERE.parent / "tests" / "js"
ENDPOINT = "credd container endpoint"
IMDS = "credd IMDS"
SOCKET = "credd Unix socket"
BASELINE = "minimal asyncio HTTP server"
DEADLINE_MS = 1000  # the JS SDK's (and botocore's IMDS) timeout; botocore's container fetch has 2 s


CONFIG = f"endpoints:\n  container: 127.0.0.1:0\n  imds:\n    - listen: 127.0.0.1:0\n      profile: {PROFILE}\n"


def request_head(port: int, token: str) -> bytes:
    """What an SDK sends the endpoint (botocore's and the JS SDK's heads carry a few more headers)."""
    return (f"GET /v1/credentials/{PROFILE} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: {token}\r\nAccept: application/json\r\n\r\n").encode()


def imds_head(port: int) -> bytes:
    """IMDS's credentials GET, with a session token from one PUT (as an SDK holds its token for a while)."""
    put = (f"PUT /latest/api/token HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
           "X-aws-ec2-metadata-token-ttl-seconds: 21600\r\n\r\n").encode()
    reply = fetch(port, put)
    if not reply.startswith(b"HTTP/1.1 200 "):
        raise SystemExit(f"IMDS gave no session token: {reply[:100]!r}")
    token = reply.partition(b"\r\n\r\n")[2].decode()
    return (f"GET /latest/meta-data/iam/security-credentials/{PROFILE} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"X-aws-ec2-metadata-token: {token}\r\n\r\n").encode()


def fetch(port: int, head: bytes) -> bytes:
    """One request on a new connection; the whole reply (the server closes after it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(head)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    return data


def http_sequential(port: int, head: bytes, count: int) -> tuple[float, list[float]]:
    """(elapsed s, latencies ms) of `count` requests made one after another."""
    latencies = []
    started = time.perf_counter()
    for _ in range(count):
        begun = time.perf_counter()
        reply = fetch(port, head)
        latencies.append((time.perf_counter() - begun) * 1000)
        if not reply.startswith(b"HTTP/1.1 200 "):
            raise SystemExit(f"the server refused: {reply[:100]!r}")
    return time.perf_counter() - started, latencies


def http_concurrent(port: int, head: bytes, count: int, clients: int) -> tuple[float, list[float]]:
    """(elapsed s, latencies ms) of `count` requests made by `clients` concurrent clients, a connection each."""

    async def ask() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head)
        reply = await reader.read()
        writer.close()
        if not reply.startswith(b"HTTP/1.1 200 "):
            raise SystemExit(f"the server refused: {reply[:100]!r}")

    return common.closed_loop(count, clients, ask)


def start_baseline(reply_file: Path) -> tuple[subprocess.Popen, int]:
    server = subprocess.Popen([sys.executable, str(HERE / "http_reply_server.py"), str(reply_file)],
                              stdout=subprocess.PIPE, text=True)
    said = server.stdout.readline().split()
    if said[:1] != ["ready"]:
        raise SystemExit("the minimal asyncio HTTP server did not start")
    return server, int(said[1])


def endpoint_loads(sock: str, port: int, token: str, imds_port: int, root: Path,
                   args: argparse.Namespace) -> dict[str, dict]:
    """Part 1: {load: {server: [(elapsed, latencies) per round]}}."""
    head = request_head(port, token)
    metadata = imds_head(imds_port)
    reply_file = root / "reply"
    reply_file.write_bytes(fetch(port, head))
    baseline, baseline_port = start_baseline(reply_file)
    runs = {  # name -> (sequential, concurrent), each taking a request count
        ENDPOINT: (lambda n: http_sequential(port, head, n), lambda n: http_concurrent(port, head, n, args.clients)),
        IMDS: (lambda n: http_sequential(imds_port, metadata, n),
               lambda n: http_concurrent(imds_port, metadata, n, args.clients)),
        SOCKET: (lambda n: socket_sequential(sock, n), lambda n: socket_concurrent(sock, n, args.clients)),
        BASELINE: (lambda n: http_sequential(baseline_port, head, n),
                   lambda n: http_concurrent(baseline_port, head, n, args.clients)),
    }
    loads: dict[str, dict] = {"sequential": {n: [] for n in runs}, "concurrent": {n: [] for n in runs}}
    try:
        for one, many in runs.values():  # warm-up: connections, caches, the daemon's pool
            one(100)
            many(200)
        for _ in range(args.rounds):
            for name, (one, many) in runs.items():
                loads["sequential"][name].append(one(args.requests))
                loads["concurrent"][name].append(many(args.requests))
    finally:
        baseline.send_signal(signal.SIGTERM)
        baseline.wait(10)
    return loads


def js_ready() -> str | None:
    """None when node and the SDK are there; else why part 2 is left out."""
    if shutil.which("node") is None:
        return "node is not installed (Debian: apt-get install nodejs)"
    if not (JS / "node_modules" / "@aws-sdk" / "client-sts").is_dir():
        return "the JavaScript SDK is not installed (npm ci --prefix tests/js; `make test` does it)"
    return None


def js_paths(env: dict[str, str], home: Path, sts: str, url: str, token: str,
             imds: str) -> dict[str, dict[str, str]]:
    """The four environments of part 2, by name; ~/.aws/config for the profiles is written here."""
    (home / ".aws").mkdir(mode=0o700, exist_ok=True)
    (home / ".aws" / "config").write_text(
        f"[profile {PROFILE}-hook]\ncredential_process = {CREDD_SCRIPT} process {PROFILE}\n")
    base = dict(env, AWS_ENDPOINT_URL_STS=sts, AWS_EC2_METADATA_DISABLED="true",
                AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED="true")
    return {
        f"static keys (AWS_PROFILE={PROFILE}, the credentials file)": dict(base, AWS_PROFILE=PROFILE),
        f"the hook (AWS_PROFILE={PROFILE}-hook, credd process {PROFILE})": dict(base, AWS_PROFILE=f"{PROFILE}-hook"),
        "the container endpoint (AWS_CONTAINER_CREDENTIALS_FULL_URI, no profile)":
            dict(base, AWS_CONTAINER_CREDENTIALS_FULL_URI=url + PROFILE, AWS_CONTAINER_AUTHORIZATION_TOKEN=token),
        "IMDS (AWS_EC2_METADATA_SERVICE_ENDPOINT, no profile)":
            {name: value for name, value in base.items() if name != "AWS_EC2_METADATA_DISABLED"}
            | {"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds},
    }


def js_in_process(envs: dict[str, dict[str, str]], rounds: int, calls: int) -> dict[str, list[float]]:
    """Part 2 (b): per-call ms, `calls` calls in one node process a round, the paths in turns."""
    caller = [shutil.which("node") or "node", str(JS / "caller.mjs"), "chain", str(calls + 1)]
    times: dict[str, list[float]] = {name: [] for name in envs}
    for _ in range(rounds):
        for name, env in envs.items():
            result = subprocess.run(caller, env=env, capture_output=True, text=True, timeout=300, check=False)
            if result.returncode != 0:
                raise SystemExit(f"node failed ({name}): {result.stderr[-500:]}")
            times[name] += json.loads(result.stdout.splitlines()[1])[1:]  # the first call loads the modules
    return times


def load_average() -> str:
    """The load average and the size of the kernel's TCP table, which the HTTP endpoints read per connection to
    learn the client's uid (`credd.endpoints.peer`): closed connections stay in it, TIME-WAIT, for 60 s."""
    rows = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as handle:
            rows += sum(1 for _ in handle) - 1
    return ", ".join(f"{value:.2f}" for value in os.getloadavg()) + f" ({rows:,} rows in /proc/net/tcp{{,6}})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=500, help="requests per round, server and load")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--js-runs", type=int, default=20, help="node processes per path (part 2 a)")
    parser.add_argument("--js-rounds", type=int, default=5, help="node processes per path (part 2 b)")
    parser.add_argument("--js-calls", type=int, default=20, help="calls per node process (part 2 b)")
    args = parser.parse_args()
    before = load_average()
    js_skipped = js_ready()
    with tempfile.TemporaryDirectory(prefix="credd-bench-") as temp, local_sts() as sts:
        root = Path(temp)
        env = demo_env(root)
        with running_daemon(env, sts, {PROFILE: "arn:aws:iam::210987654321:role/Admin"}, extra=CONFIG):
            sock = env["CREDD_SOCKET"]
            endpoints = protocol.request(sock, {"op": "status"}, 10)["endpoints"]
            port = int(endpoints["container"]["address"].rpartition(":")[2])
            imds_address = endpoints["imds"][0]["address"]
            issued = protocol.request(sock, {"op": "token-issue", "profiles": [PROFILE], "ttl": 3600}, 10)
            loads = endpoint_loads(sock, port, issued["token"], int(imds_address.rpartition(":")[2]), root, args)
            if js_skipped is None:
                envs = js_paths(env, root, sts, issued["url"], issued["token"], f"http://{imds_address}/")
                argv = [shutil.which("node") or "node", str(JS / "caller.mjs"), "chain"]
                per_process = time_commands({name: argv for name in envs}, env, args.js_runs, envs=envs,
                                            expect_ok=list(envs), timeout=120)
                in_process = js_in_process(envs, args.js_rounds, args.js_calls)
                node = subprocess.run([argv[0], "--version"], capture_output=True, text=True, check=True).stdout.strip()
    after = load_average()
    print(f"### The HTTP endpoints beside the Unix socket\n\n{args.rounds} rounds of {args.requests} requests "
          f"per server and load, interleaved; one connection per request; {common.machine()}; load average "
          f"{before} before, {after} after\n")
    print("Sequential (one client):\n")
    print(summary(loads["sequential"], args.requests, BASELINE))
    print(f"\n{args.clients} concurrent clients (asyncio, one process, closed loop):\n")
    print(summary(loads["concurrent"], args.requests, BASELINE))
    for name in (ENDPOINT, IMDS):
        worst = max(percentile(latencies, 99) for _, latencies in loads["concurrent"][name])
        print(f"\n{name}: the worst p99 at {args.clients} clients over {args.rounds} rounds is {worst:.2f} ms, "
              f"{worst / DEADLINE_MS:.1%} of the SDKs' {DEADLINE_MS} ms deadline.")
    if js_skipped is not None:
        print(f"\n### The JavaScript SDK end to end\n\nleft out: {js_skipped}")
        return
    print(f"\n### The JavaScript SDK end to end\n\n`node caller.mjs chain` (STS GetCallerIdentity, local STS), "
          f"node {node}; daemon warm.\n")
    print(f"(a) one node process per call, {args.js_runs} runs each, interleaved:\n")
    print(timing_table(per_process, next(iter(envs)), digits=0))
    print(f"\n(b) in one node process, a new client per call: {args.js_rounds} processes per path of "
          f"{args.js_calls} calls each (after a first), in turns:\n")
    base = statistics.median(in_process[next(iter(envs))])
    rows = [(name, f"{statistics.median(values):.1f}", f"{percentile(values, 99):.1f}",
             f"{min(values):.1f}", f"{max(values):.1f}", f"{statistics.median(values) / base:.2f}")
            for name, values in in_process.items()]
    print(markdown(("credentials from", "median ms", "p99 ms", "min ms", "max ms", "ratio to static keys"),
                   rows, "l"))


if __name__ == "__main__":
    main()
