"""`credd config import`: take the profiles of `~/.aws/config` into credd's config, and their keys into the keyring.

The plan is `awsimport`'s (pure). Here: read the files, merge the plan's new
entries into credd's config text without touching the user's own lines,
prove the result with the real loader, write it atomically, then move the
keys. A name credd's config already has with the same meaning is no change
(a second run changes nothing); with another meaning it is a clash, named in
both files, and nothing is written.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import signal
from collections.abc import Mapping
from pathlib import Path

import yaml

from credd import awsconfig, awsimport, credfile, importundo, paths
from credd.atomicfile import read_text, update_file, write_atomic
from credd.commands.args import ConfigImportArgs
from credd.config import parse_config
from credd.context import Context
from credd.errors import ConfigError, CreddError, UsageError
from credd.model import Config, Profile
from credd.secret_formats import parse_access_key
from credd.store import Store


def run(ctx: Context, args: ConfigImportArgs) -> int:
    if args.undo:
        if args.from_path or args.profile:
            raise UsageError("--undo takes back what the last imports changed, whatever file and profiles they "
                             "read; leave out --from and --profile")
        return undo(ctx, dry_run=args.dry_run)
    aws_path = Path(args.from_path) if args.from_path else Path(_aws_config_file(ctx))
    aws_text = read_text(aws_path)
    if aws_text is None:
        raise UsageError(f"{aws_path}: no such file to import; give the AWS config file with --from PATH")
    path = ctx.config_path
    existing = ctx.load_config() if os.path.lexists(path) else None
    old_text = (read_text(path) or "") if existing is not None else ""
    credentials = existing.credentials_file if existing else Path(paths.credentials_file(ctx.env))
    credentials_text = read_text(credentials)
    # A section import rewired before is planned from what it held then, so a second run is no change.
    plan = awsimport.plan_import(awsconfig.original_view(aws_text, str(aws_path)), str(aws_path), credentials_text,
                                 str(credentials), args.profile, existing.sources if existing else ())
    for skipped in plan.skipped:
        ctx.say(f"left alone: {aws_path}:{skipped.line} [{skipped.profile}]: {skipped.reason}")
    if not plan.sources and not plan.profiles:
        ctx.say(f"nothing to import from {aws_path}")
        return 0
    imported = parse_config(awsimport.render_config(plan), f"{aws_path} (as credd config)", path, ctx.env,
                            ctx.platform, ctx.uid, ctx.hint_config)
    new_sources = _new(plan.sources, imported.sources, existing.sources if existing else {}, "sources", path,
                       old_text, aws_path, plan)
    new_profiles = _new(plan.profiles, imported.profiles, existing.profiles if existing else {}, "profiles", path,
                        old_text, aws_path, plan)
    text = merge(old_text, new_sources, new_profiles) if existing else awsimport.render_config(plan)
    # Never write a config that credd itself would refuse.
    config = parse_config(text, f"{path} (as credd config import would write it)", path, ctx.env, ctx.platform,
                          ctx.uid, ctx.hint_config)
    served = {name: config.profiles[name].write for name in plan.profiles}
    command = _hook_command(ctx) if not all(served.values()) else []
    new_aws, rewired = awsconfig.rewire_text(aws_text, served, command, str(aws_path))
    keys = {move.source: credfile.read_long_term_key(credentials_text or "", move.section, str(credentials))
            for move in plan.keys}
    for key in keys.values():  # every key is checked before anything changes, not when its turn comes
        parse_access_key(key.key_id, key.secret.reveal())
    leaving = {move.section: keys[move.source] for move in plan.keys}
    new_credentials = credfile.remove_long_term_keys(credentials_text or "", leaving, str(credentials)) \
        if leaving else credentials_text
    if text == old_text and new_aws == aws_text and not plan.keys:
        record = None if args.dry_run else _read_record(ctx, _record_path(ctx))
        if record is not None and not record.done:  # killed after its last write: only the record says so
            record.done = True
            importundo.write_record(_record_path(ctx), record)
            ctx.say("an earlier `credd config import` stopped half-way, after its last change; this run completes it")
        ctx.say(f"{path} already has every profile {aws_path} gives, and {aws_path} uses them; nothing changed")
        return 0
    if args.dry_run:
        _show_plan(ctx, path, text, old_text, aws_path, aws_text, new_aws, plan.keys, credentials)
        return 0
    changes = [importundo.make_change(str(path), importundo.CONFIG, old_text if existing else None, text),
               importundo.make_change(str(aws_path), importundo.AWS_CONFIG, aws_text, new_aws)]
    if credentials_text is not None and new_credentials != credentials_text:
        secrets = {source: key.secret.reveal() for source, key in keys.items()}
        changes.append(importundo.make_change(str(credentials), importundo.CREDENTIALS, credentials_text,
                                              new_credentials or "", secrets))
    record_at = _record_path(ctx)
    _journal(ctx, record_at, changes)  # before the first change: a run killed later is completed or undone
    _checkpoint(ctx, "journal")
    if text != old_text:
        _write(path, text)
        added = len(new_sources) + len(new_profiles)
        ctx.say(f"added {len(new_sources)} source(s) and {len(new_profiles)} profile(s) to {path}"
                if added else f"wrote {path}")
    else:
        ctx.say(f"{path} already has every profile {aws_path} gives")
    _checkpoint(ctx, "config")
    if new_aws != aws_text:
        update_file(aws_path, lambda current: _unchanged(current, aws_text, new_aws, aws_path),
                    hint_config=ctx.hint_config)
        _say_rewired(ctx, aws_path, rewired)
    _checkpoint(ctx, "aws-config")
    _move_keys(ctx, config, plan.keys)
    _checkpoint(ctx, "keys")
    record = importundo.read_record(record_at)
    if record is not None:
        record.done = True
        importundo.write_record(record_at, record)
    ctx.say(f"`{ctx.command('config', 'import', '--undo')}` puts back every byte this changed "
            f"(what it needs is in {record_at})")
    return 0


def _hook_command(ctx: Context) -> list[str]:
    """The credd that `credential_process` lines run: the very function `credd init --wire-aws-config` uses, so
    the two write one line."""
    from credd.commands.init import _hook_command as init_hook_command

    return init_hook_command(ctx)


def _checkpoint(ctx: Context, name: str) -> None:
    """A test stops the import here with SIGKILL (CREDD_TEST_KILL_AT=NAME) to prove a re-run or --undo recovers."""
    if ctx.env.get("CREDD_TEST_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _record_path(ctx: Context) -> Path:
    return importundo.record_path(paths.state_dir(ctx.env))


def _read_record(ctx: Context, at: Path) -> importundo.Record | None:
    try:
        return importundo.read_record(at)
    except ValueError as e:
        raise CreddError(f"{e}; move it aside, then run the command again (undo then has nothing to take back "
                         "from before)") from None


def _journal(ctx: Context, at: Path, changes: list[importundo.FileChange]) -> None:
    """Add this import's changes to the undo record, marked unfinished until the last file is written.

    A file an earlier import changed, and that is still as it left it, keeps its first before-bytes: undo
    takes back every import since the last undo. One changed since by hand starts again from now.
    """
    record = _read_record(ctx, at) or importundo.Record()
    if not record.done:
        ctx.say(f"an earlier `credd config import` stopped half-way; this run completes it "
                f"(`{ctx.command('config', 'import', '--undo')}` would take it back instead)")
    for change in changes:
        if change.before == change.after:
            continue
        earlier = record.files.get(change.path)
        if earlier is not None and earlier.after == change.before:
            change = importundo.compose(earlier, change)
        elif earlier is not None and earlier.before != change.before:
            ctx.warn(f"{change.path} changed since an earlier `credd config import` wrote it; "
                     f"`{ctx.command('config', 'import', '--undo')}` now gives it back as it is now, not as it was "
                     "before that import")
        record.files[change.path] = change
    record.done = False
    try:
        importundo.write_record(at, record)
    except OSError as e:
        raise CreddError(f"cannot write {at}, which undo needs: {e.strerror or e}; nothing was changed") from None


def _write(path: Path, text: str) -> None:
    try:
        write_atomic(path, text.encode())
    except OSError as e:
        raise CreddError(f"cannot write {path}: {e.strerror or e}") from None


def _unchanged(current: str, read: str, new: str, path: Path) -> str:
    """`new`, if the file is still as import read it: never drop someone's change made meanwhile."""
    if current != read:
        raise CreddError(f"{path} changed while credd was importing it; run the import again")
    return new


def _say_rewired(ctx: Context, aws_path: Path, rewired: list[awsconfig.Rewired]) -> None:
    for item in rewired:
        where = f"[{item.section}] in {aws_path}"
        if item.moved:
            ctx.say(f"{item.profile}: {', '.join(item.moved)} in {where} now behind `{awsconfig.IMPORT_MARK.strip()}` "
                    "(botocore would use them before credd's credentials)")
        if item.wired == "added":
            ctx.say(f"{item.profile}: {where} now runs credd as its credential_process")


def _show_plan(ctx: Context, path: Path, text: str, old_text: str, aws_path: Path, aws_text: str, new_aws: str,
               moves: list[awsimport.KeyMove], credentials: Path) -> None:
    ctx.say(f"# {path} would be:" if text != old_text else f"# {path} stays as it is:")
    ctx.say(text.rstrip("\n"))
    if new_aws != aws_text:
        ctx.say(f"# {aws_path} would change so:")
        for line in difflib.unified_diff(aws_text.splitlines(), new_aws.splitlines(), str(aws_path),
                                         f"{aws_path} (rewired)", lineterm=""):
            ctx.say(line.rstrip("\r"))
    for move in moves:
        ctx.say(f"would move the long-term key in [{move.section}] of {credentials} into the keyring "
                f"for source {move.source}")
    ctx.say("dry run: nothing was changed")


def undo(ctx: Context, dry_run: bool = False) -> int:
    """Give back each file the imports since the last undo changed, byte for byte; all of them or none.

    A file changed since import wrote it (but for credentials credd's daemon wrote, which are its own) is
    not overwritten: undo refuses, names it and says how to take import's changes back by hand.
    The keyring keeps the keys import moved: the credentials file gets a copy back, and `credd keys rm`
    drops the keyring's.
    """
    at = _record_path(ctx)
    record = _read_record(ctx, at)
    if record is None:
        raise UsageError(f"no `credd config import` to undo: {at} does not exist (import writes it; undo removes it)")
    store: Store | None = None

    def secret_of(source: str) -> str | None:
        nonlocal store
        if store is None:
            store = ctx.open_store(ctx.load_config())
        key = store.get_access_key(source)
        return key.secret.reveal() if key is not None else None

    restores: list[tuple[importundo.FileChange, str, str | None]] = []  # (change, the text now, the text to write)
    problems = []
    for change in record.files.values():
        current = read_text(Path(change.path))
        if importundo.digest(current) == change.before:
            continue  # as it was (an import killed before it got here): nothing to give back
        written = importundo.as_written(current, change) if current is not None else None
        if written is None:
            problems.append(_changed_since(ctx, change))
            continue
        if change.before is None:
            restores.append((change, written, None))
            continue
        before = importundo.rebuild(written, change, secret_of)
        if before is None:
            problems.append(f"{change.path}: the keyring no longer holds the long-term keys import moved out of "
                            f"it (`{ctx.command('keys', 'ls')}`), so its bytes cannot be given back")
            continue
        assert current is not None  # as_written gave something back
        restores.append((change, current, before))
    if problems:
        raise CreddError("nothing was undone:\n  " + "\n  ".join(problems))
    sources = importundo.moved_sources(record)
    for change, current, before in restores:
        if dry_run:
            ctx.say(f"would {'remove' if before is None else 'give back'} {change.path} ({change.kind}) as it was "
                    "before import")
        elif before is None:
            os.unlink(change.path)
            ctx.say(f"removed {change.path}: import created it")
        else:
            _give_back(ctx, Path(change.path), current, before)
            ctx.say(f"gave back {change.path} ({change.kind}) as it was before import")
    if dry_run:
        ctx.say("dry run: nothing was changed")
        return 0
    importundo.write_record(at, None)
    if not restores:
        ctx.say("every file import changed is as it was before it already")
    if sources:
        ctx.say(f"the keyring still holds the long-term keys of {', '.join(sources)} (now also back in the credentials "
                f"file): `{ctx.command('keys', 'rm', sources[0])}` removes one; a running daemon keeps the profiles it "
                f"loaded until it reloads")
    return 0


def _give_back(ctx: Context, path: Path, current: str, before: str) -> None:
    update_file(path, lambda text: _unchanged(text, current, before, path), hint_config=ctx.hint_config)


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


def _aws_config_file(ctx: Context) -> str:
    given = ctx.env.get("AWS_CONFIG_FILE")
    return os.path.expanduser(given) if given else os.path.join(ctx.env.get("HOME", os.path.expanduser("~")),
                                                                 ".aws", "config")


def _move_keys(ctx: Context, config: Config, moves: list[awsimport.KeyMove]) -> None:
    from credd.keyimport import import_from_profiles

    if moves:
        import_from_profiles(ctx, config, {move.source: move.section for move in moves})


def _new(planned: dict[str, dict[str, object]], imported: Mapping[str, object], existing: Mapping[str, object],
         level: str, path: Path, old_text: str, aws_path: Path, plan: awsimport.Plan) -> dict[str, dict[str, object]]:
    """The planned entries credd's config lacks; one it has with another meaning is a clash, named in both files."""
    new = {}
    for name, entry in planned.items():
        mine = existing.get(name)
        if isinstance(mine, Profile):  # `write:` is the user's to choose: import never sets it
            mine = dataclasses.replace(mine, write=getattr(imported[name], "write", mine.write))
        if name not in existing:
            new[name] = entry
        elif mine != imported[name]:
            line = _line_of(old_text, level, name)
            where = f"{path}:{line}" if line else str(path)
            raise ConfigError(where, None, f"{level}.{name}",
                              f"already defined here, differently from what profile {name} gives in "
                              f"{aws_path}:{plan.lines.get(name, '?')}; rename one of them, or import the others "
                              f"only with --profile NAME")
    return new


def _line_of(text: str, level: str, name: str) -> int | None:
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    for key, value in getattr(root, "value", None) or []:
        if key.value == level and isinstance(value, yaml.MappingNode):
            for inner, _ in value.value:
                if inner.value == name:
                    return int(inner.start_mark.line) + 1
    return None


def merge(text: str, sources: dict[str, dict[str, object]], profiles: dict[str, dict[str, object]]) -> str:
    """`text` with `sources` and `profiles` added at the end of its own mappings; its own lines unchanged."""
    for level, entries in (("sources", sources), ("profiles", profiles)):
        if entries:
            text = _add_entries(text, level, entries)
    return text


def _add_entries(text: str, level: str, entries: dict[str, dict[str, object]]) -> str:
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    top = root.value if isinstance(root, yaml.MappingNode) else []  # the loader took it: a mapping
    node = next((value for key, value in top if key.value == level), None)
    if not text.endswith("\n"):
        text += "\n"
    if node is None or (isinstance(node, yaml.ScalarNode) and node.value in ("", None)):
        if node is not None:
            raise UsageError(f"`{level}:` is empty in the config; remove the line and run the import again")
        return text + f"{level}:\n" + awsimport.render_entries(entries, "  ")
    if not isinstance(node, yaml.MappingNode) or node.flow_style or not node.value:
        raise UsageError(f"`{level}:` in the config is not a block mapping credd can add to; write it one name per "
                         "line, then run the import again")
    indent = " " * node.value[0][0].start_mark.column
    lines = text.splitlines(keepends=True)
    end = node.end_mark.line if node.end_mark.column == 0 else node.end_mark.line + 1
    end = min(end, len(lines))
    while end > 0 and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
        end -= 1  # after the mapping's last entry, not after comments that head what follows
    eol = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    added = awsimport.render_entries(entries, indent).replace("\n", eol)
    return "".join(lines[:end]) + added + "".join(lines[end:])
