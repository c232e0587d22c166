"""`credd env PROFILE` and `credd exec PROFILE -- CMD ...`: a profile's credentials in an environment.

Both ask the daemon as the hook does (and, like it, prompt on the terminal when
a `prompt` source needs a code). `exec` replaces itself with CMD, so CMD's
exit status and signals are the caller's to see, with nothing in between.
"""

from __future__ import annotations

import argparse
import os
import shlex

from credd import coredump, entry, hook
from credd.context import Context
from credd.errors import CreddError, UsageError

# Variables that would make an SDK look past the credentials credd hands over.
SHADOWING = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SECURITY_TOKEN")


def credentials_env(ctx: Context, profile: str) -> dict[str, str]:
    try:
        creds = hook.fetch(hook.socket_path(ctx.env, ctx.config_arg), profile, hook.DEFAULT_TIMEOUT)
    except hook.HookError as e:
        raise CreddError(str(e)) from None
    return {
        "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
        "AWS_SESSION_TOKEN": creds["SessionToken"],
        "AWS_CREDENTIAL_EXPIRATION": creds["Expiration"],
        "CREDD_PROFILE": profile,
    }


def env(ctx: Context, args: argparse.Namespace) -> int:
    values = credentials_env(ctx, args.profile)
    for name, value in values.items():
        ctx.say(f"export {name}={shlex.quote(value)}")
    ctx.say(f"unset {' '.join(SHADOWING)}")
    return 0


def exec_command(ctx: Context, args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise UsageError("nothing to run: credd exec PROFILE -- COMMAND [ARG ...]")
    environment = {name: value for name, value in ctx.env.items() if name not in SHADOWING}
    environment.update(credentials_env(ctx, args.profile))
    ctx.stdout.flush()
    entry.restore_user_umask()  # credd runs under 077; the command gets the user's own umask
    coredump.restore_user_limit()  # and its own core limit: credd's secrets are not the command's concern
    try:
        os.execvpe(command[0], command, environment)
    except FileNotFoundError:
        raise CreddError(f"{command[0]}: command not found") from None
    except OSError as e:
        raise CreddError(f"cannot run {command[0]}: {e.strerror}") from None
    return 127  # not reached: exec replaced this process
