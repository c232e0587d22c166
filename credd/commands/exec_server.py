"""`credd exec --server PROFILE -- CMD`: CMD gets the container endpoint's address and a token, never keys.

The daemon issues a token that grants PROFILE only (socket op `token-issue`)
and writes its value to a file of its own (0600, beside its socket). CMD runs
as a child with `AWS_CONTAINER_CREDENTIALS_FULL_URI`,
`AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (botocore and the JavaScript SDK
read it first, on every fetch) and `AWS_CONTAINER_AUTHORIZATION_TOKEN` (for
SDKs that read only the variable, such as the AWS CLI 2.9.19 of Debian 12;
both hold the same value) set, and with `AWS_PROFILE` and every static key
removed, so its SDK asks the endpoint and gets fresh credentials for as long
as it runs, past the expiry of any one session. The daemon does not rotate
this token on its own: the variable would then go stale under such an SDK
(`credd token rotate ID` can, for a CMD whose SDK reads the file).

credd waits (it does not exec: it must revoke the token when CMD exits),
forwards the signals a terminal or a supervisor sends, and exits with CMD's
status; revoking removes the file. A `credd exec` killed with SIGKILL cannot
revoke: its token then expires on its own after `--ttl` (12 h by default), and
the daemon removes its file then (or at its own stop).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

from credd import client, coredump, umask
from credd.commands.args import ExecArgs
from credd.commands.env import SHADOWING
from credd.commands.token import seconds_of
from credd.context import Context
from credd.endpoints.container import DEFAULT_TTL
from credd.errors import ClientError, CommandNotRunnable, CreddError, UsageError

# What would make an SDK use something other than the endpoint, or another endpoint.
CLEARED = (*SHADOWING, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_CREDENTIAL_EXPIRATION",
           "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
           "AWS_SHARED_CREDENTIALS_FILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN")
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
             signal.SIGWINCH)
ASK_TIMEOUT = 10.0  # issuing and revoking are answered from memory


def server_environment(env: dict[str, str], url: str, token: str, region: str | None,
                       token_file: str | None = None) -> dict[str, str]:
    """CMD's environment: the caller's, without what would shadow the endpoint, plus the endpoint; pure."""
    result = {name: value for name, value in env.items() if name not in CLEARED}
    result.update(AWS_CONTAINER_CREDENTIALS_FULL_URI=url, AWS_CONTAINER_AUTHORIZATION_TOKEN=token)
    if token_file is not None:
        result.update(AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=token_file)
    if region is not None:
        result.update(AWS_REGION=region, AWS_DEFAULT_REGION=region)
    return result


def exec_server(ctx: Context, args: ExecArgs) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise UsageError("nothing to run: credd exec --server PROFILE -- COMMAND [ARG ...]")
    ttl = seconds_of("--ttl", args.ttl) if args.ttl is not None else int(DEFAULT_TTL.total_seconds())
    path = client.socket_path(ctx.env, ctx.config_arg, ctx.platform, ctx.uid)
    issued = client.ask(path, {"op": "token-issue", "profiles": [args.profile], "ttl": ttl, "file": True},
                        ASK_TIMEOUT, ctx.hint_config)
    if not issued.get("ok"):
        raise ClientError(str(issued.get("message", "the daemon issued no token")))
    region = None
    try:
        config = ctx.load_config()
        region = config.region_of(args.profile) if args.profile in config.profiles else None
    except CreddError as e:
        ctx.warn(f"{e}; exporting no region")
    environment = server_environment(dict(ctx.env), issued["url"] + args.profile, issued["token"], region,
                                     issued.get("file"))  # an older daemon writes none
    try:
        return _run(ctx, command, environment)
    finally:
        _revoke(ctx, path, issued)


def _revoke(ctx: Context, path: str, issued: dict) -> None:
    """Revoke CMD's token; a daemon gone meanwhile costs a warning, never CMD's exit status."""
    try:
        revoked = client.ask(path, {"op": "token-revoke", "id": issued["id"]}, ASK_TIMEOUT, ctx.hint_config)
    except ClientError as e:
        revoked = {"ok": False, "message": str(e)}
    if not revoked.get("ok"):
        ctx.warn(f"token {issued['id']} was not revoked ({revoked.get('message')}); it expires at "
                 f"{issued['expires']}, or with the daemon")
        if issued.get("file"):  # the daemon removes it when it revokes; gone or stuck, this CMD is done with it
            with contextlib.suppress(OSError):
                os.unlink(issued["file"])


def _run(ctx: Context, command: list[str], environment: dict[str, str]) -> int:
    """CMD as a child with its own umask and core limit; its exit status, 128+N when signal N ended it."""
    ctx.stdout.flush()
    umask.restore_user()  # credd runs under 077; the command gets the user's own umask (credd writes no file now)
    coredump.restore_user_limit()  # and its own core limit: credd's secrets are not the command's concern
    try:
        child = subprocess.Popen(command, env=environment)
    except FileNotFoundError:
        raise CommandNotRunnable(f"{command[0]}: command not found", 127) from None
    except OSError as e:
        raise CommandNotRunnable(f"{command[0]}: cannot run it: {e.strerror}", 126) from None
    previous = {signum: signal.signal(signum, lambda signum, _frame: child.send_signal(signum)) for signum in FORWARDED}
    try:
        status = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - status if status < 0 else status
