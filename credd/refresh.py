"""Pure scheduling decisions: when to refresh, whether a credential may be served, how long to back off.

No clock and no randomness of its own: callers pass `now` and a `random`
callable, so every decision is a plain function (or, for `Backoff`, a small
object holding one count) that tests can walk through time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from credd.model import Failure

# Never hand out a credential that could expire before the caller has used it.
SERVE_MARGIN = timedelta(seconds=60)
# Spread refreshes of many profiles over up to this long, so they do not hit STS in one burst.
MAX_JITTER = timedelta(seconds=60)
BACKOFF_BASE = timedelta(seconds=15)
BACKOFF_CAP = timedelta(minutes=15)
# A wall clock that moved this much more than the monotonic clock means a suspend, or someone set the time.
CLOCK_JUMP = timedelta(seconds=30)


def is_fresh(expiration: datetime, now: datetime, refresh_before: timedelta) -> bool:
    """More than `refresh_before` left: serve without refreshing."""
    return expiration - now > refresh_before


def is_servable(expiration: datetime, now: datetime) -> bool:
    """Still usable for a call made now: the fallback when a refresh fails."""
    return expiration - now > SERVE_MARGIN


def refresh_at(expiration: datetime, refresh_before: timedelta, now: datetime,
               random: Callable[[], float], *, issued: datetime | None = None) -> datetime:
    """When to refresh a credential expiring at `expiration`: `refresh_before` ahead, less some jitter.

    The jitter is at most a tenth of `refresh_before` (and a minute), so the
    credential is still fresh when the refresh runs. Never in the past. A
    credential just `issued` that lives less than `refresh_before` (STS gave
    less than asked) is refreshed at half its life, not at once and again.
    """
    jitter = min(MAX_JITTER, refresh_before / 10) * random()
    at = expiration - refresh_before - jitter
    if issued is not None:
        at = max(at, issued + (expiration - issued) / 2)
    return max(now, at)


def backoff(failures: int, random: Callable[[], float]) -> timedelta:
    """The wait after the `failures`-th failure in a row: exponential, capped, with jitter in its upper half."""
    ceiling: timedelta = min(BACKOFF_CAP, BACKOFF_BASE * (2 ** max(0, failures - 1)))
    return ceiling * (0.5 + random() / 2)


def may_retry(now: datetime, retry_at: datetime | None, last_attempt: datetime | None, urgent: bool) -> bool:
    """Whether a refresh may call STS now, while backing off after failures.

    Once the backoff is over, yes. Before, only when a credential someone
    asks for can no longer be served (`urgent`), and at most once every
    BACKOFF_BASE: a client asking in a loop costs STS one try per 15 s, not
    one per request, and a credential still valid is served meanwhile.

    The times are wall-clock times, so a clock set back (NTP, a user) would
    hold retries for as long as it went back. A retry time further ahead than
    the longest backoff, or a last attempt in the future, can only mean that:
    the backoff then ends at once, or (for an urgent retry) the 15 s wait.
    """
    if retry_at is None or now >= retry_at or retry_at - now > BACKOFF_CAP:
        return True
    if not urgent:
        return False
    if last_attempt is None:
        return True
    since = now - last_attempt
    return since >= BACKOFF_BASE or since < timedelta(0)


def next_attempt(retry_at: datetime, now: datetime) -> datetime:
    """When a source backing off tries again: `retry_at`, but never more than BACKOFF_CAP ahead.

    A retry time further ahead was computed before the clock was set back (see `may_retry`).
    """
    return min(retry_at, now + BACKOFF_CAP)


def clock_jumped(wall_elapsed: timedelta, monotonic_elapsed: timedelta) -> bool:
    """True when the wall clock moved unlike the monotonic one (a laptop woke up, or the time was set).

    Linux's monotonic clock stops during suspend, and so do the timed waits of
    APScheduler: a jump means scheduled refreshes may be overdue.
    """
    return abs(wall_elapsed - monotonic_elapsed) > CLOCK_JUMP


@dataclass(frozen=True)
class Trouble:
    """A source backing off after failures that may pass on their own: what `status` says about it."""

    failures_in_a_row: int
    retry_at: datetime  # no STS call before this, unless a credential asked for has expired, or forced
    failure: Failure  # the latest of them
    last_attempt: datetime


@dataclass(frozen=True)
class _Wait:
    retry_at: datetime
    failure: Failure
    last_attempt: datetime


class Backoff:
    """One source's failures in a row that may pass on their own (throttling, STS down), and when to try again.

    It holds the one count of them. A refresh whose failures all need the
    user (a wrong key, a rejected code) ends the wait but keeps the count:
    only a refresh without any failure starts it over.
    """

    def __init__(self, random: Callable[[], float]) -> None:
        self._random = random  # uniform in [0, 1): spreads retries (see `backoff`)
        self._in_a_row = 0
        self._wait: _Wait | None = None

    @property
    def trouble(self) -> Trouble | None:
        """Why and until when the source backs off; None when its last refresh did not fail that way."""
        wait = self._wait
        if wait is None:
            return None
        return Trouble(self._in_a_row, wait.retry_at, wait.failure, wait.last_attempt)

    def holds(self, now: datetime, urgent: bool) -> bool:
        """Whether a refresh must not call STS now (see `may_retry`)."""
        wait = self._wait
        return wait is not None and not may_retry(now, wait.retry_at, wait.last_attempt, urgent)

    def record(self, failures: Sequence[Failure], now: datetime) -> timedelta | None:
        """Count a refresh that tried STS and failed as `failures` (none: it worked); the wait before the next
        try, or None when no failure may pass on its own."""
        retryable = [f for f in failures if f.retryable]
        if not retryable:
            if not failures:
                self._in_a_row = 0
            self._wait = None
            return None
        self._in_a_row += 1
        wait = backoff(self._in_a_row, self._random)
        self._wait = _Wait(now + wait, retryable[0], now)
        return wait
