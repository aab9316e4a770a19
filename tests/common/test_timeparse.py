import pytest

from common.timeparse import TimeError, parse_time_ns

NOW = 1_700_000_000 * 10**9
S = 10**9


@pytest.mark.parametrize("text, expected", [
    ("30s", NOW - 30 * S),
    ("5m", NOW - 300 * S),
    ("1h30m", NOW - 5400 * S),
    ("2d", NOW - 2 * 86400 * S),
    ("1.5h", NOW - 5400 * S),
    ("250ms", NOW - 250_000_000),
    ("2023-11-14T22:13:20Z", NOW),
    ("2023-11-14T22:13:20.5Z", NOW + 500_000_000),
    ("2023-11-14T22:13:20.123456789Z", NOW + 123_456_789),
    ("2023-11-15T00:13:20+02:00", NOW),
    ("2023-11-14T22:13:20", NOW),
    ("2023-11-14T22:13", NOW - 20 * S),
    ("2023-11-14", NOW - (22 * 3600 + 13 * 60 + 20) * S),
])
def test_parse_time(text, expected):
    assert parse_time_ns("--since", text, NOW) == expected


@pytest.mark.parametrize("text", ["", "5", "5x", "-5m", "yesterday", "2023-13-01", "2023-11-14T25:00:00Z",
                                  "2023-11-14T22:13:20.1234567891Z"])
def test_bad_times_name_the_flag(text):
    with pytest.raises(TimeError, match=f"--until {text!r}: expected a duration"):
        parse_time_ns("--until", text, NOW)
