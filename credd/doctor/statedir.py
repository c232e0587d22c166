"""credd's state directory, where the daemon remembers the MFA windows it used so it never sends a code twice.

The daemon refuses a state directory that is not the user's own (a
symlink, another owner, writable by others: `privatedir.problem`), and a
symlink as its state file (`mfa.UsedWindows`); it then keeps the windows in
memory only, and a restart may cost a code AWS refuses as used. Doctor
judges the same lstat with the same function, so it says what the daemon
would, with the same fix.
"""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path

from credd import privatedir
from credd.doctor.facts import Stat, StateDirFacts
from credd.doctor.findings import Finding, fail, ok

TOPIC = "state directory"
REFUSED = "credd refuses it (so after a restart it may send an MFA code again, which AWS refuses)"


def check_state_dir(state: StateDirFacts, uid: int) -> list[Finding]:
    if state.error:
        return [fail(TOPIC, f"cannot look at {state.path} ({state.error}), and neither can credd (so after a restart "
                            "it may send an MFA code again, which AWS refuses)",
                     f"every directory above {state.path} must be a directory you can enter (`ls -ld` each)")]
    if state.stat is None:
        return [ok(TOPIC, f"{state.path} does not exist yet; credd creates it (mode 700) when it first uses an MFA "
                          "code")]
    problem = privatedir.problem(Path(state.path), _as_stat_result(state.stat), uid)
    if problem is not None:
        return [fail(TOPIC, f"{REFUSED}: {problem}")]  # the problem ends in its fix
    if state.file_stat is not None and stat.S_ISLNK(state.file_stat.mode):
        file = state.file_path
        return [fail(TOPIC, f"{REFUSED}: {file} is a symlink, which credd does not follow there",
                     f"rm {shlex.quote(file)}  (credd writes the file itself)")]
    return [ok(TOPIC, f"{state.path}: yours, mode {stat.S_IMODE(state.stat.mode):o}")]


def _as_stat_result(info: Stat) -> os.stat_result:
    """The stat result `privatedir.problem` takes, from the two fields doctor keeps."""
    return os.stat_result((info.mode, 0, 0, 0, info.uid, 0, 0, 0, 0, 0))
