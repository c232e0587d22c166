"""Argument parsing -> commands, and the one place that turns errors into exit codes.

`COMMANDS` is the table: each command's words, the dataclass of its
parameters (`commands/args.py`) and a loader, a function that imports the
command's module and returns its handler. A module is imported only when its
command runs, so `credd process` (spawned for every AWS CLI call) and
`credd __complete` (every TAB) never pay for yaml, keyring or boto3. The
loaders name their handlers in plain imports, so a rename shows in "find
usages" and fails in tests/test_cli.py, not in the field.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeAlias, TypeVar

from credd import __version__, protocol
from credd.commands.args import (
    CompletionArgs,
    ConfigImportArgs,
    EnvArgs,
    ExecArgs,
    InitArgs,
    JsonArgs,
    KeysImportArgs,
    MfaArgs,
    NoArgs,
    ProcessArgs,
    RefreshArgs,
    ServiceChangeArgs,
    ServiceStatusArgs,
    SourceArgs,
    TokenIssueArgs,
    TokenRevokeArgs,
)
from credd.context import Context
from credd.errors import CreddError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

# credd.export_formats.FORMATS, named here so that parsing does not import json.
EXPORT_FORMATS = ("env", "env-no-export", "fish", "powershell", "windows-cmd", "json", "process")
EPILOG = "Configuration: --config PATH, else $CREDD_CONFIG, else ~/.config/credd/config.yaml."


P = TypeVar("P", bound="DataclassInstance")  # a command's parameters: a dataclass of commands/args.py
Handler = Callable[[Context, P], int]


@dataclass(frozen=True)
class Command(Generic[P]):
    """One command: the type of its parameters, and `load()`, which imports its module and returns its handler."""

    params: type[P]
    load: Callable[[], Handler[P]]

    def arguments(self, parsed: argparse.Namespace) -> P:
        """The handler's parameters, taken from what the parser filled in under the same names."""
        return self.params(**{field.name: getattr(parsed, field.name) for field in fields(self.params)})


# The loaders: each imports its module when its command runs, not before.

def _process() -> Handler[ProcessArgs]:
    from credd.commands.process import run
    return run


def _serve() -> Handler[NoArgs]:
    from credd.commands.serve import run
    return run


def _status() -> Handler[JsonArgs]:
    from credd.commands.control import status
    return status


def _refresh() -> Handler[RefreshArgs]:
    from credd.commands.control import refresh
    return refresh


def _mfa() -> Handler[MfaArgs]:
    from credd.commands.control import hand_in_mfa
    return hand_in_mfa


def _env() -> Handler[EnvArgs]:
    from credd.commands.env import env
    return env


def _exec() -> Handler[ExecArgs]:
    from credd.commands.env import exec_command
    return exec_command


def _init() -> Handler[InitArgs]:
    from credd.commands.init import run
    return run


def _config_check() -> Handler[NoArgs]:
    from credd.commands.config_check import run
    return run


def _config_import() -> Handler[ConfigImportArgs]:
    from credd.commands.config_import import run
    return run


def _keys_set() -> Handler[SourceArgs]:
    from credd.commands.keys import set_key
    return set_key


def _keys_import() -> Handler[KeysImportArgs]:
    from credd.commands.keys import import_key
    return import_key


def _keys_rm() -> Handler[SourceArgs]:
    from credd.commands.keys import remove
    return remove


def _keys_ls() -> Handler[JsonArgs]:
    from credd.commands.keys import list_keys
    return list_keys


def _totp_set() -> Handler[SourceArgs]:
    from credd.commands.totp import set_seed
    return set_seed


def _demo() -> Handler[NoArgs]:
    from credd.commands.demo import run
    return run


def _doctor() -> Handler[JsonArgs]:
    from credd.commands.doctor import run
    return run


def _completion() -> Handler[CompletionArgs]:
    from credd.commands.completion import print_script
    return print_script


def _service_install() -> Handler[ServiceChangeArgs]:
    from credd.commands.service import install
    return install


def _service_uninstall() -> Handler[ServiceChangeArgs]:
    from credd.commands.service import uninstall
    return uninstall


def _service_status() -> Handler[ServiceStatusArgs]:
    from credd.commands.service import status
    return status


def _token_issue() -> Handler[TokenIssueArgs]:
    from credd.commands.token import issue
    return issue


def _token_rotate() -> Handler[TokenRevokeArgs]:
    from credd.commands.token import rotate
    return rotate


def _token_revoke() -> Handler[TokenRevokeArgs]:
    from credd.commands.token import revoke
    return revoke


# Every command, by the words that run it; build_parser gives each its options and help.
COMMANDS: dict[str, Command[Any]] = {
    "process": Command(ProcessArgs, _process),
    "serve": Command(NoArgs, _serve),
    "status": Command(JsonArgs, _status),
    "refresh": Command(RefreshArgs, _refresh),
    "mfa": Command(MfaArgs, _mfa),
    "env": Command(EnvArgs, _env),
    "exec": Command(ExecArgs, _exec),
    "init": Command(InitArgs, _init),
    "config check": Command(NoArgs, _config_check),
    "config import": Command(ConfigImportArgs, _config_import),
    "keys set": Command(SourceArgs, _keys_set),
    "keys import": Command(KeysImportArgs, _keys_import),
    "keys rm": Command(SourceArgs, _keys_rm),
    "keys ls": Command(JsonArgs, _keys_ls),
    "totp set": Command(SourceArgs, _totp_set),
    "demo": Command(NoArgs, _demo),
    "doctor": Command(JsonArgs, _doctor),
    "completion": Command(CompletionArgs, _completion),
    "service install": Command(ServiceChangeArgs, _service_install),
    "service uninstall": Command(ServiceChangeArgs, _service_uninstall),
    "service status": Command(ServiceStatusArgs, _service_status),
    "token issue": Command(TokenIssueArgs, _token_issue),
    "token rotate": Command(TokenRevokeArgs, _token_rotate),
    "token revoke": Command(TokenRevokeArgs, _token_revoke),
}


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 through our own path, with its usage line."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"credd: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="credd", description="Keeps AWS credentials with MFA fresh.", epilog=EPILOG)
    parser.add_argument("--version", action="version",
                        version=f"credd {__version__} (socket protocol {protocol.PROTOCOL_VERSION})")
    parser.add_argument("--config", metavar="PATH", help="the config file")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)

    process = _command(commands, "process", "the credential_process hook: prints PROFILE's credentials as JSON")
    process.add_argument("profile", metavar="PROFILE")

    _command(commands, "serve", "the daemon, in the foreground (systemd and launchd start this)")
    status = _command(commands, "status", "every profile: state, time left, last refresh, last error")
    status.add_argument("--json", action="store_true", help="machine-readable")
    refresh = _command(commands, "refresh", "the daemon refreshes now; waits and reports")
    refresh.add_argument("profiles", metavar="PROFILE", nargs="*", help="default: every profile")
    refresh.add_argument("--json", action="store_true", help="machine-readable: each profile's outcome")
    mfa = _command(commands, "mfa", "hand an MFA code to the daemon (prompts when left out)")
    mfa.add_argument("source", metavar="SOURCE")
    mfa.add_argument("code", metavar="CODE", nargs="?",
                     help="the code; on the command line it is visible to other processes (`ps`) and may land in "
                          "your shell history: leave it out and type it at the prompt, which does not echo it")

    env = _command(commands, "env", "print `export AWS_...=` lines for PROFILE, for a shell")
    env.add_argument("profile", metavar="PROFILE")
    env.add_argument("--format", choices=EXPORT_FORMATS,
                     help="as `aws configure export-credentials --format` prints them (fish, json: credd's own); "
                          "default: export lines that also unset AWS_PROFILE")
    run = _command(commands, "exec", "run CMD with PROFILE's credentials in its environment")
    run.add_argument("--server", action="store_true",
                     help="no keys in CMD's environment: a token for the daemon's container endpoint, revoked when "
                          "CMD exits (needs `endpoints: {container: ...}` in the config)")
    run.add_argument("--ttl", metavar="DURATION",
                     help="with --server: how long the token lives if credd cannot revoke it (killed with SIGKILL); "
                          "default 12h")
    run.add_argument("profile", metavar="PROFILE")
    run.add_argument("command", metavar="-- CMD", nargs=argparse.REMAINDER)

    init = _command(commands, "init", "write a starter config (asks, or takes flags)")
    init.add_argument("--source", metavar="NAME", help="the source (IAM user) name")
    init.add_argument("--mfa-serial", metavar="ARN", help="the MFA device's ARN (omit for no MFA)")
    init.add_argument("--mfa", choices=("totp", "command", "prompt"), help="how credd gets MFA codes")
    init.add_argument("--mfa-command", metavar="CMD", help="for --mfa command: the program that prints a code")
    init.add_argument("--region", metavar="REGION", help="the STS region (default us-east-1)")
    init.add_argument("--session-profile", metavar="NAME", help="profile name for the session itself")
    init.add_argument("--role", metavar="PROFILE=ARN", action="append", default=[],
                      help="a role profile (repeat for more)")
    init.add_argument("--sts-endpoint", metavar="URL",
                      help="the STS endpoint (default: AWS's for the region); https, or http to this machine only")
    init.add_argument("--force", action="store_true", help="replace an existing config")
    init.add_argument("--import-from-profile", metavar="NAME",
                      help="then move the long-term key in section NAME of the credentials file into the keyring "
                           "(as `credd keys import`)")
    init.add_argument("--hook", action="store_true",
                      help="serve role profiles through credential_process (write: false) instead of writing them "
                           "into the credentials file")
    init.add_argument("--wire-aws-config", action="store_true",
                      help="with --hook: add `credential_process = credd process PROFILE` for them to ~/.aws/config")

    token = _group(commands, "token", "tokens for the container credentials endpoint")
    token_issue = _command(token, "token issue", "a token that grants PROFILE, printed as the two variables SDKs read")
    token_issue.add_argument("profile", metavar="PROFILE")
    token_issue.add_argument("--ttl", metavar="DURATION", default="8h",
                             help="how long it lives (default 8h; at most 7d)")
    token_issue.add_argument("--file", metavar="PATH",
                             help="the daemon writes the value to PATH (a new file, mode 0600) and removes it when the "
                                  "token ends; prints AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE instead of the value")
    token_issue.add_argument("--rotate", metavar="DURATION",
                             help="with --file: a new value this often (the old one works a minute more)")
    token_rotate = _command(token, "token rotate", "give a token a new value now (its file rewritten)")
    token_rotate.add_argument("id", metavar="ID")
    token_revoke = _command(token, "token revoke", "revoke a token now, by the id `token issue` and `status` show")
    token_revoke.add_argument("id", metavar="ID")

    config = _group(commands, "config", "the config file")
    _command(config, "config check", "validate the config")
    config_import = _command(config, "config import",
                             "take the profiles of ~/.aws/config into the config, their long-term keys into the "
                             "keyring")
    config_import.add_argument("--from", dest="from_path", metavar="PATH",
                               help="the AWS config file (default: $AWS_CONFIG_FILE, else ~/.aws/config)")
    config_import.add_argument("--profile", metavar="NAME", nargs="+", default=[],
                               help="only these profiles (and those their source_profile chains need)")
    config_import.add_argument("--dry-run", action="store_true",
                               help="print the resulting config, the ~/.aws/config diff and what would move; "
                                    "change nothing")
    config_import.add_argument("--undo", action="store_true",
                               help="give back every byte of the files the imports since the last undo changed")

    keys = _group(commands, "keys", "long-term access keys in the keyring")
    keys_set = _command(keys, "keys set", "store SOURCE's long-term key (prompts, or two lines of stdin)")
    keys_set.add_argument("source", metavar="SOURCE")
    keys_import = _command(keys, "keys import",
                           "move SOURCE's long-term key from a credentials-file section, or copy it from aws-vault, "
                           "into the keyring")
    keys_import.add_argument("source", metavar="SOURCE")
    key_origin = keys_import.add_mutually_exclusive_group(required=True)
    key_origin.add_argument("--from-profile", metavar="NAME",
                            help="the section of the shared credentials file that holds the key")
    key_origin.add_argument("--from-aws-vault", metavar="PROFILE",
                            help="the profile aws-vault holds the key for (its Secret Service backend)")
    keys_import.add_argument("--replace", action="store_true",
                             help="replace another key the keyring already holds for SOURCE")
    keys_rm = _command(keys, "keys rm", "remove SOURCE's key, TOTP seed and cached session")
    keys_rm.add_argument("source", metavar="SOURCE")
    keys_ls = _command(keys, "keys ls", "what the keyring holds for each source (masked)")
    keys_ls.add_argument("--json", action="store_true", help="machine-readable: each source's masked key id, "
                                                              "whether a TOTP seed and a cached session are stored")

    totp = _group(commands, "totp", "TOTP seeds in the keyring")
    totp_set = _command(totp, "totp set", "store SOURCE's TOTP seed (base32 or otpauth:// URI)")
    totp_set.add_argument("source", metavar="SOURCE")

    _command(commands, "demo", "the whole flow, self-contained, in a throw-away home")
    doctor = _command(commands, "doctor", "check the keyring, config, files, socket, service, clock and AWS_* "
                                          "variables; say how to fix each")
    doctor.add_argument("--json", action="store_true", help="machine-readable")

    completion = _command(commands, "completion",
                          "print the shell completion script for SHELL (README: how to install it)")
    completion.add_argument("shell", metavar="SHELL", choices=("bash", "zsh", "fish"))

    service = _group(commands, "service", "the systemd user unit (Linux) or LaunchAgent (macOS) that runs the daemon")
    for name, help_text in (
        ("install", "install, enable and start the service (again: updates it)"),
        ("uninstall", "stop the service and remove it"),
        ("status", ("whether the service is installed, enabled and running; "
                    "exit status 0 running, 3 not running or not installed, 1 unknown")),
    ):
        action = _command(service, f"service {name}", help_text)
        action.add_argument("--platform", choices=("linux", "darwin"),
                            help="act for this platform's service manager, not this machine's (try it with --dry-run)")
        if name != "status":
            action.add_argument("--dry-run", action="store_true",
                                help="print the files and commands, change nothing")
        else:
            action.add_argument("--json", action="store_true", help="machine-readable")
    return parser


def _common() -> _Parser:
    """Options accepted after the command too: `credd config check --config x.yaml`."""
    common = _Parser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="the config file")
    return common


# argparse's subparsers action: its class is private, so it is named through the type argparse gives it.
Subcommands: TypeAlias = "argparse._SubParsersAction[_Parser]"


def _command(group: Subcommands, words: str, help_text: str) -> argparse.ArgumentParser:
    """The parser of the command `words` (a key of COMMANDS); its last word is its name in `group`."""
    if words not in COMMANDS:
        raise LookupError(f"{words!r} is not in cli.COMMANDS")  # a bug in credd, found by every test
    name = words.rsplit(maxsplit=1)[-1]
    parser: argparse.ArgumentParser = group.add_parser(name, help=help_text, description=help_text,
                                                       parents=[_common()])
    parser.set_defaults(chosen=words)
    return parser


def _group(commands: Subcommands, name: str, help_text: str) -> Subcommands:
    parser = commands.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(chosen=None, group=parser)
    return parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)


def main(argv: list[str] | None = None, context: Context | None = None) -> int:
    parser = build_parser()
    args_given = sys.argv[1:] if argv is None else argv
    if args_given[:1] == ["__complete"]:  # what the completion scripts call on TAB; not a command to show
        from credd.commands.completion import complete

        ctx = context or Context()
        return complete(parser, args_given[1:], ctx.env, ctx.stdout)
    args = parser.parse_args(argv)
    if getattr(args, "chosen", None) is None:
        (getattr(args, "group", None) or parser).print_help(sys.stderr)
        return 2
    ctx = context or Context()
    ctx.config_arg = args.config
    command = COMMANDS[args.chosen]
    try:
        return command.load()(ctx, command.arguments(args)) or 0
    except CreddError as e:
        print(f"credd: error: {e}", file=ctx.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("credd: interrupted", file=ctx.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except Exception as e:  # a bug: say so without a traceback that could hold a secret's neighbours
        if os.environ.get("CREDD_DEBUG"):
            raise
        print(f"credd: internal error ({type(e).__name__}); this is a bug in credd. "
              "Run again with CREDD_DEBUG=1 for details.", file=ctx.stderr)
        return 1
