"""Atomic, private, locked writes: modes, symlinks, a change made meanwhile, and real processes
killed with SIGKILL mid-write or writing all at once."""

from __future__ import annotations

import os
import random
import select
import signal
import stat
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

from credd import credfile
from credd.atomicfile import ATTEMPTS, file_lock, read_text, update_file
from credd.errors import CreddError
from tests.fixtures_credfile import make_credentials


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def replace_with(text: str) -> Callable[[str], str]:
    return lambda _current: text


def test_new_file_is_private_in_a_new_private_dir(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "credentials"
    old_umask = os.umask(0o022)
    try:
        assert update_file(path, replace_with("[a]\n"))
    finally:
        os.umask(old_umask)
    assert path.read_text() == "[a]\n"
    assert mode_of(path) == 0o600
    assert mode_of(path.parent) == 0o700 and mode_of(path.parent.parent) == 0o700


@pytest.mark.parametrize("before, after", [(0o644, 0o600), (0o600, 0o600), (0o400, 0o400), (0o640, 0o600)])
def test_never_widens_the_mode(tmp_path: Path, before: int, after: int) -> None:
    path = tmp_path / "credentials"
    path.write_text("old")
    path.chmod(before)
    update_file(path, replace_with("new"))
    assert path.read_text() == "new" and mode_of(path) == after


def test_a_symlink_stays_a_link_to_its_rewritten_target(tmp_path: Path) -> None:
    target = tmp_path / "dotfiles" / "aws-credentials"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / ".aws" / "credentials"
    link.parent.mkdir()
    link.symlink_to(target)
    update_file(link, replace_with("new"))
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new"
    assert (target.parent / ".aws-credentials.lock").exists()  # beside the real file
    assert sorted(p.name for p in link.parent.iterdir()) == ["credentials"]


def test_writes_nothing_when_nothing_changes(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_bytes(b"[a]\r\nk = v")
    before = path.stat()
    assert not update_file(path, lambda text: text)
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert not update_file(tmp_path / "missing" / "credentials", lambda text: text)
    assert not (tmp_path / "missing").exists()  # not even its directory


def test_bytes_that_are_not_utf8_survive(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_bytes(b"# caf\xe9 \xff\r\n[a]\r\n")
    assert update_file(path, lambda text: text + "k = v\r\n")
    assert path.read_bytes() == b"# caf\xe9 \xff\r\n[a]\r\nk = v\r\n"
    assert read_text(path) == "# caf\udce9 \udcff\r\n[a]\r\nk = v\r\n"


def test_a_change_made_between_read_and_write_is_kept(tmp_path: Path) -> None:
    """Another program (an editor, `aws configure`) writes the file while credd is computing."""
    path = tmp_path / "credentials"
    path.write_text("[theirs]\nk = 1\n")
    calls = []

    def add_mine(text: str) -> str:
        calls.append(text)
        if len(calls) == 1:
            path.write_text("[theirs]\nk = 2\n")  # lands after credd's read
        return text + "[mine]\nk = 1\n"

    assert update_file(path, add_mine)
    assert path.read_text() == "[theirs]\nk = 2\n[mine]\nk = 1\n"
    assert calls == ["[theirs]\nk = 1\n", "[theirs]\nk = 2\n"]


def test_gives_up_on_a_file_that_keeps_changing(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text("0")

    def race(text: str) -> str:
        path.write_text(str(int(path.read_text()) + 1))
        return "mine"

    with pytest.raises(CreddError, match=f"changed {ATTEMPTS} times"):
        update_file(path, race)
    assert path.read_text() == str(ATTEMPTS)  # the other writer's last change, not credd's
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_waits_for_the_lock_and_then_gives_up(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    with file_lock(path, timeout=1):  # flock conflicts between two opens, even in one process
        started = time.monotonic()
        with pytest.raises(CreddError, match=r"has held .*credentials.lock for 0.3 s"):
            update_file(path, replace_with("x"), timeout=0.3)
        assert time.monotonic() - started >= 0.3
    assert not path.exists()
    assert update_file(path, replace_with("x"), timeout=0.3)


def test_a_directory_where_the_file_should_be_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.mkdir()  # a directory where the file should be
    with pytest.raises(CreddError, match=f"cannot update {path}: Is a directory"):
        update_file(path, replace_with("x"))


# Real processes ---------------------------------------------------------------


def fork(work: Callable[[], None], error_file: Path) -> int:
    """Run `work` in a child process; it exits 0, or 1 with its traceback in `error_file`."""
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        code = 0
        try:
            work()
        except BaseException:  # noqa: BLE001  whatever happened goes back to the parent, which fails the test
            error_file.write_text(traceback.format_exc())
            code = 1
        finally:
            os._exit(code)
    return pid


def wait_all(pids: list[int], timeout: float) -> dict[int, int]:
    """Exit codes of `pids`, polling until `timeout`; kills the stragglers and fails if any."""
    deadline, codes = time.monotonic() + timeout, {}
    while len(codes) < len(pids) and time.monotonic() < deadline:
        for pid in set(pids) - set(codes):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                codes[pid] = os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    for pid in set(pids) - set(codes):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert len(codes) == len(pids), f"{len(pids) - len(codes)} writers did not finish in {timeout} s"
    return codes


def big_file(version: int) -> str:
    """A realistic credentials file of about 130 kB: owned sections among many of the user's own."""
    text = "".join(f"# team {i}\n[user-{i}]\nregion = eu-west-{i % 3}\noutput = json\n\n" for i in range(1500))
    return credfile.update(text, {f"credd-{i}": make_credentials(version * 100 + i) for i in range(5)})


KILLS = 300


def test_sigkill_mid_write_leaves_the_old_or_the_new_file(tmp_path: Path) -> None:
    path = tmp_path / "aws" / "credentials"
    versions = [big_file(0), big_file(1)]
    update_file(path, replace_with(versions[0]))
    whole = {version.encode() for version in versions}
    toggle = lambda text: versions[1] if text == versions[0] else versions[0]  # noqa: E731
    rng = random.Random(1234)
    killed_mid_write = 0

    for _ in range(KILLS):
        ready_read, ready_write = os.pipe()

        def rewrite_forever(ready_read: int = ready_read, ready_write: int = ready_write) -> None:
            os.close(ready_read)
            update_file(path, toggle)
            os.write(ready_write, b"!")  # one write done: the parent may kill at any moment now
            while True:
                update_file(path, toggle)

        pid = fork(rewrite_forever, tmp_path / "child-error")
        os.close(ready_write)
        readable, _, _ = select.select([ready_read], [], [], 10)
        os.close(ready_read)
        assert readable, "the writer did not finish a first write within 10 s"
        time.sleep(rng.uniform(0, 0.004))  # the random moment of the kill, not a wait for anything
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)

        assert path.read_bytes() in whole
        temps = [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
        killed_mid_write += bool(temps)
        for temp in temps:
            assert stat.S_IMODE(temp.stat().st_mode) == 0o600  # even a leftover holds no secret for others

    # Kills landed inside writes often enough to mean something, and the lock died with its holder.
    print(f"{killed_mid_write} of {KILLS} kills hit a write in progress")
    assert killed_mid_write >= KILLS // 10, f"only {killed_mid_write} of {KILLS} kills hit a write"
    assert update_file(path, toggle)
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # cleaned up under the lock
    assert not (tmp_path / "child-error").exists()


WRITERS, UPDATES = 8, 50


def test_eight_processes_updating_their_own_sections_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    names = [f"writer-{n}" for n in range(WRITERS)]
    user_text = "".join(f"# mine {n}\n[user-{n}]\nregion = eu-west-1 ; café\n\n" for n in range(20))
    initial = credfile.update(user_text, {name: make_credentials(0) for name in names})
    path.write_text(initial)
    start_read, start_write = os.pipe()

    def writer(name: str) -> Callable[[], None]:
        def run() -> None:
            os.close(start_write)
            os.read(start_read, 1)  # all start together when the parent closes the pipe
            for n in range(1, UPDATES + 1):
                update_file(path, lambda text, n=n: bump(text, name, n))
        return run

    pids = [fork(writer(name), tmp_path / f"{name}.error") for name in names]
    os.close(start_read)
    os.close(start_write)
    codes = wait_all(pids, timeout=120)

    errors = [p.read_text() for p in tmp_path.glob("*.error")]
    assert set(codes.values()) == {0}, errors
    final = path.read_text()
    assert final == credfile.update(initial, {name: make_credentials(UPDATES) for name in names})


def bump(text: str, name: str, n: int) -> str:
    """Write update `n` of `name`; its section must still hold update n-1, or a write was lost."""
    held = credfile.read_profiles(text)[name]["aws_access_key_id"]
    assert held == make_credentials(n - 1).access_key_id, f"{name} lost update {n - 1}: the file holds {held}"
    return credfile.update(text, {name: make_credentials(n)})


def test_the_collector_is_paused_while_the_file_is_edited_and_back_after(tmp_path: Path) -> None:
    import gc

    seen = []

    def transform(text: str) -> str:
        seen.append(gc.isenabled())
        return text + "x"

    def broken(text: str) -> str:
        raise CreddError("refused")

    assert gc.isenabled()
    update_file(tmp_path / "f", transform)
    with pytest.raises(CreddError):
        update_file(tmp_path / "f", broken)
    assert seen == [False] and gc.isenabled()  # paused for the edit; back on after it, and after a refusal


def test_a_failed_update_names_doctor_with_the_users_config(tmp_path: Path):
    (tmp_path / "afile").write_text("")  # a file where the directory should be
    target = tmp_path / "afile" / "credentials"
    with pytest.raises(CreddError) as hinted:
        update_file(target, lambda text: text + "x", hint_config="/home/you/my config.yaml")
    assert str(hinted.value).endswith("(`credd --config '/home/you/my config.yaml' doctor` checks them)")
    with pytest.raises(CreddError) as plain:
        update_file(target, lambda text: text + "x")
    assert str(plain.value).endswith("(`credd doctor` checks them)")
