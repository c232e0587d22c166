"""Refresh one source with 1, 10, 100 and 500 role profiles against the local STS (moto behind the strict front).

    .venv/bin/python bench/bench_refresh.py [--runs 5] [--workers 8] [--sizes 1,10,100,500] [--latency-ms 0]

Two cases per size:
  cold: no session anywhere, so GetSessionToken with a TOTP code, then every AssumeRole;
  warm: a restart of credd with the session cached in the keyring: AssumeRole only.
Each is measured against a baseline in the same turn: the same STS calls made
with bare botocore (one client, the same number of worker threads), with none
of credd's engine around them. Runs go in turns (cold, its baseline, warm, its
baseline, ...). Wall time is the engine's `refresh()` alone (the baseline's
calls alone). The STS front counts every call: a cold refresh must make
exactly one GetSessionToken, however many roles.

Every cold run needs a new TOTP code; the wait for the next 30-second window
runs on a virtual clock (the front checks codes against the same clock) and is
reported apart, not slept. `--latency-ms` adds a round trip to every STS
reply, as a real endpoint has: with everything in one process and a few ms of
CPU per call, concurrency alone shows little against the bare local STS. With
added latency the table also gives the pool's bound: ceil(roles / workers)
AssumeRole round trips (one more, GetSessionToken, when cold).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pyotp
from common import (  # puts the checkout on sys.path, for credd and tests
    machine,
    markdown,
)

from credd import mfa
from credd.engine import Engine
from credd.model import AccessKey, Secret
from credd.store import Store
from credd.sts import StsClients
from tests.conftest import TEST_KEY_ID, TEST_SECRET_KEY, TEST_TOTP_SEED
from tests.fixtures_sts import SERIAL, SOURCE, MemoryKeyring, make_config, role_arn
from tests.sts_front import StsFront


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


class Bench:
    """The front, one STS client factory and one code ledger shared by every run (as the daemon's state file is)."""

    def __init__(self, front: StsFront, clock: VirtualClock, workers: int) -> None:
        self.front = front
        self.clock = clock
        self.workers = workers
        self.clients = StsClients()
        self.windows = mfa.UsedWindows(None)
        self.botocore = None  # the baseline's one botocore session, as credd's StsClients keeps one

    def calls_during(self, run) -> tuple[float, dict[str, int], float]:
        """(wall seconds of `run()`, STS calls by action, virtual seconds waited for a code)."""
        before, waited = dict(self.front.calls), self.clock.offset
        elapsed = run()
        calls = {action: count - before.get(action, 0) for action, count in self.front.calls.items()}
        return elapsed, {k: v for k, v in calls.items() if v}, self.clock.offset - waited

    # credd ------------------------------------------------------------------------

    def credd(self, roles: int, warm: bool) -> tuple[float, dict[str, int], float]:
        store = Store(MemoryKeyring(), "credd-bench")
        store.set_access_key(SOURCE, AccessKey(TEST_KEY_ID, Secret(TEST_SECRET_KEY)))
        store.set_totp_seed(SOURCE, Secret(TEST_TOTP_SEED))
        config = make_config(self.front.url, roles=roles, session_profile=False)

        def engine() -> Engine:
            drivers = mfa.make_drivers(seeds=store.get_totp_seed, inbox=mfa.CodeInbox(self.clock.timestamp))
            return Engine(config, store=store, clients=self.clients, drivers=drivers, windows=self.windows,
                          clock=self.clock.now, sleep=self.clock.sleep, workers=self.workers)

        if warm:
            engine().refresh(SOURCE)  # puts the session in the keyring; the measured engine is a restart
        subject = engine()

        def run() -> float:
            start = time.perf_counter()
            result = subject.refresh(SOURCE)
            elapsed = time.perf_counter() - start
            if not result.ok:
                raise SystemExit(f"refresh failed: {[p.failure for p in result.profiles.values() if p.failure]}")
            return elapsed

        return self.calls_during(run)

    # The baseline: the same calls, bare botocore ---------------------------------------

    def bare(self, roles: int, warm: bool) -> tuple[float, dict[str, int], float]:
        import botocore.session

        if self.botocore is None:
            self.botocore = botocore.session.Session()

        def client(key_id: str, secret: str, token: str | None = None):
            return self.botocore.create_client("sts", region_name="us-east-1", endpoint_url=self.front.url,
                                         aws_access_key_id=key_id, aws_secret_access_key=secret,
                                         aws_session_token=token)

        def get_session() -> dict:
            window = self.windows.claim(SERIAL, self.clock.timestamp())  # the same ledger: no code is sent twice
            self.clock.sleep(mfa.seconds_until(self.clock.timestamp(), window))
            self.windows.record(SERIAL, window)
            code = pyotp.TOTP(TEST_TOTP_SEED).at(window * 30)
            return client(TEST_KEY_ID, TEST_SECRET_KEY).get_session_token(
                SerialNumber=SERIAL, TokenCode=code, DurationSeconds=12 * 3600)["Credentials"]

        def assume_all(creds: dict) -> None:
            sts = client(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
            with ThreadPoolExecutor(max_workers=min(self.workers, roles)) as pool:
                for reply in pool.map(lambda n: sts.assume_role(RoleArn=role_arn(n), RoleSessionName="bench",
                                                                DurationSeconds=3600), range(roles)):
                    assert reply["Credentials"]["AccessKeyId"]

        cached = get_session() if warm else None

        def run() -> float:
            start = time.perf_counter()
            assume_all(cached if cached is not None else get_session())
            return time.perf_counter() - start

        return self.calls_during(run)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} ({min(values):.0f}–{max(values):.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--sizes", default="1,10,100,500")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    sizes = [int(size) for size in args.sizes.split(",")]

    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    clock = VirtualClock()
    front = StsFront(f"http://{host}:{port}", now=clock.timestamp, seeds={SERIAL: TEST_TOTP_SEED},
                     latency=args.latency_ms / 1000)
    results: dict[tuple[int, str, str], list[tuple[float, dict[str, int], float]]] = {}
    with front:
        bench = Bench(front, clock, args.workers)
        bench.credd(1, False)  # load botocore's STS model outside the timings
        bench.bare(1, False)
        for roles in sizes:
            for _ in range(args.runs):
                for case in ("cold", "warm"):
                    for who, measure in (("credd", bench.credd), ("bare botocore", bench.bare)):
                        results.setdefault((roles, case, who), []).append(measure(roles, case == "warm"))
    moto.stop()

    rows, previous = [], {}
    for roles in sizes:
        for case in ("cold", "warm"):
            credd_runs, bare_runs = results[(roles, case, "credd")], results[(roles, case, "bare botocore")]
            wall = [run[0] * 1000 for run in credd_runs]
            base = [run[0] * 1000 for run in bare_runs]
            sessions = sorted({run[1].get("GetSessionToken", 0) for run in credd_runs})
            assumed = sorted({run[1].get("AssumeRole", 0) for run in credd_runs})
            median = statistics.median(wall)
            growth = f"{median / previous[case][1]:.1f}x for {roles / previous[case][0]:g}x roles" \
                if case in previous else ""
            previous[case] = (roles, median)
            wait = statistics.median(run[2] for run in credd_runs)
            # With added latency the pool bounds the time: ceil(roles / workers) AssumeRole round trips (+1 cold).
            trips = -(-roles // args.workers) + (case == "cold")
            rows.append((roles, case, "/".join(map(str, sessions)), "/".join(map(str, assumed)), spread(wall),
                         spread(base), f"{median / statistics.median(base):.2f}", f"{median / roles:.1f}", growth,
                         f"{trips * args.latency_ms:.0f}" if args.latency_ms else "",
                         str(timedelta(seconds=round(wait))) if case == "cold" else ""))
    print(f"### Refresh fan-out\n\nOne source, N role profiles; runs each: {args.runs}, interleaved with the "
          f"bare-botocore baseline; {args.workers} AssumeRole workers; {args.latency_ms:g} ms added to every STS "
          f"reply; {machine()}\n")
    print(markdown(("roles", "case", "GetSessionToken", "AssumeRole", "credd wall ms: median (min–max)",
                    "bare botocore ms", "ratio to bare", "ms/role", "growth", "pool bound ms", "code wait (virtual)"),
                   rows, "rlrr"))
    if any(run[1].get("GetSessionToken", 0) != 1 for key, runs in results.items()
           if key[1] == "cold" and key[2] == "credd" for run in runs):
        print("\nNOT MET: a cold refresh made other than exactly one GetSessionToken")


if __name__ == "__main__":
    main()
