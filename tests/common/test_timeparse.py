import datetime

import pytest
from google.protobuf import timestamp_pb2

from common.timeparse import TimeError, parse_time_ns, to_ns

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


@pytest.mark.parametrize("text, expected", [
    ("1700000000", 1_700_000_000 * 10**9),                 # Unix seconds
    ("1700000000.5", 1_700_000_000_500_000_000),
    ("1700000000123", 1_700_000_000_123 * 10**6),          # Grafana's ${__from}: milliseconds
    ("1700000000123456789", 1_700_000_000_123_456_789),    # nanoseconds, exact
])
def test_unix_times_by_magnitude(text, expected):
    assert parse_time_ns("--since", text, NOW) == expected


def test_one_grammar_for_cli_and_json_api():
    """The JSON API answered 400 to since=1h30m while the CLI took it: both now read the same grammar."""
    from ui.json_api import parse_time
    for text in ("1h30m", "2d", "2024-05-01T12:00:00Z", "1700000000123"):
        assert parse_time("since", text, NOW) == parse_time_ns("--since", text, NOW)


@pytest.mark.parametrize("value, expected", [
    (None, None), (0, 0), (1_700_000_000_123_456_789, 1_700_000_000_123_456_789),
    (datetime.datetime(2024, 5, 1, 12, 0, 0, 250_000), 1_714_564_800_250_000_000),  # naive: UTC
    (datetime.datetime(2024, 5, 1, 14, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
     1_714_564_800_000_000_000),
    (timestamp_pb2.Timestamp(seconds=1_714_564_800, nanos=7), 1_714_564_800_000_000_007),
])
def test_to_ns_takes_every_time_the_apis_take(value, expected):
    assert to_ns(value) == expected


@pytest.mark.parametrize("value", [-1, True, "1h", 1.5])
def test_to_ns_names_a_bad_value_with_the_callers_error(value):
    with pytest.raises(TimeError, match=f"since={value!r}: expected"):
        to_ns(value, "since")

    class PackageTimeError(TimeError):
        pass

    with pytest.raises(PackageTimeError, match="until="):
        to_ns(value, "until", PackageTimeError)
