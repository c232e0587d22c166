"""The daemon's resident memory, idle, with 1 role profile and with 500 (one source).

    .venv/bin/python bench/bench_memory.py [--runs 3] [--sizes 1,500] [--idle 2]

Each run starts a fresh `credd serve` in its own throw-away home against the
local STS, waits until its initial refresh has made every profile fresh (and
written them into the credentials file), lets it sit idle for `--idle` seconds,
then reads VmRSS (and the peak, VmHWM) from /proc/PID/status. Sizes run in
turns (1, 500, 1, 500, ...). Baselines in the same turns: a bare interpreter
(`python -c` sleeping) and one that has imported what `credd serve` imports
(the daemon's floor before it holds any profile).
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
from common import markdown, role_profiles, running_daemon

from credd.commands.demo import demo_env, local_sts

# What `credd serve` has imported once it serves: its modules, boto3's STS client, keyring, APScheduler.
IMPORTS = ("import credd.commands.serve, credd.daemon, credd.engine, credd.scheduler, credd.store, keyring, "
           "boto3, botocore.session; botocore.session.get_session().create_client('sts', region_name='us-east-1', "
           "aws_access_key_id='x', aws_secret_access_key='y')")


def status_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def daemon_memory(profiles: int, endpoint: str, idle: float) -> dict[str, int]:
    with tempfile.TemporaryDirectory(prefix="credd-bench-") as temp:
        env = demo_env(Path(temp))
        with running_daemon(env, endpoint, role_profiles(profiles)) as daemon:
            time.sleep(idle)
            return status_kib(daemon.pid)


def python_memory(code: str, idle: float) -> dict[str, int]:
    """A Python process that runs `code`, then sleeps: measured after `idle` seconds like the daemon."""
    script = f"{code}\nimport time\nprint('ready', flush=True)\ntime.sleep(600)"
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=common.REPO)
    try:
        if process.stdout.readline().strip() != "ready":
            raise SystemExit(f"the baseline process failed: {code}")
        time.sleep(idle)
        return status_kib(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="1,500")
    parser.add_argument("--idle", type=float, default=2.0)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    cases = {"python -c pass (bare interpreter)": lambda: python_memory("pass", args.idle),
             "python with credd serve's imports and an STS client": lambda: python_memory(IMPORTS, args.idle)}
    samples: dict[str, list[dict[str, int]]] = {}
    with local_sts() as endpoint:
        for size in sizes:
            cases[f"credd serve, {size} profile{'s' if size > 1 else ''}"] = \
                lambda size=size: daemon_memory(size, endpoint, args.idle)
        for _ in range(args.runs):
            for name, measure in cases.items():
                samples.setdefault(name, []).append(measure())
    baseline = f"credd serve, {sizes[0]} profile{'s' if sizes[0] > 1 else ''}"
    base = statistics.median(s["VmRSS"] for s in samples[baseline])
    rows = []
    for name, values in samples.items():
        rss = [s["VmRSS"] / 1024 for s in values]
        peak = [s["VmHWM"] / 1024 for s in values]
        rows.append((name, f"{statistics.median(rss):.1f}", f"{min(rss):.1f}", f"{max(rss):.1f}",
                     f"{statistics.median(rss) * 1024 / base:.2f}", f"{statistics.median(peak):.1f}"))
    print(f"### Memory\n\nRuns each: {args.runs}, interleaved; idle {args.idle:g} s after the initial refresh; "
          f"{common.machine()}\n")
    print(markdown(("process", "VmRSS median MiB", "min", "max", f"ratio to {baseline}", "VmHWM (peak) median MiB"),
                   rows, "l"))


if __name__ == "__main__":
    main()
