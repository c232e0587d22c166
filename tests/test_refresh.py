import itertools
from datetime import datetime, timedelta, timezone

import pytest

from credd.refresh import BACKOFF_CAP, backoff, clock_jumped, is_fresh, is_servable, may_retry, next_attempt, refresh_at

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
TWENTY_MIN = timedelta(minutes=20)


def test_fresh_and_servable_edges():
    assert is_fresh(NOW + timedelta(minutes=21), NOW, TWENTY_MIN)
    assert not is_fresh(NOW + TWENTY_MIN, NOW, TWENTY_MIN)
    assert is_servable(NOW + timedelta(seconds=61), NOW)
    assert not is_servable(NOW + timedelta(seconds=60), NOW)
    assert not is_servable(NOW - timedelta(seconds=1), NOW)


@pytest.mark.parametrize("draw", [0.0, 0.5, 1.0])
def test_refresh_at_is_ahead_of_expiry_within_the_jitter(draw):
    expiration = NOW + timedelta(hours=1)
    when = refresh_at(expiration, TWENTY_MIN, NOW, lambda: draw)
    assert when == expiration - TWENTY_MIN - timedelta(minutes=1) * draw
    assert expiration - when > timedelta(minutes=15)  # still worth serving to botocore when it runs


def test_refresh_at_never_in_the_past():
    assert refresh_at(NOW + timedelta(minutes=5), TWENTY_MIN, NOW, lambda: 0.5) == NOW


def test_jitter_is_small_for_a_small_refresh_before():
    when = refresh_at(NOW + timedelta(hours=1), timedelta(minutes=5), NOW, lambda: 1.0)
    assert when == NOW + timedelta(minutes=55) - timedelta(seconds=30)


def test_backoff_grows_then_caps():
    upper = [backoff(n, lambda: 1.0) for n in range(1, 12)]
    assert upper[:4] == [timedelta(seconds=s) for s in (15, 30, 60, 120)]
    assert upper[-1] == BACKOFF_CAP and all(a <= b for a, b in itertools.pairwise(upper))
    assert backoff(3, lambda: 0.0) == timedelta(seconds=30)  # jitter stays in the upper half


def test_clock_jump():
    assert not clock_jumped(timedelta(seconds=10), timedelta(seconds=10))
    assert not clock_jumped(timedelta(seconds=35), timedelta(seconds=10))
    assert clock_jumped(timedelta(hours=8), timedelta(seconds=10))  # slept through the night
    assert clock_jumped(timedelta(minutes=-5), timedelta(seconds=10))  # set back


def test_may_retry_before_the_backoff_is_over_only_for_an_expired_credential_and_not_twice_in_15_s():
    later = NOW + timedelta(minutes=5)
    assert may_retry(NOW, None, None, urgent=False)
    assert may_retry(later, later, NOW, urgent=False)  # the backoff is over
    assert not may_retry(NOW + timedelta(minutes=1), later, NOW, urgent=False)  # still valid: wait
    assert may_retry(NOW + timedelta(seconds=15), later, NOW, urgent=True)
    assert not may_retry(NOW + timedelta(seconds=14), later, NOW, urgent=True)


def test_a_clock_set_back_does_not_stretch_the_backoff():
    last = NOW
    retry_at = last + BACKOFF_CAP  # the longest backoff there is
    assert not may_retry(last + timedelta(seconds=1), retry_at, last, urgent=False)  # a backoff as computed
    back = last - timedelta(hours=2)  # then the clock goes back two hours
    assert may_retry(back, retry_at, last, urgent=False)  # a retry time beyond any backoff: over at once
    assert next_attempt(retry_at, back) == back + BACKOFF_CAP
    assert next_attempt(retry_at, last + timedelta(minutes=1)) == retry_at  # the clock as it was: unchanged

    retry_at = last + timedelta(seconds=30)
    back = last - timedelta(minutes=5)  # back less than the cap: the backoff may stand, at most BACKOFF_CAP
    assert not may_retry(back, retry_at, last, urgent=False)
    assert may_retry(back, retry_at, last, urgent=True)  # but a last attempt "in the future" holds no urgent retry
    assert not may_retry(last + timedelta(seconds=14), retry_at, last, urgent=True)  # the clock as it was: 15 s apart


def test_a_credential_issued_shorter_than_refresh_before_is_refreshed_at_half_its_life():
    expiration = NOW + timedelta(minutes=40)
    assert refresh_at(expiration, timedelta(minutes=50), NOW, lambda: 0.0) == NOW  # due at once, again and again
    assert refresh_at(expiration, timedelta(minutes=50), NOW, lambda: 0.0, issued=NOW) == NOW + TWENTY_MIN
    assert refresh_at(expiration, TWENTY_MIN, NOW, lambda: 0.0, issued=NOW) == NOW + TWENTY_MIN
