"""What the benchmarks share: a throw-away credd daemon, interleaved timing, and tables.

Every figure is a median over many runs with its min and max, and a ratio
against a baseline measured in the same run, interleaved (A B A B ...), so
that the noise of a shared 2-core machine lands on both alike.

Nothing here touches the user's own files: every daemon runs in a temporary
home with a throw-away file keyring (`credd.commands.demo.demo_env`), against
a local STS (moto on loopback).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python bench/x.py` puts bench/ first, not the checkout
    sys.path.insert(0, str(REPO))

from credd import protocol  # noqa: E402  (the checkout is on sys.path from here)
from credd.commands.demo import DEMO_KEY_ID, DEMO_SECRET, DEMO_SEED  # noqa: E402

SOURCE = "alice"
SERIAL = "arn:aws:iam::123456789012:mfa/alice"
CREDD_SCRIPT = str(Path(sys.executable).parent / "credd")


# The machine ---------------------------------------------------------------------

def machine() -> str:
    """One line: cores, CPU, memory, kernel, Python; what a figure is only meaningful with."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    return (f"{os.cpu_count()} cores ({model}){memory}, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


# Statistics and tables -----------------------------------------------------------

def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100), nearest rank: a value that was measured, not interpolated."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def closed_loop(count: int, clients: int, ask: Callable[[], Awaitable[None]]) -> tuple[float, list[float]]:
    """(elapsed s, latencies ms) of `count` requests made by `clients` concurrent asyncio clients, each sending its
    next request once its last is answered (a closed loop). `ask` makes one request on a new connection and raises
    SystemExit when the server refuses it."""
    latencies: list[float] = []
    left = [count]

    async def client() -> None:
        while left[0] > 0:
            left[0] -= 1
            begun = time.perf_counter()
            await ask()
            latencies.append((time.perf_counter() - begun) * 1000)

    async def run() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return time.perf_counter() - started

    return asyncio.run(run()), latencies


def markdown(headers: Sequence[str], rows: Sequence[Sequence[object]], align: str = "") -> str:
    """A Markdown table; `align` holds one letter a column (l or r), right by default."""
    align = align.ljust(len(headers), "r")
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def timing_table(times: Mapping[str, Sequence[float]], baseline: str, unit: str = "ms",
                 digits: int = 1) -> str:
    """median, min, max of each row and the ratio of its median to the baseline's."""
    base = statistics.median(times[baseline])
    rows = []
    for name, values in times.items():
        median = statistics.median(values)
        rows.append((f"`{name}`", f"{median:.{digits}f}", f"{min(values):.{digits}f}",
                     f"{max(values):.{digits}f}", f"{median / base:.2f}"))
    return markdown(("command", f"median {unit}", f"min {unit}", f"max {unit}", f"ratio to `{baseline}`"),
                    rows, "l")


# Commands, interleaved --------------------------------------------------------------

def time_commands(commands: Mapping[str, Sequence[str]], env: Mapping[str, str], runs: int, *,
                  warmup: int = 2, timeout: float = 60, expect_ok: Sequence[str] = (),
                  envs: Mapping[str, Mapping[str, str]] | None = None,
                  new_session: bool = True) -> dict[str, list[float]]:
    """Wall time in ms of each command, run in turns (A B C A B C ...) `runs` times after `warmup` turns.

    A command named in `expect_ok` must exit 0 (its figure would mean nothing
    otherwise); the others may fail fast by design. `envs` gives a command its
    own environment instead of `env`. `new_session` detaches them from the
    terminal, so nothing can stop to prompt on /dev/tty.
    """
    times: dict[str, list[float]] = {name: [] for name in commands}
    environments = {name: dict((envs or {}).get(name, env)) for name in commands}
    for turn in range(warmup + runs):
        for name, argv in commands.items():
            started = time.perf_counter()
            result = subprocess.run(argv, env=environments[name], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, timeout=timeout, start_new_session=new_session,
                                    check=False)
            elapsed = (time.perf_counter() - started) * 1000
            if name in expect_ok and result.returncode != 0:
                raise SystemExit(f"{name} failed (exit {result.returncode}): {result.stderr.decode()[-500:]}")
            if turn >= warmup:
                times[name].append(elapsed)
    return times


# A throw-away daemon ------------------------------------------------------------------

def credd(env: Mapping[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "credd", *args], input=stdin, env=dict(env), check=True,
                          capture_output=True, text=True, timeout=120)


def role_profiles(count: int, prefix: str = "role-") -> dict[str, str]:
    """`count` role profiles of one source: name -> role ARN."""
    width = len(str(max(count - 1, 0)))
    return {f"{prefix}{n:0{width}d}": f"arn:aws:iam::210987654321:role/Bench{n}" for n in range(count)}


def write_config(env: Mapping[str, str], endpoint: str, profiles: Mapping[str, str], *, write: bool = True,
                 extra: str = "") -> Path:
    """A config with one source (TOTP MFA, the seed in the keyring) and the given role profiles; `extra` appended."""
    lines = ["version: 1", "sources:", f"  {SOURCE}:", f"    mfa_serial: {SERIAL}", "    mfa: totp",
             f"    sts_endpoint: {endpoint}", "profiles:"]
    for name, role_arn in profiles.items():
        lines += [f"  {name}:", f"    source: {SOURCE}", f"    role_arn: {role_arn}"]
        if not write:
            lines.append("    write: false")
    path = Path(env["XDG_CONFIG_HOME"]) / "credd" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def store_secrets(env: Mapping[str, str]) -> None:
    """The demo's example key and TOTP seed, into the throw-away keyring, as a user would."""
    credd(env, "keys", "set", SOURCE, stdin=f"{DEMO_KEY_ID}\n{DEMO_SECRET}\n")
    credd(env, "totp", "set", SOURCE, stdin=DEMO_SEED + "\n")


def wait_fresh(env: Mapping[str, str], daemon: subprocess.Popen, timeout: float = 120) -> dict:
    """Until the daemon answers and every profile is fresh (its initial refresh is done); the status reply."""
    deadline = time.monotonic() + timeout
    while True:
        if daemon.poll() is not None:
            raise SystemExit(f"credd serve exited early (status {daemon.returncode}):\n{_log_tail(env)}")
        try:
            reply = protocol.request(env["CREDD_SOCKET"], {"op": "status"}, 10)
            if reply["profiles"] and all(row["state"] == "fresh" for row in reply["profiles"]):
                return reply
        except (protocol.DaemonUnreachable, OSError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"credd serve did not make every profile fresh within {timeout:g} s:\n{_log_tail(env)}")
        time.sleep(0.05)


@contextlib.contextmanager
def running_daemon(env: Mapping[str, str], endpoint: str, profiles: Mapping[str, str], *,
                   write: bool = True, extra: str = "") -> Iterator[subprocess.Popen]:
    """`credd serve` in the throw-away home of `env`, every profile fresh; stopped with SIGTERM after.

    `extra`: more config, appended (`endpoints:`, say)."""
    write_config(env, endpoint, profiles, write=write, extra=extra)
    store_secrets(env)
    with open(_log(env), "wb") as log:
        daemon = subprocess.Popen([sys.executable, "-m", "credd", "serve"], env=dict(env), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_fresh(env, daemon)
        yield daemon
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait(10)


def _log(env: Mapping[str, str]) -> Path:
    return Path(env["HOME"]) / "serve.log"


def _log_tail(env: Mapping[str, str]) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(_log(env).read_text(errors="replace").splitlines()[-20:])
    return "(no log)"
