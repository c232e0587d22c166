"""`credd config import`: take the profiles of `~/.aws/config` into credd's config, and their keys into the keyring.

The plan is `awsimport`'s (pure). Here: read the files, merge the plan's new
entries into credd's config text without touching the user's own lines,
prove the result with the real loader, write it atomically, then move the
keys. A name credd's config already has with the same meaning is no change
(a second run changes nothing); with another meaning it is a clash, named in
both files, and nothing is written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import yaml

from credd import awsimport, paths
from credd.atomicfile import read_text, write_atomic
from credd.commands.args import ConfigImportArgs
from credd.config import parse_config
from credd.context import Context
from credd.errors import ConfigError, CreddError, UsageError
from credd.model import Config


def run(ctx: Context, args: ConfigImportArgs) -> int:
    aws_path = Path(args.from_path) if args.from_path else Path(_aws_config_file(ctx))
    aws_text = read_text(aws_path)
    if aws_text is None:
        raise UsageError(f"{aws_path}: no such file to import; give the AWS config file with --from PATH")
    path = ctx.config_path
    existing = ctx.load_config() if os.path.lexists(path) else None
    old_text = (read_text(path) or "") if existing is not None else ""
    credentials = existing.credentials_file if existing else Path(paths.credentials_file(ctx.env))
    plan = awsimport.plan_import(aws_text, str(aws_path), read_text(credentials), str(credentials),
                                 args.profile, existing.sources if existing else ())
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
    moves = list(plan.keys)
    if text == old_text and not moves:
        ctx.say(f"{path} already has every profile {aws_path} gives; nothing changed")
        return 0
    # Never write a config that credd itself would refuse.
    config = parse_config(text, f"{path} (as credd config import would write it)", path, ctx.env, ctx.platform,
                          ctx.uid, ctx.hint_config)
    if args.dry_run:
        ctx.say(f"# {path} would be:" if text != old_text else f"# {path} stays as it is:")
        ctx.say(text.rstrip("\n"))
        for move in moves:
            ctx.say(f"would move the long-term key in [{move.section}] of {credentials} into the keyring "
                    f"for source {move.source}")
        ctx.say("dry run: nothing was changed")
        return 0
    if text != old_text:
        try:
            write_atomic(path, text.encode())
        except OSError as e:
            raise CreddError(f"cannot write {path}: {e.strerror or e}") from None
        added = len(new_sources) + len(new_profiles)
        ctx.say(f"added {len(new_sources)} source(s) and {len(new_profiles)} profile(s) to {path}"
                if added else f"wrote {path}")
    else:
        ctx.say(f"{path} already has every profile {aws_path} gives")
    _move_keys(ctx, config, moves)
    return 0


def _aws_config_file(ctx: Context) -> str:
    given = ctx.env.get("AWS_CONFIG_FILE")
    return os.path.expanduser(given) if given else os.path.join(ctx.env.get("HOME", os.path.expanduser("~")),
                                                                 ".aws", "config")


def _move_keys(ctx: Context, config: Config, moves: list[awsimport.KeyMove]) -> None:
    from credd.keyimport import import_from_profile

    for move in moves:
        import_from_profile(ctx, config, move.source, move.section)


def _new(planned: dict[str, dict[str, object]], imported: Mapping[str, object], existing: Mapping[str, object],
         level: str, path: Path, old_text: str, aws_path: Path, plan: awsimport.Plan) -> dict[str, dict[str, object]]:
    """The planned entries credd's config lacks; one it has with another meaning is a clash, named in both files."""
    new = {}
    for name, entry in planned.items():
        if name not in existing:
            new[name] = entry
        elif existing[name] != imported[name]:
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
