"""`credd init`: write a starter config, from flags or by asking."""

from __future__ import annotations

import argparse
import getpass
import re
import shlex

from credd.atomicfile import write_atomic
from credd.config import MFA_SERIAL, NAME, REGION, ROLE_ARN, parse_config
from credd.context import Context
from credd.errors import CreddError, UsageError
from credd.starter import Answers, render
from credd.terminal import ask, is_interactive


def run(ctx: Context, args: argparse.Namespace) -> int:
    path = ctx.config_path
    if path.exists() and not args.force:
        raise CreddError(f"{path} already exists; edit it, or pass --force to replace it")
    if args.source:
        answers = _from_flags(args)
    elif is_interactive(ctx.stdin):
        answers = _by_asking(ctx)
    else:
        raise UsageError("not a terminal: pass at least --source NAME (see `credd init --help`)")
    text = render(answers)
    # Never write a config that credd itself would refuse.
    parse_config(text, f"{path} (as credd init would write it)", path, ctx.env, ctx.platform, ctx.uid)
    write_atomic(path, text.encode())
    ctx.say(f"wrote {path}")
    ctx.say("next: `credd keys set " + answers.source + "` to store the long-term key"
            + (f", `credd totp set {answers.source}` for the TOTP seed" if answers.mfa == "totp" else ""))
    return 0


def _from_flags(args: argparse.Namespace) -> Answers:
    roles = []
    for item in args.role:
        name, sep, arn = item.partition("=")
        if not sep or not name or not arn:
            raise UsageError(f"--role takes PROFILE=ARN, got {item!r}")
        roles.append((name, arn))
    if args.mfa and not args.mfa_serial:
        raise UsageError("--mfa needs --mfa-serial, the ARN of the MFA device")
    if args.mfa_command and args.mfa != "command":
        raise UsageError("--mfa-command goes with --mfa command")
    command = shlex.split(args.mfa_command) if args.mfa_command else []
    if args.mfa == "command" and not command:
        raise UsageError("--mfa command needs --mfa-command CMD, the program that prints a code")
    session = args.session_profile or (None if roles else f"{args.source}-session")
    return Answers(
        source=args.source,
        mfa_serial=args.mfa_serial,
        mfa=args.mfa or ("prompt" if args.mfa_serial else None),
        mfa_command=command,
        region=args.region or "us-east-1",
        sts_endpoint=args.sts_endpoint,
        session_profile=session,
        roles=roles,
    )


def _by_asking(ctx: Context) -> Answers:
    def question(prompt: str, default: str = "", pattern: re.Pattern[str] | None = None, hint: str = "") -> str:
        """Ask until the answer is empty or fits `pattern`."""
        while True:
            answer = ask(prompt, ctx.stdin, ctx.stdout, default)
            if not answer or pattern is None or pattern.fullmatch(answer):
                return answer
            ctx.say(f"  {hint}")

    name_hint = "a name may have letters, digits and _.@+=,- and must start with a letter or digit"
    ctx.say(f"This writes {ctx.config_path}. Press Enter to take the [default].")
    source = ""
    while not source:
        source = question("Name for your IAM user (the source)", _default_user(), NAME, name_hint)
    serial = question("MFA device ARN (arn:aws:iam::ACCOUNT:mfa/NAME; empty for none)", "", MFA_SERIAL,
                      "that does not look like an MFA device ARN")
    mfa, command = None, []
    if serial:
        mfa = question("How should credd get MFA codes: prompt, totp or command", "prompt",
                       re.compile("prompt|totp|command"), "please answer prompt, totp or command") or "prompt"
        if mfa == "command":
            command = shlex.split(question("Command that prints a code", "ykman oath accounts code --single aws"))
    region = question("STS region", "us-east-1", REGION, "expected a region like us-east-1") or "us-east-1"
    session = question("Profile name for the session itself (empty for none)", f"{source}-session", NAME, name_hint)
    roles = []
    while True:
        name = question("Role profile name (empty to finish)", "", NAME, name_hint)
        if not name:
            break
        arn = ""
        while not arn:
            arn = question(f"Role ARN for {name} (arn:aws:iam::ACCOUNT:role/NAME)", "", ROLE_ARN,
                           "expected a role ARN like arn:aws:iam::222222222222:role/Admin")
        roles.append((name, arn))
    return Answers(source, serial or None, mfa, command, region, None, session or None, roles)


def _default_user() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        return "me"
    return user if NAME.fullmatch(user) else "me"
