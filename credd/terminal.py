"""Asking a person: no-echo prompts on a terminal, plain lines from a pipe."""

from __future__ import annotations

import getpass
from typing import IO

from credd.errors import UsageError

MAX_LINE = 4096


def is_interactive(stdin: IO[str]) -> bool:
    try:
        return stdin.isatty()
    except (AttributeError, ValueError):
        return False


def ask_hidden(prompt: str, stdin: IO[str]) -> str:
    """A no-echo prompt on the terminal (getpass talks to /dev/tty itself)."""
    try:
        return getpass.getpass(prompt)
    except EOFError:
        raise UsageError("no input: the prompt was closed before an answer") from None


def ask(prompt: str, stdin: IO[str], stdout: IO[str], default: str = "") -> str:
    """An echoed question with an optional default shown in brackets."""
    shown = f"{prompt} [{default}]: " if default else f"{prompt}: "
    stdout.write(shown)
    stdout.flush()
    line = stdin.readline(MAX_LINE)
    if not line:
        raise UsageError("no input: the prompt was closed before an answer")
    return line.strip() or default


def read_lines(stdin: IO[str], names: tuple[str, ...]) -> list[str]:
    """One line of stdin per name, for scripts that pipe secrets in."""
    values = []
    for name in names:
        line = stdin.readline(MAX_LINE)
        if not line.strip():
            expected = ", then ".join(names)
            raise UsageError(f"expected {len(names)} line(s) on standard input ({expected}); {name} is missing")
        values.append(line.strip())
    return values
