"""Thin file I/O: replace a file atomically, privately, through a symlink, one writer at a time.

A reader sees the old file or the new one, never a mix, even if the writer is
killed mid-write: the new bytes go to a temporary file in the target's own
directory, are fsynced, and `os.replace` swaps them in; then the directory is
fsynced so the rename itself survives a crash.

`update_file` adds what a shared file edited by people and other programs
needs: an flock on a lock file beside it keeps credd writers in line, and a
read-back just before the swap catches anyone else who changed the file since
it was read, so their change is re-read and kept instead of lost. (POSIX has
no compare-and-rename: a write landing in the microseconds between that
read-back and the rename can still be lost. The window is as small as it gets.)
"""

from __future__ import annotations

import errno
import fcntl
import gc
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from credd.commandline import credd_command
from credd.errors import CreddError

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
LOCK_TIMEOUT = 10.0  # seconds; credd holds the lock for milliseconds
ATTEMPTS = 5  # read-modify-write rounds before giving up on a file that keeps changing
TEMP_SUFFIX = ".tmp"


def resolve_target(path: Path) -> Path:
    """The file a write should replace: a symlink's target, so the link stays a link."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def ensure_private_dir(directory: Path) -> None:
    """Create `directory` and any missing parents as 0700; leave existing ones alone."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for created in reversed(missing):
        try:
            created.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:  # another process made it meanwhile: theirs, leave it
            continue
        os.chmod(created, PRIVATE_DIR)  # mkdir's mode is filtered by the umask


def write_atomic(path: Path, data: bytes, mode: int = PRIVATE_FILE, follow_symlinks: bool = True) -> None:
    """Replace `path` with `data`; never widen the mode of a file that exists.

    A symlinked `path` is written through (its target replaced, the link
    kept), unless `follow_symlinks` is False: then it is refused (ELOOP); that
    is for files in credd's own directories, where a symlink can only have
    been planted. A link planted after the check is replaced, not followed.
    """
    if follow_symlinks:
        target = resolve_target(path)
    else:
        target = path
        if path.is_symlink():
            raise OSError(errno.ELOOP, "it is a symlink, which credd does not follow there", str(path))
    ensure_private_dir(target.parent)
    _commit(_write_temp(target, data, mode), target)


def read_text(path: Path) -> str | None:
    """The file's text as it is: UTF-8 with line endings untouched; None if there is no file.

    Bytes that are not UTF-8 become lone surrogates (`surrogateescape`), so
    text that comes back unchanged is written back byte for byte and a parser
    can point at the line that holds them.
    """
    try:
        data = _read_bytes(resolve_target(path))
    except OSError as e:
        raise _io_error("read", path, e) from e
    return None if data is None else data.decode("utf-8", "surrogateescape")


def update_file(path: Path, transform: Callable[[str], str], timeout: float = LOCK_TIMEOUT,
                hint_config: str | None = None) -> bool:
    """Read-modify-write `path` under credd's lock; True if it wrote, False if nothing changed.

    `transform` gets the current text ("" for no file) and may run more than
    once: if the file changes between the read and the write, it is re-read
    and `transform` applied again. It must be pure. Nothing is written, and no
    file or directory created, when it returns its input unchanged.
    `hint_config`: the user's --config, for the `credd doctor` an error names.
    """
    target = resolve_target(path)
    if not target.parent.exists() and transform("") == "":
        return False
    try:
        ensure_private_dir(target.parent)
        with file_lock(target, timeout):
            _remove_stale_temps(target)
            for _ in range(ATTEMPTS):
                before = _read_bytes(target)
                text = (before or b"").decode("utf-8", "surrogateescape")
                with _collector_paused():
                    new = transform(text)
                if new == text:
                    return False
                temp = _write_temp(target, new.encode("utf-8", "surrogateescape"))
                if _read_bytes(target) == before:
                    _commit(temp, target)
                    return True
                _discard(temp)
    except OSError as e:
        raise _io_error("update", path, e, hint_config) from e
    raise CreddError(f"{path} changed {ATTEMPTS} times while credd was writing it, so credd left it as the other "
                     "program wrote it; if a program rewrites it constantly, stop it, then try again")


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Parsing a big file makes objects that live until it is written, and no cycles: the collector,
    triggered by their count, would walk them again and again (BENCHMARKS.md, section 5)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def file_lock(target: Path, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """An exclusive flock on `.NAME.lock` beside `target`, for every credd process and thread that writes it.

    A separate lock file, because the target itself is replaced on each write.
    It is never deleted: a process waiting on a deleted lock file would lock a
    file no one else sees.
    """
    target = resolve_target(target)
    lock_path = target.parent / f".{target.name}.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        _acquire(fd, lock_path, timeout)
        yield
    finally:
        os.close(fd)  # releases the lock


def _acquire(fd: int, lock_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise CreddError(f"another process has held {lock_path} for {timeout:g} s; if no other credd is "
                                 "running, something else holds it: find it with `fuser` or `lsof`") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


def _read_bytes(target: Path) -> bytes | None:
    try:
        return target.read_bytes()
    except FileNotFoundError:
        return None


def _write_temp(target: Path, data: bytes, mode: int = PRIVATE_FILE) -> Path:
    """`data` fsynced into a new file beside `target`, with `target`'s mode narrowed to at most `mode`."""
    with suppress(FileNotFoundError):
        mode = stat.S_IMODE(os.stat(target).st_mode) & mode
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=TEMP_SUFFIX)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        _discard(Path(temp))
        raise
    return Path(temp)


def _commit(temp: Path, target: Path) -> None:
    try:
        os.replace(temp, target)
    except BaseException:
        _discard(temp)
        raise
    fsync_dir(target.parent)


def _discard(temp: Path) -> None:
    with suppress(FileNotFoundError):
        os.unlink(temp)


def _remove_stale_temps(target: Path) -> None:
    """Temporary files of writers killed mid-write: they hold secrets. Only safe under the lock."""
    prefix = f".{target.name}."
    with os.scandir(target.parent) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith(prefix) and name.endswith(TEMP_SUFFIX) and entry.is_file(follow_symlinks=False):
                _discard(Path(entry.path))


# Why a write failed, and what to do, by errno; `{dir}` is the file's directory.
WRITE_ADVICE = {
    errno.EROFS: "the directory {dir} is read-only (a read-only file system): make it writable, or move the file",
    errno.EACCES: "the directory {dir} or the file is not writable by you: make both yours and writable "
                  "(`{doctor}` checks them)",
    errno.ENOSPC: "the file system holding {dir} is full: free some space",
    errno.EDQUOT: "your disk quota for {dir} is used up: free some space",
    errno.EFBIG: "the file is larger than the file size limit credd runs under (`ulimit -f`): raise the limit",
}
WRITE_ADVICE[errno.EPERM] = WRITE_ADVICE[errno.EACCES]


def _io_error(action: str, path: Path, error: OSError, hint_config: str | None = None) -> CreddError:
    """A message that says why, what to do, and (for a failed write) that the file is as it was."""
    advice = WRITE_ADVICE.get(error.errno) if action != "read" and error.errno is not None else None
    doctor = credd_command(hint_config, "doctor")
    if advice is not None:
        directory = resolve_target(path).parent
        return CreddError(f"cannot {action} {path}: {error.strerror}; {advice.format(dir=directory, doctor=doctor)}; "
                          "the file was left as it was")
    hint = ""
    if isinstance(error, (PermissionError, IsADirectoryError, NotADirectoryError)):
        hint = f"; it and its directory must be yours and writable (`{doctor}` checks them)"
    return CreddError(f"cannot {action} {path}: {error.strerror or error}{hint}")


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
