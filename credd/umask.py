"""The umask credd runs under (077), and the user's own, given back to a program that takes credd's place.

Every command runs under umask 077: what credd, or a library it calls (keyrings.alt makes its
directory with os.makedirs), creates is private even when the user's umask is 000. Files credd
means to be readable get their mode set explicitly. `credd exec` gives the command it runs the
user's own umask back (`restore_user`). Standard library only: the hook sets it too.
"""

from __future__ import annotations

import os

PRIVATE = 0o077
_user: int | None = None  # the umask credd was started with; process-wide, like the umask itself


def make_private() -> None:
    """Run under umask 077 from now on, remembering the user's own the first time."""
    global _user  # noqa: PLW0603  the umask is process-wide state, and so is the one it replaced
    before = os.umask(PRIVATE)
    if _user is None:  # a second call in one process must not take 077 for the user's
        _user = before


def restore_user() -> None:
    """Put back the umask the user started credd with, for a program that takes credd's place."""
    if _user is not None:
        os.umask(_user)
