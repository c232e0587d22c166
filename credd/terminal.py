"""Asking a person: no-echo prompts on a terminal, plain lines from a pipe."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from typing import IO, TypeVar

from credd.errors import SecretFormatError, UsageError

MAX_LINE = 4096
ATTEMPTS = 3  # a typo costs another question, not the command; a fourth would be guessing
T = TypeVar("T")


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


def ask_valid(ask_once: Callable[[], str], parse: Callable[[str], T], stderr: IO[str],
              attempts: int = ATTEMPTS) -> T:
    """Ask until `parse` takes the answer, at most `attempts` times; say what was wrong before each new question.

    `parse` raises SecretFormatError with a message that gives the answer's shape, never the answer.
    """
    for attempt in range(1, attempts + 1):
        try:
            return parse(ask_once())
        except SecretFormatError as e:
            if attempt == attempts:
                raise SecretFormatError(f"{e} ({attempts} tries; nothing was changed)") from None
            stderr.write(f"credd: {e}; try again\n")
            stderr.flush()
    raise AssertionError("not reached")


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
