"""Thin file I/O: replace a file atomically, privately, through a symlink.

A reader sees the old file or the new one, never a mix, even if the writer is
killed mid-write: the new bytes go to a temporary file in the target's own
directory, are fsynced, and `os.replace` swaps them in; then the directory is
fsynced so the rename itself survives a crash.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def resolve_target(path: Path) -> Path:
    """The file a write should replace: a symlink's target, so the link stays a link."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def ensure_private_dir(directory: Path) -> None:
    """Create `directory` (and parents) as 0700 when missing; leave an existing one alone."""
    if not directory.exists():
        directory.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        os.chmod(directory, PRIVATE_DIR)  # mkdir's mode is filtered by the umask


def write_atomic(path: Path, data: bytes, mode: int = PRIVATE_FILE) -> None:
    """Replace `path` with `data`; never widen the mode of a file that exists."""
    target = resolve_target(path)
    ensure_private_dir(target.parent)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode) & mode
    except FileNotFoundError:
        pass
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(target.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
