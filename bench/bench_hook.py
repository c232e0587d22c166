"""Hook start-up: `credd process P` (daemon warm) against `python -c pass` and `python -I -S -c pass`.

Interleaved (A B C A B C ...) so the machine's noise hits every command alike;
prints median, min and max in milliseconds and the ratios of the medians.
Run: .venv/bin/python bench/bench_hook.py [--runs 200]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from credd import protocol
from credd.commands.demo import DEMO_KEY_ID, DEMO_SECRET, DEMO_SEED, demo_env, local_sts


def credd(env: dict[str, str], *args: str, stdin: str = "") -> None:
    subprocess.run([sys.executable, "-m", "credd", *args], input=stdin, env=env, check=True, capture_output=True,
                   text=True)


def start_daemon(env: dict[str, str], root: Path, endpoint: str) -> subprocess.Popen:
    credd(env, "init", "--source", "alice", "--mfa-serial", "arn:aws:iam::123456789012:mfa/alice", "--mfa", "totp",
          "--role", "p=arn:aws:iam::210987654321:role/Admin", "--sts-endpoint", endpoint)
    credd(env, "keys", "set", "alice", stdin=f"{DEMO_KEY_ID}\n{DEMO_SECRET}\n")
    credd(env, "totp", "set", "alice", stdin=DEMO_SEED + "\n")
    daemon = subprocess.Popen([sys.executable, "-m", "credd", "serve"], env=env, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            if protocol.request(env["CREDD_SOCKET"], {"op": "credentials", "profile": "p"}, 10)["ok"]:
                return daemon
        except (protocol.DaemonUnreachable, OSError):
            time.sleep(0.05)
    raise SystemExit("the daemon did not come up")


def measure(commands: dict[str, list[str]], env: dict[str, str], runs: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            started = time.perf_counter()
            subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
            times[name].append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    credd_script = str(Path(sys.executable).parent / "credd")
    with tempfile.TemporaryDirectory(prefix="credd-bench-") as temp, local_sts() as endpoint:
        env = demo_env(Path(temp))
        daemon = start_daemon(env, Path(temp), endpoint)
        try:
            commands = {
                "python -I -S -c pass": [sys.executable, "-I", "-S", "-c", "pass"],
                "python -c pass": [sys.executable, "-c", "pass"],
                "credd process p": [credd_script, "process", "p"],
            }
            times = measure(commands, env, args.runs)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(30)
    base = statistics.median(times["python -c pass"])
    print(f"{args.runs} runs each, interleaved; {os.cpu_count()} cores; Python {sys.version.split()[0]}")
    print(f"{'command':24} {'median ms':>10} {'min':>7} {'max':>7} {'/ python -c pass':>17}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:24} {median:10.1f} {min(values):7.1f} {max(values):7.1f} {median / base:17.2f}")


if __name__ == "__main__":
    main()
