"""Timestamps as xAPI writes them: ISO 8601 / RFC 3339 with at least millisecond precision."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from email.utils import formatdate, parsedate_to_datetime
from typing import Any

from lrs.errors import BadRequest
from statements_schema import SCHEMA_VERSIONS, is_timestamp, timestamp_rule

# Every form a statement's timestamp may take (the statement schemas check which, per version):
# RFC 3339 date-time (2.0.0, T or t, Z or z), and 1.0.3's ISO 8601 combined date and time in the
# extended or basic format, seconds optional, a decimal comma, an offset of +01, +0100 or +01:00,
# or none (UTC). A space for the T is read too (never accepted as input: see parse_bound).
_TS = re.compile(
    r"(?a)^(?P<y>\d{4})(?P<dash>-?)(?P<mo>\d{2})(?P=dash)(?P<d>\d{2})[Tt ]"
    r"(?P<h>\d{2})(?P<colon>:?)(?P<mi>\d{2})(?:(?P=colon)(?P<s>\d{2})(?P<frac>[.,]\d+)?)?"
    r"(?P<tz>[Zz]|[+-]\d{2}(?::?\d{2})?)?$"
)


def parse_timestamp(value: str, what: str = "timestamp") -> datetime:
    """Parse an xAPI timestamp into an aware datetime (UTC assumed when no offset is given).

    A leap second (second 60, which RFC 3339 allows) is the instant one second after second 59
    of that minute, as PostgreSQL reads it: a datetime cannot hold it."""
    parsed, leap = _parse(value, what)
    if not leap:
        return parsed
    try:
        return parsed + timedelta(seconds=1)
    except OverflowError:  # the last minute a datetime holds: its last instant
        return parsed.replace(microsecond=999_999)


def _parse(value: str, what: str) -> tuple[datetime, bool]:
    """The timestamp as an aware datetime, a leap second read as second 59; and whether it was
    one."""
    m = _TS.match(value) if isinstance(value, str) else None
    if not m:
        raise BadRequest(f"{what}: not an ISO 8601 date-time: {value!r}")
    seconds = m.group("s") or "00"
    leap = seconds == "60"
    frac = "." + m.group("frac")[1:7] if m.group("frac") else ""
    tz = m.group("tz") or "Z"
    if tz in ("Z", "z"):
        tz = "+00:00"
    elif len(tz) == 3:
        tz += ":00"
    elif ":" not in tz:
        tz = f"{tz[:3]}:{tz[3:]}"
    # Python parses at most microseconds: digits after the sixth are cut above
    text = f"{m.group('y')}-{m.group('mo')}-{m.group('d')}T{m.group('h')}:{m.group('mi')}:" \
           f"{'59' if leap else seconds}{frac}{tz}"
    try:
        return datetime.fromisoformat(text), leap
    except ValueError as exc:
        raise BadRequest(f"{what}: not a valid date-time: {value!r}") from exc


def parse_bound(value: str, what: str, version: str | None) -> datetime:
    """A timestamp query parameter (``since``, ``until``) as an instant in UTC. It must be
    written as a statement's timestamp may be under the request's xAPI ``version`` (Data 2.2:
    "The LRS MUST validate parameter values to the same standards required for values of the
    same types in Statements"); ``version`` None: as under either (a ``more`` token's, made
    under the version of the first request). A valid timestamp within an offset of the ends of
    what a datetime holds (0001-01-01T00:00:00+01:00 is an instant before 0001-01-01 UTC) is taken
    as that end: nothing is stored that far out, so the query means the same."""
    versions = SCHEMA_VERSIONS if version is None else (version,)
    if not any(is_timestamp(value, v) for v in versions):
        raise BadRequest(f"{what}: {timestamp_rule(versions[-1])}, as a statement's timestamp under xAPI "
                         f"{versions[-1]}: {value!r}")
    parsed = parse_timestamp(value, what)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        return (datetime.min if parsed.year == 1 else datetime.max).replace(tzinfo=UTC)


def utc_timestamp(value: str, what: str = "timestamp") -> str:
    """An xAPI timestamp as the same instant in UTC (``format_timestamp``), as xAPI 2.0 stores
    it. A leap second stays one: 2017-01-01T00:59:60+01:00 is 2016-12-31T23:59:60.000Z (offsets
    are whole minutes, so the second 60 falls on the same second in UTC)."""
    parsed, leap = _parse(value, what)
    try:
        text = format_timestamp(parsed)
    except OverflowError:
        raise BadRequest(f"{what}: {value!r} is outside the years 0001 to 9999 in UTC") from None
    return text[:17] + "60" + text[19:] if leap else text


def format_timestamp(dt: datetime) -> str:
    """UTC, millisecond precision at least (microseconds when present), 'Z' suffix."""
    dt = dt.astimezone(UTC)
    # (not strftime: its %Y writes the year 1 as "1", not "0001", on glibc)
    fraction = f"{dt.microsecond:06d}" if dt.microsecond % 1000 else f"{dt.microsecond // 1000:03d}"
    return (f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
            f".{fraction}Z")


_NOW: list[Any] = [None, ""]  # the second an HTTP date was last made for, and that date


def http_date_now() -> str:
    """The Date of a response (RFC 9110 6.6.1), made once a second. Spor sends its own rather
    than uvicorn's, which its server loop renews on a one-second tick and which was therefore
    up to a second behind the Last-Modified of a statement stored just before (an audit)."""
    second = int(time.time())
    if _NOW[0] != second:
        _NOW[:] = [second, formatdate(second, usegmt=True)]
    return str(_NOW[1])


def http_date(dt: datetime) -> str:
    """RFC 7231 IMF-fixdate, for Last-Modified."""
    return dt.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


def last_modified(dt: datetime) -> datetime:
    """``dt`` as its Last-Modified (``http_date``) states it: in UTC, to the whole second. The
    date conditionals (If-Modified-Since, If-Unmodified-Since) compare with this."""
    return dt.astimezone(UTC).replace(microsecond=0)


def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP date as an aware datetime; None when absent or not one (RFC 9110 13.1.3/13.1.4:
    a recipient ignores a date conditional that is not a valid date)."""
    if value is None:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
