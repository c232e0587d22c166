"""What `credd config import --undo` needs to give back each file import changed, byte for byte.

A record per file: a digest of its bytes before and after, and a recipe that
rebuilds the before-bytes from the after-bytes: runs of lines to keep, and
the lines import changed, as they were. Only changed lines are kept, so the
record never holds the rest of a file, and a long-term secret key that import
moved out of the credentials file is kept as the name of the source whose
keyring entry holds it, never as text. The record is JSON in credd's state
directory (`config-import-undo.json`, mode 0600); the pure parts here make and
apply recipes, the I/O is `read_record` and `write_record`.

The record doubles as import's journal: it is written before the first file
changes, so a run killed half-way leaves each file at its before- or
after-bytes (each write is atomic) and the record says which is which; a
re-run of the import completes it, `--undo` restores what was changed.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from credd import credfile
from credd.errors import CreddError, CredentialsFileError

RECORD_NAME = "config-import-undo.json"
CONFIG, AWS_CONFIG, CREDENTIALS = "credd config", "AWS config", "credentials file"
VERSION = 1

# A recipe: ["keep", FROM, TO] copies lines FROM..TO of the after-text; ["put", [LINE, ...]] puts back lines
# import removed or changed. A LINE is the text as it was, or {"head": ..., "source": S, "tail": ...} for a line
# whose secret access key is source S's in the keyring.
Recipe = list[list[object]]


@dataclass
class FileChange:
    path: str
    kind: str  # CONFIG, AWS_CONFIG or CREDENTIALS: what the file is to credd
    before: str | None  # sha256 of the bytes before import; None: there was no file
    after: str | None  # sha256 of the bytes import wrote; None: import removed it (undo: never)
    recipe: Recipe = field(default_factory=list)
    # CREDENTIALS: the sections credd owned in the after-text; those the daemon adds later are its own to drop.
    owned: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"path": self.path, "kind": self.kind, "before": self.before, "after": self.after,
                "recipe": self.recipe, "owned": self.owned}


@dataclass
class Record:
    files: dict[str, FileChange] = field(default_factory=dict)  # by path
    done: bool = True  # False from before the first file changes until the last one has

    def to_json(self) -> str:
        data = {"version": VERSION, "done": self.done, "files": [change.to_json() for change in self.files.values()]}
        return json.dumps(data, indent=1) + "\n"  # ensure_ascii: lone surrogates of non-UTF-8 bytes survive


def digest(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def make_change(path: str, kind: str, before: str | None, after: str,
                secrets: Mapping[str, str] | None = None) -> FileChange:
    """The record of `path` going from `before` to `after`; `secrets`: source -> secret key that left the file."""
    old, new = credfile.split_lines(before or ""), credfile.split_lines(after)
    recipe: Recipe = []
    # autojunk: lines common in a big file (blank, `region = ...`) start no match, which keeps this near linear
    # (4,000 profiles: 0.8 s, not 6.5 s); any opcodes rebuild the before-text exactly, these only less tightly.
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=True).get_opcodes():
        if tag == "equal":
            recipe.append(["keep", j1, j2])
        elif i2 > i1:
            recipe.append(["put", [_hide(line, secrets or {}) for line in old[i1:i2]]])
    owned = [name for name, section in credfile.parse(after, path).sections.items() if section.owned] \
        if kind == CREDENTIALS else []
    return FileChange(path, kind, digest(before), digest(after), recipe, owned)


def _hide(line: str, secrets: Mapping[str, str]) -> object:
    """The line, or its secret swapped for the source whose keyring entry holds it."""
    content = line.rstrip("\r\n")
    for source, secret in secrets.items():
        at = content.rfind(secret)  # the value ends the line (configparser strips what follows)
        if secret and at >= 0 and content[:at].rstrip().endswith(("=", ":")):
            return {"head": line[:at], "source": source, "tail": line[at + len(secret):]}
    return line


def rebuild(after: str, change: FileChange, secret_of: Callable[[str], str | None]) -> str | None:
    """The before-text from `after` and the recipe; None when a secret it needs is not where it was left."""
    lines = credfile.split_lines(after)
    out: list[str] = []
    for step in change.recipe:
        if step[0] == "keep":
            start, end = step[1], step[2]
            assert isinstance(start, int) and isinstance(end, int)
            out.extend(lines[start:end])
            continue
        pieces = step[1]
        assert isinstance(pieces, list)
        for piece in pieces:
            if isinstance(piece, str):
                out.append(piece)
                continue
            secret = secret_of(str(piece["source"]))
            if secret is None:
                return None
            out.append(f"{piece['head']}{secret}{piece['tail']}")
    text = "".join(out)
    return text if digest(text) == change.before else None


def compose(earlier: FileChange, later: FileChange) -> FileChange:
    """One change from `earlier`'s before to `later`'s after, for a file two imports changed in turn.

    `later`'s recipe rebuilds `earlier`'s after-text, whose recipe rebuilds the before-text: the
    composed recipe is `later`'s with each kept run mapped through `earlier`'s.
    """
    # Lines of earlier's after-text, each as a step of the composed recipe: a kept line of later's after-text
    # where later kept it, else the line itself.
    recipe: Recipe = []
    middle: list[object] = []  # earlier's after-text line by line: ("at", index in later's after) or the line
    for step in later.recipe:
        if step[0] == "keep":
            start, end = step[1], step[2]
            assert isinstance(start, int) and isinstance(end, int)
            middle.extend(("at", index) for index in range(start, end))
        else:
            pieces = step[1]
            assert isinstance(pieces, list)
            middle.extend(pieces)
    for step in earlier.recipe:
        if step[0] == "put":
            recipe.append(step)
            continue
        start, end = step[1], step[2]
        assert isinstance(start, int) and isinstance(end, int)
        for item in middle[start:end]:
            if isinstance(item, tuple):
                last = recipe[-1] if recipe else None
                if last is not None and last[0] == "keep" and last[2] == item[1]:
                    last[2] = item[1] + 1
                else:
                    recipe.append(["keep", item[1], item[1] + 1])
            else:
                last = recipe[-1] if recipe else None
                if last is not None and last[0] == "put":
                    pieces = last[1]
                    assert isinstance(pieces, list)
                    pieces.append(item)
                else:
                    recipe.append(["put", [item]])
    return FileChange(earlier.path, earlier.kind, earlier.before, later.after, recipe, later.owned)


def as_written(current: str, change: FileChange) -> str | None:
    """`current` as import left it, if it still is: for the credentials file, less the sections credd's daemon
    added since (its own, marked; it writes them again); None if it changed otherwise."""
    if digest(current) == change.after:
        return current
    if change.kind != CREDENTIALS:
        return None
    try:
        added = [name for name, section in credfile.parse(current, change.path).sections.items()
                 if section.owned and name not in change.owned]
        text = credfile.update(current, {}, added, path=change.path)
    except CredentialsFileError:
        return None
    return text if digest(text) == change.after else None


def moved_sources(record: Record) -> list[str]:
    """The sources whose long-term keys import moved out of a file the record gives back."""
    found: set[str] = set()
    for change in record.files.values():
        for step in change.recipe:
            pieces = step[1] if step[0] == "put" else []
            assert isinstance(pieces, list)
            found.update(str(piece["source"]) for piece in pieces if isinstance(piece, dict))
    return sorted(found)


# I/O ---------------------------------------------------------------------------------------------------------------


def record_path(state_dir: str) -> Path:
    return Path(state_dir) / RECORD_NAME


def read_record(path: Path) -> Record | None:
    """The record at `path`; None if there is none. One credd cannot read is a CreddError saying what to do."""
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise ValueError("not a record this credd wrote")
        changes = [FileChange(item["path"], item["kind"], item["before"], item["after"], item["recipe"],
                              item.get("owned", [])) for item in data["files"]]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        why = getattr(e, "strerror", None) or ("not a record this credd wrote" if isinstance(e, KeyError) else e)
        raise CreddError(f"cannot read {path} ({why}), the record of what `credd config import` changed; move it "
                         "aside, then run the command again (undo then has nothing to take back from before)") from None
    return Record({change.path: change for change in changes}, bool(data.get("done")))


def write_record(path: Path, record: Record | None) -> None:
    """Replace the record atomically (0600, in a 0700 directory); None removes it."""
    from credd.atomicfile import ensure_private_dir, write_atomic

    try:
        if record is None:
            if os.path.lexists(path):
                os.unlink(path)
            return
        ensure_private_dir(path.parent)
        write_atomic(path, record.to_json().encode(), follow_symlinks=False)
    except OSError as e:
        raise CreddError(f"cannot write {path}, the record `credd config import --undo` needs: "
                         f"{e.strerror or e}") from None


def replace_if_unchanged(path: Path, read: str, new: str, hint_config: str | None) -> None:
    """Write `new` to `path` under credd's lock if it still holds `read`; never drop a change made meanwhile."""
    from credd.atomicfile import update_file

    def transform(current: str) -> str:
        if current != read:
            raise CreddError(f"{path} changed while credd was changing it; nothing of it was lost: run the command "
                             "again")
        return new

    update_file(path, transform, hint_config=hint_config)
