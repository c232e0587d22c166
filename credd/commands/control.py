"""`credd status`, `credd refresh`, `credd mfa`: talk to the running daemon over its socket."""

from __future__ import annotations

import json
from collections.abc import Mapping

from credd import client
from credd.commands.args import JsonArgs, MfaArgs, RefreshArgs
from credd.context import Context
from credd.durations import format_duration
from credd.errors import ConfigError, CreddError
from credd.secret_formats import parse_mfa_code
from credd.terminal import ask_hidden, ask_valid, is_interactive, read_lines

STATUS_TIMEOUT = 10.0
REFRESH_TIMEOUT = 180.0  # a refresh may wait 30 s for a fresh TOTP window, and STS retries
# What went wrong with STS, in a word or two, before the daemon's message (`last_error_kind`).
ERROR_LABELS = {
    "throttled": "STS throttled",
    "network": "STS unreachable",
    "server": "STS server error",
    "bad_reply": "malformed STS reply",
    "clock": "clock skew",
    "expired_token": "session refused",
}


def ask_daemon(ctx: Context, message: dict, timeout: float) -> dict:
    """The daemon's reply, or a ClientError that says what is wrong (and how to start the daemon)."""
    return client.ask(socket_path(ctx), message, timeout, ctx.hint_config)


def socket_path(ctx: Context) -> str:
    """The daemon's socket, as every client finds it (`client.socket_path`).

    The socket is found from the `socket:` line alone, so a config deleted or
    broken since the daemon loaded it does not cut the user off from the
    daemon, which keeps running the config it loaded; a broken one is told.
    """
    if not ctx.env.get("CREDD_SOCKET"):
        try:
            ctx.load_config()
        except ConfigError as e:
            ctx.warn(f"{e}; looking for the daemon without it")
    return client.socket_path(ctx.env, ctx.config_arg, ctx.platform, ctx.uid)


SERVED = ("fresh", "expiring")  # the states in which `aws` gets fresh credentials: status exits 0 only then


def status(ctx: Context, args: JsonArgs) -> int:
    reply = ask_daemon(ctx, {"op": "status"}, STATUS_TIMEOUT)
    served = all(row["state"] in SERVED for row in reply["profiles"])  # a script's `until credd status` waits on it
    if args.json:
        ctx.say(json.dumps(reply, indent=2))
        return 0 if served else 1
    ctx.say(f"credd {reply['version']} (pid {reply['pid']}), config {reply['config']}")
    failed = reply.get("reload_error")  # an older daemon sends none
    if failed:
        ctx.say(f"warning: the reload at {failed['at']} was refused, so credd still runs the config it loaded at "
                f"{reply['config_loaded_at']}: {failed['message']}")
    rows = [("PROFILE", "SOURCE", "STATE", "LEFT", "LAST REFRESH", "LAST ERROR")]
    for row in reply["profiles"]:
        left = format_duration(max(0, row["seconds_left"])) if row["seconds_left"] is not None else "-"
        rows.append((row["profile"], row["source"], row["state"], left, row["last_refresh"] or "-",
                     error_line(row)))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:  # the last column, LAST ERROR, is not padded
        padded = "  ".join(cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True))
        ctx.say((padded + "  " + row[5]).rstrip())
    for line in endpoint_lines(reply):
        ctx.say(line)
    for name, source in sorted(reply.get("sources", {}).items()):  # an older daemon sends none
        if source.get("clock_warning"):
            ctx.say(f"warning: source {name}: {source['clock_warning']}")
    return 0 if served else 1


def endpoint_lines(reply: dict) -> list[str]:
    """A line per HTTP endpoint the daemon serves (`endpoints`), the container endpoint's with its live tokens (ids,
    profiles, expiry, file, rotation; never a value)."""
    lines = []
    for server in servers_of(reply):
        url, kind = server.get("url", "?"), server.get("kind", "?")
        if kind == "container":
            tokens = ", ".join(token_text(t) for t in server.get("tokens", []))
            lines.append(f"{kind} endpoint: {url}PROFILE; live tokens: {tokens or 'none'}")
        else:
            profiles = server.get("profiles")
            lines.append(f"{kind} endpoint: {url}" + (f" (profile {', '.join(profiles)})" if profiles else ""))
    return lines


def servers_of(reply: Mapping) -> list[Mapping]:
    """The HTTP endpoints a status reply lists (`endpoints`), each as it describes itself: the container endpoint
    (with its tokens), then the IMDS listeners. An older daemon's container entry has only `address` and `tokens`."""
    endpoints = reply.get("endpoints") or {}
    container = endpoints.get("container")
    servers: list[Mapping] = []
    if container:
        servers.append({"kind": "container", "url": f"http://{container.get('address')}/v1/credentials/", **container})
    return servers + list(endpoints.get("imds") or [])


def token_text(token: Mapping) -> str:
    """`ab12cd34 (prod-admin, until T)`, with its file and rotation when it has them."""
    parts = [", ".join(token["profiles"]), f"until {token['expires']}"]
    if token.get("file"):
        parts.append(f"file {token['file']}")
    if token.get("rotate_every"):
        parts.append(f"a new value every {format_duration(token['rotate_every'])}")
    return f"{token['id']} ({', '.join(parts)})"


def error_line(row: dict) -> str:
    """`STS throttled (3 failures in a row; next attempt 2030-06-01T12:45:00Z): <the daemon's message>`."""
    message = row.get("last_error")
    if not message:
        return ""
    label = ERROR_LABELS.get(row.get("last_error_kind") or "")
    if row.get("next_attempt"):
        count = row.get("failures_in_a_row") or 0
        label = (f"{label or 'failing'} ({count} failure{'s' * (count != 1)} in a row; "
                 f"next attempt {row['next_attempt']})")
    return f"{label}: {message}" if label else message


def refresh(ctx: Context, args: RefreshArgs) -> int:
    reply = ask_daemon(ctx, {"op": "refresh", "profiles": list(args.profiles)}, REFRESH_TIMEOUT)
    if "profiles" not in reply:
        raise CreddError(reply.get("message", "the daemon refused"))
    if args.json:
        ctx.say(json.dumps({"ok": reply["ok"], "profiles": reply["profiles"]}, indent=2, sort_keys=True))
    else:
        for name, outcome in sorted(reply["profiles"].items()):
            ctx.say(f"{name}: {refresh_line(outcome)}")
    return 0 if reply["ok"] else 1


def refresh_line(outcome: dict) -> str:
    """What one profile's refresh did, in words: renewed, still valid, not written, or failed (and why)."""
    kind, until, reason = outcome.get("outcome"), outcome.get("expiration"), outcome.get("reason")
    if kind == "renewed":
        return f"renewed, valid until {until}"
    if kind == "valid":
        return f"still valid until {until}, not renewed: {reason}"
    if kind == "not-written":
        return f"not written to the credentials file (served over the socket until {until}): {reason}"
    if kind == "failed":
        return f"failed: {reason}"
    return "refreshed" if outcome["ok"] else f"failed: {outcome['message']}"  # an older daemon says no more


def hand_in_mfa(ctx: Context, args: MfaArgs) -> int:
    code = args.code
    if code is None:
        if is_interactive(ctx.stdin):
            code = ask_valid(lambda: ask_hidden(f"MFA code for {args.source}: ", ctx.stdin), parse_mfa_code,
                             ctx.stderr)
        else:
            (code,) = read_lines(ctx.stdin, ("MFA code",))
    reply = ask_daemon(ctx, {"op": "mfa", "source": args.source, "code": code.strip()}, REFRESH_TIMEOUT)
    if not reply["ok"]:
        raise CreddError(reply["message"])
    ctx.say(reply["message"])
    return 0
