"""Local faults for the tests: read-only directories, a full disk, a file size limit, a keyring that goes away.

Each fault is real, not mocked: a read-only bind mount (chmod does not stop
root, and CI runs as root), a small tmpfs filled to the last byte,
RLIMIT_FSIZE, and a gnome-keyring that is stopped, locked or loses its
D-Bus. Each is undone at teardown. A fault this machine cannot make skips
locally and fails in CI (as `require_tool` does), so CI never passes by
skipping.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests import fault_tally
from tests.conftest import (
    BUS_CONFIG,
    IN_CI,
    TEST_KEY_ID,
    TEST_SECRET_KEY,
    Home,
    _wait_for_secret_service,
    require_tool,
    run_credd,
)
from tests.fixtures_daemon import ROLE_ARN, DaemonProcess
from tests.fixtures_sts import SOURCE
from tests.sts_front import StsFront

IS_ROOT = os.geteuid() == 0


def cannot(message: str) -> None:
    """This machine cannot make the fault: skip here, fail in CI."""
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def _unmount(directory: Path) -> None:
    if _run("umount", str(directory)).returncode != 0:
        _run("umount", "-l", str(directory))  # busy: detach it now, the kernel finishes when it can


def is_writable(directory: Path) -> bool:
    """Whether a file can really be made in `directory` (access() says yes to root on a read-only mount)."""
    try:
        with tempfile.NamedTemporaryFile(dir=directory):
            return True
    except OSError:
        return False


# Read-only directories -------------------------------------------------------------

class ReadOnly:
    """`read_only(directory)` makes a directory read-only for real; `release(directory)` makes it writable again.

    As root, a read-only bind mount of the directory onto itself (writes fail
    with EROFS); otherwise chmod 0500 (EACCES). Either way the directory is
    checked to refuse a new file before the test goes on.
    """

    def __init__(self) -> None:
        self._undo: dict[Path, Callable[[], None]] = {}

    def __call__(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        self._undo[directory] = self._bind_read_only(directory) if IS_ROOT else self._chmod_read_only(directory)
        if is_writable(directory):
            self.release(directory)
            cannot(f"could not make {directory} read-only on this machine")
        fault_tally.count("local:read-only directory")
        return directory

    def release(self, directory: Path) -> None:
        self._undo.pop(directory)()

    def release_all(self) -> None:
        for directory in reversed(list(self._undo)):
            self.release(directory)

    @staticmethod
    def _bind_read_only(directory: Path) -> Callable[[], None]:
        bound = _run("mount", "--bind", str(directory), str(directory))
        if bound.returncode != 0:
            cannot(f"a read-only bind mount needs CAP_SYS_ADMIN: {bound.stderr.strip()}")
        remounted = _run("mount", "-o", "remount,ro,bind", str(directory))
        if remounted.returncode != 0:
            _unmount(directory)
            cannot(f"cannot remount {directory} read-only: {remounted.stderr.strip()}")
        return lambda: _unmount(directory)

    @staticmethod
    def _chmod_read_only(directory: Path) -> Callable[[], None]:
        mode = stat.S_IMODE(directory.stat().st_mode)
        directory.chmod(0o500)
        return lambda: directory.chmod(mode)


@pytest.fixture
def read_only() -> Iterator[ReadOnly]:
    made = ReadOnly()
    yield made
    made.release_all()


# A full disk ------------------------------------------------------------------------

class SmallDisk:
    """`small_disk(directory)` mounts a 64 KiB tmpfs there; `fill(directory)` takes every byte it has left."""

    def __init__(self) -> None:
        self._mounted: list[Path] = []

    def __call__(self, directory: Path, size: str = "64k") -> Path:
        if not IS_ROOT:
            cannot("mounting a small tmpfs needs root (CI runs as root)")
        directory.mkdir(parents=True, exist_ok=True)
        mounted = _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(directory))
        if mounted.returncode != 0:
            cannot(f"cannot mount a tmpfs (needs CAP_SYS_ADMIN): {mounted.stderr.strip()}")
        self._mounted.append(directory)
        return directory

    @staticmethod
    def fill(directory: Path) -> Path:
        """A file that takes the rest of the file system: the next write that needs a block gets ENOSPC."""
        filler = directory / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 512)
        except OSError as e:
            assert e.errno == 28, f"filling {directory} failed with {e}, not ENOSPC"
        finally:
            os.close(fd)
        fault_tally.count("local:disk full")
        return filler

    def unmount_all(self) -> None:
        for directory in reversed(self._mounted):
            _unmount(directory)
        self._mounted.clear()


@pytest.fixture
def small_disk() -> Iterator[SmallDisk]:
    disk = SmallDisk()
    yield disk
    disk.unmount_all()


@contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """RLIMIT_FSIZE at `limit` bytes for this process, SIGXFSZ ignored (a write past it fails with EFBIG)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    fault_tally.count("local:file size limit")
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def under_file_size_limit(limit: int) -> list[str]:
    """A command prefix: what follows starts with a soft RLIMIT_FSIZE of `limit`; the hard one stays, to lift it."""
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    fault_tally.count("local:file size limit")
    return [require_tool("prlimit"), f"--fsize={limit}:{'unlimited' if hard == resource.RLIM_INFINITY else hard}",
            "--"]


def lift_file_size_limit(pid: int) -> None:
    """Raise a running process's soft RLIMIT_FSIZE to its hard one (what `prlimit --fsize` does)."""
    hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)[1]
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (hard, hard))


# A keyring that goes away -------------------------------------------------------------

KEYRING_PASSWORD = b"test-login-password"


class KeyringBus:
    """A private D-Bus session bus at a fixed path with gnome-keyring on it, each stopped and started at will.

    Unlike conftest's `secret_service`, the bus activates no service: a
    keyring the test stopped stays stopped (a standard session bus would start
    a fresh, locked one on the next call), and a bus started again is found at
    the same address by a daemon that keeps its environment.
    """

    def __init__(self, home: Home) -> None:
        self.home = home
        self.dbus = require_tool("dbus-daemon")
        self.gnome_keyring = require_tool("gnome-keyring-daemon")
        self.directory = Path(tempfile.mkdtemp(prefix="credd-b-"))  # sun_path is short; pytest's tmp paths are not
        self.config = self.directory / "bus.conf"
        self.config.write_text(BUS_CONFIG.format(socket=self.directory / "bus"))
        self.address = f"unix:path={self.directory / 'bus'}"
        self.bus: subprocess.Popen | None = None
        self.keyring: subprocess.Popen | None = None

    def start_bus(self) -> None:
        self.bus = subprocess.Popen([self.dbus, f"--config-file={self.config}", "--nofork", "--print-address=1"],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=self.home.env)
        assert self.bus.stdout.readline().strip(), "dbus-daemon printed no address"

    def start_keyring(self) -> None:
        """gnome-keyring with the login keyring unlocked by its password (created on the first start)."""
        self.keyring = subprocess.Popen(
            [self.gnome_keyring, "--foreground", "--unlock", "--components=secrets"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=self.home.env,
        )
        self.keyring.stdin.write(KEYRING_PASSWORD)
        self.keyring.stdin.close()
        _wait_for_secret_service()

    def stop_keyring(self) -> None:
        _stop(self.keyring)
        fault_tally.count("local:keyring stopped")

    def stop_bus(self) -> None:
        """The bus goes, and gnome-keyring, which lives on it, with it."""
        _stop(self.bus)
        _stop(self.keyring)
        fault_tally.count("local:D-Bus stopped")

    def lock(self) -> None:
        import secretstorage

        with _connection() as connection:
            collection = secretstorage.get_default_collection(connection)
            collection.lock()
            assert collection.is_locked()
        fault_tally.count("local:keyring locked")

    def unlock(self) -> None:
        """What the user's unlock prompt does: gnome-keyring's own call with the login password."""
        import secretstorage
        from secretstorage.util import DBusAddressWrapper, format_secret, open_session

        with _connection() as connection:
            collection = secretstorage.get_default_collection(connection)
            internal = DBusAddressWrapper("/org/freedesktop/secrets",
                                          "org.gnome.keyring.InternalUnsupportedGuiltRiddenInterface", connection)
            internal.call("UnlockWithMasterPassword", "o(oayays)", collection.collection_path,
                          format_secret(open_session(connection), KEYRING_PASSWORD, "text/plain"))
            assert not collection.is_locked()

    def close(self) -> None:
        _stop(self.bus)
        _stop(self.keyring)
        shutil.rmtree(self.directory, ignore_errors=True)


@contextmanager
def _connection():
    import secretstorage

    connection = secretstorage.dbus_init()
    try:
        yield connection
    finally:
        connection.close()


def _stop(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@pytest.fixture
def keyring_bus(home: Home, monkeypatch: pytest.MonkeyPatch) -> Iterator[KeyringBus]:
    """A home whose keyring is a real Secret Service the test can stop, start, lock and unlock."""
    bus = KeyringBus(home)
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", bus.address)
    home.env["DBUS_SESSION_BUS_ADDRESS"] = bus.address
    try:
        bus.start_bus()
        bus.start_keyring()
        yield bus
    finally:
        bus.close()


def keyring_config(endpoint: str) -> str:
    """A source without MFA whose 15-minute session is never fresh (refresh_before 899 s), and a role.

    The role's credentials stay fresh for 45 minutes, so nothing is refreshed
    on its own during a test; but `credd refresh` of the role needs a new
    session, and so the access key from the keyring, at once.
    """
    return f"""\
version: 1
refresh_before: 899
sources:
  {SOURCE}:
    duration: 900
    sts_endpoint: {endpoint}
profiles:
  prod-admin:
    source: {SOURCE}
    role_arn: {ROLE_ARN}
    write: false
"""


@pytest.fixture
def keyring_daemon(keyring_bus: KeyringBus, live_sts: StsFront, sock_path: Path, tmp_path: Path):
    """A `credd serve` to start, on the `keyring_bus` Secret Service (found on its own, as on a desktop)."""
    home = keyring_bus.home
    home.write_config(keyring_config(live_sts.url))
    stored = run_credd(["keys", "set", SOURCE], home, input=f"{TEST_KEY_ID}\n{TEST_SECRET_KEY}\n")
    assert stored.returncode == 0, stored.stderr
    process = DaemonProcess(home, sock_path, tmp_path)
    yield process
    process.finish()


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    terminalreporter.write_line(f"faults injected: STS replies {fault_tally.summary('sts:')}; "
                                f"local {fault_tally.summary('local:')}")
