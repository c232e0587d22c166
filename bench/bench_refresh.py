"""Refresh one source with 1, 10 and 100 role profiles against the local STS (moto behind the strict front).

    .venv/bin/python bench/bench_refresh.py [--runs 5] [--workers 8] [--sizes 1,10,100] [--latency-ms 0]

Two cases per size, each the median of `--runs`:
  cold: no session anywhere, so GetSessionToken with a TOTP code, then every AssumeRole;
  warm: a restart of credd with the session cached in the keyring: AssumeRole only.
Wall time is the engine's `refresh()` alone. Every cold run needs a new TOTP
code; the wait for the next 30-second window runs on a virtual clock (the
front checks codes against the same clock) and is reported apart, not slept.
`--latency-ms` adds a round trip to every STS reply, as a real endpoint has:
with everything in one process and ~5 ms of CPU per call, concurrency alone
shows little against the bare local STS.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from credd import mfa  # noqa: E402
from credd.engine import Engine  # noqa: E402
from credd.model import AccessKey, Secret  # noqa: E402
from credd.store import Store  # noqa: E402
from credd.sts import StsClients  # noqa: E402
from tests.conftest import TEST_KEY_ID, TEST_SECRET_KEY, TEST_TOTP_SEED  # noqa: E402
from tests.fixtures_sts import SERIAL, SOURCE, MemoryKeyring, make_config  # noqa: E402
from tests.sts_front import StsFront  # noqa: E402


class VirtualClock:
    """The real clock plus every wait the engine asked for, which is skipped instead of slept."""

    def __init__(self) -> None:
        self.offset = 0.0

    def timestamp(self) -> float:
        return time.time() + self.offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp(), timezone.utc)

    def sleep(self, seconds: float) -> None:
        self.offset += seconds


def measure(front: StsFront, clients: StsClients, clock: VirtualClock, windows: mfa.UsedWindows, roles: int,
            warm: bool, workers: int) -> tuple[float, dict[str, int], float]:
    """One refresh: (wall seconds, STS calls by action, virtual seconds waited for a code)."""
    store = Store(MemoryKeyring(), "credd-bench")
    store.set_access_key(SOURCE, AccessKey(TEST_KEY_ID, Secret(TEST_SECRET_KEY)))
    store.set_totp_seed(SOURCE, Secret(TEST_TOTP_SEED))
    config = make_config(front.url, roles=roles, session_profile=False)

    def engine() -> Engine:
        drivers = mfa.make_drivers(seeds=store.get_totp_seed, inbox=mfa.CodeInbox(clock.timestamp))
        return Engine(config, store=store, clients=clients, drivers=drivers, windows=windows,
                      clock=clock.now, sleep=clock.sleep, workers=workers)

    if warm:
        engine().refresh(SOURCE)  # puts the session in the keyring; the measured engine is a restart
    before, waited = dict(front.calls), clock.offset
    subject = engine()
    start = time.perf_counter()
    result = subject.refresh(SOURCE)
    elapsed = time.perf_counter() - start
    if not result.ok:
        raise SystemExit(f"refresh failed: {[p.failure for p in result.profiles.values() if p.failure]}")
    calls = {action: count - before.get(action, 0) for action, count in front.calls.items()}
    return elapsed, {k: v for k, v in calls.items() if v}, clock.offset - waited


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--sizes", default="1,10,100")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    clock = VirtualClock()
    clients = StsClients()
    windows = mfa.UsedWindows(None)  # one ledger for all runs, as the daemon's state file is
    print(f"local STS: moto {host}:{port} behind the strict front; AssumeRole workers: {args.workers}; "
          f"{args.latency_ms:g} ms added latency per call; median of {args.runs} runs")
    print(f"{'roles':>5}  {'case':<5}  {'GetSessionToken':>15}  {'AssumeRole':>10}  {'wall ms':>8}  "
          f"{'ms/role':>7}  {'code wait (virtual)':>19}")
    front = StsFront(f"http://{host}:{port}", now=clock.timestamp, seeds={SERIAL: TEST_TOTP_SEED},
                     latency=args.latency_ms / 1000)
    with front:
        measure(front, clients, clock, windows, 1, False, args.workers)  # load botocore's STS model outside the timings
        for roles in (int(size) for size in args.sizes.split(",")):
            for warm in (False, True):
                runs = [measure(front, clients, clock, windows, roles, warm, args.workers) for _ in range(args.runs)]
                wall = statistics.median(run[0] for run in runs)
                calls = runs[0][1]
                wait = statistics.median(run[2] for run in runs)
                print(f"{roles:>5}  {'warm' if warm else 'cold':<5}  {calls.get('GetSessionToken', 0):>15}  "
                      f"{calls.get('AssumeRole', 0):>10}  {wall * 1000:>8.0f}  {wall * 1000 / roles:>7.1f}  "
                      f"{str(timedelta(seconds=round(wait))):>19}")
    moto.stop()


if __name__ == "__main__":
    main()
