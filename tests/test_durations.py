import pytest

from credd.durations import format_duration, parse_duration


@pytest.mark.parametrize("text, seconds", [
    (0, 0), (900, 900), ("900", 900), ("90s", 90), ("20m", 1200), ("12h", 43200), ("36h", 129600),
    ("1h30m", 5400), ("1d", 86400), (" 2H ", 7200), ("1h0m5s", 3605),
])
def test_parses(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", [True, False, None, 1.5, "1.5h", "", "h", "12 h", "-5", -5, "5w", "m5", [1], "1h-",
                                 "²", "١٢", "١h", "9" * 5000, "1" * 41])
def test_refuses(bad):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (59, "59s"), (3600, "1h"), (5400, "1h30m"), (129600, "36h"),
                                           (172800, "48h")])
def test_formats(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [1, 61, 900, 3599, 3600, 43200, 129600, 987654])
def test_format_round_trips(seconds):
    assert parse_duration(format_duration(seconds)) == seconds


def test_a_long_value_is_quoted_short():
    with pytest.raises(ValueError) as caught:
        parse_duration("9" * 5000)
    assert len(str(caught.value)) < 120
