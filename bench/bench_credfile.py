"""How long credd takes to update owned sections of a large shared credentials file.

    python bench/bench_credfile.py [--rounds 25] [--sizes 10,1000,10000]

Measures `credfile.update` alone (parse, edit, re-parse to verify: pure CPU)
and `atomicfile.update_file` around it (lock, read, write a temporary file,
fsync, rename, fsync the directory) for 1 and 100 owned sections in files of
10, 1,000 and 10,000 sections. The baseline, per file size and in the same
rounds: botocore's own parse of the file (`raw_config_parse`, what every AWS
CLI call does with it). Also in the same rounds: `update_file` with a trivial
edit (one comment line toggled: the lock, fsyncs and rename without credd's
parser, the I/O floor). `credfile.update` also runs with the garbage collector off, to
show what the collector costs as files grow. Every round runs every case once,
in a shuffled order, so drift (CPU frequency, page cache, other load) spreads
over all cases instead of landing on one. Prints a Markdown table: median, min
and max in milliseconds, microseconds per section of the file, and the ratio
to the baseline; then the collector's passes during one update of the largest
file (`gc.callbacks`). Standard library, botocore and credd only.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from botocore.configloader import raw_config_parse
from common import machine, markdown  # puts the checkout on sys.path

from credd import credfile
from credd.atomicfile import update_file
from credd.model import Credentials, Secret

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


def time_pure(text: str, names: list[str], n: int, collect: bool = True) -> float:
    write = {name: credentials(n) for name in names}
    if not collect:
        gc.disable()
    try:
        started = time.perf_counter()
        credfile.update(text, write)
        return time.perf_counter() - started
    finally:
        gc.enable()


def time_file(path: Path, names: list[str], n: int) -> float:
    write = {name: credentials(n) for name in names}
    started = time.perf_counter()
    update_file(path, lambda text: credfile.update(text, write, path=str(path)))
    return time.perf_counter() - started


def time_botocore(path: Path, n: int) -> float:
    """botocore's parse of the same file: what every AWS CLI call spends on it."""
    started = time.perf_counter()
    raw_config_parse(str(path))
    return time.perf_counter() - started


def time_trivial(path: Path, n: int) -> float:
    """`update_file` with an edit that costs nothing: toggle a last comment line (the I/O floor)."""
    mark = "# bench\n"
    started = time.perf_counter()
    update_file(path, lambda text: text[:-len(mark)] if text.endswith(mark) else text + mark)
    return time.perf_counter() - started


BOTOCORE = "botocore parse (baseline)"
PURE = "`credfile.update`"
PURE_NO_GC = "`credfile.update`, gc off"
TRIVIAL = "`update_file`, trivial edit (I/O floor)"
FILE = "`update_file`"
ORDER = [BOTOCORE, PURE, PURE_NO_GC, TRIVIAL, FILE]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--sizes", default="10,1000,10000")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    timings: dict[tuple[int, int, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as directory:
        runs = []
        for size in sizes:
            text, _ = build(size)
            for what, measure in ((BOTOCORE, time_botocore), (TRIVIAL, time_trivial)):
                path = Path(directory) / f"credentials-{size}-{what[:8].strip('`')}"
                path.write_text(text)
                runs.append((size, 0, what, lambda n, path=path, measure=measure: measure(path, n)))
        for size, count, text, names in cases(sizes):
            path = Path(directory) / f"credentials-{size}-{count}"
            path.write_text(text)
            runs.append((size, count, PURE, lambda names=names, text=text, n=0: time_pure(text, names, n)))
            runs.append((size, count, PURE_NO_GC,
                         lambda names=names, text=text, n=0: time_pure(text, names, n, collect=False)))
            runs.append((size, count, FILE, lambda names=names, path=path, n=0: time_file(path, names, n)))
        rng = random.Random(0)
        for round_number in range(1, args.rounds + 1):
            rng.shuffle(runs)
            for size, count, what, run in runs:
                # a new value each round, so update_file really writes
                timings.setdefault((size, count, what), []).append(run(n=round_number))
    medians = {key: statistics.median(values) for key, values in timings.items()}
    rows = []
    for size, count, what in sorted(timings, key=lambda key: (key[0], key[1], ORDER.index(key[2]))):
        ms = [value * 1000 for value in timings[(size, count, what)]]
        median = statistics.median(ms)
        ratio = f"{median / 1000 / medians[(size, 0, BOTOCORE)]:.2f}"
        rows.append((f"{size:,}", count or "", what, f"{median:.2f}", f"{min(ms):.2f}", f"{max(ms):.2f}",
                     f"{median * 1000 / size:.1f}", ratio))
    print(f"### Credentials file\n\n{args.rounds} rounds, every case once a round in a shuffled order; "
          f"{machine()}\n")
    print(markdown(("sections in file", "owned sections updated", "what", "median ms", "min ms", "max ms",
                    "µs per section", "ratio to botocore parse"), rows, "rrl"))
    print(gc_profile(max(sizes)))


def gc_profile(size: int) -> str:
    """Where the time beyond linear goes: the collector's passes during one update of the largest file."""
    text, owned = build(size)
    write = {owned[0]: credentials(1)}
    passes = {generation: [0, 0.0] for generation in range(3)}
    started: dict[int, float] = {}

    def watch(phase: str, info: dict) -> None:
        generation = info["generation"]
        if phase == "start":
            started[generation] = time.perf_counter()
        else:
            passes[generation][0] += 1
            passes[generation][1] += time.perf_counter() - started[generation]

    gc.collect()
    gc.callbacks.append(watch)
    try:
        begun = time.perf_counter()
        credfile.update(text, write)
        total = time.perf_counter() - begun
    finally:
        gc.callbacks.remove(watch)
    counts = "; ".join(f"generation {g}: {n} pass{'es' if n != 1 else ''}, {t * 1000:.0f} ms"
                       for g, (n, t) in passes.items())
    return (f"\nThe garbage collector during one `credfile.update` of the {size:,}-section file "
            f"({total * 1000:.0f} ms in all): {counts}.")


if __name__ == "__main__":
    main()
