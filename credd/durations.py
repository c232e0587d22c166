"""Durations as people write them in the config: `90s`, `20m`, `12h`, `1h30m`, or seconds."""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"([0-9]+)([smhd])")
_WHOLE = re.compile(r"(?:[0-9]+[smhd])+")
_LONGEST = 40  # characters: no real duration needs more, and int() of thousands of digits is slow and refused


def parse_duration(value: object) -> int:
    """Return whole seconds, or raise ValueError with a message fit for a user.

    Accepts a non-negative integer (seconds), a string of digits, or unit
    parts in any order of size (`1h30m`). Booleans and fractions are refused
    rather than guessed at: YAML turns `yes` into True, and `1.5` may mean
    hours to one reader and minutes to another.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 90s, 20m or 12h, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value}")
        return value
    if isinstance(value, str) and len(value) <= _LONGEST:
        text = value.strip().lower()
        if text.isascii() and text.isdigit():  # not `²` or `١٢`, which str.isdigit() also takes
            return int(text)
        if _WHOLE.fullmatch(text):
            return sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(text))
    shown = repr(value[:_LONGEST]) + "…" if isinstance(value, str) and len(value) > _LONGEST else repr(value)
    raise ValueError(f"expected a duration like 90s, 20m or 12h, got {shown}")


def format_duration(seconds: int) -> str:
    """The shortest exact form: 3600 -> `1h`, 5400 -> `1h30m`, 59 -> `59s`, 129600 -> `36h`.

    Hours are the largest unit, as in the docs and AWS's own limits (`36h`, not `1d12h`).
    """
    if seconds == 0:
        return "0s"
    parts = []
    rest = seconds
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
