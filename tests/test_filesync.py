"""The credentials file's side of the daemon across a reload: what FileSync.take_over keeps and removes.

Real files through the real writer; the daemon's own path through a reload is
in test_serve.py (a real `credd serve` and SIGHUP).
"""

from __future__ import annotations

import configparser
from datetime import datetime, timezone
from pathlib import Path

from credd.errors import CreddError
from credd.filesync import UNWRITTEN_RETRY, CredentialsWriter, FileSync
from credd.model import Failure, FailureKind
from tests.fixtures_credfile import make_credentials

NOW = datetime(2030, 1, 2, 3, 0, 0, tzinfo=timezone.utc)
CREDS = {"a": make_credentials(1), "b": make_credentials(2)}


def sections(path: Path) -> list[str]:
    parser = configparser.RawConfigParser()
    parser.read(path)
    return parser.sections()


def no_long_term_keys(name, section) -> Failure:
    raise AssertionError(f"{name}: no section here holds a long-term key")


def sync(path: Path, owned: set[str], write=None) -> FileSync:
    return FileSync(path, write or CredentialsWriter(path), owned)


def update(files: FileSync, write: dict, held=CREDS.get):
    return files.update("alice", write, set(), set(files.owned), held=held, shadowed=no_long_term_keys)


class ReadOnly:
    """The writer as a read-only directory makes it fail."""

    def __call__(self, write, remove):
        raise CreddError("cannot update credentials: Read-only file system; the file was left as it was")


def test_a_reload_removes_the_sections_of_profiles_no_longer_written_and_keeps_the_others(tmp_path: Path):
    path = tmp_path / "credentials"
    old = sync(path, {"a", "b"})
    update(old, dict(CREDS))
    assert sections(path) == ["a", "b"]

    new = sync(path, {"a"})
    new.take_over(old)
    assert sections(path) == ["a"]
    assert new.in_file("a") and not new.in_file("b")


def test_a_reload_to_another_file_removes_nothing_from_either(tmp_path: Path):
    """What the old config wrote is known for its own file only: neither loses a section."""
    other = tmp_path / "other"
    CredentialsWriter(other)(dict(CREDS), [])  # credd's sections there too, from some earlier run
    old = sync(tmp_path / "credentials", {"a", "b"})
    update(old, dict(CREDS))
    new = sync(other, {"a"})
    new.take_over(old)
    assert sections(tmp_path / "credentials") == ["a", "b"]
    assert sections(other) == ["a", "b"]


def test_what_a_failed_write_left_out_outlives_a_reload_and_goes_in_with_the_next_update(tmp_path: Path):
    path = tmp_path / "credentials"
    old = sync(path, {"a", "b"}, write=ReadOnly())
    failed = update(old, dict(CREDS)).failed
    assert set(failed) == {"a", "b"} and failed["a"].kind is FailureKind.OTHER
    assert old.retry_at(["a"], NOW) == NOW + UNWRITTEN_RETRY

    new = sync(path, {"a"})  # the fault is gone, and b is no longer written
    new.take_over(old)
    assert new.left_out("a") is failed["a"] and new.left_out("b") is None
    assert new.retry_at(["a"], NOW) == NOW + UNWRITTEN_RETRY  # the retry is still planned after the reload

    synced = update(new, {})  # nothing renewed: what the daemon holds goes in all the same
    assert synced.caught_up == {"a": failed["a"]} and not synced.failed
    assert sections(path) == ["a"]
    assert new.left_out("a") is None and new.retry_at(["a"], NOW) is None
