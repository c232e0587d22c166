"""Every benchmark, one after another, with the tables BENCHMARKS.md holds.

    .venv/bin/python bench/run_all.py [--quick] [--only hook,socket,...] [--output FILE]

(`make bench` runs this after building .venv.) Each benchmark runs in its own
process with its default settings (about 6 minutes in all on 2 cores; `--quick`
runs each with few runs, about 2 minutes, for a smoke test, not for figures).
The first run also installs the peers and credd itself into throw-away venvs
under bench/.peers/ from PyPI (a few minutes more). Nothing of the user's is
touched: every daemon, AWS CLI call and peer runs in a temporary home.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import REPO, machine  # noqa: E402  (bench/ is on sys.path from here)

# name, script, arguments, arguments with --quick
BENCHMARKS = [
    ("hook", "bench_hook.py", [], ["--runs", "30", "--importtime-runs", "3"]),
    ("awscli", "bench_awscli.py", [], ["--runs", "8"]),
    ("socket", "bench_socket.py", [], ["--rounds", "3"]),
    ("endpoints", "bench_endpoints.py", [],
     ["--rounds", "3", "--requests", "300", "--js-runs", "3", "--js-rounds", "1", "--js-calls", "5"]),
    ("peer-lookup", "peer_lookup.py", [], ["--lookups", "50", "--idle", "0,2000"]),
    ("refresh", "bench_refresh.py", [], ["--runs", "1"]),
    ("refresh-latency", "bench_refresh.py", ["--latency-ms", "50", "--runs", "3"],
     ["--latency-ms", "50", "--runs", "1", "--sizes", "10,100"]),
    ("credfile", "bench_credfile.py", [], ["--rounds", "3"]),
    ("memory", "bench_memory.py", [], ["--runs", "1"]),
    ("peers", "bench_peers.py", [], ["--runs", "5"]),
    ("import", "bench_import.py", [], ["--runs", "1", "--sizes", "50,100", "--chain-runs", "1", "--chains", "10"]),
]


def revision() -> str:
    """The commit measured, and whether the work tree differed from it (read-only git calls)."""
    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return result.stdout.strip() if result.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = git("status", "--porcelain", "--untracked-files=no", "--", "credd")
    return commit + (" with uncommitted changes in credd/" if changed else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few runs each: a smoke test, not figures")
    parser.add_argument("--only", help="comma-separated names: " + ", ".join(name for name, *_ in BENCHMARKS))
    parser.add_argument("--output", type=Path, help="also write the tables to this file")
    args = parser.parse_args()
    chosen = set(args.only.split(",")) if args.only else None
    unknown = (chosen or set()) - {name for name, *_ in BENCHMARKS}
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    header = (f"# credd benchmarks\n\n{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; credd {revision()}; "
              f"{machine()}" + ("; QUICK (smoke test, not figures)" if args.quick else "") + "\n")
    print(header, flush=True)
    out, failed, started = [header], [], time.monotonic()
    for name, script, normal, quick in BENCHMARKS:
        if chosen is not None and name not in chosen:
            continue
        begun = time.monotonic()
        result = subprocess.run([sys.executable, str(HERE / script), *(quick if args.quick else normal)],
                                cwd=REPO, capture_output=True, text=True, check=False)
        took = f"\n_{name}: {time.monotonic() - begun:.0f} s_\n"
        if result.returncode != 0:
            failed.append(name)
            text = f"### {name}: FAILED (exit {result.returncode})\n\n```\n{result.stderr[-3000:]}\n```\n"
        else:
            text = result.stdout
        print(text + took, flush=True)
        out.append(text + took)
    footer = f"\nAll done in {time.monotonic() - started:.0f} s" + (f"; FAILED: {', '.join(failed)}" if failed else "")
    print(footer)
    if args.output:
        args.output.write_text("\n".join(out) + footer + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
