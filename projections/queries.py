"""Reading the read models: transcripts, course status and compliance (used by the analyst API,
the CLI and the tests). Aggregated views apply small-group suppression: a group with fewer
than ``threshold`` people shows no counts, so no one can be singled out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from lrs.store.queries import sql
from projections.status import REPORTING_TIMEZONE

STATUSES = ("valid", "expiring", "expired", "missing")
# How many levels up the org tree a unit's ancestors are found: the SQL's walks (migrations 0009,
# 0010, api_course_status) stop at depth 32, so the analyst API's walk does too.
MAX_TREE_DEPTH = 32
COUNTS = ("registered", "started", "completed", "passed", "failed")


@dataclass(frozen=True)
class Options:
    """Settings of the analyst views (from SPOR_* settings; see docs/projections.md)."""

    suppression_threshold: int = 5
    expiring_window_days: int = 30
    timezone: str = REPORTING_TIMEZONE


def today(o: Options) -> date:
    return datetime.now(ZoneInfo(o.timezone)).date()


def _rows(records: list[asyncpg.Record]) -> list[dict[str, Any]]:
    return [dict(r) for r in records]


async def transcript(conn: asyncpg.Connection, stores: list[int], person: str, *, activity: str | None = None,
                     limit: int | None = 1000, offset: int = 0, timezone: str = REPORTING_TIMEZONE,
                     ) -> list[dict[str, Any]]:
    """Every completion and pass (and cmi5 satisfied or waived) of a person (all linked
    identifiers) in the given stores (``limit`` None: all of them), each with the day it stops
    counting (``expires_on``, as compliance has it: its date in ``timezone`` plus the validity)."""
    return _rows(await conn.fetch(sql("api_transcript"), stores, person, activity, limit, offset, timezone))


class _Ancestors:
    """Each unit's nearest unit of a level above it (or itself), from the org tree at a date."""

    def __init__(self, versions: list[asyncpg.Record] | list[dict[str, Any]]) -> None:
        self.parent = {r["unit_id"]: r["parent_id"] for r in versions}
        self.level = {r["unit_id"]: r["level"] for r in versions}
        self._found: dict[tuple[str | None, str], str | None] = {}

    def of(self, unit: str | None, level: str) -> str | None:
        key = (unit, level)
        if key not in self._found:
            self._found[key] = self._walk(unit, level)
        return self._found[key]

    def _walk(self, unit: str | None, level: str) -> str | None:
        for _ in range(MAX_TREE_DEPTH + 1):  # as deep as the SQL's walks; a cycle ends it
            if unit is None or self.level.get(unit) == level:
                return unit
            unit = self.parent.get(unit)
        return None


async def _ancestors(conn: asyncpg.Connection, stores: list[int], day: date) -> _Ancestors:
    return _Ancestors(await conn.fetch(sql("api_unit_versions"), stores, day))


Cell = Hashable
Family = tuple[Cell, Sequence[Cell]]


def suppressed(sizes: Mapping[Any, int], families: Iterable[Family], threshold: int,
               hidden: Iterable[Cell] = (), unseen: Iterable[Cell] = ()) -> set[Cell]:
    """The cells to show without counts: small-group suppression with its complement, over the
    groups of every level at once, so that each level's view hides what the others need.

    ``sizes`` holds every group (cell) of every level; ``families`` say which cells add up to
    which (a trust's row: its units). Every cell smaller than ``threshold`` is hidden, and those
    in ``hidden``. An empty cell counts as a hidden part only when it is ``unseen`` (no one can
    tell it is empty); otherwise it holds no one to protect. Then, for each family, until
    nothing changes:
    - under a shown total, the total minus the parts shown (what subtraction gives) must be 0,
      or at least the threshold and not one hidden part's alone (that part would be given
      exactly, and another family could then be solved with it), or, with no part hidden, at
      most minus the threshold (the parts shown then count that many people twice: those
      employed in two of them); the smallest shown parts are hidden until that holds, and the
      total itself when no shown part is left;
    - under a hidden total, the hidden parts must hold at least the threshold (else adding up
      the shown parts would give it back within less than that).
    Hiding only grows, so this ends. The result depends only on the cells and families given.
    A family of the lowest level hides its total only when its one part is hidden, and that part
    is then hidden for being small, as the total is; so views that leave the lowest level out
    decide the same for every other cell. A person counted in two parts of one family makes the
    figures bounds only."""
    hide = {c for c, n in sizes.items() if n < threshold} | set(hidden)
    blind = set(unseen)
    todo = [(p, children) for p, children in families if p in sizes and children]
    touching: dict[Cell, list[int]] = {}  # cell: the families it is the total or a part of
    for f, (parent, children) in enumerate(todo):
        for c in (parent, *children):
            touching.setdefault(c, []).append(f)
    queue = list(range(len(todo)))
    queued = set(queue)
    while queue:
        f = queue.pop()
        queued.discard(f)
        parent, children = todo[f]
        shown = sorted((c for c in children if c not in hide), key=lambda c: sizes[c])
        in_hiding = [c for c in children if c in hide and (sizes[c] > 0 or c in blind)]
        hidden_sum, shown_sum = sum(sizes[c] for c in in_hiding), sum(sizes[c] for c in shown)
        newly = []
        while True:
            if parent in hide:
                ok = hidden_sum >= threshold
            else:
                exposed = sizes[parent] - shown_sum
                # nothing left to find (the hidden parts hold no one), or at least the
                # threshold, and not all of it one part's. A negative figure is people counted
                # in two parts: no proof the hidden parts are empty, and with none hidden it is
                # how many people hold two of the parts shown (their statuses too, column by
                # column), so it must be at least the threshold as well
                ok = ((exposed == 0 or exposed <= -threshold) and hidden_sum == 0) or \
                    (exposed >= threshold and len(in_hiding) != 1)
            if ok:
                break
            if shown:
                c = shown.pop(0)
                shown_sum -= sizes[c]
                if sizes[c] > 0 or c in blind:
                    in_hiding.append(c)
                    hidden_sum += sizes[c]
            elif parent not in hide:
                c = parent
            else:
                break
            hide.add(c)
            newly.append(c)
        for c in newly:
            for g in touching[c]:
                if g != f and g not in queued:
                    queue.append(g)
                    queued.add(g)
    return hide


async def course_status(conn: asyncpg.Connection, stores: list[int], *, course: str | None = None,
                        group_by: str | None = None, as_of: date | None = None, limit: int | None = 1000,
                        offset: int = 0, options: Options | None = None) -> list[dict[str, Any]]:
    """Per course (and unit or trust): learner counts, averages and where learners stop.

    Every group of a course, and of the levels above, is read (the page is cut afterwards, from
    the groups shown): whether a group is shown depends on the others (``course_suppression``).
    The org tree is the course status read model's own."""
    if group_by not in (None, "unit", "trust"):
        raise ValueError("group_by must be unit or trust")
    o = options or Options()
    day = as_of or today(o)
    levels = ["course"] + (["trust"] if group_by else []) + (["unit"] if group_by == "unit" else [])
    found = _rows(await conn.fetch(sql("api_course_status"), stores, course, day, levels, None, 0))
    hidden, hidden_stops, hidden_averages = course_suppression(found, o.suppression_threshold)
    # a hidden group is left out: a row of it, even without counts, says it has a learner (a
    # privacy audit: a one-person unit's row for a course told that its one employee took it);
    # the page is cut from the rows shown (cut before, a hidden row ended the pages early)
    rows = [r for r in found if r["level"] == (group_by or "course") and _cell(r) not in hidden]
    rows = rows[offset:None if limit is None else offset + limit]
    for r in rows:
        cell = _cell(r)
        del r["level"], r["parent_id"], r["scored"], r["timed"]
        r["suppressed"] = False
        r["stopped_at"] = {a: n for a, n in r["stopped_at"].items() if (*cell, a) not in hidden_stops}
        # an average over few learners is one's result; rounded, so that a group's and its
        # parts' averages do not give back the sums of the parts left out
        score, duration = r["avg_score"], r["avg_duration_s"]
        r["avg_score"] = None if score is None or ("score", cell) in hidden_averages else round(score, 2)
        r["avg_duration_s"] = None if duration is None or ("duration", cell) in hidden_averages else round(duration)
    return rows


def course_suppression(found: list[dict[str, Any]], threshold: int) -> tuple[set[Cell], set[Cell], set[Cell]]:
    """The course status cells to hide (``_cell``), the drop-off counts to leave out (a cell and
    an activity), and the averages to leave out (("score" or "duration", cell)), over the rows of
    every level read (``suppressed``): a course's trusts (the row of learners in no trust among
    them) add up to its row; a trust's units (``parent_id``) to the trust's; the units in no
    trust and the learners employed nowhere to the row of learners in no trust. Where learners
    stop is a table of its own per activity over the same groups; a hidden group shows none of
    it. Each average is one too, over the learners it is of (``scored``, ``timed``): shown only
    where those are not a small group either (a privacy audit: a unit of seven where one passed
    showed that one's score and time)."""
    families: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
    for r in found:
        key = (r["store_id"], r["course_id"])
        if r["level"] == "trust":
            families.setdefault(("course", *key, None), []).append(_cell(r))
        elif r["level"] == "unit":
            families.setdefault(("trust", *key, r["parent_id"]), []).append(_cell(r))
    hidden = suppressed({_cell(r): r["learners"] for r in found}, families.items(), threshold)
    stopped = {_cell(r): r["stopped_at"] for r in found}
    sizes: dict[Any, int] = {(*c, a): n for c, m in stopped.items() for a, n in m.items()}
    stop_families = [((*parent, a), [(*c, a) for c in children])
                     for parent, children in families.items() for a in stopped.get(parent, {})]
    # and a group's drop-off counts add up to its learners who have not finished, which its
    # other counts can give (learners minus completed when none passed): a family of its own
    for c, m in stopped.items():
        if m:
            sizes[("unfinished", c)] = sum(m.values())
            stop_families.append((("unfinished", c), [(*c, a) for a in m]))
    # a count a group does not have is left out of its map as a hidden one is: unseen
    empty = [c for _, children in stop_families for c in children if c not in sizes]
    sizes.update((c, 0) for c in empty)
    hidden_stops = suppressed(sizes, stop_families, threshold, unseen=empty,
                              hidden=[c for c in sizes if c[:-1] in hidden])
    hidden_averages: set[Cell] = set()
    for kind, column in (("score", "scored"), ("duration", "timed")):
        of = {(kind, _cell(r)): r[column] for r in found}
        of_families = [((kind, p), [(kind, c) for c in children]) for p, children in families.items()]
        # (not seeded with the groups hidden for their learners: a view that reads fewer levels
        # must decide the same, and a group hidden to protect a sibling is no small group here)
        hidden_averages |= suppressed(of, of_families, threshold)
    return hidden, hidden_stops, hidden_averages


def _cell(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r["level"], r["store_id"], r["course_id"], r["group_id"])


async def compliance_source(conn: asyncpg.Connection, stores: list[int], as_of: date, timezone: str) -> str:
    """Where a compliance answer as of the date comes from: ``"status"`` (the status rows the
    projection keeps, when they hold for that date: migration 0010) or ``"facts"`` (computed
    from the fact tables)."""
    return "status" if await conn.fetchval(sql("api_compliance_status_answers"), stores, as_of, timezone) else "facts"


# A compliance row's place in the order of the pages: (store_id, unit_id, person_id, requirement_id).
RowKey = tuple[int, str, str, str]


async def compliance(conn: asyncpg.Connection, stores: list[int], *, as_of: date | None = None,
                     requirement: str | None = None, unit: str | None = None, person: str | None = None,
                     status: str | None = None, limit: int = 1000, offset: int = 0, after: RowKey | None = None,
                     options: Options | None = None, source: str | None = None) -> list[dict[str, Any]]:
    """Per person, unit and requirement: status as of a date (with last completion and expiry),
    in the order of ``row_key``, from the row after ``after`` when given (a page that does not
    shift when rows before it change, as ``offset`` does). ``source`` forces "status" or
    "facts" (tests compare them); by default the status rows answer when they hold for the date."""
    query, args = await _compliance_query(conn, stores, as_of, requirement, unit, person, status,
                                          options or Options(), source, limit, offset, after)
    return _rows(await conn.fetch(query, *args))


def row_key(row: Mapping[str, Any]) -> RowKey:
    """Where a compliance row is in the order of the pages."""
    return row["store_id"], row["unit_id"], row["person_id"], row["requirement_id"]


async def compliance_all(conn: asyncpg.Connection, stores: list[int], *, as_of: date | None = None,
                         requirement: str | None = None, unit: str | None = None, person: str | None = None,
                         status: str | None = None, options: Options | None = None,
                         source: str | None = None, prefetch: int = 2000) -> AsyncIterator[asyncpg.Record]:
    """Every row ``compliance`` would page through, in its order, read by a cursor (a region's
    export is ~1.6 M rows): the caller holds a transaction open while iterating."""
    query, args = await _compliance_query(conn, stores, as_of, requirement, unit, person, status,
                                          options or Options(), source, None, 0, None)
    async for r in conn.cursor(query, *args, prefetch=prefetch):
        yield r


async def _compliance_query(conn: asyncpg.Connection, stores: list[int], as_of: date | None,
                            requirement: str | None, unit: str | None, person: str | None, status: str | None,
                            o: Options, source: str | None, limit: int | None, offset: int,
                            after: RowKey | None) -> tuple[str, tuple[Any, ...]]:
    """The query of ``compliance`` and its arguments (``limit`` None: every row)."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}")
    day = as_of or today(o)
    cursor = after or (None, None, None, None)
    if (source or await compliance_source(conn, stores, day, o.timezone)) == "status":
        # the units first: given as constants, they let the planner find the rows by index
        units = None if unit is None else [r[0] for r in await conn.fetch(sql("api_compliance_status_units"),
                                                                          stores, unit)]
        return sql("api_compliance_from_status"), (stores, day, o.expiring_window_days, requirement, units,
                                                   person, status, limit, offset, *cursor)
    return sql("api_compliance"), (stores, day, o.expiring_window_days, o.timezone, requirement, unit, person,
                                   status, limit, offset, *cursor)


async def compliance_rollup(conn: asyncpg.Connection, stores: list[int], *, level: str = "unit",
                            as_of: date | None = None, requirement: str | None = None,
                            options: Options | None = None, suppress: bool = True,
                            source: str | None = None) -> list[dict[str, Any]]:
    """Counts per status and requirement, per unit, trust or region, with percentages
    (``source`` as for ``compliance``). Suppression reads the levels above too (``_families``)."""
    o = options or Options()
    if level not in ("unit", "trust", "region"):
        raise ValueError("level must be unit, trust or region")
    day = as_of or today(o)
    # the levels whose cells decide this one's (``_families``): a unit's family is its trust; a
    # trust's, its region and the row of people in no trust; a region's, the same (it is hidden
    # with its people in no trust when they are all it has and hidden for another region's).
    # "rest": each region's people in no trust, counted (never shown)
    levels = (["unit", "trust", "region", "rest"] if level == "unit" else ["trust", "region", "rest"]) \
        if suppress else [level]
    found = await rollup_rows(conn, stores, day, levels, requirement=requirement, options=o, source=source)
    hidden: set[Cell] = set()
    if suppress:
        hidden = suppressed(*_families(found, await _ancestors(conn, stores, day)), o.suppression_threshold)
    rows = []
    for r in found:
        if r["level"] != level:
            continue
        row = dict(r)
        del row["level"]
        if (level, row["group_id"], row["requirement_id"]) in hidden:
            row = _suppressed_row(row)
        else:
            total = row["total"]
            row["percent_compliant"] = round(100.0 * (row["valid"] + row["expiring"]) / total, 1) if total else None
            row["suppressed"] = False
        rows.append(row)
    return rows


def as_the_region_decides(own: list[dict[str, Any]], region: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A roll-up of some stores of a region (``own``, unsuppressed) with the suppression decided
    over the whole region (``region``, the same view of all its stores): a row is shown only where
    the region's view shows the same group with the same counts, that is, a group of these
    stores' people alone. Anything the rows shown give, the region's view gives too, so the views
    of a trust's credential and of a regional one cannot be played against each other (a privacy
    audit: each decided over the stores it reads, and the region's total minus a trust's own
    view gave back a group of three the regional view hid). A group with people of other stores
    too (the region's row, say) is shown suppressed."""
    decided = {(r["group_id"], r["requirement_id"]): r for r in region}
    out = []
    for r in own:
        d = decided.get((r["group_id"], r["requirement_id"]))
        same = d is not None and not d["suppressed"] and all(d[k] == r[k] for k in ("total", *STATUSES))
        out.append(r if same else _suppressed_row(r))
    return out


def _suppressed_row(row: dict[str, Any]) -> dict[str, Any]:
    """A roll-up row as a suppressed group shows: no counts."""
    return {**row, **{k: None for k in ("total", *STATUSES)}, "percent_compliant": None, "suppressed": True}


async def rollup_rows(conn: asyncpg.Connection, stores: list[int], day: date, levels: list[str], *,
                      requirement: str | None = None, options: Options | None = None,
                      source: str | None = None) -> list[asyncpg.Record]:
    """The roll-up's rows of the given levels (unit, trust, region, and "rest": a region's
    people in no trust, of which only the total is read; from the status rows its status counts
    are NULL), before suppression."""
    o = options or Options()
    if (source or await compliance_source(conn, stores, day, o.timezone)) == "status":
        return list(await conn.fetch(sql("api_compliance_rollup_from_status"), stores, day,
                                     o.expiring_window_days, requirement, levels))
    return list(await conn.fetch(sql("api_compliance_rollup"), stores, day,
                                 o.expiring_window_days, o.timezone, requirement, levels))


def _families(rows: Sequence[Mapping[str, Any]], tree: _Ancestors) -> tuple[dict[Cell, int], list[Family]]:
    """The cells and families of a compliance roll-up's rows of every level (see ``suppressed``),
    per requirement:
    - a region's row is its trusts' rows plus its people with no trust (a cell never shown, the
      rows of level "rest"; counted, since a person employed both in a trust and in no trust
      makes the region minus its trusts too small);
    - the trust level's row without a trust is those cells of every region;
    - a trust's row is its units' rows; a region's people with no trust are its units with none.
    The unit level's cells never hide a cell above them that is not hidden already (a total is
    hidden for its parts only when its one part is, and then the total holds the same people),
    so the trust and region views leave them out and agree with the unit view."""
    sizes: dict[Cell, int] = {}
    families: dict[Cell, list[Cell]] = {}
    regions: list[tuple[str, Any, Any]] = []
    units: list[tuple[str, Any, Any]] = []
    for r in rows:
        cell = (r["level"], r["group_id"], r["requirement_id"])
        sizes[cell] = r["total"]
        if cell[0] == "trust":
            if cell[1] is not None:
                families.setdefault(("region", tree.of(cell[1], "region"), cell[2]), []).append(cell)
        elif cell[0] == "region":
            regions.append(cell)
        elif cell[0] == "unit":
            units.append(cell)
    for region in regions:
        rest = ("rest", region[1], region[2])
        sizes.setdefault(rest, 0)  # no row: nobody in no trust
        families.setdefault(region, []).append(rest)
        families.setdefault(("trust", None, region[2]), []).append(rest)
    for cell in units:
        trust = tree.of(cell[1], "trust")
        parent = ("trust", trust, cell[2]) if trust is not None else ("rest", tree.of(cell[1], "region"), cell[2])
        families.setdefault(parent, []).append(cell)
    return sizes, list(families.items())
