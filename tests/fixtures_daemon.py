"""A real `credd serve` process for the tests, against a real-time strict STS front."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from credd import protocol
from credd.daemon import Daemon
from credd.filesync import CredentialsWriter
from tests import known_secrets
from tests.conftest import (
    TEST_KEY_ID,
    TEST_SECRET_KEY,
    TEST_TOTP_SEED,
    Home,
    run_credd,
    wait_for,
)
from tests.fixtures_sts import SERIAL, SOURCE
from tests.sts_front import StsFront

ROLE_ARN = "arn:aws:iam::222222222222:role/Admin"


def daemon_config(endpoint: str, *, mfa: str = "totp", extra_profiles: str = "") -> str:
    return f"""\
version: 1
sources:
  {SOURCE}:
    mfa_serial: {SERIAL}
    mfa: {mfa}
    sts_endpoint: {endpoint}
profiles:
  alice-session:
    source: {SOURCE}
  prod-admin:
    source: {SOURCE}
    role_arn: {ROLE_ARN}
    write: false
{extra_profiles}"""


class DaemonProcess:
    """`credd serve` in a subprocess with its stderr in a file; every log is checked for secrets at the end."""

    def __init__(self, home: Home, sock_path: Path, log_dir: Path) -> None:
        self.home = home
        self.socket = sock_path
        # DEBUG unless a test sets the level: the secret scan at the end then covers the debug lines too.
        self.env = dict(home.env, CREDD_SOCKET=str(sock_path))
        self.env.setdefault("CREDD_LOG_LEVEL", "DEBUG")
        self.log_dir = log_dir
        self.process: subprocess.Popen | None = None
        self.logs: list[Path] = []

    def start(self, wait: bool = True, wrapper: Sequence[str] = (), options: Sequence[str] = ()) -> subprocess.Popen:
        """`wrapper` execs credd in the same process (`prlimit ... --`, say): a test's way to start it under a limit.

        `options`: credd's own, before `serve` (`--config PATH`).
        """
        log = self.log_dir / f"serve-{len(self.logs)}.log"
        self.logs.append(log)
        with open(log, "wb") as stderr:
            self.process = subprocess.Popen([*wrapper, sys.executable, "-m", "credd", *options, "serve"], env=self.env,
                                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
        if wait:
            self.wait_serving()
        return self.process

    def wait_serving(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"credd serve exited early:\n{self.log()}"
            try:
                if self.ask({"op": "ping"}, timeout=2)["ok"]:
                    return
            except (protocol.DaemonUnreachable, OSError, TimeoutError):
                time.sleep(0.05)
        raise AssertionError(f"credd serve did not serve within {timeout} s:\n{self.log()}")

    def wait_state(self, profile: str, state: str, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            rows = {row["profile"]: row for row in self.ask({"op": "status"})["profiles"]}
            if rows.get(profile, {}).get("state") == state:
                return rows[profile]
            if time.monotonic() > deadline:
                raise AssertionError(f"{profile} did not become {state}: {rows.get(profile)}\n{self.log()}")
            time.sleep(0.05)

    def wait_until(self, what: str, check, timeout: float = 20.0) -> None:
        """Poll `check()` (bounded): the daemon works in its own threads, on its own time."""
        wait_for(what, check, timeout, log=self.log)

    def ask(self, message: dict, timeout: float = 30) -> dict:
        return protocol.request(str(self.socket), message, timeout)

    def credd(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_credd(list(args), self.home, input=input, extra_env={"CREDD_SOCKET": str(self.socket)})

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 20) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout)

    def log(self) -> str:
        return "\n".join(path.read_text(errors="replace") for path in self.logs if path.exists())

    def finish(self) -> None:
        """Kill what still runs; then no secret this daemon handled, nor any the suite knows of, may be in its log.

        The log is a file, not a captured stream, so the suite-wide scan does not see it: this is its scan.
        Only labels are reported, never a value.
        """
        # Imported here: at the top, it would load before pytest registers (and rewrites) it as a plugin.
        from tests.fixtures_secrets import find

        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        log = self.log()
        leaked = [known_secrets.describe(secret) for secret in find(log)]
        leaked += ["a secret from the credentials file it wrote" for secret in self.secrets()
                   if secret not in known_secrets.all() and secret in log]
        assert leaked == [], "secrets appeared in the daemon's log"

    def secrets(self) -> list[str]:
        """Everything secret this daemon handled: the test key and seed, and every session it wrote."""
        found = [TEST_SECRET_KEY, TEST_TOTP_SEED]
        credentials = self.home.credentials
        if credentials.exists():
            for line in credentials.read_text().splitlines():
                if line.startswith(("aws_secret_access_key", "aws_session_token")):
                    found.append(line.split("=", 1)[1].strip())
        return found


@pytest.fixture
def live_sts(moto_url: str):
    """The strict STS front on the real clock: a daemon in another process cannot share a frozen one."""
    front = StsFront(moto_url, seeds={SERIAL: TEST_TOTP_SEED}, hold=2.0)
    with front:
        yield front


@pytest.fixture
def daemon(plaintext_keyring: Home, live_sts: StsFront, sock_path: Path, tmp_path: Path):
    """A configured home (key and seed in the keyring) and a `credd serve` to start; stopped and checked after."""
    home = plaintext_keyring
    home.write_config(daemon_config(live_sts.url))
    assert run_credd(["keys", "set", SOURCE], home, input=f"{TEST_KEY_ID}\n{TEST_SECRET_KEY}\n").returncode == 0
    assert run_credd(["totp", "set", SOURCE], home, input=TEST_TOTP_SEED + "\n").returncode == 0
    process = DaemonProcess(home, sock_path, tmp_path)
    yield process
    process.finish()


def current_code(seed: str = TEST_TOTP_SEED) -> str:
    """A TOTP code with at least 3 s of its window left, so the front sees the same window."""
    import pyotp

    if 30 - time.time() % 30 < 3:
        time.sleep(30 - time.time() % 30 + 0.1)
    return pyotp.TOTP(seed).now()


class Plans(dict):
    """The daemon's `plan` callable in-process: the last time planned per source."""

    def __call__(self, source, when):
        self[source] = when


@pytest.fixture
def make_daemon(sts_rig, tmp_path: Path):
    """`make_daemon(**rig_options)`: an in-process Daemon on the frozen clock, writing tmp_path/aws/credentials.

    `hint_config`: the `--config` the daemon runs with, as `credd --config PATH serve` passes it.
    """

    def make(hint_config: str | None = None, **options):
        rig = sts_rig(**options)
        credentials = tmp_path / "aws" / "credentials"
        rig.config = replace(rig.config, credentials_file=credentials)
        plans = Plans()
        daemon = Daemon(rig.config, rig.engine(hint_config=hint_config), rig.inbox, plan=plans,
                        write=CredentialsWriter(credentials, hint_config),
                        clock=rig.clock.now, jitter=lambda: 0.0)
        return rig, daemon, plans, credentials

    return make
