"""`credd config import --undo`: give back, byte for byte, each file the imports since the last undo changed.

From `importundo`'s record: a file still as import left it (the credentials
file less the sections credd's daemon added since, which are its own) gets
its before-bytes back, rebuilt from the lines import changed and, for a
long-term key import moved, the keyring. All of them or none: a file changed
otherwise is named with how to take import's lines back by hand.
"""

from __future__ import annotations

import os
from pathlib import Path

from credd import awsconfig, importundo
from credd.atomicfile import read_text
from credd.commands.config_import import record_path
from credd.context import Context
from credd.errors import CreddError, UsageError
from credd.store import Store


def undo(ctx: Context, dry_run: bool = False) -> int:
    """Give back each file the imports since the last undo changed, byte for byte; all of them or none.

    The keyring keeps the keys import moved: the credentials file gets a copy back, and `credd keys rm`
    drops the keyring's.
    """
    at = record_path(ctx)
    record = importundo.read_record(at)
    if record is None:
        raise UsageError(f"no `credd config import` to undo: {at} does not exist (import writes it; undo removes it)")
    restores = _restores(ctx, record)
    for change, current, before in restores:
        if dry_run:
            ctx.say(f"would remove {change.path} ({change.kind}): import created it" if before is None else
                    f"would give back {change.path} ({change.kind}) as it was before import")
        elif before is None:
            os.unlink(change.path)
            ctx.say(f"removed {change.path}: import created it")
        else:
            importundo.replace_if_unchanged(Path(change.path), current, before, ctx.hint_config)
            ctx.say(f"gave back {change.path} ({change.kind}) as it was before import")
    if dry_run:
        ctx.say("dry run: nothing was changed")
        return 0
    importundo.write_record(at, None)
    if not restores:
        ctx.say("every file import changed is as it was before it already")
    sources = importundo.moved_sources(record)
    if sources:
        ctx.say(f"the keyring still holds the long-term keys of {', '.join(sources)} (now also back in the credentials "
                f"file): `{ctx.command('keys', 'rm', sources[0])}` removes one; a running daemon keeps the profiles it "
                f"loaded until it reloads")
    return 0


def _restores(ctx: Context, record: importundo.Record) -> list[tuple[importundo.FileChange, str, str | None]]:
    """(change, the file's text now, the text to give back; None: remove it) for each file to give back.

    A file changed since import wrote it (but for credentials credd's daemon wrote, which are its own) is
    not overwritten: a CreddError names every such file and how to take import's changes back by hand.
    """
    store: Store | None = None

    def secret_of(source: str) -> str | None:
        nonlocal store
        if store is None:
            store = ctx.open_store(ctx.load_config())
        key = store.get_access_key(source)
        return key.secret.reveal() if key is not None else None

    restores: list[tuple[importundo.FileChange, str, str | None]] = []
    problems = []
    for change in record.files.values():
        current = read_text(Path(change.path))
        if importundo.digest(current) == change.before:
            continue  # as it was (an import killed before it got here): nothing to give back
        written = importundo.as_written(current, change) if current is not None else None
        if current is None or written is None:
            problems.append(_changed_since(ctx, change))
            continue
        before = importundo.rebuild(written, change, secret_of) if change.before is not None else None
        if change.before is not None and before is None:
            problems.append(f"{change.path}: the keyring no longer holds the long-term keys import moved out of "
                            f"it (`{ctx.command('keys', 'ls')}`), so its bytes cannot be given back")
            continue
        restores.append((change, current, before))
    if problems:
        raise CreddError("nothing was undone:\n  " + "\n  ".join(problems))
    return restores


def _changed_since(ctx: Context, change: importundo.FileChange) -> str:
    """Why undo leaves a file that changed since import wrote it, and how to take import's changes back by hand."""
    if change.kind == importundo.AWS_CONFIG:
        how = (f"to take import's changes back by hand, delete `{awsconfig.IMPORT_MARK.strip()} ` where a line starts "
               "with it and the `credential_process` lines it added")
    elif change.kind == importundo.CONFIG:
        how = "to take import's changes back by hand, remove the sources and profiles it added"
    else:
        how = f"the long-term keys import moved are in the keyring (`{ctx.command('keys', 'ls')}`)"
    return (f"{change.path} ({change.kind}) changed since import wrote it, and undo would lose that change; "
            f"{how}, or undo your change and run `{ctx.command('config', 'import', '--undo')}` again")
