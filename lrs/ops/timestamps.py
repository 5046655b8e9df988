"""Timestamps as xAPI writes them: ISO 8601 / RFC 3339 with at least millisecond precision."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from lrs.errors import BadRequest

# RFC 3339 date-time, plus the ISO 8601 basic offsets (+0100, +01) that xAPI 1.0.3 admits.
_TS = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<time>\d{2}:\d{2}:\d{2})(?P<frac>\.\d+)?"
    r"(?P<tz>[Zz]|[+-]\d{2}(?::?\d{2})?)?$"
)


def parse_timestamp(value: str, what: str = "timestamp") -> datetime:
    """Parse an xAPI timestamp into an aware datetime (UTC assumed when no offset is given)."""
    m = _TS.match(value) if isinstance(value, str) else None
    if not m:
        raise BadRequest(f"{what}: not an ISO 8601 date-time: {value!r}")
    frac = (m.group("frac") or "")[:7].ljust(7, "0")[:7] if m.group("frac") else ""
    tz = m.group("tz") or "Z"
    if tz in ("Z", "z"):
        tz = "+00:00"
    elif len(tz) == 3:
        tz += ":00"
    elif ":" not in tz:
        tz = f"{tz[:3]}:{tz[3:]}"
    # Python parses at most microseconds; extra digits were truncated above.
    text = f"{m.group('date')}T{m.group('time')}{frac[:7]}{tz}"
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise BadRequest(f"{what}: not a valid date-time: {value!r}") from exc


def format_timestamp(dt: datetime) -> str:
    """UTC, millisecond precision at least (microseconds when present), 'Z' suffix."""
    dt = dt.astimezone(UTC)
    if dt.microsecond % 1000:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def http_date(dt: datetime) -> str:
    """RFC 7231 IMF-fixdate, for Last-Modified."""
    return dt.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
