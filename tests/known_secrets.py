"""Every secret value the tests hand out, for the suite-wide scan (`tests/fixtures_secrets.py`).

The scan registers the fixed test secrets of `conftest`; the strict STS front
registers the secret access key and the session token of every session it
issues. Values are kept with a label that says what they are, so a report
can name the secret that leaked without showing it.
"""

from __future__ import annotations

import threading

MIN_LENGTH = 16  # a shorter value would turn up in unrelated text by chance

_lock = threading.Lock()
_labels: dict[str, str] = {}  # value -> what it is (never the value itself)


def remember(value: str, what: str = "a session secret issued by the STS front") -> None:
    """Add `value` to what every test's captured output is checked for."""
    if not isinstance(value, str) or len(value) < MIN_LENGTH:
        raise ValueError(f"a secret to scan for must be a str of at least {MIN_LENGTH} characters")
    with _lock:
        _labels.setdefault(value, what)


def all() -> tuple[str, ...]:  # read as known_secrets.all(); shadows the builtin only in here
    """Every value remembered so far, longest first (so a redaction never leaves a longer one half shown)."""
    with _lock:
        return tuple(sorted(_labels, key=len, reverse=True))


def describe(value: str) -> str:
    """What `value` is, for a report: a label, never the value."""
    with _lock:
        return _labels.get(value, "an unregistered value")
