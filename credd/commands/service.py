"""`credd service install | uninstall | status`: the systemd user unit or LaunchAgent that runs `credd serve`.

`credd.service` decides what to write and run; this module runs it (or,
with `--dry-run`, prints it) and turns every failure of systemctl or
launchctl into a message that says what to do.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from credd import service
from credd.atomicfile import ensure_private_dir, write_atomic
from credd.config import load_config
from credd.context import Context
from credd.errors import CreddError
from credd.model import Config
from credd.service import MakeDir, Manager, RemoveFile, Run, ServiceSpec, Step, Systemd, WriteFile


class ServiceDidNotStart(CreddError):
    """The service manager took the service but could not start it."""


def install(ctx: Context, args: argparse.Namespace) -> int:
    platform = args.platform or ctx.platform
    manager = service.manager_for(platform, ctx.env, ctx.uid)
    spec, config = _spec(ctx, platform)
    steps = manager.install_plan(spec)
    if args.dry_run:
        ctx.stdout.write(service.dry_run_script("install", steps, manager.fallback_note))
        return 0
    try:
        _execute(ctx, manager, steps)
    except ServiceDidNotStart:
        if not (spec.mount_sandbox and isinstance(manager, Systemd) and _namespaces_refused(ctx, manager)):
            raise
        ctx.warn("systemd refused this service the user namespace its file-system sandbox needs "
                 "(ProtectSystem=, ReadWritePaths=, PrivateTmp=; Ubuntu restricts them, for one); "
                 "installing it again without them")
        _execute(ctx, manager, manager.install_plan(replace(spec, mount_sandbox=False)))
    ctx.say(f"credd serve now runs as a service; `credd service status` shows it, `{manager.logs}` its log")
    if isinstance(manager, Systemd) and any(source.mfa == "command" for source in config.sources.values()):
        ctx.say("note: mfa_command runs inside the service's sandbox; if it works in your shell but not "
                f"under the service, loosen the sandbox with `systemctl --user edit {service.UNIT}`")
    return 0


def uninstall(ctx: Context, args: argparse.Namespace) -> int:
    manager = service.manager_for(args.platform or ctx.platform, ctx.env, ctx.uid)
    if not os.path.lexists(manager.path):
        ctx.say(f"not installed ({manager.path} does not exist); nothing to do")
        return 0
    steps = manager.uninstall_plan()
    if args.dry_run:
        ctx.stdout.write(service.dry_run_script("uninstall", steps))
        return 0
    _execute(ctx, manager, steps)
    ctx.say("credd no longer runs as a service")
    return 0


def status(ctx: Context, args: argparse.Namespace) -> int:
    manager = service.manager_for(args.platform or ctx.platform, ctx.env, ctx.uid)
    state = "installed" if os.path.lexists(manager.path) else "not installed"
    ctx.say(f"file: {manager.path} ({state})")
    for query in manager.status_queries():
        try:
            result = _call(ctx, manager, query.argv)
            answer = query.summarize(result.returncode, result.stdout, result.stderr)
        except CreddError as e:
            answer = f"unknown ({e})"
        ctx.say(f"{query.label}: {answer}")
    ctx.say(f"logs: {manager.logs}")
    return 0


def find_credd(env: Mapping[str, str], executable: str = sys.executable) -> list[str]:
    """The installed `credd` to put in the unit: absolute, and the one that is running now where possible.

    A venv or pipx install has its console script beside its Python; else the
    one on PATH; else this Python runs the module.
    """
    if executable:
        beside = Path(os.path.abspath(executable)).parent / "credd"
        if beside.is_file() and os.access(beside, os.X_OK):
            return [str(beside)]
    found = shutil.which("credd", path=env.get("PATH", os.defpath))
    if found:
        return [os.path.abspath(found)]
    if not executable:
        raise CreddError("cannot tell where credd is installed (no `credd` on PATH, and Python does not say "
                         "where it runs from); put the credd command on PATH, then try again")
    return [os.path.abspath(executable), "-m", "credd"]


def _spec(ctx: Context, platform: str) -> tuple[ServiceSpec, Config]:
    """What to install, from the config the daemon will read; a broken config is refused here, not in a restart loop."""
    config = load_config(ctx.config_path, ctx.env, platform, ctx.uid)
    command = service.daemon_command(find_credd(ctx.env), str(ctx.config_path) if ctx.config_arg else None)
    credentials_dir = os.path.dirname(os.path.realpath(config.credentials_file))
    spec = service.build_spec(command, ctx.env, platform, ctx.uid,
                              credentials_dir=credentials_dir, socket=str(config.socket))
    return spec, config


def _execute(ctx: Context, manager: Manager, steps: Sequence[Step]) -> None:
    for step in steps:
        if isinstance(step, Run):
            _run(ctx, manager, step)
            continue
        try:
            if isinstance(step, MakeDir):
                ensure_private_dir(Path(step.path))
            elif isinstance(step, WriteFile):
                write_atomic(Path(step.path), step.data, step.mode)
                ctx.say(f"wrote {step.path}")
            elif isinstance(step, RemoveFile):
                Path(step.path).unlink(missing_ok=True)
                ctx.say(f"removed {step.path}")
        except OSError as e:
            raise CreddError(f"cannot change {e.filename or step.path}: {e.strerror or e}; "
                             "it and its directory must be yours and writable") from e


def _run(ctx: Context, manager: Manager, step: Run) -> None:
    result = _call(ctx, manager, step.argv)
    if result.returncode != 0 and step.check:
        error = ServiceDidNotStart if step.starts_service else CreddError
        raise error(f"`{shlex.join(step.argv)}` failed ({_said(result)}); {step.advice}")
    ctx.say(f"ran {shlex.join(step.argv)}")


def _said(result: subprocess.CompletedProcess[str]) -> str:
    """The exit status and the first line of the complaint: systemctl's second line is boilerplate."""
    lines = (result.stderr.strip() or result.stdout.strip()).splitlines()
    return f"exit status {result.returncode}" + (f": {lines[0]}" if lines else "")


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
