"""The starter config `credd init` writes: pure rendering, commented for the reader."""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass
class Answers:
    source: str
    mfa_serial: str | None = None
    mfa: str | None = None
    mfa_command: list[str] = field(default_factory=list)
    region: str = "us-east-1"
    sts_endpoint: str | None = None
    session_profile: str | None = None
    roles: list[tuple[str, str]] = field(default_factory=list)  # (profile name, role ARN)
    # Role profiles served by `credd process` through credential_process (write: false) rather than kept
    # in the credentials file, which the SDKs would read first.
    hook_roles: bool = False


def _quote(text: str) -> str:
    # A JSON string is a valid YAML double-quoted scalar: safe for any ARN or argument.
    return json.dumps(text)


def render(answers: Answers, check_command: str = "credd config check") -> str:
    """The starter config; `check_command` is the command its comment suggests (with the user's --config)."""
    if "\n" in check_command or "\r" in check_command:  # a path with a line break would end the YAML comment
        check_command = "credd --config PATH config check"
    lines = [
        "# credd configuration (see `credd --help` and the README).",
        f"# Check it with `{check_command}` after every edit.",
        "version: 1",
        "",
        "# credentials_file: ~/.aws/credentials   # default: $AWS_SHARED_CREDENTIALS_FILE, else this",
        "# refresh_before: 20m                    # refresh when less than this is left",
        "",
        "sources:",
        f"  {answers.source}:",
    ]
    if answers.mfa_serial:
        lines.append(f"    mfa_serial: {_quote(answers.mfa_serial)}")
        lines.append(f"    mfa: {answers.mfa or 'prompt'}              # totp | command | prompt")
        if answers.mfa_command:
            lines.append(f"    mfa_command: [{', '.join(_quote(arg) for arg in answers.mfa_command)}]")
    else:
        lines.append("    # mfa_serial: arn:aws:iam::111111111111:mfa/NAME   # add your MFA device to use MFA")
    lines.append("    duration: 12h               # GetSessionToken: 15m .. 36h")
    lines.append(f"    region: {answers.region}")
    if answers.sts_endpoint:
        lines.append(f"    sts_endpoint: {_quote(answers.sts_endpoint)}")
    lines += ["", "profiles:"]
    if answers.session_profile:
        lines += [f"  {answers.session_profile}:", f"    source: {answers.source}              # the session itself"]
    for name, arn in answers.roles:
        lines += [
            f"  {name}:",
            f"    source: {answers.source}",
            f"    role_arn: {_quote(arn)}",
            "    duration: 1h                # AWS caps roles assumed from a session at 1h",
        ]
        if answers.hook_roles:
            lines.append("    write: false                # served by credential_process (`credd process`)")
    if not answers.session_profile and not answers.roles:
        lines.append("  {}")
    return "\n".join(lines) + "\n"
