"""`credd env --format FORMAT`: credentials as text for a shell or a tool; pure.

Each format renders an ordered mapping of environment variable names to
values. Where the AWS CLI v2 has the format (`aws configure export-credentials
--format env|env-no-export|powershell|windows-cmd|process`), the output is
byte for byte what it prints for the same credentials: the same lines in the
same order, `AWS_CREDENTIAL_EXPIRATION` written as Python's `isoformat`
(`+00:00`, not `Z`), and `process` as `json.dumps(indent=2)`. Values that need
no quoting (every real key, token, time and region) are written as they are,
as the AWS CLI writes them; any other value is quoted for its shell, where
the AWS CLI would print a line the shell misreads.

Variables beyond the credentials (AWS_REGION, say) pass through, after them.
The AWS CLI itself never prints a region in any format; `process` has no
place for one (the credential_process schema holds credentials only), so it
leaves them out.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Mapping

EXPIRATION = "AWS_CREDENTIAL_EXPIRATION"
# The credential_process document's fields, by the variable that carries each.
PROCESS_FIELDS = {"AWS_ACCESS_KEY_ID": "AccessKeyId", "AWS_SECRET_ACCESS_KEY": "SecretAccessKey",
                  "AWS_SESSION_TOKEN": "SessionToken", EXPIRATION: "Expiration"}


def aws_expiration(value: str) -> str:
    """`2026-11-22T13:45:00Z` as the AWS CLI prints an expiry (`datetime.isoformat`): `...+00:00`."""
    return value[:-1] + "+00:00" if value.endswith("Z") else value


def _per_line(line: Callable[[str, str], str]) -> Callable[[Mapping[str, str]], str]:
    return lambda variables: "".join(line(name, value) + "\n" for name, value in variables.items())


def _powershell_quote(value: str) -> str:
    return "".join("`" + c if c in '`$"' else c for c in value)


def _cmd_quote(value: str) -> str:
    return "".join("^" + c if c in '^&|<>()%!"' else c for c in value)


def _process(variables: Mapping[str, str]) -> str:
    document: dict[str, object] = {"Version": 1}
    document.update({field: variables[name] for name, field in PROCESS_FIELDS.items() if name in variables})
    return json.dumps(document, indent=2, separators=(",", ": ")) + "\n"


FORMATS: dict[str, Callable[[Mapping[str, str]], str]] = {
    "env": _per_line(lambda name, value: f"export {name}={shlex.quote(value)}"),
    "env-no-export": _per_line(lambda name, value: f"{name}={shlex.quote(value)}"),
    "fish": _per_line(lambda name, value: f"set -gx {name} {shlex.quote(value)}"),
    "powershell": _per_line(lambda name, value: f'$Env:{name}="{_powershell_quote(value)}"'),
    "windows-cmd": _per_line(lambda name, value: f"set {name}={_cmd_quote(value)}"),
    "json": lambda variables: json.dumps(dict(variables), indent=2) + "\n",
    "process": _process,
}


def render(format_name: str, variables: Mapping[str, str]) -> str:
    """`variables` (credentials first, in the AWS CLI's order, then any others) in `format_name`."""
    shown = dict(variables)
    if EXPIRATION in shown:
        shown[EXPIRATION] = aws_expiration(shown[EXPIRATION])
    return FORMATS[format_name](shown)
