"""`credd service install | uninstall | status`: the systemd user unit or LaunchAgent that runs `credd serve`.

`credd.service` decides what to write and run; this module runs it (or,
with `--dry-run`, prints it) and turns every failure of systemctl or
launchctl into a message that says what to do.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from credd import service
from credd.atomicfile import ensure_private_dir, write_atomic
from credd.commands.args import ServiceChangeArgs, ServiceStatusArgs
from credd.config import load_config
from credd.context import Context
from credd.errors import CreddError
from credd.model import Config
from credd.service import MakeDir, Manager, RemoveFile, Run, ServiceSpec, Step, Systemd, WriteFile


class ServiceDidNotStart(CreddError):
    """The service manager took the service but could not start it."""


class InstallFailed(CreddError):
    """A step of `credd service install` failed; the message says which, why, and what was rolled back."""


@dataclass
class _Journal:
    """What an install has changed so far, so that a failed one can take all of it back."""

    made_dirs: list[Path] = field(default_factory=list)  # in the order made: parents first
    files: dict[Path, bytes | None] = field(default_factory=dict)  # each written file's bytes before (None: new)
    undo: list[tuple[str, ...]] = field(default_factory=list)  # calls that take back the calls that succeeded


def install(ctx: Context, args: ServiceChangeArgs) -> int:
    platform = args.platform or ctx.platform
    manager = service.manager_for(platform, ctx.env, ctx.uid, ctx.hint_config)
    spec, config = _spec(ctx, platform)
    steps = manager.install_plan(spec)
    if args.dry_run:
        ctx.stdout.write(service.dry_run_script("install", steps, manager.fallback_note))
        return 0
    journal = _Journal()
    try:
        try:
            _execute(ctx, manager, steps, journal)
        except ServiceDidNotStart:
            if not (spec.mount_sandbox and isinstance(manager, Systemd) and _namespaces_refused(ctx, manager)):
                raise
            ctx.warn("systemd refused this service the user namespace its file-system sandbox needs "
                     "(ProtectSystem=, ReadWritePaths=, PrivateTmp=; Ubuntu restricts them, for one); "
                     "installing it again without them")
            _execute(ctx, manager, manager.install_plan(replace(spec, mount_sandbox=False)), journal)
    except CreddError as e:
        raise InstallFailed(f"{e}\n{_roll_back(ctx, manager, journal)}") from e
    ctx.say(f"credd serve now runs as a service; `{ctx.command('service', 'status')}` shows it, "
            f"`{manager.logs}` its log")
    if isinstance(manager, Systemd) and any(source.mfa == "command" for source in config.sources.values()):
        ctx.say("note: mfa_command runs inside the service's sandbox; if it works in your shell but not "
                f"under the service, loosen the sandbox with `systemctl --user edit {service.UNIT}`")
    return 0


def uninstall(ctx: Context, args: ServiceChangeArgs) -> int:
    manager = service.manager_for(args.platform or ctx.platform, ctx.env, ctx.uid,
                                  ctx.hint_config)
    if not os.path.lexists(manager.path):
        ctx.say(f"not installed ({manager.path} does not exist); nothing to do")
        return 0
    steps = manager.uninstall_plan()
    if args.dry_run:
        ctx.stdout.write(service.dry_run_script("uninstall", steps))
        return 0
    if _execute(ctx, manager, steps):
        ctx.say("credd no longer runs as a service")
    else:
        ctx.say(f"removed {manager.path}; the service manager did not do all it was asked (above), so if a "
                f"credd service still runs, stop it with `{manager.stop_command}`")
    return 0


def status(ctx: Context, args: ServiceStatusArgs) -> int:
    """Says what the manager says; the exit status says whether the service runs (see STATUS_* in credd.service)."""
    manager = service.manager_for(args.platform or ctx.platform, ctx.env, ctx.uid,
                                  ctx.hint_config)
    installed = os.path.lexists(manager.path)
    answers: dict[str, str] = {}
    running: bool | None = None
    for query in manager.status_queries():
        try:
            result = _call(ctx, manager, query.argv)
            answers[query.label] = query.summarize(result.returncode, result.stdout, result.stderr)
            if query.running is not None:
                running = query.running(result.returncode, result.stdout, result.stderr)
        except CreddError as e:
            answers[query.label] = f"unknown ({e})"
    code = service.status_exit_code(installed, running)
    verdict = {service.STATUS_RUNNING: "running", service.STATUS_NOT_RUNNING: "not running",
               service.STATUS_UNKNOWN: "unknown: the service manager did not say whether it runs"}[code]
    if args.json:
        ctx.say(json.dumps({"file": manager.path, "installed": installed, "running": running,
                            "state": verdict.split(":")[0], "manager": answers, "logs": manager.logs}, indent=2))
        return code
    ctx.say(f"file: {manager.path} ({'installed' if installed else 'not installed'})")
    for label, answer in answers.items():
        ctx.say(f"{label}: {answer}")
    ctx.say(f"service: {verdict}")
    ctx.say(f"logs: {manager.logs}")
    return code


def _spec(ctx: Context, platform: str) -> tuple[ServiceSpec, Config]:
    """What to install, from the config the daemon will read; a broken config is refused here, not in a restart loop."""
    config = load_config(ctx.config_path, ctx.env, platform, ctx.uid)
    command = service.daemon_command(service.find_credd(ctx.env), str(ctx.config_path) if ctx.config_arg else None)
    credentials_dir = os.path.dirname(os.path.realpath(config.credentials_file))
    spec = service.build_spec(command, ctx.env, platform, ctx.uid,
                              credentials_dir=credentials_dir, socket=str(config.socket))
    return spec, config


def _execute(ctx: Context, manager: Manager, steps: Sequence[Step], journal: _Journal | None = None) -> bool:
    """Run the plan; each change is noted in `journal` (when one is kept) before it is made.

    True when every call succeeded; False when a call whose failure does not stop the plan failed.
    """
    journal = journal if journal is not None else _Journal()
    all_ran = True
    for step in steps:
        if isinstance(step, Run):
            if step.undo and step.starts_service:  # a failed start may still be retried by the manager: stop it too
                journal.undo.append(step.undo)
            ran = _run(ctx, manager, step)
            if ran and step.undo and not step.starts_service:
                journal.undo.append(step.undo)
            all_ran = all_ran and (ran or step.on_failure == "ignore")
            continue
        try:
            if isinstance(step, MakeDir):
                journal.made_dirs += _missing_dirs(Path(step.path))
                ensure_private_dir(Path(step.path))
            elif isinstance(step, WriteFile):
                path = Path(step.path)
                journal.made_dirs += _missing_dirs(path.parent)
                journal.files.setdefault(path, path.read_bytes() if path.is_file() else None)
                write_atomic(path, step.data, step.mode)
                ctx.say(f"wrote {step.path}")
            elif isinstance(step, RemoveFile):
                Path(step.path).unlink(missing_ok=True)
                ctx.say(f"removed {step.path}")
        except OSError as e:
            raise CreddError(f"cannot change {e.filename or step.path}: {e.strerror or e}; "
                             "it and its directory must be yours and writable") from e
    return all_ran


def _run(ctx: Context, manager: Manager, step: Run) -> bool:
    """Run one call; True when it succeeded. A failure stops the plan, is reported, or is ignored, as the step says."""
    try:
        result = _call(ctx, manager, step.argv)
    except CreddError as e:
        if step.on_failure == "stop":
            raise
        result = subprocess.CompletedProcess(step.argv, 127, "", str(e))
    if result.returncode == 0:
        ctx.say(f"ran {shlex.join(step.argv)}")
        return True
    if step.on_failure == "stop":
        error = ServiceDidNotStart if step.starts_service else CreddError
        raise error(f"`{shlex.join(step.argv)}` failed ({_said(result)}); {step.advice}")
    if step.on_failure == "report":
        ctx.warn(f"`{shlex.join(step.argv)}` failed ({_said(result)}); going on")
    return False


def _missing_dirs(directory: Path) -> list[Path]:
    """`directory` and its parents that do not exist yet, parents first: what making it would create."""
    missing = []
    while not directory.exists() and directory != directory.parent:
        missing.append(directory)
        directory = directory.parent
    return missing[::-1]


def _roll_back(ctx: Context, manager: Manager, journal: _Journal) -> str:
    """Take back what a failed install did, newest first; returns what was taken back, to add to the error.

    A unit or plist that was there before (an update) is put back as it was; one that was new goes,
    with its enable and start. Directories go only if they are still empty.
    """
    done: list[str] = []
    updated = any(before is not None for before in journal.files.values())
    for argv in reversed(journal.undo if not updated else []):
        if _run(ctx, manager, Run(argv, on_failure="report")):
            done.append(f"ran {shlex.join(argv)}")
    for path, before in journal.files.items():
        try:
            if before is None:
                path.unlink(missing_ok=True)
                done.append(f"removed {path}")
            else:
                write_atomic(path, before, 0o644)
                done.append(f"put the previous {path} back")
        except OSError as e:
            ctx.warn(f"could not take back {path}: {e.strerror or e}; remove it by hand")
    for step in manager.after_rollback() if journal.files else []:
        _run(ctx, manager, step)
    for directory in reversed(journal.made_dirs):
        try:
            directory.rmdir()
        except OSError:
            continue  # something is in it now: not ours to remove
    if updated:
        done.append(f"if the previous service was stopped, `{manager.start_command}` starts it again")
    return "install rolled back: " + ("; ".join(done) if done else "nothing had been changed")


def _said(result: subprocess.CompletedProcess[str]) -> str:
    """The exit status and the line of the complaint that says what failed: systemctl's first
    `Failed ...` line (before it, `disable` reports what it did remove), else its first line."""
    lines = (result.stderr.strip() or result.stdout.strip()).splitlines()
    failed = [line for line in lines if line.startswith("Failed")]
    return f"exit status {result.returncode}" + (f": {(failed or lines)[0]}" if lines else "")


def _call(ctx: Context, manager: Manager, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run a service-manager command with a time limit; a missing tool or a hang is a CreddError."""
    try:
        return subprocess.run(argv, check=False, env=ctx.env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=service.TIMEOUT)
    except FileNotFoundError:
        raise CreddError(manager.missing) from None
    except subprocess.TimeoutExpired:
        raise CreddError(f"`{shlex.join(argv)}` did not finish within {service.TIMEOUT:g} s; "
                         f"see `{manager.logs}` for what the service is doing") from None
    except OSError as e:
        raise CreddError(f"cannot run `{shlex.join(argv)}`: {e.strerror or e}") from None


def _namespaces_refused(ctx: Context, manager: Systemd) -> bool:
    """Whether the start failed because systemd could not set up the service's namespaces."""
    try:
        result = _call(ctx, manager, manager.exit_status_query())
    except CreddError:
        return False
    return result.returncode == 0 and result.stdout.strip() in service.NAMESPACE_REFUSED
