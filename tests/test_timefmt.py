"""How credd writes and reads a moment: one format for every time that leaves credd, one reader of HTTP dates."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from credd.timefmt import http_date, parse_utc, utc_text

MOMENT = datetime(2026, 11, 22, 13, 45, 0, tzinfo=timezone.utc)


def test_utc_text_is_utc_to_the_second_whatever_the_zone():
    assert utc_text(MOMENT) == "2026-11-22T13:45:00Z"
    assert utc_text(MOMENT.astimezone(timezone(timedelta(hours=-5)))) == "2026-11-22T13:45:00Z"
    assert utc_text(MOMENT + timedelta(microseconds=999_999)) == "2026-11-22T13:45:00Z"


def test_parse_utc_reads_back_what_utc_text_wrote():
    assert parse_utc(utc_text(MOMENT)) == MOMENT
    assert parse_utc("2026-11-22T13:45:00Z").tzinfo == timezone.utc
    for bad in ("2026-11-22 13:45:00", "2026-11-22T13:45:00+00:00", "", "2026-13-01T00:00:00Z"):
        with pytest.raises(ValueError):
            parse_utc(bad)


@pytest.mark.parametrize("header, expected", [
    ("Sun, 22 Nov 2026 13:45:00 GMT", MOMENT),
    ("Sun, 22 Nov 2026 14:45:00 +0100", MOMENT),
    ("Sun, 22 Nov 2026 13:45:00 -0000", MOMENT),  # no zone said: HTTP dates are UTC
    ("not a date", None), ("", None), (None, None), (1700000000, None), ("Sun, 99 Nov 2026 13:45:00 GMT", None),
])
def test_http_date(header, expected):
    assert http_date(header) == expected
