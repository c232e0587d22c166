"""Before and after: credd at an earlier commit against this checkout, every figure in the same run, interleaved.

    git worktree add /tmp/before e0f2634
    .venv/bin/python bench/bench_versions.py --before /tmp/before [--rounds 7] [--hook-runs 100] \
        [--only hook,socket,refresh,credfile]
    git worktree remove /tmp/before

Both versions run with this interpreter (.venv, so the same dependencies),
each with its own checkout first on `sys.path` (PYTHONPATH, and every process
started outside both checkouts, so `python -m credd` cannot pick up the wrong
one): only credd's own code differs. What is measured, as the issue that
reshaped the code asks (issue 14, "Measure"):
  hook:     `credd process p` start-up, each version against its own warm
            daemon, turns A B A B (with `python -c pass` in the same turns);
  socket:   each version's daemon, sequential requests (the hook's own
            `protocol.request`) and 50 concurrent clients: requests/s, p99;
  refresh:  one source fanned out to 500 role profiles, cold (GetSessionToken
            then every AssumeRole) and warm (a restart with the session in the
            keyring), each checkout's own bench/bench_refresh.py in a worker;
  credfile: `credfile.update` and `atomicfile.update_file` of a 10,000-section
            credentials file (1 and 100 owned sections updated), each
            checkout's own bench/bench_credfile.py in a worker.
The socket, refresh and credfile rounds alternate which version goes first.
Each figure: the median with min and max for each version, the ratio
after/before of the medians, and the min–max of the per-round ratios (round i
of after over round i of before), so one noisy round shows as a wide range
rather than as a change. `uptime` before and after shows how loaded the
machine was.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ROLES = 500
SECTIONS = 10_000


# The worker: runs inside one checkout's own bench/ code ----------------------------------------

def worker(what: str, checkout: Path, runs: int) -> None:
    """Print, as JSON, `runs` timings (ms) of `what` made by `checkout`'s own benchmark code."""
    sys.path[:] = [str(checkout / "bench"), str(checkout)] + [p for p in sys.path if Path(p).resolve() != HERE]
    import credd

    if Path(credd.__file__).resolve().parents[1] != checkout.resolve():
        raise SystemExit(f"the worker for {checkout} imported credd from {credd.__file__}")
    print(json.dumps(refresh_runs(runs) if what == "refresh" else credfile_runs(runs)))


def refresh_runs(runs: int) -> dict[str, list[float]]:
    import logging

    import bench_refresh
    from moto.server import ThreadedMotoServer

    from tests.conftest import TEST_TOTP_SEED
    from tests.fixtures_sts import SERIAL
    from tests.sts_front import StsFront

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    clock = bench_refresh.VirtualClock()
    times: dict[str, list[float]] = {"cold": [], "warm": []}
    try:
        with StsFront(f"http://{host}:{port}", now=clock.timestamp, seeds={SERIAL: TEST_TOTP_SEED}) as front:
            bench = bench_refresh.Bench(front, clock, 8)
            bench.credd(1, False)  # botocore's STS model loaded outside the timings, as bench_refresh does
            for _ in range(runs):
                for case in ("cold", "warm"):
                    elapsed, calls, _ = bench.credd(ROLES, case == "warm")
                    expected = {"AssumeRole": ROLES, **({"GetSessionToken": 1} if case == "cold" else {})}
                    if calls != expected:
                        raise SystemExit(f"{case} refresh made {calls}, not {expected}")
                    times[case].append(elapsed * 1000)
    finally:
        moto.stop()
    return times


def credfile_runs(runs: int) -> dict[str, list[float]]:
    import bench_credfile

    text, owned = bench_credfile.build(SECTIONS)
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="credd-bench-") as directory:
        path = Path(directory) / "credentials"
        path.write_text(text)
        for n in range(1, runs + 1):
            for count in (1, 100):
                names = owned[:count]
                times.setdefault(f"pure {count}", []).append(bench_credfile.time_pure(text, names, n) * 1000)
                times.setdefault(f"file {count}", []).append(bench_credfile.time_file(path, names, n) * 1000)
    return times


# The driver -------------------------------------------------------------------------------------

def version_env(base: Mapping[str, str], checkout: Path) -> dict[str, str]:
    return {**base, "PYTHONPATH": str(checkout)}


def check_version(env: Mapping[str, str], checkout: Path) -> None:
    """That a process started with `env` imports credd from `checkout`, not from the other one."""
    found = subprocess.run([sys.executable, "-c", "import credd; print(credd.__file__)"], env=dict(env),
                           capture_output=True, text=True, check=True).stdout.strip()
    if Path(found).resolve().parents[1] != checkout.resolve():
        raise SystemExit(f"with PYTHONPATH={checkout} credd came from {found}")


def in_worker(what: str, checkout: Path, runs: int, env: Mapping[str, str]) -> dict[str, list[float]]:
    result = subprocess.run([sys.executable, str(HERE / "bench_versions.py"), "--worker", what, "--before",
                             str(checkout), "--rounds", str(runs)], env=version_env(env, checkout),
                            capture_output=True, text=True, timeout=1800, check=False)
    if result.returncode != 0:
        raise SystemExit(f"the {what} worker for {checkout} failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.splitlines()[-1])


def alternate(rounds: int, measure: Callable[[str], Mapping[str, float | Sequence[float]]]) -> dict:
    """{version: {figure: [one value a round]}}: `measure(version)` for both versions each round, B A then A B."""
    found: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
    for n in range(rounds):
        for version in (("before", "after") if n % 2 else ("after", "before")):
            for figure, value in measure(version).items():
                values = value if isinstance(value, Sequence) else [value]
                found[version].setdefault(figure, []).append(statistics.median(values))
    return found


def spread(values: Sequence[float], digits: int) -> str:
    return f"{statistics.median(values):,.{digits}f} ({min(values):,.{digits}f}–{max(values):,.{digits}f})"


def rows_of(found: Mapping[str, Mapping[str, list[float]]], labels: Mapping[str, str], digits: int) -> list[tuple]:
    rows = []
    for figure, label in labels.items():
        before, after = found["before"][figure], found["after"][figure]
        pairs = [a / b for a, b in zip(after, before, strict=True)]  # one of each a round
        rows.append((label, spread(before, digits), spread(after, digits),
                     f"{statistics.median(after) / statistics.median(before):.2f}",
                     f"{min(pairs):.2f}–{max(pairs):.2f}", len(pairs)))
    return rows


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="a checkout of the earlier commit")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of socket, refresh and credfile")
    parser.add_argument("--hook-runs", type=int, default=100)
    parser.add_argument("--requests", type=int, default=1000, help="socket requests per round and load")
    parser.add_argument("--only", default="hook,socket,refresh,credfile",
                        help="comma-separated: hook, socket, refresh, credfile (all by default)")
    parser.add_argument("--worker", choices=("refresh", "credfile"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.before, args.rounds)
    checkouts = {"before": args.before.resolve(), "after": REPO}
    if not (checkouts["before"] / "credd").is_dir() or checkouts["before"] == REPO:
        parser.error(f"--before {args.before}: not another checkout of credd")
    only = set(args.only.split(","))
    if only - {"hook", "socket", "refresh", "credfile"}:
        parser.error(f"--only {args.only}: hook, socket, refresh or credfile")

    sys.path.insert(0, str(HERE))
    import bench_socket
    import common
    from common import markdown, running_daemon, time_commands

    from credd.commands.demo import demo_env, local_sts

    def commit(checkout: Path) -> str:
        return subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=False).stdout.strip() or "unknown"

    load_before = uptime()
    headers = ("", "before: median (min–max)", "after: median (min–max)", "ratio after/before",
               "per-round ratios", "rounds")
    out = [f"Before: {commit(checkouts['before'])}; after: {commit(REPO)}; {common.machine()}",
           f"`uptime` before: {load_before}"]
    with tempfile.TemporaryDirectory(prefix="credd-versions-") as temp, local_sts() as endpoint:
        root = Path(temp)
        os.chdir(root)  # `python -m credd` puts the working directory first on sys.path: neither checkout
        base = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
        envs = {}
        for version, checkout in checkouts.items():
            (root / version).mkdir()
            envs[version] = version_env(demo_env(root / version), checkout)
            check_version(envs[version], checkout)
        profile = {bench_socket.PROFILE: "arn:aws:iam::210987654321:role/Admin"}
        with contextlib.ExitStack() as daemons:
            if only & {"hook", "socket"}:
                for version in checkouts:
                    daemons.enter_context(running_daemon(envs[version], endpoint, profile, write=False))

            if "hook" in only:  # A B A B, with python -c pass in the same turns
                credd_bin = str(Path(sys.executable).parent / "credd")
                commands = {version: [credd_bin, "process", bench_socket.PROFILE] for version in checkouts}
                commands["python -c pass"] = [sys.executable, "-c", "pass"]
                times = time_commands(commands, base, args.hook_runs, envs={**envs, "python -c pass": base},
                                      expect_ok=list(commands))
                floor = statistics.median(times["python -c pass"])
                hook = {version: {"hook": times[version]} for version in checkouts}
                out.append(f"\n`credd process p`, {args.hook_runs} runs each, interleaved; `python -c pass` in "
                           f"the same turns: {floor:.1f} ms median\n")
                out.append(markdown(headers, rows_of(hook, {"hook": "hook start-up, ms"}, 1), "l"))

            def socket_round(version: str) -> dict[str, float]:
                path = envs[version]["CREDD_SOCKET"]
                seq_s, seq_lat = bench_socket.sequential(path, args.requests)
                con_s, con_lat = bench_socket.concurrent(path, args.requests, 50)
                return {"seq rate": args.requests / seq_s, "seq p99": common.percentile(seq_lat, 99),
                        "con rate": args.requests / con_s, "con p99": common.percentile(con_lat, 99)}

            if "socket" in only:
                for version in checkouts:  # warm-up: connections, caches, the daemon's thread pool
                    bench_socket.sequential(envs[version]["CREDD_SOCKET"], 100)
                    bench_socket.concurrent(envs[version]["CREDD_SOCKET"], 200, 50)
                sockets = alternate(args.rounds, socket_round)
                out.append(f"\nSocket, {args.rounds} rounds of {args.requests} `credentials` requests per load, "
                           "one connection each; sequential = one client, the hook's `protocol.request`; "
                           "concurrent = 50 asyncio clients\n")
                out.append(markdown(headers, rows_of(sockets, {"seq rate": "sequential, requests/s",
                                                                "seq p99": "sequential, p99 ms",
                                                                "con rate": "50 concurrent, requests/s",
                                                                "con p99": "50 concurrent, p99 ms"}, 2), "l"))

        if "refresh" in only:
            refresh = alternate(args.rounds, lambda version: in_worker("refresh", checkouts[version], 1, base))
            out.append(f"\nRefresh fan-out to {ROLES} role profiles (one source, local STS, 8 workers), "
                       f"{args.rounds} rounds, a worker process each\n")
            out.append(markdown(headers, rows_of(refresh, {
                "cold": f"cold (1 GetSessionToken + {ROLES} AssumeRole), ms",
                "warm": f"warm ({ROLES} AssumeRole), ms"}, 0), "l"))

        if "credfile" in only:
            credfile = alternate(args.rounds, lambda version: in_worker("credfile", checkouts[version], 3, base))
            out.append(f"\nCredentials file of {SECTIONS:,} sections, {args.rounds} rounds of a worker process each "
                       "(median of 3 updates in each)\n")
            out.append(markdown(headers, rows_of(credfile, {
                "pure 1": "`credfile.update`, 1 owned section, ms", "pure 100": "`credfile.update`, 100, ms",
                "file 1": "`update_file`, 1 owned section, ms", "file 100": "`update_file`, 100, ms"}, 1), "l"))
    out.append(f"\n`uptime` after: {uptime()}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
