"""`credd config import`: take the profiles of `~/.aws/config` into credd's config, and their keys into the keyring.

The plan is `awsimport`'s (pure). Here: read the files, merge the plan's new
entries into credd's config text without touching the user's own lines,
prove the result with the real loader, rewire `~/.aws/config` so the SDKs
use what credd serves (`awsconfig.rewire_text`), then change the files. A
name credd's config already has with the same meaning is no change (a second
run changes nothing); with another meaning it is a clash, named in both
files, and nothing is written.

Every change is computed before the first is made, and recorded for undo
(`importundo`) before it is made: then credd's config, `~/.aws/config`, and
the keys (keyring first, then the credentials file), each file replaced
atomically. The credentials file goes last because a key gone from it is the
one thing a re-run could not plan again; so a run killed anywhere is
completed by the next, or taken back by `--undo` (`config_undo`).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from credd import awsconfig, awsimport, credfile, importundo, paths
from credd.atomicfile import read_text, write_atomic
from credd.commands.args import ConfigImportArgs
from credd.config import parse_config
from credd.context import Context
from credd.errors import ConfigError, CreddError, UsageError
from credd.model import Config, Profile
from credd.secret_formats import parse_access_key


@dataclass
class _Import:
    """Everything one import changes, computed before anything is: each file's text now and after."""

    aws_path: Path
    aws_text: str
    new_aws: str
    rewired: list[awsconfig.Rewired]
    path: Path
    old_text: str | None  # None: there is no credd config yet
    text: str
    added: tuple[int, int]  # sources, profiles
    config: Config  # as `text` loads
    credentials: Path
    credentials_text: str | None
    new_credentials: str | None
    moves: list[awsimport.KeyMove]
    secrets: dict[str, str] = field(repr=False)  # source -> the secret key that leaves the credentials file

    @property
    def changes_nothing(self) -> bool:
        return self.text == (self.old_text or "") and self.new_aws == self.aws_text and not self.moves


def run(ctx: Context, args: ConfigImportArgs) -> int:
    if args.undo:
        if args.from_path or args.profile:
            raise UsageError("--undo takes back what the last imports changed, whatever file and profiles they "
                             "read; leave out --from and --profile")
        from credd.commands.config_undo import undo

        return undo(ctx, dry_run=args.dry_run)
    plan = _prepare(ctx, args)
    if plan is None:
        return 0
    if plan.changes_nothing:
        if not args.dry_run:
            _finish_interrupted(ctx)
        ctx.say(f"{plan.path} already has every profile {plan.aws_path} gives, and {plan.aws_path} uses them; "
                "nothing changed")
    elif args.dry_run:
        _show_plan(ctx, plan)
    else:
        _apply(ctx, plan)
    return 0


def _prepare(ctx: Context, args: ConfigImportArgs) -> _Import | None:
    """What importing changes in each file, proved with the real loader; None: nothing to import."""
    aws_path = Path(args.from_path) if args.from_path else Path(_aws_config_file(ctx))
    aws_text = read_text(aws_path)
    if aws_text is None:
        raise UsageError(f"{aws_path}: no such file to import; give the AWS config file with --from PATH")
    path = ctx.config_path
    existing = ctx.load_config() if os.path.lexists(path) else None
    old_text = (read_text(path) or "") if existing is not None else None
    credentials = existing.credentials_file if existing else Path(paths.credentials_file(ctx.env))
    credentials_text = read_text(credentials)
    # A section import rewired before is planned from what it held then, so a second run is no change.
    plan = awsimport.plan_import(awsconfig.original_view(aws_text, str(aws_path)), str(aws_path), credentials_text,
                                 str(credentials), args.profile, existing.sources if existing else ())
    for skipped in plan.skipped:
        ctx.say(f"left alone: {aws_path}:{skipped.line} [{skipped.profile}]: {skipped.reason}")
    if not plan.sources and not plan.profiles:
        ctx.say(f"nothing to import from {aws_path}")
        return None
    imported = parse_config(awsimport.render_config(plan), f"{aws_path} (as credd config)", path, ctx.env,
                            ctx.platform, ctx.uid, ctx.hint_config)
    new_sources = _new(plan.sources, imported.sources, existing.sources if existing else {}, "sources", path,
                       old_text or "", aws_path, plan)
    new_profiles = _new(plan.profiles, imported.profiles, existing.profiles if existing else {}, "profiles", path,
                        old_text or "", aws_path, plan)
    text = merge(old_text, new_sources, new_profiles) if old_text is not None else awsimport.render_config(plan)
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
    return _Import(aws_path, aws_text, new_aws, rewired, path, old_text, text, (len(new_sources), len(new_profiles)),
                   config, credentials, credentials_text, new_credentials, plan.keys,
                   {source: key.secret.reveal() for source, key in keys.items()})


def _apply(ctx: Context, plan: _Import) -> None:
    """Record, then make, every change of `plan`; a kill at any point is completed by a re-run or undone."""
    changes = [importundo.make_change(str(plan.path), importundo.CONFIG, plan.old_text, plan.text),
               importundo.make_change(str(plan.aws_path), importundo.AWS_CONFIG, plan.aws_text, plan.new_aws)]
    if plan.credentials_text is not None and plan.new_credentials != plan.credentials_text:
        changes.append(importundo.make_change(str(plan.credentials), importundo.CREDENTIALS, plan.credentials_text,
                                              plan.new_credentials or "", plan.secrets))
    record_at = record_path(ctx)
    _journal(ctx, record_at, changes)
    _checkpoint(ctx, "journal")
    if plan.text != (plan.old_text or ""):
        try:
            write_atomic(plan.path, plan.text.encode())
        except OSError as e:
            raise CreddError(f"cannot write {plan.path}: {e.strerror or e}") from None
        sources, profiles = plan.added
        ctx.say(f"added {sources} source(s) and {profiles} profile(s) to {plan.path}"
                if sources + profiles else f"wrote {plan.path}")
    else:
        ctx.say(f"{plan.path} already has every profile {plan.aws_path} gives")
    _checkpoint(ctx, "config")
    if plan.new_aws != plan.aws_text:
        importundo.replace_if_unchanged(plan.aws_path, plan.aws_text, plan.new_aws, ctx.hint_config)
        _say_rewired(ctx, plan.aws_path, plan.rewired)
    _checkpoint(ctx, "aws-config")
    _move_keys(ctx, plan.config, plan.moves)
    _checkpoint(ctx, "keys")
    record = importundo.read_record(record_at)
    if record is not None:
        record.done = True
        importundo.write_record(record_at, record)
    ctx.say(f"`{ctx.command('config', 'import', '--undo')}` puts back every byte this changed "
            f"(what it needs is in {record_at})")


def _finish_interrupted(ctx: Context) -> None:
    """A run killed after its last write left only its record unfinished: finish that."""
    at = record_path(ctx)
    record = importundo.read_record(at)
    if record is not None and not record.done:
        record.done = True
        importundo.write_record(at, record)
        ctx.say("an earlier `credd config import` stopped half-way, after its last change; this run completes it")


def _hook_command(ctx: Context) -> list[str]:
    """The credd that `credential_process` lines run: the very function `credd init --wire-aws-config` uses, so
    the two write one line."""
    from credd.commands.init import _hook_command as init_hook_command

    return init_hook_command(ctx)


def _checkpoint(ctx: Context, name: str) -> None:
    """A test stops the import here with SIGKILL (CREDD_TEST_KILL_AT=NAME) to prove a re-run or --undo recovers."""
    if ctx.env.get("CREDD_TEST_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def record_path(ctx: Context) -> Path:
    return importundo.record_path(paths.state_dir(ctx.env))


def _journal(ctx: Context, at: Path, changes: list[importundo.FileChange]) -> None:
    """Add this import's changes to the undo record, marked unfinished until the last file is written.

    A file an earlier import changed, and that is still as it left it, keeps its first before-bytes: undo
    takes back every import since the last undo. One changed since by hand starts again from now.
    """
    record = importundo.read_record(at) or importundo.Record()
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
    importundo.write_record(at, record)


def _say_rewired(ctx: Context, aws_path: Path, rewired: list[awsconfig.Rewired]) -> None:
    for item in rewired:
        where = f"[{item.section}] in {aws_path}"
        if item.moved:
            ctx.say(f"{item.profile}: {', '.join(item.moved)} in {where} now behind `{awsconfig.IMPORT_MARK.strip()}` "
                    "(botocore would use them before credd's credentials)")
        if item.wired == "added":
            ctx.say(f"{item.profile}: {where} now runs credd as its credential_process")


def _show_plan(ctx: Context, plan: _Import) -> None:
    changed = plan.text != (plan.old_text or "")
    ctx.say(f"# {plan.path} would be:" if changed else f"# {plan.path} stays as it is:")
    ctx.say(plan.text.rstrip("\n"))
    if plan.new_aws != plan.aws_text:
        ctx.say(f"# {plan.aws_path} would change so:")
        for line in difflib.unified_diff(plan.aws_text.splitlines(), plan.new_aws.splitlines(), str(plan.aws_path),
                                         f"{plan.aws_path} (rewired)", lineterm=""):
            ctx.say(line.rstrip("\r"))
    for move in plan.moves:
        ctx.say(f"would move the long-term key in [{move.section}] of {plan.credentials} into the keyring "
                f"for source {move.source}")
    ctx.say("dry run: nothing was changed")


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
                              f"{plan.where(name, str(aws_path))}; rename one of them, or import the others "
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
