"""Timestamps: leap seconds (RFC 3339 allows second 60) and instants a calendar cannot write."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lrs.errors import BadRequest
from lrs.ops.timestamps import format_timestamp, parse_timestamp, utc_timestamp


@pytest.mark.parametrize(("sent", "utc"), [
    ("2017-01-01T00:59:60+01:00", "2016-12-31T23:59:60.000Z"),
    ("2016-12-31T18:59:60-05:00", "2016-12-31T23:59:60.000Z"),
    ("2016-12-31T23:59:60.5Z", "2016-12-31T23:59:60.500Z"),
    ("2016-12-31T23:59:60.123456789Z", "2016-12-31T23:59:60.123456Z"),
    ("2016-12-31T23:59:60+0000", "2016-12-31T23:59:60.000Z"),
    ("9999-12-31T23:59:60Z", "9999-12-31T23:59:60.000Z"),
    ("2024-05-04T12:00:00+02:00", "2024-05-04T10:00:00.000Z"),
])
def test_a_timestamp_in_utc_keeps_a_leap_second(sent: str, utc: str) -> None:
    assert utc_timestamp(sent) == utc


@pytest.mark.parametrize("sent", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00",
                                  "9999-12-31T23:59:60-00:30"])
def test_an_instant_outside_the_calendar_in_utc_is_a_400_naming_the_property(sent: str) -> None:
    with pytest.raises(BadRequest, match=r"^object\.timestamp: .* outside the years 0001 to 9999 in UTC"):
        utc_timestamp(sent, "object.timestamp")


def test_a_leap_second_as_an_instant_is_the_next_minute_as_postgresql_reads_it() -> None:
    # since/until and documents' since compare instants; a datetime cannot hold second 60
    assert parse_timestamp("2016-12-31T23:59:60Z") == datetime(2017, 1, 1, tzinfo=UTC)
    assert parse_timestamp("2016-12-31T23:59:60.25Z") == datetime(2017, 1, 1, 0, 0, 0, 250_000, tzinfo=UTC)
    # at the last minute a datetime holds: its last instant
    assert parse_timestamp("9999-12-31T23:59:60Z") == datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)


def test_second_61_is_still_refused() -> None:
    with pytest.raises(BadRequest, match="not a valid date-time"):
        parse_timestamp("2016-12-31T23:59:61Z")


def test_years_before_1000_keep_four_digits() -> None:
    # strftime's %Y writes the year 1 as "1" on glibc: a timestamp no parser reads back
    assert format_timestamp(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00.000Z"
    assert format_timestamp(datetime(999, 12, 31, 23, 59, 59, 123456, tzinfo=UTC)) == "0999-12-31T23:59:59.123456Z"
    assert utc_timestamp("0001-01-01T01:00:00+01:00") == "0001-01-01T00:00:00.000Z"
