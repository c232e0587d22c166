"""`credd init`: write a starter config, from flags or by asking; then offer to finish the set-up.

Once the config is written, two offers, each also a flag so that scripts get
it without a question: move a long-term key out of the credentials file into
the keyring (exactly `credd keys import`: the same function), and add
`credential_process` lines to `~/.aws/config` for the profiles served through
the hook (with the credentials file's byte-preserving editor: botocore reads
both files with one parser). Questions come only when init asks anyway (no
`--source`, on a terminal); with flags or on a pipe nothing is asked, and init
says what is left to do.

A step that fails after the config is written does not undo it: init does the
other steps, prints what is left, then exits 1 with a message naming the
command to run once the cause is fixed. Exit 1 rather than a warning, so that
`credd init ... && credd service install` never starts a daemon with no key.
"""

from __future__ import annotations

import errno
import getpass
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from credd import awsconfig, credfile, paths
from credd.atomicfile import read_text, write_atomic
from credd.awsconfig import CREDENTIAL_PROCESS
from credd.commands.args import InitArgs
from credd.config import MFA_SERIAL, NAME, REGION, ROLE_ARN, parse_config
from credd.context import Context
from credd.errors import CreddError, UsageError
from credd.keyimport import import_from_profile
from credd.model import Config, mask_key_id
from credd.secret_formats import parse_access_key
from credd.service import hook_command
from credd.starter import Answers, render
from credd.terminal import ask, is_interactive

YES_NO = re.compile("(?i)y|yes|n|no")
NAME_HINT = "a name may have letters, digits and _.@+=,- and must start with a letter or digit"


@dataclass
class Report:
    """What init leaves to the user: commands to run next, and failures that make it exit 1."""

    steps: list[tuple[str, str]] = field(default_factory=list)  # (command, why)
    problems: list[str] = field(default_factory=list)


def run(ctx: Context, args: InitArgs) -> int:
    path = ctx.config_path
    if _exists(path) and not args.force:
        raise CreddError(f"{path} already exists; edit it, or pass --force to replace it")
    asking = not args.source and is_interactive(ctx.stdin)
    if args.source:
        answers = _from_flags(args)
    elif asking:
        answers = _by_asking(ctx, args.hook)
    else:
        raise UsageError("not a terminal: pass at least --source NAME (see `credd init --help`)")
    text = render(answers, _credd(ctx, "config", "check"))
    # Never write a config that credd itself would refuse.
    config = parse_config(text, f"{path} (as credd init would write it)", path, ctx.env, ctx.platform, ctx.uid)
    if args.import_from_profile:
        _check_importable(config, args.import_from_profile)  # a wrong flag writes nothing
    try:
        write_atomic(path, text.encode())
    except OSError as e:
        raise CreddError(f"cannot write {path}: {_why_unwritable(path, e)}") from None
    ctx.say(f"wrote {path}")
    report = Report()
    _import_step(ctx, config, answers.source, args.import_from_profile, asking, report)
    if answers.mfa == "totp":
        report.steps.append((_credd(ctx, "totp", "set", answers.source), "store the TOTP seed"))
    _wiring_step(ctx, config, args.wire_aws_config, asking, report)
    serve = _credd(ctx, "serve")
    report.steps.append((_credd(ctx, "service", "install"), f"run the daemon as a service (or `{serve}`)"))
    _say_steps(ctx, report.steps)
    if report.problems:
        raise CreddError(f"{path} is written, but " + "; and ".join(report.problems))
    return 0


def _exists(path: Path) -> bool:
    try:
        return os.path.lexists(path) and (path.is_symlink() or path.exists())
    except OSError as e:  # a name too long, a loop of symlinks
        raise CreddError(f"cannot write {path}: {_why_unwritable(path, e)}") from None


def _why_unwritable(path: Path, error: OSError) -> str:
    """Why the config cannot be written there, and what to do, in the user's terms."""
    if error.errno == errno.ENOTDIR:
        blocker = next((parent for parent in path.parents if parent.exists() and not parent.is_dir()), None)
        if blocker is not None:
            return f"{blocker} is not a directory; give --config a path in a directory"
    if error.errno == errno.ENAMETOOLONG:
        return "the path or one of its names is too long for this system; give --config a shorter path"
    return f"{error.strerror or error}; give --config a path you can write"


# Questions and flags ---------------------------------------------------------


def _from_flags(args: InitArgs) -> Answers:
    assert args.source is not None  # run() asks the questions instead when --source is left out
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
    if args.hook and not roles:
        raise UsageError("--hook serves role profiles through credential_process; add --role PROFILE=ARN")
    if args.wire_aws_config and not args.hook:
        raise UsageError("--wire-aws-config wires the profiles served through credential_process; add --hook")
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
        hook_roles=args.hook,
    )


def _by_asking(ctx: Context, hook: bool) -> Answers:
    """The questions; `hook` set by its flag is not asked again."""
    ctx.say(f"This writes {ctx.config_path}. Press Enter to take the [default].")
    source = ""
    while not source:
        source = _question(ctx, "Name for your IAM user (the source)", _default_user(), NAME, NAME_HINT)
    serial = _question(ctx, "MFA device ARN (arn:aws:iam::ACCOUNT:mfa/NAME; empty for none)", "", MFA_SERIAL,
                       "that does not look like an MFA device ARN")
    mfa, command = None, []
    if serial:
        mfa = _question(ctx, "How should credd get MFA codes: prompt, totp or command", "prompt",
                        re.compile("prompt|totp|command"), "please answer prompt, totp or command") or "prompt"
        if mfa == "command":
            command = shlex.split(_question(ctx, "Command that prints a code", "ykman oath accounts code --single aws"))
    region = _question(ctx, "STS region", "us-east-1", REGION, "expected a region like us-east-1") or "us-east-1"
    session = _question(ctx, "Profile name for the session itself (empty for none)", f"{source}-session", NAME,
                        NAME_HINT)
    roles = []
    while True:
        name = _question(ctx, "Role profile name (empty to finish)", "", NAME, NAME_HINT)
        if not name:
            break
        arn = ""
        while not arn:
            arn = _question(ctx, f"Role ARN for {name} (arn:aws:iam::ACCOUNT:role/NAME)", "", ROLE_ARN,
                            "expected a role ARN like arn:aws:iam::222222222222:role/Admin")
        roles.append((name, arn))
    if roles and not hook:
        hook = _confirm(ctx, "Serve roles through credential_process instead of writing them into the "
                             "credentials file?", default=False)
    return Answers(source, serial or None, mfa, command, region, None, session or None, roles, hook)


def _question(ctx: Context, prompt: str, default: str = "", pattern: re.Pattern[str] | None = None,
              hint: str = "") -> str:
    """Ask until the answer is empty or fits `pattern`."""
    while True:
        answer = ask(prompt, ctx.stdin, ctx.stdout, default)
        if not answer or pattern is None or pattern.fullmatch(answer):
            return answer
        ctx.say(f"  {hint}")


def _confirm(ctx: Context, prompt: str, default: bool) -> bool:
    answer = _question(ctx, f"{prompt} {'[Y/n]' if default else '[y/N]'}", "", YES_NO, "please answer y or n")
    return answer.lower().startswith("y") if answer else default


def _default_user() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        return "me"
    return user if NAME.fullmatch(user) else "me"


# The long-term key -------------------------------------------------------------


def _check_importable(config: Config, section: str) -> None:
    """Refuse `--import-from-profile` before anything is written when the section holds no key to import."""
    path = config.credentials_file
    try:
        text = read_text(path)
        if text is None:
            raise CreddError(f"{path} does not exist, so there is no key to import; leave the flag out")
        found = credfile.read_long_term_key(text, section, str(path))
        parse_access_key(found.key_id, found.secret.reveal())
    except CreddError as e:
        raise UsageError(f"--import-from-profile {section}: {e}; nothing was written") from e


def _import_step(ctx: Context, config: Config, source: str, section: str | None, asking: bool,
                 report: Report) -> None:
    """Import the key from `section`, or from the one the user picks; else leave the commands that would."""
    found = _long_term_keys(ctx, config)
    shown = _shown(config.credentials_file, ctx.env)
    if section is None and asking and found:
        section = _choose_section(ctx, source, found, shown)
    if section is not None:
        try:
            import_from_profile(ctx, config, source, section)
            return
        except CreddError as e:  # the key stays in the file; the config stays written
            command = _credd(ctx, "keys", "import", source, "--from-profile", section)
            report.problems.append(f"the key in [{section}] of {shown} was not moved into the keyring: "
                                   f"{str(e).rstrip('.')}; once that is fixed, run `{command}`")
            return
    if found:
        names = [name for name, _ in found]
        pick = source if source in names else names[0]
        others = f" (or another of {', '.join(f'[{name}]' for name in names)})" if len(names) > 1 else ""
        report.steps.append((_credd(ctx, "keys", "import", source, "--from-profile", pick),
                             f"move the long-term key in [{pick}]{others} of {shown} into the keyring"))
    report.steps.append((_credd(ctx, "keys", "set", source),
                         ("or " if found else "") + "store the long-term key (prompts without echo)"))


def _long_term_keys(ctx: Context, config: Config) -> list[tuple[str, str]]:
    """(section, masked key id) for each section of the credentials file that holds a long-term key."""
    path = config.credentials_file
    try:
        doc = credfile.parse(read_text(path) or "", str(path))
    except CreddError as e:
        ctx.warn(f"cannot look for long-term keys in {path}: {e}")
        return []
    return [(name, mask_key_id(section.keys[credfile.ACCESS_KEY_ID].value))
            for name, section in doc.sections.items()
            if section.holds_long_term_key and credfile.SECRET_ACCESS_KEY in section.keys and not section.owned]


def _choose_section(ctx: Context, source: str, found: list[tuple[str, str]], shown: str) -> str | None:
    if len(found) == 1:
        name, masked = found[0]
        move = _confirm(ctx, f"Found a long-term key ({masked}) in [{name}] of {shown}. Move it into the keyring "
                             f"for source {source}?", default=True)
        return name if move else None
    ctx.say(f"Found long-term keys in {shown}: " + ", ".join(f"[{name}] ({masked})" for name, masked in found))
    names = [name for name, _ in found]
    choices = [*names, "none"]
    answer = _question(ctx, f"Which one should move into the keyring for source {source}? A section name, or none",
                       source if source in names else names[0], re.compile("|".join(map(re.escape, choices))),
                       "please answer one of: " + ", ".join(choices))
    return answer if answer in names else None


# ~/.aws/config ------------------------------------------------------------------


def _wiring_step(ctx: Context, config: Config, wire: bool, asking: bool, report: Report) -> None:
    """Add credential_process lines for the write: false profiles, or show the user the lines to add.

    Wiring also gives every profile a `region` line (the SDKs find none in the credentials file), the
    written ones included: `aws --profile NAME` needs one.
    """
    hooked = [name for name, profile in config.profiles.items() if not profile.write]
    target = Path(paths.aws_config_file(ctx.env))
    shown = _shown(target, ctx.env)
    if not hooked:
        if wire:
            ctx.say(f"no profile is served through credential_process, so nothing was added to {shown}")
        return
    command = _hook_command(ctx)
    if not wire and asking:
        wire = _confirm(ctx, f"Add credential_process lines for {', '.join(hooked)} to {shown}?", default=False)
    if wire:
        try:
            regions = {name: config.region_of(name) for name in config.profiles}
            outcomes = awsconfig.wire_aws_config(target, hooked, command, regions)
        except CreddError as e:
            report.problems.append(f"{shown} was left as it was: {str(e).rstrip('.')}; then add the lines shown "
                                   "above by hand")
        else:
            for outcome in outcomes:
                _say_wiring(ctx, outcome, shown, awsconfig.hook_line(command, outcome.profile))
            return
    ctx.say(f"{', '.join(hooked)}: served through credential_process; for the AWS CLI and SDKs, add to {shown}:")
    for name in hooked:
        ctx.say(f"  [{awsconfig.new_section(name)}]\n  {CREDENTIAL_PROCESS} = {awsconfig.hook_line(command, name)}\n"
                f"  {awsconfig.REGION} = {config.region_of(name)}")


def _hook_command(ctx: Context) -> list[str]:
    """The absolute `credd` (the one running; `python -I -S credd` from a venv), with the config when it is not
    where the hook looks by default."""
    options = ["--config", os.path.abspath(ctx.config_path)] if ctx.config_arg else []
    return [*hook_command(ctx.env), *options]


def _say_wiring(ctx: Context, outcome: awsconfig.Wiring, shown: str, wanted: str) -> None:
    where = f"[{outcome.section}] in {shown}"
    region = f"{awsconfig.REGION} = {outcome.region}"
    if outcome.state == "none":
        if outcome.region:
            ctx.say(f"{outcome.profile}: {where} now has {region}")
        return
    if outcome.state == "added":
        also = f" and {region}" if outcome.region else ""
        ctx.say(f"wired {outcome.profile}: {where} now has {CREDENTIAL_PROCESS} = {wanted}{also}")
    elif outcome.state == "wired":
        ctx.say(f"{outcome.profile} is already wired: {where} runs credd for it")
    else:  # never quote the other line: a command line may carry a token
        ctx.warn(f"{shown}:{outcome.line}: [{outcome.section}] already has another {CREDENTIAL_PROCESS}, which "
                 f"credd leaves alone; for credd to serve {outcome.profile}, change that line to "
                 f"`{CREDENTIAL_PROCESS} = {wanted}`")
    if outcome.shadowed_by:
        ctx.warn(f"{where} also sets {' and '.join(outcome.shadowed_by)}, which botocore uses before "
                 f"{CREDENTIAL_PROCESS}; remove it there (role_arn with its source_profile and mfa_serial) for "
                 f"credd to serve {outcome.profile}")


# Output ----------------------------------------------------------------------------


def _credd(ctx: Context, *words: str) -> str:
    """A credd command line to suggest, with --config when this run was given one."""
    return ctx.command(*words)


def _say_steps(ctx: Context, steps: list[tuple[str, str]]) -> None:
    width = max(len(command) for command, _ in steps)
    ctx.say("next:")
    for command, why in steps:
        ctx.say(f"  {command.ljust(width)}   # {why}")


def _shown(path: Path, env: Mapping[str, str]) -> str:
    """`path` as people write it: under the home directory, with `~`."""
    home = paths.home_of(env).rstrip("/")
    text = str(path)
    return "~" + text[len(home):] if home and text.startswith(home + "/") else text
