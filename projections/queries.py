"""Reading the read models: transcripts, course status and compliance (used by the analyst API,
the CLI and the tests). Aggregated views apply small-group suppression: a group with fewer
than ``threshold`` people shows no counts, so no one can be singled out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from lrs.store.queries import sql
from projections.status import REPORTING_TIMEZONE

STATUSES = ("valid", "expiring", "expired", "missing")
COUNTS = ("registered", "started", "completed", "passed", "failed")


@dataclass(frozen=True)
class Options:
    """Settings of the analyst views (from SPOR_* settings; see docs/projections.md)."""

    suppression_threshold: int = 5
    expiring_window_days: int = 30
    timezone: str = REPORTING_TIMEZONE


def _today(o: Options) -> date:
    return datetime.now(ZoneInfo(o.timezone)).date()


def _rows(records: list[asyncpg.Record]) -> list[dict[str, Any]]:
    return [dict(r) for r in records]


async def transcript(conn: asyncpg.Connection, stores: list[int], person: str, *, activity: str | None = None,
                     limit: int = 1000, offset: int = 0) -> list[dict[str, Any]]:
    """Every completion and pass of a person (all linked identifiers) in the given stores."""
    return _rows(await conn.fetch(sql("api_transcript"), stores, person, activity, limit, offset))


async def course_status(conn: asyncpg.Connection, stores: list[int], *, course: str | None = None,
                        group_by: str | None = None, as_of: date | None = None, limit: int = 1000,
                        offset: int = 0, options: Options | None = None) -> list[dict[str, Any]]:
    """Per course (and unit or trust): learner counts, averages and where learners stop."""
    if group_by not in (None, "unit", "trust"):
        raise ValueError("group_by must be unit or trust")
    o = options or Options()
    rows = _rows(await conn.fetch(sql("api_course_status"), stores, course, as_of or date.today(), group_by,
                                  limit, offset))
    for r in rows:
        if r["learners"] < o.suppression_threshold:
            r["suppressed"] = True
            for k in ("learners", *COUNTS, "avg_score", "avg_duration_s"):
                r[k] = None
            r["stopped_at"] = {}
        else:
            r["suppressed"] = False
            # a drop-off point with fewer learners than the threshold is folded into "other"
            small = {k: v for k, v in r["stopped_at"].items() if v < o.suppression_threshold}
            if small:
                kept = {k: v for k, v in r["stopped_at"].items() if k not in small}
                kept["(other)"] = sum(small.values())
                r["stopped_at"] = kept
    return rows


async def compliance_source(conn: asyncpg.Connection, stores: list[int], as_of: date, timezone: str) -> str:
    """Where a compliance answer as of the date comes from: ``"status"`` (the status rows the
    projection keeps, when they hold for that date: migration 0010) or ``"facts"`` (computed
    from the fact tables)."""
    return "status" if await conn.fetchval(sql("api_compliance_status_answers"), stores, as_of, timezone) else "facts"


async def compliance(conn: asyncpg.Connection, stores: list[int], *, as_of: date | None = None,
                     requirement: str | None = None, unit: str | None = None, person: str | None = None,
                     status: str | None = None, limit: int = 1000, offset: int = 0,
                     options: Options | None = None, source: str | None = None) -> list[dict[str, Any]]:
    """Per person, unit and requirement: status as of a date (with last completion and expiry).
    ``source`` forces "status" or "facts" (tests compare them); by default the status rows
    answer when they hold for the date."""
    o = options or Options()
    if status is not None and status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}")
    day = as_of or _today(o)
    if (source or await compliance_source(conn, stores, day, o.timezone)) == "status":
        # the units first: given as constants, they let the planner find the rows by index
        units = None if unit is None else [r[0] for r in await conn.fetch(sql("api_compliance_status_units"),
                                                                          stores, unit)]
        return _rows(await conn.fetch(sql("api_compliance_from_status"), stores, day, o.expiring_window_days,
                                      requirement, units, person, status, limit, offset))
    return _rows(await conn.fetch(sql("api_compliance"), stores, day, o.expiring_window_days,
                                  o.timezone, requirement, unit, person, status, limit, offset))


async def compliance_rollup(conn: asyncpg.Connection, stores: list[int], *, level: str = "unit",
                            as_of: date | None = None, requirement: str | None = None,
                            options: Options | None = None, suppress: bool = True,
                            source: str | None = None) -> list[dict[str, Any]]:
    """Counts per status and requirement, per unit, trust or region, with percentages
    (``source`` as for ``compliance``)."""
    o = options or Options()
    if level not in ("unit", "trust", "region"):
        raise ValueError("level must be unit, trust or region")
    day = as_of or _today(o)
    if (source or await compliance_source(conn, stores, day, o.timezone)) == "status":
        rows = _rows(await conn.fetch(sql("api_compliance_rollup_from_status"), stores, day,
                                      o.expiring_window_days, requirement, level))
    else:
        rows = _rows(await conn.fetch(sql("api_compliance_rollup"), stores, day,
                                      o.expiring_window_days, o.timezone, requirement, level))
    for r in rows:
        total = r["total"]
        if suppress and total < o.suppression_threshold:
            r.update({k: None for k in ("total", *STATUSES)}, percent_compliant=None, suppressed=True)
        else:
            r["percent_compliant"] = round(100.0 * (r["valid"] + r["expiring"]) / total, 1) if total else None
            r["suppressed"] = False
    return rows
