"""How long credd takes to update owned sections of a large shared credentials file.

    python bench/bench_credfile.py [--rounds 25] [--sizes 10,1000,10000]

Measures `credfile.update` alone (parse, edit, re-parse to verify: pure CPU)
and `atomicfile.update_file` around it (lock, read, write a temporary file,
fsync, rename, fsync the directory) for 1 and 100 owned sections in files of
10, 1,000 and 10,000 sections. Every round runs every case once, in a
shuffled order, so drift (CPU frequency, page cache, other load) spreads over
all cases instead of landing on one. Prints a Markdown table: median, min and
max in milliseconds. Standard library and credd only.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from credd import credfile  # noqa: E402
from credd.atomicfile import update_file  # noqa: E402
from credd.model import Credentials, Secret  # noqa: E402

OWNED_EVERY = 10  # one section in ten is credd's, the rest the user's own
EXPIRY = datetime(2030, 1, 1, tzinfo=timezone.utc)


def credentials(n: int) -> Credentials:
    """Temporary credentials the size STS hands out (session tokens run to several hundred bytes)."""
    return Credentials(f"ASIA{n:016d}", Secret(f"{n:040d}"), Secret(f"{n:08d}" * 80), EXPIRY + timedelta(seconds=n))


def user_section(i: int) -> str:
    comment = f"# team {i}: ask ops before changing\n" if i % 3 == 0 else ""
    return (f"{comment}[user-{i}]\nregion = eu-west-{i % 3 + 1}\noutput = json\n"
            f"role_arn = arn:aws:iam::{i:012d}:role/Dev\n\n")


def owned_section(name: str) -> str:
    values = credfile.credential_values(credentials(0))
    return f"[{name}]\n" + "".join(f"{key} = {value}\n" for key, value in values.items()) + "\n"


def build(sections: int) -> tuple[str, list[str]]:
    """A file of `sections` sections, one in OWNED_EVERY written by credd (all, in a small file); the owned names."""
    parts, owned = ["# ~/.aws/credentials\n\n"], []
    for i in range(sections):
        if i % OWNED_EVERY == OWNED_EVERY - 1 or sections < OWNED_EVERY:
            owned.append(f"credd-{i}")
            parts.append(owned_section(owned[-1]))
        else:
            parts.append(user_section(i))
    return "".join(parts), owned


def cases(sizes: list[int]):
    for size in sizes:
        text, owned = build(size)
        for count in (1, 100):
            if count <= len(owned):
                yield size, count, text, owned[:count]


def time_pure(text: str, names: list[str], n: int) -> float:
    write = {name: credentials(n) for name in names}
    started = time.perf_counter()
    credfile.update(text, write)
    return time.perf_counter() - started


def time_file(path: Path, names: list[str], n: int) -> float:
    write = {name: credentials(n) for name in names}
    started = time.perf_counter()
    update_file(path, lambda text: credfile.update(text, write, path=str(path)))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--sizes", default="10,1000,10000")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    timings: dict[tuple[int, int, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as directory:
        runs = []
        for size, count, text, names in cases(sizes):
            path = Path(directory) / f"credentials-{size}-{count}"
            path.write_text(text)
            runs.append((size, count, "credfile.update", lambda names=names, text=text, n=0: time_pure(text, names, n)))
            runs.append((size, count, "update_file", lambda names=names, path=path, n=0: time_file(path, names, n)))
        rng = random.Random(0)
        for round_number in range(1, args.rounds + 1):
            rng.shuffle(runs)
            for size, count, what, run in runs:
                # a new value each round, so update_file really writes
                timings.setdefault((size, count, what), []).append(run(n=round_number))
    print(f"Python {platform.python_version()}, {platform.system()} {platform.machine()}, {args.rounds} rounds\n")
    print("| sections in file | owned sections updated | what | median ms | min ms | max ms |")
    print("|---:|---:|---|---:|---:|---:|")
    for (size, count, what), values in sorted(timings.items()):
        ms = [value * 1000 for value in values]
        print(f"| {size:,} | {count} | `{what}` | {statistics.median(ms):.2f} | {min(ms):.2f} | {max(ms):.2f} |")


if __name__ == "__main__":
    main()
