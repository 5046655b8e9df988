"""Reading the read models: transcripts, course status and compliance (used by the analyst API,
the CLI and the tests). Aggregated views apply small-group suppression: a group with fewer
than ``threshold`` people shows no counts, so no one can be singled out."""

from __future__ import annotations

from collections.abc import Callable, Hashable
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


class _Ancestors:
    """Each unit's nearest unit of a level above it (or itself), from the org tree at a date."""

    def __init__(self, versions: list[asyncpg.Record]) -> None:
        self.parent = {r["unit_id"]: r["parent_id"] for r in versions}
        self.level = {r["unit_id"]: r["level"] for r in versions}

    def of(self, unit: str | None, level: str) -> str | None:
        for _ in range(64):  # a cycle in the tree ends the walk
            if unit is None or self.level.get(unit) == level:
                return unit
            unit = self.parent.get(unit)
        return None


async def _ancestors(conn: asyncpg.Connection, stores: list[int], day: date) -> _Ancestors:
    return _Ancestors(await conn.fetch(sql("api_unit_versions"), stores, day))


def suppressed(rows: list[dict[str, Any]], size: str, family: Callable[[dict[str, Any]], Hashable],
               threshold: int) -> set[int]:
    """Indexes of the rows to show without counts: every group smaller than ``threshold``, and
    then, within each family (the groups that add up to one group shown elsewhere: the units of
    a trust, the trusts of a region), the smallest others until the hidden groups hold at least
    ``threshold`` people together or none are hidden. Otherwise the family's total, shown at
    the level above, minus the groups shown here would give a small group's counts
    (complementary suppression). A person counted in two groups of one family makes that sum
    an upper bound only."""
    hide = {i for i, r in enumerate(rows) if r[size] < threshold}
    families: dict[Hashable, list[int]] = {}
    for i, r in enumerate(rows):
        families.setdefault(family(r), []).append(i)
    for members in families.values():
        hidden = sum(rows[i][size] for i in members if i in hide)
        for i in sorted((i for i in members if i not in hide), key=lambda i: rows[i][size]):
            if hidden == 0 or hidden >= threshold:
                break
            hide.add(i)
            hidden += rows[i][size]
    return hide


async def course_status(conn: asyncpg.Connection, stores: list[int], *, course: str | None = None,
                        group_by: str | None = None, as_of: date | None = None, limit: int = 1000,
                        offset: int = 0, options: Options | None = None) -> list[dict[str, Any]]:
    """Per course (and unit or trust): learner counts, averages and where learners stop.

    Per unit or trust, every group of a course is read (the page is cut afterwards), since
    whether a group is shown depends on its siblings (``suppressed``)."""
    if group_by not in (None, "unit", "trust"):
        raise ValueError("group_by must be unit or trust")
    o = options or Options()
    day = as_of or _today(o)
    if group_by is None:
        rows = _rows(await conn.fetch(sql("api_course_status"), stores, course, day, group_by, limit, offset))
        hide = {i for i, r in enumerate(rows) if r["learners"] < o.suppression_threshold}
    else:
        rows = _rows(await conn.fetch(sql("api_course_status"), stores, course, day, group_by, None, 0))
        tree = await _ancestors(conn, stores, day)
        parent = "trust" if group_by == "unit" else None
        hide = suppressed(rows, "learners", lambda r: (r["store_id"], r["course_id"],
                                                         tree.of(r["group_id"], parent) if parent else None),
                          o.suppression_threshold)
        rows = [dict(r, _hide=i in hide) for i, r in enumerate(rows)][offset:offset + limit]
        hide = {i for i, r in enumerate(rows) if r.pop("_hide")}
    for i, r in enumerate(rows):
        if i in hide:
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
    hide: set[int] = set()
    if suppress:
        parent = {"unit": "trust", "trust": "region"}.get(level)
        tree = await _ancestors(conn, stores, day) if parent else None
        hide = suppressed(rows, "total", lambda r: (r["requirement_id"], tree.of(r["group_id"], parent)
                                                      if tree and parent else r["group_id"]),
                          o.suppression_threshold)
    for i, r in enumerate(rows):
        total = r["total"]
        if i in hide:
            r.update({k: None for k in ("total", *STATUSES)}, percent_compliant=None, suppressed=True)
        else:
            r["percent_compliant"] = round(100.0 * (r["valid"] + r["expiring"]) / total, 1) if total else None
            r["suppressed"] = False
    return rows
