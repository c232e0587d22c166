"""Directories that hold credd's own files: made private when credd creates them, checked when it finds them.

A directory another user owns or may write to, or a symlink planted in its
place (by whoever can write its parent), would let someone else choose what
credd reads there and where its writes land. So an existing directory is
looked at with lstat, never followed, and must be a real directory of the
user's that no one else may write to. Each problem comes with its fix.
"""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path

OTHERS_WRITE = 0o022  # others may list a directory of non-secret state, never write to it


def problem(directory: Path, info: os.stat_result, uid: int, closed: int = OTHERS_WRITE) -> str | None:
    """What makes `directory` (as `os.lstat` found it) unfit for credd's files, and the fix; None if it is fit.

    `closed`: the mode bits no one but the owner may have (0o077 for a
    directory that must be private, the default 0o022 for one others may read).
    """
    quoted = shlex.quote(str(directory))
    if stat.S_ISLNK(info.st_mode):
        return (f"{directory} is a symlink, which credd does not follow there; remove it (`rm {quoted}`) and "
                "credd makes the directory itself")
    if not stat.S_ISDIR(info.st_mode):
        return f"{directory} is not a directory; remove it and credd makes the directory itself"
    if info.st_uid != uid:
        return (f"{directory} belongs to uid {info.st_uid}, not you (uid {uid}); remove it and credd makes the "
                "directory itself")
    mode = stat.S_IMODE(info.st_mode)
    if mode & closed:
        return f"{directory} is open to other users (mode {mode:o}); run `chmod 700 {quoted}`"
    return None

