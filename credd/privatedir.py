"""Directories that hold credd's own files: made private when credd creates them, checked when it finds them.

A directory another user owns or may write to, or a symlink planted in its
place (by whoever can write its parent), would let someone else choose what
credd reads there and where its writes land. So an existing directory is
looked at with lstat, never followed, and must be a real directory of the
user's that no one else may write to. Each problem comes with its fix.

One check serves every such directory; what differs is the mode mask (the
socket's directory is private, the state directory may be readable) and
the way out: a directory a setting can move elsewhere (the socket's) says
so, one credd makes on its own (the state directory) says that instead.
"""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path

OTHERS_WRITE = 0o022  # others may list a directory of non-secret state, never write to it
PRIVATE = 0o077  # no one but the owner may even look inside (the socket's directory)


def problem(directory: Path, info: os.stat_result, uid: int, closed: int = OTHERS_WRITE, *,
            setting: str | None = None) -> str | None:
    """What makes `directory` (as `os.lstat` found it) unfit for credd's files, and the fix; None if it is fit.

    `closed`: the mode bits no one but the owner may have (PRIVATE for a
    directory that must be private, the default OTHERS_WRITE for one others may read).
    `setting`: the config key that puts the directory elsewhere (`socket:`), offered as the other fix;
    without one, removing the directory is the fix, and credd makes it again itself.
    """
    if not stat.S_ISDIR(info.st_mode):
        if setting is not None:
            return not_a_directory(directory, setting)
        if stat.S_ISLNK(info.st_mode):
            return (f"{directory} is a symlink, which credd does not follow there; remove it "
                    f"(`rm {shlex.quote(str(directory))}`) and credd makes the directory itself")
        return f"{directory} is not a directory; remove it and credd makes the directory itself"
    if info.st_uid != uid:
        if setting is not None:
            return f"{directory} belongs to uid {info.st_uid}, not you; {_elsewhere(setting)}"
        return (f"{directory} belongs to uid {info.st_uid}, not you (uid {uid}); remove it and credd makes the "
                "directory itself")
    mode = stat.S_IMODE(info.st_mode)
    if mode & closed:
        return f"{directory} is open to other users (mode {mode:o}); run `chmod 700 {shlex.quote(str(directory))}`"
    return None


def not_a_directory(directory: Path, setting: str) -> str:
    """For a directory a setting can move: what is in its place is no directory, maybe a symlink.

    Also what a caller says when opening the directory fails with ELOOP or ENOTDIR (swapped since the check).
    """
    return f"{directory} is not a directory (a symlink?); {_elsewhere(setting)}"


def _elsewhere(setting: str) -> str:
    return f"remove it, or set `{setting}` elsewhere"
