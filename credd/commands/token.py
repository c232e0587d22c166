"""`credd token issue PROFILE --ttl 8h` and `credd token revoke ID`: container endpoint tokens for a long-lived client.

`credd exec --server` issues and revokes a token around one command; a dev
container or a long-running tool started elsewhere needs one that lives
longer. `issue` prints the two variables for the client (the token's value
only there, on stdout), and on stderr the token's id and how to revoke it.
"""

from __future__ import annotations

import shlex

from credd.commands.args import TokenIssueArgs, TokenRevokeArgs
from credd.commands.control import ask_daemon
from credd.context import Context
from credd.durations import parse_duration
from credd.endpoints.container import MAX_TTL
from credd.errors import ClientError, UsageError

ASK_TIMEOUT = 10.0  # answered from memory


def issue(ctx: Context, args: TokenIssueArgs) -> int:
    try:
        seconds = parse_duration(args.ttl)
    except ValueError as e:
        raise UsageError(f"--ttl: {e}") from None
    if not 1 <= seconds <= MAX_TTL.total_seconds():
        raise UsageError(f"--ttl: {args.ttl} is out of range: a token lives from 1s to 7d")
    reply = ask_daemon(ctx, {"op": "token-issue", "profiles": [args.profile], "ttl": seconds}, ASK_TIMEOUT)
    if not reply.get("ok"):
        raise ClientError(str(reply.get("message", "the daemon issued no token")))
    ctx.say(f"export AWS_CONTAINER_CREDENTIALS_FULL_URI={shlex.quote(reply['url'] + args.profile)}")
    ctx.say(f"export AWS_CONTAINER_AUTHORIZATION_TOKEN={shlex.quote(reply['token'])}")
    ctx.stderr.write(f"credd: token {reply['id']} grants profile {args.profile} until {reply['expires']}; revoke "
                     f"it with `{ctx.command('token', 'revoke', reply['id'])}`\n")
    return 0


def revoke(ctx: Context, args: TokenRevokeArgs) -> int:
    reply = ask_daemon(ctx, {"op": "token-revoke", "id": args.id}, ASK_TIMEOUT)
    if not reply.get("ok"):
        raise ClientError(str(reply.get("message", "the daemon revoked nothing")))
    ctx.say(str(reply["message"]))
    return 0
