"""`credd env PROFILE` and `credd exec PROFILE -- CMD ...`: a profile's credentials in an environment.

Both ask the daemon as the hook does (and, like it, prompt on the terminal when
a `prompt` source needs a code). When no daemon runs, a `write: true` profile's
credentials that credd wrote into the credentials file, and that have not
expired, still do; stderr says so. Both export the profile's region too (as
aws-vault does), under both names the SDKs read. `exec` replaces itself with
CMD, so CMD's exit status and signals are the caller's to see, with nothing in
between; a CMD that cannot be run exits 127 or 126, as in a shell.
"""

from __future__ import annotations

import os
import shlex
from datetime import datetime, timezone

from credd import client, coredump, credfile, protocol, umask
from credd.atomicfile import read_text
from credd.commands.args import EnvArgs, ExecArgs
from credd.context import Context
from credd.errors import CommandNotRunnable, ConfigError, CreddError, DaemonDown, UsageError
from credd.model import Config, Credentials
from credd.timefmt import utc_text

# Variables that would make an SDK look past the credentials credd hands over.
SHADOWING = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SECURITY_TOKEN")


def credentials_env(ctx: Context, profile: str) -> dict[str, str]:
    config = _config(ctx)
    path = client.socket_path(ctx.env, ctx.config_arg, ctx.platform, ctx.uid)
    try:
        creds = client.credentials(path, profile, protocol.CLIENT_TIMEOUT, ctx.hint_config)
    except DaemonDown as e:
        creds = _from_file(ctx, config, profile, e)
    values = {
        "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
        "AWS_SESSION_TOKEN": creds["SessionToken"],
        "AWS_CREDENTIAL_EXPIRATION": creds["Expiration"],
        "CREDD_PROFILE": profile,
    }
    if config is not None and profile in config.profiles:
        region = config.region_of(profile)
        values.update(AWS_REGION=region, AWS_DEFAULT_REGION=region)  # SDKs read the one, the AWS CLI v1 the other
    return values


def _config(ctx: Context) -> Config | None:
    """The config, for the profile's region and its credentials file; a broken one costs only those."""
    try:
        return ctx.load_config()
    except ConfigError as e:
        ctx.warn(f"{e}; exporting no region, and the daemon alone can hand out credentials")
        return None


def _from_file(ctx: Context, config: Config | None, profile: str, down: DaemonDown) -> dict:
    """The daemon is down: the profile's unexpired credentials that credd wrote into the credentials file."""
    chosen = config.profiles.get(profile) if config is not None else None
    if config is None or chosen is None or not chosen.write:
        raise CreddError(str(down))
    path = config.credentials_file
    try:
        creds = file_credentials(read_text(path) or "", str(path), profile, datetime.now(timezone.utc))
    except CreddError as e:
        raise CreddError(f"{down}; and {path} cannot be used instead: {e}") from None
    if creds is None:
        raise CreddError(f"{down}; and {path} holds no unexpired credentials credd wrote for {profile}")
    ctx.warn(f"the credd daemon is not running (nothing listens at {down.path}); using {profile}'s credentials "
             f"from {path}, which credd wrote there (valid until {creds['Expiration']})")
    return creds


def file_credentials(text: str, path: str, profile: str, now: datetime) -> dict | None:
    """`profile`'s credentials in the credentials file `text`, as the hook hands them out, if credd wrote them
    (its `x_credd_expiration` mark) and they expire after `now`; pure."""
    found: Credentials | None = credfile.read_owned_credentials(text, profile, path)
    if found is None or found.expiration <= now:
        return None
    return {"Version": 1, "AccessKeyId": found.access_key_id, "SecretAccessKey": found.secret_access_key.reveal(),
            "SessionToken": found.session_token.reveal(),
            "Expiration": utc_text(found.expiration)}


def env(ctx: Context, args: EnvArgs) -> int:
    values = credentials_env(ctx, args.profile)
    if args.format is not None:  # the AWS CLI's formats: the variables the SDKs read, nothing of credd's own
        from credd import export_formats

        values.pop("CREDD_PROFILE", None)
        ctx.stdout.write(export_formats.render(args.format, values))
        return 0
    for name, value in values.items():
        ctx.say(f"export {name}={shlex.quote(value)}")
    ctx.say(f"unset {' '.join(SHADOWING)}")
    return 0


def exec_command(ctx: Context, args: ExecArgs) -> int:
    if args.server:  # no keys in CMD's environment: a token for the container endpoint
        from credd.commands.exec_server import exec_server

        return exec_server(ctx, args)
    if args.ttl is not None:
        raise UsageError("--ttl is for a token: it goes with --server (credd exec --server --ttl 1h PROFILE -- CMD)")
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise UsageError("nothing to run: credd exec PROFILE -- COMMAND [ARG ...]")
    environment = {name: value for name, value in ctx.env.items() if name not in SHADOWING}
    environment.update(credentials_env(ctx, args.profile))
    ctx.stdout.flush()
    umask.restore_user()  # credd runs under 077; the command gets the user's own umask
    coredump.restore_user_limit()  # and its own core limit: credd's secrets are not the command's concern
    try:
        os.execvpe(command[0], command, environment)
    except FileNotFoundError:
        raise CommandNotRunnable(f"{command[0]}: command not found", 127) from None
    except OSError as e:  # found, but not runnable: no execute permission, a directory, not a program
        raise CommandNotRunnable(f"{command[0]}: cannot run it: {e.strerror}", 126) from None
    return 127  # not reached: exec replaced this process
