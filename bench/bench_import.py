"""`credd config import` of a large `~/.aws/config`, and the refresh of many three-deep role chains.

    .venv/bin/python bench/bench_import.py [--runs 5] [--sizes 50,100,250,500] [--chains 100] [--sources 10]
                                           [--chain-runs 5] [--workers 8] [--latency-ms 0]

Import: a generated `~/.aws/config` of N profiles in blocks of ten (a base
profile whose key is in the credentials file, MFA on every other one; a
three-deep chain from it; a role with external_id and duration_seconds; a
role declaring the MFA device itself; one through aws-vault's include_profile;
one with its own region; an SSO profile and a credential_process one, both
left alone). Two figures per size, in turns over the sizes (50, 100, 250,
500, 50, ...), so the machine's load lands on every size alike:
  plan: what the command computes, in process: the plan, its YAML, and the
        real loader proving it (`awsimport.plan_import`, `render_config`,
        `config.parse_config`);
  command: the real `credd config import` in a fresh throw-away home
        (keyrings.alt's file keyring), which also writes credd's config and
        moves every source's key into the keyring.

Chains: `--chains` three-deep chains (`cN-0` assumed with a source's session,
`cN-1` with cN-0's credentials, `cN-2` with cN-1's) spread over `--sources`
sources with TOTP MFA, against moto behind the strict STS front, which counts
every call: credd's engine refreshing every source, against bare botocore
making the same calls (per source one GetSessionToken, then each chain's
three AssumeRoles in order, the chains over the same number of threads), in
turns, run by run. A code wait runs on a virtual clock, as in bench_refresh.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyotp
from bench_refresh import VirtualClock, spread
from common import machine, markdown  # puts the checkout on sys.path, for credd and tests

from credd import awsimport, mfa
from credd.commands.demo import demo_env
from credd.config import parse_config
from credd.engine import Engine
from credd.model import AccessKey, Config, Profile, Secret, Source
from credd.store import Store
from credd.sts import StsClients
from tests.conftest import TEST_KEY_ID, TEST_SECRET_KEY, TEST_TOTP_SEED
from tests.fixtures_sts import MemoryKeyring
from tests.sts_front import StsFront

KEY = f"aws_access_key_id = {TEST_KEY_ID}\naws_secret_access_key = {TEST_SECRET_KEY}\n"
BLOCK = 10  # profiles per generated block


# Import --------------------------------------------------------------------------------------------------

def generated(profiles: int) -> tuple[str, str]:
    """(~/.aws/config, credentials) with `profiles` profiles, in blocks of ten (see the module's docstring)."""
    config, credentials = [], []
    for k in range(profiles // BLOCK):
        serial = f"arn:aws:iam::{100000000000 + k}:mfa/user{k}"
        role = f"arn:aws:iam::{200000000000 + k}:role"
        config.append(f"# block {k}\n[profile src{k}]\nregion = eu-west-1\n"
                      + (f"mfa_serial = {serial}\n" if k % 2 == 0 else "")
                      + f"[profile c{k}-0]\nsource_profile = src{k}\nrole_arn = {role}/Chain0\n"
                      f"[profile c{k}-1]\nsource_profile = c{k}-0\nrole_arn = {role}/Chain1\n"
                      f"[profile c{k}-2]\nsource_profile = c{k}-1\nrole_arn = {role}/Chain2\n"
                      f"[profile vendor{k}]\nsource_profile = src{k}\nrole_arn = {role}/Vendor\n"
                      f"external_id = vendor-{k}\nduration_seconds = 1800\n"
                      f"[profile ops{k}]\nsource_profile = src{k}\nrole_arn = {role}/Ops\nmfa_serial = {serial}\n"
                      f"[profile inc{k}]\ninclude_profile = vendor{k}\nrole_session_name = inc{k}\n"
                      f"[profile west{k}]\nsource_profile = src{k}\nrole_arn = {role}/West\nregion = us-west-2\n"
                      f"[profile sso{k}]\nsso_session = corp\nsso_account_id = {300000000000 + k}\n"
                      "sso_role_name = Dev\n"
                      f"[profile proc{k}]\ncredential_process = aws-vault export --format=json proc{k}\n")
        credentials.append(f"[src{k}]\n{KEY}")
    return "".join(config), "".join(credentials)


def time_plan(config: str, credentials: str, root: Path) -> float:
    """Seconds for the plan, its YAML and the loader's proof of it: what the command computes before writing."""
    started = time.perf_counter()
    plan = awsimport.plan_import(config, "config", credentials, "credentials")
    loaded = parse_config(awsimport.render_config(plan), "imported.yaml", root / "config.yaml",
                          {"HOME": str(root)}, "linux", 1000)
    elapsed = time.perf_counter() - started
    assert len(plan.skipped) == 2 * len(config.split("# block")[1:]), "the generator's SSO and process profiles"
    assert len(loaded.profiles) + len(plan.skipped) == config.count("[profile ")
    return elapsed


def time_command(config: str, credentials: str) -> float:
    """Seconds for the real `credd config import` in a fresh throw-away home."""
    with tempfile.TemporaryDirectory(prefix="credd-bench-import-") as tmp:
        root = Path(tmp)
        env = demo_env(root)
        aws = root / ".aws"
        aws.mkdir(mode=0o700)
        (aws / "config").write_text(config)
        (aws / "credentials").write_text(credentials)
        (aws / "credentials").chmod(0o600)
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "credd", "config", "import"], env=env, capture_output=True,
                                text=True, stdin=subprocess.DEVNULL, timeout=600, check=False)
        elapsed = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(f"credd config import failed: {result.stderr[-1000:]}")
        if "aws_secret_access_key" in (aws / "credentials").read_text():
            raise SystemExit("credd config import left a long-term key in the credentials file")
        return elapsed


def bench_import(sizes: list[int], runs: int) -> str:
    files = {size: generated(size) for size in sizes}
    plans: dict[int, list[float]] = {size: [] for size in sizes}
    commands: dict[int, list[float]] = {size: [] for size in sizes}
    with tempfile.TemporaryDirectory() as tmp:
        time_plan(*files[sizes[0]], Path(tmp))  # imports yaml and the loader outside the timings
        for _ in range(runs):
            for size in sizes:
                plans[size].append(time_plan(*files[size], Path(tmp)) * 1000)
                commands[size].append(time_command(*files[size]) * 1000)
    rows, previous = [], None
    for size in sizes:
        plan, command = statistics.median(plans[size]), statistics.median(commands[size])
        growth = ""
        if previous is not None:
            growth = (f"plan {plan / previous[1]:.1f}x, command {command / previous[2]:.1f}x "
                      f"for {size / previous[0]:g}x profiles")
        previous = (size, plan, command)
        rows.append((size, size // BLOCK, spread_ms(plans[size]), f"{plan / size * 1000:.0f}",
                     spread(commands[size]), f"{command / size:.1f}", growth))
    return (f"### Import of a generated ~/.aws/config\n\n{runs} runs each, in turns over the sizes; "
            f"{BLOCK} profiles a block, one source each ({BLOCK - 2} imported, 2 left alone); {machine()}\n\n"
            + markdown(("profiles", "sources", "plan ms: median (min–max)", "plan µs/profile",
                        "command ms: median (min–max)", "command ms/profile", "growth"), rows, "rrrrrrl"))


def spread_ms(values: list[float]) -> str:
    """`spread` with one decimal: the plan of 50 profiles takes a few ms."""
    return f"{statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f})"


# Chains --------------------------------------------------------------------------------------------------

def chain_config(endpoint: str, chains: int, sources: int) -> Config:
    """`chains` three-deep chains over `sources` sources, each with TOTP MFA on its own device."""
    made = {f"s{n}": Source(f"s{n}", serial(n), "totp", None, 12 * 3600, "us-east-1", endpoint)
            for n in range(sources)}
    profiles = {}
    for c in range(chains):
        source = f"s{c % sources}"
        for depth in range(3):
            name = f"c{c}-{depth}"
            profiles[name] = Profile(name, source, chain_role(c, depth), f"credd-{source}", None, 3600, True,
                                     "us-east-1", f"c{c}-{depth - 1}" if depth else None)
    return Config(path=Path("/nonexistent/config.yaml"), credentials_file=Path("/nonexistent/credentials"),
                  socket=Path("/nonexistent/credd.sock"), keyring_service="credd-bench", refresh_before=20 * 60,
                  sources=made, profiles=profiles)


def serial(n: int) -> str:
    return f"arn:aws:iam::{100000000000 + n}:mfa/user{n}"


def chain_role(chain: int, depth: int) -> str:
    return f"arn:aws:iam::{200000000000 + depth}:role/Chain{chain}"


class Chains:
    """The front, its virtual clock, one code ledger and one botocore session, shared by every run."""

    def __init__(self, front: StsFront, clock: VirtualClock, chains: int, sources: int, workers: int) -> None:
        self.front, self.clock, self.workers = front, clock, workers
        self.config = chain_config(front.url, chains, sources)
        self.clients = StsClients()
        self.windows = mfa.UsedWindows(None)
        import botocore.session

        self.botocore = botocore.session.Session()

    def calls_during(self, run) -> tuple[float, dict[str, int]]:
        before = dict(self.front.calls)
        elapsed = run()
        return elapsed, {action: count - before.get(action, 0) for action, count in self.front.calls.items()
                         if count - before.get(action, 0)}

    def credd(self) -> tuple[float, dict[str, int]]:
        """Every source refreshed by a new engine (no session anywhere): what a daemon's first refresh does."""
        store = Store(MemoryKeyring(), "credd-bench")
        for name in self.config.sources:
            store.set_access_key(name, AccessKey(TEST_KEY_ID, Secret(TEST_SECRET_KEY)))
            store.set_totp_seed(name, Secret(TEST_TOTP_SEED))
        drivers = mfa.make_drivers(seeds=store.get_totp_seed, inbox=mfa.CodeInbox(self.clock.timestamp))
        engine = Engine(self.config, store=store, clients=self.clients, drivers=drivers, windows=self.windows,
                        clock=self.clock.now, sleep=self.clock.sleep, workers=self.workers)

        def run() -> float:
            started = time.perf_counter()
            for source in self.config.sources:
                result = engine.refresh(source)
                if not result.ok:
                    raise SystemExit(f"refresh failed: {[p.failure for p in result.profiles.values() if p.failure]}")
            return time.perf_counter() - started

        return self.calls_during(run)

    def bare(self) -> tuple[float, dict[str, int]]:
        """The same calls with bare botocore: per source a session, then its chains, each link with the last's keys."""
        def client(creds: dict):
            return self.botocore.create_client("sts", region_name="us-east-1", endpoint_url=self.front.url,
                                               aws_access_key_id=creds["AccessKeyId"],
                                               aws_secret_access_key=creds["SecretAccessKey"],
                                               aws_session_token=creds.get("SessionToken"))

        def session(n: int) -> dict:
            window = self.windows.claim(serial(n), self.clock.timestamp())  # the same ledger: no code twice
            self.clock.sleep(mfa.seconds_until(self.clock.timestamp(), window))
            self.windows.record(serial(n), window)
            code = pyotp.TOTP(TEST_TOTP_SEED).at(window * 30)
            return client({"AccessKeyId": TEST_KEY_ID, "SecretAccessKey": TEST_SECRET_KEY}).get_session_token(
                SerialNumber=serial(n), TokenCode=code, DurationSeconds=12 * 3600)["Credentials"]

        def chain(c: int, creds: dict) -> None:
            for depth in range(3):
                creds = client(creds).assume_role(RoleArn=chain_role(c, depth), RoleSessionName="bench",
                                                  DurationSeconds=3600)["Credentials"]

        sources = len(self.config.sources)
        chains = len(self.config.profiles) // 3

        def run() -> float:
            started = time.perf_counter()
            for n in range(sources):
                creds = session(n)
                mine = range(n, chains, sources)
                with ThreadPoolExecutor(max_workers=self.workers) as pool:
                    list(pool.map(lambda c, creds=creds: chain(c, creds), mine))
            return time.perf_counter() - started

        return self.calls_during(run)


def bench_chains(chains: int, sources: int, runs: int, workers: int, latency_ms: float) -> str:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    clock = VirtualClock()
    front = StsFront(f"http://{host}:{port}", now=clock.timestamp,
                     seeds={serial(n): TEST_TOTP_SEED for n in range(sources)}, latency=latency_ms / 1000)
    results: dict[str, list[tuple[float, dict[str, int]]]] = {"credd": [], "bare botocore": []}
    with front:
        bench = Chains(front, clock, chains, sources, workers)
        bench.credd(), bench.bare()  # loads botocore's STS model outside the timings
        for _ in range(runs):
            results["credd"].append(bench.credd())
            results["bare botocore"].append(bench.bare())
    moto.stop()
    base = statistics.median(run[0] for run in results["bare botocore"])
    rows = []
    for who, measured in results.items():
        wall = [run[0] * 1000 for run in measured]
        counts = {action: sorted({run[1].get(action, 0) for run in measured})
                  for action in ("GetSessionToken", "AssumeRole")}
        rows.append((who, "/".join(map(str, counts["GetSessionToken"])), "/".join(map(str, counts["AssumeRole"])),
                     spread(wall), f"{statistics.median(wall) / (base * 1000):.2f}",
                     f"{statistics.median(wall) / (3 * chains):.2f}"))
    text = (f"### Refresh of {chains} three-deep chains\n\n{chains} chains of 3 roles over {sources} sources (TOTP "
            f"MFA each), every source refreshed from nothing; {runs} runs each, credd and bare botocore in turns; "
            f"{workers} workers; {latency_ms:g} ms added to every STS reply; {machine()}\n\n"
            + markdown(("who", "GetSessionToken", "AssumeRole", "wall ms: median (min–max)", "ratio to bare",
                        "ms/role"), rows, "l"))
    if any(run[1].get("GetSessionToken") != sources or run[1].get("AssumeRole") != 3 * chains
           for run in results["credd"]):
        text += f"\n\nNOT MET: a refresh made other than exactly {sources} GetSessionToken and {3 * chains} AssumeRole"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each import size")
    parser.add_argument("--sizes", default="50,100,250,500")
    parser.add_argument("--chains", type=int, default=100)
    parser.add_argument("--sources", type=int, default=10)
    parser.add_argument("--chain-runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    if any(size % BLOCK for size in sizes):
        parser.error(f"--sizes: each a multiple of {BLOCK}")
    if args.runs:
        print(bench_import(sizes, args.runs) + "\n")
    if args.chain_runs:
        print(bench_chains(args.chains, args.sources, args.chain_runs, args.workers, args.latency_ms))


if __name__ == "__main__":
    main()
