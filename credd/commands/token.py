"""`credd token issue|rotate|revoke`: container endpoint tokens for a long-lived client.

`credd exec --server` issues and revokes a token around one command; a dev
container or a long-running tool started elsewhere needs one that lives
longer. `issue` prints the variables for the client on stdout, and on stderr
the token's id and how to revoke it. With `--file PATH` the daemon writes the
value to PATH (0600, a new file) and stdout names the file, never the value:
SDKs that read `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` re-read it on every
fetch, so `rotate` (or `--rotate 1h`, the daemon on its own) can change the
value under a running client; the old value works for a minute more.
"""

from __future__ import annotations

import os
import shlex

from credd.commands.args import TokenIssueArgs, TokenRevokeArgs
from credd.commands.control import ask_daemon
from credd.context import Context
from credd.durations import parse_duration
from credd.endpoints.container import MAX_TTL
from credd.errors import ClientError, UsageError

ASK_TIMEOUT = 10.0  # answered from memory


def seconds_of(flag: str, given: str) -> int:
    """A duration flag (`--ttl 8h`, `--rotate 1h`) in seconds, from 1 s to 7 days; UsageError otherwise."""
    try:
        seconds = parse_duration(given)
    except ValueError as e:
        raise UsageError(f"{flag}: {e}") from None
    if not 1 <= seconds <= MAX_TTL.total_seconds():
        raise UsageError(f"{flag}: {given} is out of range: from 1s to 7d")
    return seconds


def issue(ctx: Context, args: TokenIssueArgs) -> int:
    seconds = seconds_of("--ttl", args.ttl)
    request: dict = {"op": "token-issue", "profiles": [args.profile], "ttl": seconds}
    if args.rotate is not None:
        if args.file is None:
            raise UsageError("--rotate needs --file: a client can follow a new value only in a file it re-reads")
        request["rotate"] = seconds_of("--rotate", args.rotate)
    if args.file is not None:
        request["file"] = os.path.abspath(os.path.expanduser(args.file))  # the daemon runs elsewhere
    reply = ask_daemon(ctx, request, ASK_TIMEOUT)
    if not reply.get("ok"):
        raise ClientError(str(reply.get("message", "the daemon issued no token")))
    ctx.say(f"export AWS_CONTAINER_CREDENTIALS_FULL_URI={shlex.quote(reply['url'] + args.profile)}")
    if reply.get("file"):
        ctx.say(f"export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE={shlex.quote(reply['file'])}")
    else:
        ctx.say(f"export AWS_CONTAINER_AUTHORIZATION_TOKEN={shlex.quote(reply['token'])}")
    rotation = f", a new value every {args.rotate}" if args.rotate is not None else ""
    ctx.stderr.write(f"credd: token {reply['id']} grants profile {args.profile} until {reply['expires']}{rotation}; "
                     f"revoke it with `{ctx.command('token', 'revoke', reply['id'])}`\n")
    return 0


def rotate(ctx: Context, args: TokenRevokeArgs) -> int:
    """A new value now; printed only for a token without a file (its client must be given it by hand)."""
    reply = ask_daemon(ctx, {"op": "token-rotate", "id": args.id}, ASK_TIMEOUT)
    if not reply.get("ok"):
        raise ClientError(str(reply.get("message", "the daemon rotated nothing")))
    if not reply.get("file"):
        ctx.say(f"export AWS_CONTAINER_AUTHORIZATION_TOKEN={shlex.quote(reply['token'])}")
    ctx.stderr.write(f"credd: {reply['message']}\n")
    return 0


def revoke(ctx: Context, args: TokenRevokeArgs) -> int:
    reply = ask_daemon(ctx, {"op": "token-revoke", "id": args.id}, ASK_TIMEOUT)
    if not reply.get("ok"):
        raise ClientError(str(reply.get("message", "the daemon revoked nothing")))
    ctx.say(str(reply["message"]))
    return 0
