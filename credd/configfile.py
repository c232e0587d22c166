"""Opening the config file: never blocks, never reads what is not a regular file, and tells who may change it.

Standard library only: `credd process` uses it to find a `socket:` line. A
FIFO named as the config would block a plain `open()` forever (the hook has
no deadline of its own there), so the file is opened non-blocking and
checked with `fstat` on the open handle, which is also what the ownership
check reads: the file checked is the file read.
"""

from __future__ import annotations

import os
import stat


class NotRegularFile(OSError):
    """The path names a directory, a FIFO, a socket or a device, not a config file."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"is {kind}, not a config file")
        self.kind = kind


KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
         (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def read(path: str, limit: int) -> tuple[bytes, os.stat_result]:
    """Up to `limit` + 1 bytes of the regular file at `path`, and its `fstat`; OSError otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(next((kind for test, kind in KINDS if test(info.st_mode)), "not a regular file"))
        chunks = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks), info
    finally:
        os.close(fd)


def unsafe(path: str, info: os.stat_result, uid: int, directory: bool = False) -> str | None:
    """Why a config file (or its directory) another user could change must be refused, with the fix; or None.

    The config decides which program the daemon runs (`mfa_command`), where it
    sends MFA codes and which file it writes: like ssh's StrictModes, it and its
    directory must be yours (or root's), and writable by no one else.
    """
    import shlex

    quoted = shlex.quote(path)
    what = "its directory " + path if directory else "it"
    if info.st_uid not in (uid, 0):
        return (f"{what} belongs to uid {info.st_uid}, not to you (uid {uid}) or root; whoever owns it decides what "
                f"credd runs. Run `sudo chown {uid} {quoted}`")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o022:
        who = "group and others" if mode & 0o022 == 0o022 else "others" if mode & 0o002 else "its group"
        if directory and mode & stat.S_ISVTX and info.st_uid != uid:  # /tmp: not yours to chmod
            fix = "move the config into a directory only you can write, like ~/.config/credd/"
        else:
            fix = f"run `chmod go-w {quoted}`"
        return (f"{what} is writable by {who} (mode {mode:o}), who could change which program credd runs; "
                f"{fix}")
    return None
