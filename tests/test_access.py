"""Who can reach the daemon and its files: other users, planted symlinks, a hostile environment, core dumps.

Some of these need a second user id. The tests run as root (as CI does) and
use `nobody` (65534): a process is started as root, loads everything credd
needs, then drops to 65534 before credd runs (`AS_USER` below). Without
root they skip locally and fail in CI.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from credd import client, paths
from credd.config import parse_config
from credd.endpoints import unix_socket as server
from credd.errors import ClientError, ConfigError, CreddError
from tests.conftest import (
    IN_CI,
    TEST_KEY_ID,
    TEST_SECRET_KEY,
    Home,
    run_credd,
    wait_for,
)
from tests.fixtures_daemon import DaemonProcess, daemon_config
from tests.fixtures_sts import SOURCE
from tests.socket_helpers import as_user, raw_request

NOBODY = 65534

# Runs `credd ARGS...` as another user. Started as root, it imports every credd module and what
# they load later (the interpreter may live where that user cannot read, as under /root), then
# switches to the user. Switching uid makes the kernel mark the process undumpable and the test
# must see credd do that itself, so this puts "dumpable" back, and sets the core limit to
# unlimited; it prints its pid and waits for a line on stdin, so the test can look at the process
# before credd runs in it.
AS_USER = r"""
import ctypes, importlib, os, pkgutil, resource, runpy, sys
import credd
for module in pkgutil.walk_packages(credd.__path__, "credd."):
    if not module.name.endswith("__main__") and ".demo" not in module.name:
        importlib.import_module(module.name)
for name in ("keyring.core", "keyring.backends.fail", "keyrings.alt.file", "apscheduler.schedulers.background",
             "apscheduler.executors.pool", "apscheduler.triggers.date", "apscheduler.jobstores.memory", "yaml",
             "pyotp", "importlib.metadata", "concurrent.futures.thread", "asyncio.unix_events", "json"):
    importlib.import_module(name)
uid = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
os.setgroups([])
os.setgid(uid)
os.setuid(uid)
ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE 1: undo what the uid switch did
print(os.getpid(), flush=True)
sys.stdin.readline()
sys.argv = ["credd", *sys.argv[2:]]
runpy.run_module("credd", run_name="__main__", alter_sys=True)
"""


def require_root() -> None:
    if os.getuid() != 0:
        message = "needs root to act as another user (CI runs the suite as root)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under `root`: its type, mode, owner and content (a link's target), to compare before and after."""
    found = {}
    paths = [root]
    for directory, dirs, files in os.walk(root):  # symlinks are listed, never followed
        paths += [Path(directory, name) for name in dirs + files]
    for path in sorted(paths):
        info = os.lstat(path)
        if stat.S_ISREG(info.st_mode):
            content = hashlib.sha256(path.read_bytes()).hexdigest()
        elif stat.S_ISLNK(info.st_mode):
            content = os.readlink(path)
        else:
            content = None
        found[str(path.relative_to(root))] = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode), info.st_uid,
                                             content)
    return found


@contextmanager
def scratch_dir(prefix: str, owner: int | None = None) -> Iterator[Path]:
    """A short directory in /tmp (pytest's tmp_path is private to root, and sun_path is short)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if owner is not None:
        os.chown(path, owner, owner)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def user_env(home: Path) -> dict[str, str]:
    """An environment of nothing but a home for a process of another user."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"), "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_STATE_HOME": str(home / ".local" / "state"),
            "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring", "CREDD_LOG_LEVEL": "DEBUG"}


def proc_owner(pid: int) -> int:
    """The owner of /proc/PID/status: the process's uid, or root (0) when the process is not dumpable."""
    return os.stat(f"/proc/{pid}/status").st_uid


def core_limit(pid: int) -> list[str]:
    line = next(line for line in Path(f"/proc/{pid}/limits").read_text().splitlines()
                if line.startswith("Max core file size"))
    return line.split()[4:6]  # soft, hard


# Core dumps and other users, on a daemon that runs as nobody ----------------------------------------------


def test_the_daemon_cannot_dump_core_and_serves_only_its_own_user():
    require_root()
    with scratch_dir("credd-a-", owner=NOBODY) as root:
        home = root / "home"
        socket_path = root / "s" / "credd.sock"
        config = home / ".config" / "credd" / "config.yaml"
        config.parent.mkdir(parents=True)
        config.write_text(daemon_config("http://127.0.0.1:9").replace(
            "version: 1\n", f"version: 1\nsocket: {socket_path}\ncredentials_file: {home / 'aws' / 'credentials'}\n"))
        for path in (home, *home.rglob("*")):
            os.chown(path, NOBODY, NOBODY)
        env = dict(user_env(home), CREDD_CONFIG=str(config))
        log_path = root / "serve.log"
        with open(log_path, "wb") as log:
            daemon = subprocess.Popen([sys.executable, "-c", AS_USER, str(NOBODY), "serve"], env=env, text=True,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        try:
            pid = int(daemon.stdout.readline())
            assert pid == daemon.pid
            # Before credd runs: a process of nobody, dumpable, core files unlimited.
            assert proc_owner(pid) == NOBODY
            assert core_limit(pid) == ["unlimited", "unlimited"]
            daemon.stdin.write("go\n")
            daemon.stdin.flush()

            def answered():
                assert daemon.poll() is None, log_path.read_text()
                try:
                    return raw_request(socket_path, {"op": "ping"}, 2)  # credd's own client would refuse first
                except OSError:
                    return None

            reply = wait_for("the daemon answers", answered, log=log_path.read_text)
            # This test runs as root: another user to the daemon, refused even so.
            assert reply == {"ok": False, "error": "forbidden", "message": "this credd serves another user"}
            assert core_limit(pid) == ["0", "0"]  # RLIMIT_CORE 0, soft and hard
            assert proc_owner(pid) == 0  # PR_SET_DUMPABLE 0: /proc/PID/* now belongs to root, not to nobody

            # Its own user is served, by the real CLI, after the stranger was turned away.
            status = subprocess.run([sys.executable, "-c", AS_USER, str(NOBODY), "status", "--json"], env=env,
                                    input="go\n", capture_output=True, text=True, timeout=60, check=False)
            # Answered in full; exit 1 as `status` gives, since no profile can be fresh (its STS is unreachable).
            assert status.returncode == 1, status.stderr
            rows = json.loads(status.stdout.split("\n", 1)[1])["profiles"]
            assert {row["profile"] for row in rows} == {"alice-session", "prod-admin"}
            assert "refused a client of uid 0" in log_path.read_text()

            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(20) == 0, log_path.read_text()
            assert not socket_path.exists()
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait(10)
            daemon.stdin.close()
            daemon.stdout.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_a_failed_prctl_is_logged_with_its_errno(monkeypatch, caplog):
    """ctypes does not raise when prctl fails: it returns -1 and leaves the errno."""
    import ctypes
    import errno
    import resource

    from credd.commands import serve

    class Libc:
        @staticmethod
        def prctl(*args):
            ctypes.set_errno(errno.EPERM)
            return -1

    monkeypatch.setattr(resource, "setrlimit", lambda *args: None)
    monkeypatch.setattr(ctypes, "CDLL", lambda *args, **kwargs: Libc())
    serve._no_core_dumps()
    assert f"could not mark the process undumpable (prctl: {os.strerror(errno.EPERM)})" in caplog.text


def test_a_client_of_another_user_gets_nothing_from_a_real_daemon(daemon, sock_path: Path):
    require_root()
    daemon.start()
    daemon.wait_state("prod-admin", "fresh")
    # Open every door the file system has, so that only the daemon's peer check stands in the way.
    for path, mode in ((sock_path.parent.parent, 0o755), (sock_path.parent, 0o755), (sock_path, 0o666)):
        os.chmod(path, mode)
    # A stranger's own program, which skips every check credd's client makes:
    reply = as_user(NOBODY, lambda: raw_request(sock_path, {"op": "credentials", "profile": "prod-admin"}))
    assert reply == {"ok": False, "error": "forbidden", "message": "this credd serves another user"}
    assert "refused a client of uid 65534" in daemon.log()
    # ...and credd's own client run by the stranger, which refuses first: the daemon is not its user's.
    with scratch_dir("credd-n-", owner=NOBODY) as home:
        stranger = subprocess.run([sys.executable, "-c", AS_USER, str(NOBODY), "process", "prod-admin"],
                                  env=dict(user_env(home), CREDD_SOCKET=str(sock_path)), input="go\n",
                                  capture_output=True, text=True, timeout=60, check=False)
    assert stranger.returncode == 1
    assert "runs as uid 0, not as you (uid 65534)" in stranger.stderr
    assert stranger.stdout.strip().isdigit()  # the wrapper's pid line, and no credentials
    assert daemon.credd("process", "prod-admin").returncode == 0  # its own user, served as before
    assert daemon.stop() == 0


# The socket's directory -------------------------------------------------------------------------------------


def _plant_symlink(directory: Path, attacker: Path) -> str:
    directory.symlink_to(attacker)
    return f"{directory} is not a directory (a symlink?)"


def _plant_foreign(directory: Path, attacker: Path) -> str:
    directory.mkdir(mode=0o700)
    os.chown(directory, NOBODY, NOBODY)
    return f"{directory} belongs to uid {NOBODY}, not you"


def _plant_open(directory: Path, attacker: Path) -> str:
    directory.mkdir()
    os.chmod(directory, 0o777)
    return f"{directory} is open to other users (mode 777)"


@pytest.mark.parametrize("plant", [_plant_symlink, _plant_foreign, _plant_open], ids=["symlink", "foreign", "open"])
def test_serve_refuses_a_planted_socket_directory_and_creates_nothing(plaintext_keyring: Home, sock_path: Path,
                                                                      plant):
    if plant is _plant_foreign:
        require_root()
    home = plaintext_keyring
    home.write_config(daemon_config("http://127.0.0.1:9"))
    with scratch_dir("credd-x-", owner=NOBODY if os.getuid() == 0 else None) as attacker:
        directory = sock_path.parent
        message = plant(directory, attacker)
        before = snapshot(directory.parent), snapshot(attacker)
        result = run_credd(["serve"], home, extra_env={"CREDD_SOCKET": str(sock_path)}, timeout=60)
        assert result.returncode == 1
        assert message in result.stderr
        assert "remove it, or set `socket:` elsewhere" in result.stderr or "chmod 700" in result.stderr
        assert (snapshot(directory.parent), snapshot(attacker)) == before  # not a lock file, not a socket


def test_a_socket_directory_swapped_after_start_is_not_followed_at_exit(daemon, sock_path: Path):
    daemon.start()
    directory = sock_path.parent
    with scratch_dir("credd-x-") as attacker:
        (attacker / "credd.sock").write_text("someone else's file, named like the socket\n")
        (attacker / "credd.sock.lock").write_text("and like the lock\n")
        before = snapshot(attacker)
        # Whoever can rename entries in the parent moves the directory away and plants a symlink.
        moved = directory.rename(directory.with_name("moved"))
        directory.symlink_to(attacker)
        assert daemon.stop(signal.SIGTERM) == 0
        assert snapshot(attacker) == before
        assert not (moved / "credd.sock").exists()  # its own socket, removed where it was made
        assert (moved / "credd.sock.lock").exists()


def test_a_socket_directory_swapped_while_starting_is_refused(sock_path: Path, monkeypatch):
    """Between the check and the bind (which takes a path, not a handle), the directory is swapped."""
    real_open = server._open_directory
    with scratch_dir("credd-x-") as attacker:

        def open_then_swap(directory: Path, uid: int) -> int:
            handle = real_open(directory, uid)
            directory.rename(directory.with_name("moved"))
            directory.symlink_to(attacker)
            return handle

        monkeypatch.setattr(server, "_open_directory", open_then_swap)
        with pytest.raises(CreddError, match="was replaced while credd was starting"):
            server.Listener(sock_path, os.getuid())
        # The lock went into the checked directory; the bind followed the name into the attacker's,
        # where a dead socket file is all that is left (bind() has no way to refuse a symlink).
        assert [path.name for path in sock_path.parent.with_name("moved").iterdir()] == ["credd.sock.lock"]
        assert [path.name for path in attacker.iterdir()] == ["credd.sock"]


def test_a_client_refuses_a_daemon_of_another_user(sock_path: Path):
    require_root()
    os.chmod(sock_path.parent.parent, 0o755)  # a place others can reach, as /tmp is
    sock_path.parent.mkdir()
    os.chown(sock_path.parent, NOBODY, NOBODY)
    forged = {"Version": 1, "AccessKeyId": "ASIAFORGEDFORGED0001", "SecretAccessKey": "forged-secret",
              "SessionToken": "forged-token", "Expiration": "2030-01-01T00:00:00Z"}
    ready, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the stranger's daemon: answers anything with credentials of its choosing
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(str(sock_path))
            listener.listen(1)
            os.write(ready_write, b"1")
            connection, _ = listener.accept()
            connection.settimeout(10)
            connection.recv(65536)
            connection.sendall(json.dumps({"ok": True, "credentials": forged}).encode() + b"\n")
            connection.close()
        finally:
            os._exit(0)
    os.close(ready_write)
    try:
        assert os.read(ready, 1) == b"1"
        with pytest.raises(ClientError, match=f"runs as uid {NOBODY}, not as you .* nothing was sent"):
            client.credentials(str(sock_path), "prod-admin", 10)
    finally:
        os.close(ready)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


# The environment --------------------------------------------------------------------------------------------


def hostile_environment(env: dict[str, str], trap: Path) -> dict[str, str]:
    """Every variable that could steer a path, pointed into `trap`; the config is named explicitly."""
    for name in ("CREDD_SOCKET", "AWS_PROFILE"):
        env.pop(name, None)
    for sub in ("tmp", "run", "config/credd", "cache", "home/.aws"):
        (trap / sub).mkdir(parents=True, exist_ok=True)
    (trap / "credentials").write_text("[other]\naws_access_key_id = AKIAOTHEROTHEROTHER1\n")
    (trap / "aws-config").write_text("[default]\nregion = us-east-1\n")
    decoy = f"version: 1\ncredentials_file: {trap / 'decoy-credentials'}\nsocket: {trap / 'run' / 'decoy.sock'}\n"
    (trap / "config" / "credd" / "config.yaml").write_text(decoy)
    env.update(TMPDIR=str(trap / "tmp"), TEMP=str(trap / "tmp"), TMP=str(trap / "tmp"),
               XDG_RUNTIME_DIR=str(trap / "run"), XDG_CONFIG_HOME=str(trap / "config"),
               XDG_CACHE_HOME=str(trap / "cache"), HOME=str(trap / "home"),
               AWS_SHARED_CREDENTIALS_FILE=str(trap / "credentials"), AWS_CONFIG_FILE=str(trap / "aws-config"))
    return env


def test_the_environment_cannot_move_what_the_config_names(daemon: DaemonProcess, live_sts, tmp_path: Path):
    """Explicit `credentials_file:` and `socket:` win over every variable; XDG_STATE_HOME places the state dir."""
    home = daemon.home
    credentials = tmp_path / "named" / "aws" / "credentials"
    config = home.write_config(daemon_config(live_sts.url).replace(
        "version: 1\n", f"version: 1\ncredentials_file: {credentials}\nsocket: {daemon.socket}\n"))
    state_home = tmp_path / "state-home"
    trap = tmp_path / "trap"
    daemon.env = hostile_environment(dict(daemon.env, CREDD_CONFIG=str(config), XDG_STATE_HOME=str(state_home)),
                                     trap)
    before = snapshot(trap)
    daemon.start()
    assert stat.S_ISSOCK(os.lstat(daemon.socket).st_mode)
    daemon.wait_state("alice-session", "fresh")
    refreshed = daemon.ask({"op": "refresh", "profiles": []})
    assert refreshed["ok"], refreshed
    assert daemon.stop() == 0
    assert snapshot(trap) == before
    assert "[alice-session]" in credentials.read_text()
    assert (state_home / "credd" / "mfa-windows.json").exists()
    assert not daemon.socket.exists()


def _state_dir_symlink(state_dir: Path, trap: Path) -> str:
    state_dir.symlink_to(trap)
    return f"{state_dir} is a symlink, which credd does not follow there; remove it"


def _state_dir_open(state_dir: Path, trap: Path) -> str:
    state_dir.mkdir()
    os.chmod(state_dir, 0o777)
    return f"{state_dir} is open to other users (mode 777); run `chmod 700 {state_dir}`"


def _state_dir_foreign(state_dir: Path, trap: Path) -> str:
    require_root()
    state_dir.mkdir(mode=0o700)
    os.chown(state_dir, NOBODY, NOBODY)
    return f"{state_dir} belongs to uid {NOBODY}, not you (uid 0); remove it"


@pytest.mark.parametrize("plant", [_state_dir_symlink, _state_dir_open, _state_dir_foreign],
                         ids=["symlink", "open", "foreign"])
def test_a_state_dir_that_is_not_private_is_not_written(daemon: DaemonProcess, tmp_path: Path, plant):
    state_home = tmp_path / "state-home"
    state_home.mkdir()
    trap = tmp_path / "trap"
    trap.mkdir()
    state_dir = state_home / "credd"
    problem = plant(state_dir, trap)
    daemon.env["XDG_STATE_HOME"] = str(state_home)
    before = snapshot(trap), snapshot(state_home)
    daemon.start(wait=False)
    # Either it refuses to start, naming the directory, or it serves and leaves the directory alone.
    wait_for("the first refresh, or an exit", lambda: daemon.process.poll() is not None
             or daemon.home.credentials.exists(), log=daemon.log)
    if daemon.process.poll() is None:
        assert daemon.stop() == 0
    assert (snapshot(trap), snapshot(state_home)) == before
    assert str(state_dir) in daemon.log()  # and it says which directory it would not use
    # credd serves, as with a read-only state dir: it keeps the windows in memory and says so once, with the fix.
    assert daemon.log().count("keeps the MFA windows it used in memory") == 1
    assert problem in daemon.log()


def test_the_keyring_directory_credd_makes_is_private_under_umask_000(plaintext_keyring: Home):
    home = plaintext_keyring
    home.write_config(daemon_config("http://127.0.0.1:9"))
    old = os.umask(0)
    try:
        stored = run_credd(["keys", "set", SOURCE], home, input=f"{TEST_KEY_ID}\n{TEST_SECRET_KEY}\n")
    finally:
        os.umask(old)
    assert stored.returncode == 0, stored.stderr
    keyring_dir = home.root / ".local" / "share" / "python_keyring"
    made = (home.root / ".local", keyring_dir.parent, keyring_dir, keyring_dir / "keyring_pass.cfg")
    assert {str(path): oct(os.stat(path).st_mode & 0o777) for path in made
            if os.stat(path).st_mode & 0o077} == {}


def test_exec_gives_the_command_the_users_own_umask(daemon: DaemonProcess):
    daemon.start()
    old = os.umask(0o027)  # credd itself runs under 077
    try:
        ran = daemon.credd("exec", "prod-admin", "--", "sh", "-c", "umask")
    finally:
        os.umask(old)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "0027"


def test_a_write_that_must_not_follow_a_symlink_refuses_one(tmp_path: Path):
    from credd.atomicfile import write_atomic

    target = tmp_path / "elsewhere"
    target.write_text("someone else's\n")
    link = tmp_path / "mfa-windows.json"
    link.symlink_to(target)
    with pytest.raises(OSError, match="is a symlink"):
        write_atomic(link, b"{}\n", follow_symlinks=False)
    assert link.is_symlink() and target.read_text() == "someone else's\n"


def test_a_relative_home_or_credentials_variable_cannot_make_paths_relative(tmp_path: Path):
    user_home = pwd.getpwuid(os.getuid()).pw_dir
    env = {"HOME": "not/absolute"}  # a service runs in /: this would land in /not/absolute
    assert paths.home_of(env) == user_home
    assert paths.credentials_file(env) == os.path.join(user_home, ".aws", "credentials")
    assert paths.state_dir(env) == os.path.join(user_home, ".local", "state", "credd")
    with pytest.raises(ConfigError, match=r"credentials_file: \$AWS_SHARED_CREDENTIALS_FILE: creds is relative"):
        parse_config("version: 1\nsources: {a: {}}\n", "config.yaml", tmp_path / "config.yaml",
                     {"HOME": "/h", "AWS_SHARED_CREDENTIALS_FILE": "creds"}, "linux", os.getuid())
