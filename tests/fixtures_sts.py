"""Fixtures for the STS engine: a local STS (moto on loopback), the strict STS front before it,
a frozen clock that the engine, the front and moto agree on, and engines wired to all of them.

The clock is freezegun's: moto stamps Expiration with the (frozen) time, the
front checks TOTP codes against the same clock, and the engine's `sleep`
moves it forward, so waiting for the next 30-second window takes no time.
botocore's own retry sleeps are recorded instead of slept.
"""

from __future__ import annotations

import logging
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest
from freezegun import freeze_time

from credd import mfa, paths
from credd.engine import Engine
from credd.model import AccessKey, Config, Profile, Secret, Source
from credd.store import Store
from credd.sts import StsClients
from tests import fault_tally
from tests.conftest import TEST_KEY_ID, TEST_SECRET_KEY, TEST_TOTP_SEED, Home
from tests.sts_front import StsFront

START = "2030-06-01 12:00:05"  # five seconds into a 30-second window
SERIAL = "arn:aws:iam::111111111111:mfa/alice"
SOURCE = "alice"


class MemoryKeyring:
    """The three methods of keyring's backend contract, in a dict: fast, private to one test."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, user: str) -> str | None:
        return self.entries.get((service, user))

    def set_password(self, service: str, user: str, value: str) -> None:
        self.entries[(service, user)] = value

    def delete_password(self, service: str, user: str) -> None:
        import keyring.errors

        if self.entries.pop((service, user), None) is None:
            raise keyring.errors.PasswordDeleteError(user)


class Clock:
    """The frozen clock as the engine and the front take it; `sleep` moves it instead of waiting."""

    def __init__(self, factory) -> None:
        self._factory = factory
        self.sleeps: list[float] = []
        self._watchers: list[Callable[[], None]] = []

    def now(self) -> datetime:
        return self._factory().replace(tzinfo=timezone.utc)

    def timestamp(self) -> float:
        return self.now().timestamp()

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            fault_tally.count("local:clock set back")
        self._factory.tick(seconds)
        for watcher in self._watchers:
            watcher()

    def watch(self, callback: Callable[[], None]) -> None:
        self._watchers.append(callback)
        callback()


@pytest.fixture(scope="session")
def moto_url():
    """moto's server on a free loopback port, for the whole session."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def sts_clients() -> StsClients:
    """Shared by tests: clients hold no state, and loading botocore's STS model once saves time."""
    return StsClients(connect_timeout=1.0, read_timeout=3.0)


@pytest.fixture
def clock():
    with freeze_time(START, ignore=["_pytest"]) as factory:  # pytest keeps its own timings
        yield Clock(factory)


@pytest.fixture
def retry_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """botocore's backoff delays between retries, recorded instead of slept (it sleeps in endpoint.py)."""
    import botocore.endpoint

    sleeps: list[float] = []
    monkeypatch.setattr(botocore.endpoint, "time", types.SimpleNamespace(sleep=sleeps.append))
    return sleeps


@pytest.fixture
def sts_front(moto_url: str, clock: Clock, retry_sleeps: list[float]):
    front = StsFront(moto_url, now=clock.timestamp, seeds={SERIAL: TEST_TOTP_SEED}, hold=2.0)
    with front:
        yield front


def make_config(endpoint: str, *, roles: int = 0, session_profile: bool = True, mfa: str | None = "totp",
                mfa_command: tuple[str, ...] | None = None, role_duration: int = 3600, duration: int = 12 * 3600,
                refresh_before: int = 20 * 60, external_id: str | None = None) -> Config:
    """One source (`alice`) with an optional session profile and `roles` role profiles (`role-00`, ...)."""
    source = Source(SOURCE, SERIAL if mfa else None, mfa, mfa_command, duration, "us-east-1", endpoint)
    profiles = {}
    if session_profile:
        profiles["alice-session"] = Profile("alice-session", SOURCE, None, f"credd-{SOURCE}", None, 0, True)
    for n in range(roles):
        name = f"role-{n:02d}"
        profiles[name] = Profile(name, SOURCE, role_arn(n), f"credd-{SOURCE}", external_id, role_duration, True)
    return Config(path=Path("/nonexistent/config.yaml"), credentials_file=Path("/nonexistent/credentials"),
                  socket=Path("/nonexistent/credd.sock"), keyring_service="credd-test",
                  refresh_before=refresh_before, sources={SOURCE: source}, profiles=profiles)


def role_arn(n: int) -> str:
    return f"arn:aws:iam::222222222222:role/Role{n:02d}"


@dataclass
class Rig:
    """A local STS, a keyring holding alice's key and seed, and a way to start credd's engine (again)."""

    front: StsFront
    clock: Clock
    config: Config
    store: Store
    clients: StsClients
    state_dir: Path
    inbox: mfa.CodeInbox = field(init=False)  # where `credd mfa alice CODE` would put a code

    def __post_init__(self) -> None:
        self.inbox = mfa.CodeInbox(clock=self.clock.timestamp)

    def engine(self, **options) -> Engine:
        """A new engine: what a restart of credd starts with (only the keyring and the state file persist)."""
        drivers = mfa.make_drivers(seeds=self.store.get_totp_seed, inbox=self.inbox, command_timeout=10)
        windows = mfa.UsedWindows(mfa.state_file(self.state_dir))
        defaults = dict(store=self.store, clients=self.clients, drivers=drivers, windows=windows,
                        clock=self.clock.now, sleep=self.clock.sleep)
        return Engine(self.config, **{**defaults, **options})


@pytest.fixture
def sts_rig(sts_front: StsFront, clock: Clock, home: Home, sts_clients: StsClients):
    """`sts_rig(roles=20, mfa="totp", backend=None)`: a Rig with alice's key and seed in the keyring."""

    def make(backend: object | None = None, **config_options) -> Rig:
        store = Store(backend if backend is not None else MemoryKeyring(), "credd-test")
        store.set_access_key(SOURCE, AccessKey(TEST_KEY_ID, Secret(TEST_SECRET_KEY)))
        store.set_totp_seed(SOURCE, Secret(TEST_TOTP_SEED))
        config = make_config(sts_front.url, **config_options)
        return Rig(sts_front, clock, config, store, sts_clients, Path(paths.state_dir(home.env)))

    return make


@pytest.fixture
def device_command(tmp_path: Path, clock: Clock) -> tuple[str, ...]:
    """An `mfa_command` that acts as the MFA device: prints noise, then the code for the test clock's time."""
    now_file = tmp_path / "device-now"
    clock.watch(lambda: now_file.write_text(repr(clock.timestamp())))
    script = tmp_path / "device.py"
    script.write_text(
        "import sys, pyotp\n"
        "now = float(open(sys.argv[1]).read())\n"
        "print('Touch your security key...', file=sys.stderr)\n"
        f"print('account: aws')\nprint(pyotp.TOTP({TEST_TOTP_SEED!r}).at(now))\n"
    )
    return (sys.executable, str(script), str(now_file))
