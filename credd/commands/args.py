"""What each command is given: its parameters as a typed dataclass, filled by `cli` from the parsed arguments.

A handler is `run(ctx: Context, args: XArgs) -> int`: it reads `args.json`, not
a Namespace attribute that may or may not exist, so a type checker sees a flag
renamed in one place and not the other. Field names are the parser's `dest`s;
tests/test_cli.py checks that each command's fields and its parser's options
are the same set. The global `--config` is not here: it is `Context.config_arg`.
Standard library only: `cli` imports this to parse every command line.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NoArgs:
    """A command that takes nothing but the global options: serve, config check, demo."""


@dataclass(frozen=True)
class JsonArgs:
    """A command whose one option is `--json`: status, keys ls, doctor."""

    json: bool


@dataclass(frozen=True)
class SourceArgs:
    """A command about one SOURCE: keys set, keys rm, totp set."""

    source: str


@dataclass(frozen=True)
class ProcessArgs:
    profile: str


@dataclass(frozen=True)
class RefreshArgs:
    profiles: list[str]  # empty: every profile
    json: bool


@dataclass(frozen=True)
class MfaArgs:
    source: str
    code: str | None  # None: ask for it without echo


@dataclass(frozen=True)
class EnvArgs:
    profile: str
    format: str | None  # one of cli.EXPORT_FORMATS; None: export lines that also unset AWS_PROFILE


@dataclass(frozen=True)
class ExecArgs:
    profile: str
    command: list[str]  # what follows PROFILE, a leading `--` included when given
    server: bool = False  # through the container endpoint: a token in CMD's environment, no keys
    ttl: str | None = None  # --server: how long the token lives if credd cannot revoke it; None: 12h


@dataclass(frozen=True)
class InitArgs:
    source: str | None
    mfa_serial: str | None
    mfa: str | None
    mfa_command: str | None
    region: str | None
    session_profile: str | None
    role: list[str]  # PROFILE=ARN, as given
    sts_endpoint: str | None
    force: bool
    import_from_profile: str | None
    hook: bool
    wire_aws_config: bool


@dataclass(frozen=True)
class KeysImportArgs:
    source: str
    from_profile: str | None  # exactly one of these two: the parser makes them exclusive and requires one
    from_aws_vault: str | None
    replace: bool


@dataclass(frozen=True)
class CompletionArgs:
    shell: str


@dataclass(frozen=True)
class ServiceChangeArgs:
    """service install, service uninstall."""

    platform: str | None  # None: this machine's
    dry_run: bool


@dataclass(frozen=True)
class ServiceStatusArgs:
    platform: str | None  # None: this machine's
    json: bool


@dataclass(frozen=True)
class TokenIssueArgs:
    profile: str
    ttl: str  # a duration as written (`8h`)
    file: str | None = None  # the daemon writes the value there (a new file), for SDKs that re-read it
    rotate: str | None = None  # a duration: the daemon gives the token a new value this often (needs `file`)


@dataclass(frozen=True)
class TokenRevokeArgs:
    """token revoke, token rotate: one token, by its id."""

    id: str


@dataclass(frozen=True)
class ConfigImportArgs:
    from_path: str | None  # None: $AWS_CONFIG_FILE, else ~/.aws/config
    profile: list[str]  # empty: every profile
    dry_run: bool
    undo: bool = False  # give back every byte the imports since the last undo changed
