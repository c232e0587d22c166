"""The no-reuse window: which 30-second TOTP window's code may be sent, and when it starts.

Pure arithmetic: the time is always an argument, and nothing here reads a
clock, a file or the keyring.
"""

from __future__ import annotations

WINDOW = 30  # seconds per TOTP code (RFC 6238's default, and AWS's)
# A last-used window further ahead than this (five minutes) means the clock was
# set back: waiting for it could take hours, so it is ignored instead. Claims
# queued by concurrent refreshes of one device stay far below it.
MAX_WINDOWS_AHEAD = 10


def window_at(timestamp: float) -> int:
    """The number of the 30-second window `timestamp` (Unix seconds) falls in."""
    return int(timestamp // WINDOW)


def next_window(now: float, last_used: int | None) -> int:
    """The first window whose code has not been used: this one, or the one after the last used."""
    current = window_at(now)
    if last_used is None or last_used < current:
        return current
    if last_used + 1 - current > MAX_WINDOWS_AHEAD:
        return current
    return last_used + 1


def seconds_until(now: float, window: int) -> float:
    """How long to wait before `window` starts (0 when it has)."""
    return max(0.0, window * WINDOW - now)
