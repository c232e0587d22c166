"""Shared fixtures: a temporary home, keyrings (keyrings.alt and a real Secret Service),
running the real `credd` command, and tools that must exist in CI.

Fixtures for larger parts live in their own plugin modules (listed in
`pytest_plugins`) so each stays small.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures_tty", "tests.fixtures_sts", "tests.fixtures_credfile", "tests.fixtures_daemon",
                  "tests.fixtures_faults", "tests.fixtures_secrets"]

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Variables that would let the developer's own setup leak into a test.
SCRUBBED_PREFIXES = ("AWS_", "CREDD_", "PYTHON_KEYRING", "XDG_", "DBUS_", "GNOME_KEYRING")

# Test secrets: every stream a test captures is checked for these (see `no_leaks`).
TEST_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
TEST_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TEST_TOTP_SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def require_tool(name: str) -> str:
    """The tool's path; a missing tool skips locally but fails in CI, so CI never passes by skipping."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (.ci/run installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


@dataclass
class Home:
    """A throw-away home directory and the environment that points everything into it."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def config(self) -> Path:
        return self.root / ".config" / "credd" / "config.yaml"

    @property
    def credentials(self) -> Path:
        return self.root / ".aws" / "credentials"

    def write_config(self, text: str) -> Path:
        """The config, private as `credd init` writes it (credd refuses one others could change, whatever the umask)."""
        self.config.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.config.write_text(text)
        self.config.chmod(0o600)
        return self.config


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    """HOME and the XDG dirs in a temporary directory; no AWS_/CREDD_/keyring variables."""
    root = tmp_path / "home"
    root.mkdir()
    for name in list(os.environ):
        if name.startswith(SCRUBBED_PREFIXES):
            monkeypatch.delenv(name)
    values = {
        "HOME": str(root),
        "XDG_CONFIG_HOME": str(root / ".config"),
        "XDG_DATA_HOME": str(root / ".local" / "share"),
        "XDG_STATE_HOME": str(root / ".local" / "state"),
        "XDG_RUNTIME_DIR": str(tmp_path / "run"),
    }
    (tmp_path / "run").mkdir(mode=0o700)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return Home(root, dict(os.environ))


@pytest.fixture
def sock_path():
    """A short socket path (sun_path is 108 bytes; pytest's tmp paths can be long), removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="credd-s-"))
    yield root / "d" / "credd.sock"
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def plaintext_keyring(home: Home, monkeypatch: pytest.MonkeyPatch) -> Home:
    """keyrings.alt's file backend in the temporary home, chosen explicitly (as the tests and demo do)."""
    backend = "keyrings.alt.file.PlaintextKeyring"
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", backend)
    home.env["PYTHON_KEYRING_BACKEND"] = backend
    return home


# A session bus that activates no service: the only gnome-keyring on it is the one a fixture starts. A standard
# session bus starts another on demand (a client asking before ours has taken the name, or ours asking whether
# another runs), one with no login keyring, whose first write asks for a desktop prompt no test can answer.
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


@pytest.fixture
def secret_service(home: Home, monkeypatch: pytest.MonkeyPatch):
    """A real Secret Service: a private D-Bus session bus with gnome-keyring on it.

    Nothing names a backend: keyring finds the Secret Service on its own, as on
    a user's desktop. Both daemons are stopped at the end.
    """
    dbus = require_tool("dbus-daemon")
    gnome_keyring = require_tool("gnome-keyring-daemon")
    directory = Path(tempfile.mkdtemp(prefix="credd-b-"))  # sun_path is short; pytest's tmp paths are not
    (directory / "bus.conf").write_text(BUS_CONFIG.format(socket=directory / "bus"))
    bus = subprocess.Popen([dbus, f"--config-file={directory / 'bus.conf'}", "--nofork", "--print-address=1"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=home.env)
    keyring_daemon = None
    try:
        address = bus.stdout.readline().strip()
        assert address, "dbus-daemon printed no address"
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
        home.env["DBUS_SESSION_BUS_ADDRESS"] = address
        keyring_daemon = subprocess.Popen(
            [gnome_keyring, "--foreground", "--unlock", "--components=secrets"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=home.env,
        )
        # --unlock reads the login keyring's password from stdin up to EOF; it creates the keyring.
        keyring_daemon.stdin.write(b"test-login-password")
        keyring_daemon.stdin.close()
        _wait_for_secret_service()
        yield home
    finally:
        for process in (keyring_daemon, bus):
            if process is not None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
        shutil.rmtree(directory, ignore_errors=True)


def _wait_for_secret_service(timeout: float = 10.0) -> None:
    import secretstorage

    deadline = time.monotonic() + timeout
    while True:
        try:
            connection = secretstorage.dbus_init()
            try:
                # Up, and the login keyring it makes from --unlock's password is the default collection, unlocked:
                # before that, a first write would ask to create a collection, a desktop prompt no test can answer.
                if (secretstorage.check_service_availability(connection)
                        and not secretstorage.get_collection_by_alias(connection, "default").is_locked()):
                    return
            finally:
                connection.close()
        except (secretstorage.exceptions.SecretServiceNotAvailableException,
                secretstorage.exceptions.ItemNotFoundException):
            pass
        if time.monotonic() > deadline:
            pytest.fail("gnome-keyring and its unlocked login keyring did not come up on the private D-Bus in 10 s")
        time.sleep(0.05)


@pytest.fixture(params=["keyrings.alt", "secret-service"])
def any_keyring(request: pytest.FixtureRequest) -> Home:
    """Each keyring test runs against keyrings.alt and against a real Secret Service."""
    name = "plaintext_keyring" if request.param == "keyrings.alt" else "secret_service"
    return request.getfixturevalue(name)


def wait_for(what: str, check, timeout: float = 20.0, log=lambda: ""):
    """Poll `check()` until it gives something true, and return that; fail after `timeout` seconds with `log()`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s:\n{log()}")
        time.sleep(0.05)


def run_credd(args: list[str], home: Home, input: str | None = None, timeout: float = 60,
              extra_env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The real `credd` command, as a user runs it, in the test's home (and in `cwd`, if given)."""
    env = dict(home.env)
    env.update(extra_env or {})
    result = subprocess.run([sys.executable, "-m", "credd", *args], input=input, capture_output=True, cwd=cwd,
                            text=True, env=env, timeout=timeout,
                            stdin=None if input is not None else subprocess.DEVNULL)
    assert_no_secrets(result.stdout + result.stderr)
    return result


def assert_no_secrets(text: str) -> None:
    """No test secret in anything credd printed."""
    for secret in (TEST_SECRET_KEY, TEST_TOTP_SEED):
        assert secret not in text, "a test secret appeared in credd's output"
