"""Timestamps: leap seconds (RFC 3339 allows second 60) and instants a calendar cannot write."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lrs.errors import BadRequest
from lrs.ops.timestamps import format_timestamp, parse_bound, parse_timestamp, utc_timestamp


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


# The forms of the audit's table and more: what a statement may hold as its timestamp under a
# version, and what since/until take under it, must be the same (Data 2.2).
FORMS = ["2024-05-04T14:00:00Z", "2024-05-04T14:00:00.123Z", "2024-05-04 14:00:00Z", "2024-05-04T14:00:00",
         "2024-05-04T14:00:00-00:00", "2024-05-04t14:00:00z", "2024-05-04T14:00:00.5+0100", "20240504T140000Z",
         "2024-05-04T14:00Z", "20240504T1400+01", "2024-05-04T14:00:00,25+01:00", "2024-05-04T1400Z",
         "2024-05-04T14:00:00+01", "2024-05-04T14:00:00-00:30", "2024-05-04", "2024-02-30T14:00:00Z",
         "2016-12-31T23:59:60Z", "2024-05-04T24:00:00Z", "2024-05-04T14:00:00.Z", "２０２４-05-04T14:00:00Z"]


@pytest.mark.parametrize("version", ["1.0.3", "2.0.0"])
@pytest.mark.parametrize("form", FORMS)
def test_since_and_until_take_what_a_statement_may_hold_under_the_version(form: str, version: str) -> None:
    from statements_schema import ValidationFailure, validate_statement

    stmt = {"actor": {"mbox": "mailto:kari@example.org"}, "verb": {"id": "http://adlnet.gov/expapi/verbs/attempted"},
            "object": {"id": "https://courses.example.org/a"}, "timestamp": form}
    try:
        validate_statement(stmt, version)
        in_a_statement = True
    except ValidationFailure:
        in_a_statement = False
    try:
        parse_bound(form, "since", version)
        as_a_bound = True
    except BadRequest as exc:
        assert str(exc).startswith("since: ")
        as_a_bound = False
    assert as_a_bound is in_a_statement


@pytest.mark.parametrize(("form", "instant"), [
    ("20240504T140000Z", datetime(2024, 5, 4, 14, tzinfo=UTC)),
    ("2024-05-04T14:00Z", datetime(2024, 5, 4, 14, tzinfo=UTC)),
    ("20240504T1400+01", datetime(2024, 5, 4, 13, tzinfo=UTC)),
    ("2024-05-04T14:00:00,25+01:00", datetime(2024, 5, 4, 13, 0, 0, 250_000, tzinfo=UTC)),
    ("2024-05-04T14:00:00", datetime(2024, 5, 4, 14, tzinfo=UTC)),
])
def test_the_basic_and_short_forms_of_1_0_3_name_their_instant(form: str, instant: datetime) -> None:
    assert parse_bound(form, "since", "1.0.3") == instant
    # and a statement's timestamp in such a form compares as that instant (re-sends, signatures)
    assert utc_timestamp(form) == format_timestamp(instant)


def test_a_more_token_takes_the_forms_of_either_version() -> None:
    assert parse_bound("20240504T140000Z", "since", None) == datetime(2024, 5, 4, 14, tzinfo=UTC)
    assert parse_bound("2024-05-04t14:00:00z", "since", None) == datetime(2024, 5, 4, 14, tzinfo=UTC)
    with pytest.raises(BadRequest):
        parse_bound("2024-05-04 14:00:00Z", "since", None)
