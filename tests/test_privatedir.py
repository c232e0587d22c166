"""One check for every directory of credd's own: the mask and the way out differ, the rules do not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from credd import privatedir
from credd.endpoints.unix_socket import prepare_directory
from credd.errors import CreddError


def test_a_directory_others_may_read_suits_the_state_but_not_the_socket(tmp_path: Path):
    directory = tmp_path / "a dir"  # a space: the fix is a command to paste
    directory.mkdir()
    os.chmod(directory, 0o750)
    info = os.lstat(directory)
    assert privatedir.problem(directory, info, os.getuid()) is None
    assert privatedir.problem(directory, info, os.getuid(), privatedir.PRIVATE, setting="socket:") == (
        f"{directory} is open to other users (mode 750); run `chmod 700 '{directory}'`")


def test_each_directory_says_its_own_way_out(tmp_path: Path):
    target = tmp_path / "target"
    target.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(target)
    uid = os.getuid()
    assert privatedir.problem(link, os.lstat(link), uid) == (
        f"{link} is a symlink, which credd does not follow there; remove it (`rm {link}`) and credd makes the "
        "directory itself")
    assert privatedir.problem(link, os.lstat(link), uid, privatedir.PRIVATE, setting="socket:") == (
        f"{link} is not a directory (a symlink?); remove it, or set `socket:` elsewhere")
    assert privatedir.problem(target, os.lstat(target), uid + 1) == (
        f"{target} belongs to uid {os.lstat(target).st_uid}, not you (uid {uid + 1}); remove it and credd makes "
        "the directory itself")
    assert privatedir.problem(target, os.lstat(target), uid + 1, privatedir.PRIVATE, setting="socket:") == (
        f"{target} belongs to uid {os.lstat(target).st_uid}, not you; remove it, or set `socket:` elsewhere")


def test_the_socket_directory_is_made_private_and_checked_with_the_private_mask(tmp_path: Path):
    made = tmp_path / "new" / "credd"
    prepare_directory(made, os.getuid())
    assert os.lstat(made).st_mode & 0o777 == 0o700
    os.chmod(made, 0o750)
    with pytest.raises(CreddError) as refused:
        prepare_directory(made, os.getuid())
    assert str(refused.value) == f"{made} is open to other users (mode 750); run `chmod 700 {made}`"
