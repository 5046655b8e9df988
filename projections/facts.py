"""Folding log events into the fact tables of a read model.

Every read model is built from a few *table families* (see ``projections.create_read_model`` in
migration 0003): statement facts (``completions``, ``activity``), the set of ``voided`` ids, and
reference data (``links``, ``org``, ``employments``, ``requirements``). This module folds a window
of one store's log (positions after..upto) into whatever schema the caller put first on the
``search_path`` (the live schema, or the fresh one of a rebuild), one statement per table:

- statement events are folded inside PostgreSQL (``projections.statement_facts``, migration
  0008): they are most of the log, and decoding each payload in Python capped a rebuild at a
  few thousand statements per second. ``statement_facts`` below is the reference the SQL
  follows; the property test (tests/integration/test_projection_properties.py) checks they agree;
- reference-data events (few) are read and folded here.

The fold is designed so that a batch gives the same tables whatever its size:

- statement facts are keyed by statement id and the voided set only grows, so "insert unless
  voided; then delete what is voided" is order-independent (a voiding may even arrive before
  its target, which xAPI allows);
- reference data is "newest event per key wins", so within a batch the last event per key is
  kept (events arrive in position order) and upserted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import orjson

from lrs.ops.terms import VOIDED_VERB, agent_key, mbox_sha1_keys
from lrs.store.queries import sql

ADL = "http://adlnet.gov/expapi/verbs/"
COMPLETED = ADL + "completed"
PASSED = ADL + "passed"
FAILED = ADL + "failed"
# cmi5 (sections 9.3, 9.4): the LMS says a learner met a block's or a course's moveOn criteria
# (satisfied), or that an AU's need not be met (waived).
CMI5 = "https://w3id.org/xapi/adl/verbs/"
SATISFIED = CMI5 + "satisfied"
WAIVED = CMI5 + "waived"
# Statements that go on a transcript and count as evidence for a requirement. A cmi5 course is
# finished when the LMS says so (satisfied): its AUs' completed and passed name the AUs, not
# the course, so without it a requirement naming a cmi5 course could never be met.
COMPLETION_VERBS = frozenset({COMPLETED, PASSED, SATISFIED, WAIVED})

# Reference-data event kinds (payload formats in docs/import-formats.md).
ORG_UNIT = "org.unit"
PERSON_LINKED = "person.linked"
PERSON_UNLINKED = "person.unlinked"
EMPLOYMENT = "person.employment"
REQUIREMENT = "requirement.set"
REFERENCE_KINDS = frozenset({ORG_UNIT, PERSON_LINKED, PERSON_UNLINKED, EMPLOYMENT, REQUIREMENT})
# The reference-data kinds each table family folds (a read model reads only those).
FAMILY_KINDS = {"links": (PERSON_LINKED, PERSON_UNLINKED), "org": (ORG_UNIT,), "employments": (EMPLOYMENT,),
                "requirements": (REQUIREMENT,)}
# The tables of statement facts (families completions and activity), written only by inserts
# and void deletes.
FACT_TABLES = ("completions", "activity_facts")
# A century: longer is "never expires" (no validity), and expiry dates stay in the calendar.
MAX_VALIDITY_DAYS = 36_500

_DURATION = re.compile(
    r"^P(?:(?P<y>\d+(?:\.\d+)?)Y)?(?:(?P<mo>\d+(?:\.\d+)?)M)?(?:(?P<w>\d+(?:\.\d+)?)W)?(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<mi>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)
_SECONDS = {"y": 365 * 86400, "mo": 30 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "mi": 60, "s": 1}


@dataclass(frozen=True)
class Window:
    """The events of one store with positions in (after, upto]; ``count`` of them (positions may
    have gaps, where an erasure took events out or an append left its reservation unused, so
    ``positions`` is the range, not the events). ``bulk``: a rebuild's first pass into tables
    nobody reads yet; voided statements are recorded but not removed from the fact tables (they
    have no primary key to find them by): ``remove_voided`` does that once at the end. The
    statements up to ``prefilled_upto`` are in the fact tables already (a rebuild's bulk pass
    extracts them in parallel chunks, ``runner.prefill_facts``); the window folds only its
    reference data there."""

    store_id: int
    after: int
    upto: int
    count: int
    bulk: bool = False
    prefilled_upto: int = 0

    @property
    def positions(self) -> range:
        return range(self.after + 1, self.upto + 1)


@dataclass(frozen=True)
class Event:
    """One row of the log, as a projection sees it."""

    store_id: int
    position: int
    kind: str
    recorded_at: datetime
    statement_id: str | None
    payload: dict[str, Any]


def duration_seconds(value: Any) -> float | None:
    """An ISO 8601 duration (xAPI result.duration) in seconds; None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    m = _DURATION.match(value)
    if m is None or value in ("P", "PT"):
        return None
    return sum(float(v) * _SECONDS[k] for k, v in m.groupdict().items() if v is not None)


# The latest statement time the read models keep: a century (MAX_VALIDITY_DAYS) before the end
# of the calendar, so that an expiry stays in it.
LAST_TIME = datetime(9899, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)


def parse_timestamp(value: Any, fallback: datetime) -> datetime:
    """A statement timestamp; the stored time when it is missing (xAPI Data 2.4.7) or odd. An
    instant before the year 1 or after LAST_TIME in UTC (0001-01-01T00:00:00+01:00) is the
    nearer of them, as projections.statement_time_as_sent (migration 0020, renamed in 0035) takes
    it. The read models take at most the stored time: ``statement_time``."""
    if isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value)
        except ValueError:
            return fallback
        ts = ts if ts.tzinfo is not None else ts.replace(tzinfo=fallback.tzinfo)
        try:
            in_utc = ts.astimezone(UTC)
        except OverflowError:
            return datetime.min.replace(tzinfo=UTC) if ts.year == 1 else LAST_TIME
        return ts if in_utc <= LAST_TIME else LAST_TIME
    return fallback


def statement_time(value: Any, stored: datetime) -> datetime:
    """When a statement's experience happened for the read models: its timestamp, but never
    after the LRS stored it. A learner cannot have completed a course after the statement
    saying so arrived; a timestamp ahead of that (a client's clock, or a made-up date) would
    make a completion count as fresh for years to come, and one such completion held off the
    compliance answers' fast path for its whole store until that date (migration 0035)."""
    return min(parse_timestamp(value, stored), stored)


@dataclass(frozen=True)
class StatementFacts:
    """What the read models need from one statement."""

    statement_id: str
    ifi: str | None
    verb: str
    activity_id: str | None
    courses: tuple[str, ...]
    success: bool | None
    score: float | None
    duration_s: float | None
    at: datetime
    voids: str | None


def statement_facts(ev: Event) -> StatementFacts:
    """Extract the facts of a ``statement`` event (its payload is the stored statement).

    The reference for ``projections.statement_facts`` in SQL, which the runner uses."""
    s = ev.payload
    verb = str((s.get("verb") or {}).get("id", ""))
    obj = s.get("object") or {}
    voids = None
    activity_id = None
    if verb == VOIDED_VERB and obj.get("objectType") == "StatementRef":
        voids = str(obj.get("id"))
    elif obj.get("objectType", "Activity") == "Activity" and "id" in obj:
        activity_id = str(obj["id"])
    actor = s.get("actor") or {}
    ifi = agent_key(actor) if isinstance(actor, dict) else None
    result = s.get("result") or {}
    score_obj = result.get("score") or {}
    score = score_obj.get("scaled")
    ctx = (s.get("context") or {}).get("contextActivities") or {}
    courses: list[str] = [activity_id] if activity_id else []
    for kind in ("parent", "grouping"):
        acts = ctx.get(kind) or []
        if isinstance(acts, dict):  # xAPI 1.0.0 allowed a single object
            acts = [acts]
        for a in acts:
            if isinstance(a, dict) and "id" in a and a["id"] not in courses:
                courses.append(str(a["id"]))
    success = result.get("success")
    return StatementFacts(
        statement_id=str(ev.statement_id or s.get("id")),
        ifi=ifi,
        verb=verb,
        activity_id=activity_id,
        courses=tuple(courses),
        success=success if isinstance(success, bool) else None,
        score=float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None,
        duration_s=duration_seconds(result.get("duration")),
        at=statement_time(s.get("timestamp"), ev.recorded_at),
        voids=voids,
    )


def _date(value: Any) -> date | None:
    if value in (None, ""):
        return None
    return value if isinstance(value, date) else date.fromisoformat(str(value))


@dataclass
class Changes:
    """What a window changed that per-person results (the compliance status) depend on."""

    # (identifier, activity) of completions added or voided
    completions: set[tuple[str, str]] = field(default_factory=set)
    # people whose identifiers or employments changed (for a relinked identifier: the person it
    # left, the person it joined, and the identifier itself, which is a person when unlinked)
    persons: set[str] = field(default_factory=set)
    # the org tree or a requirement changed: every person may be affected
    everything: bool = False


class Batch:
    """The rows one batch of reference-data events (of one store) contributes to each family."""

    def __init__(self, store_id: int) -> None:
        self.store_id = store_id
        # newest event per key wins; None means "remove"
        self.links: dict[str, str | None] = {}
        self.units: dict[tuple[str, date], tuple[Any, ...]] = {}
        self.employments: dict[tuple[str, str], tuple[Any, ...]] = {}
        self.requirements: dict[str, tuple[Any, ...]] = {}

    def add(self, ev: Event, families: frozenset[str]) -> None:
        """Fold one event; raises ValueError/KeyError/TypeError for an event it cannot read."""
        p = ev.payload
        if ev.kind in (PERSON_LINKED, PERSON_UNLINKED) and "links" in families:
            person = str(p["person_id"]) if ev.kind == PERSON_LINKED else None
            self.links[str(p["ifi"])] = person
            # an address links (and unlinks) its mbox_sha1sum forms too (migration 0036)
            for sha1 in mbox_sha1_keys(str(p["ifi"])):
                self.links[sha1] = person
        elif ev.kind == ORG_UNIT and "org" in families:
            valid_from = _date(p["valid_from"])
            assert valid_from is not None
            self.units[(str(p["unit_id"]), valid_from)] = (
                str(p["unit_id"]), valid_from, str(p.get("id_kind", "resh")), str(p["name"]),
                p.get("parent_id") or None, str(p["level"]), bool(p.get("closed", False)))
        elif ev.kind == EMPLOYMENT and "employments" in families:
            self.employments[(str(p["person_id"]), str(p["employment_id"]))] = (
                str(p["person_id"]), str(p["employment_id"]), str(p["unit_id"]), str(p.get("role") or ""),
                str(p.get("profession") or ""), _date(p["valid_from"]), _date(p.get("valid_to")))
        elif ev.kind == REQUIREMENT and "requirements" in families:
            days = p.get("validity_days")
            if days is not None and not 0 < int(days) <= MAX_VALIDITY_DAYS:
                raise ValueError(f"validity_days must be from 1 to {MAX_VALIDITY_DAYS}, got {days}")
            self.requirements[str(p["requirement_id"])] = (
                str(p["requirement_id"]), str(p.get("name") or p["requirement_id"]), _strs(p["activity_ids"]),
                _strs(p.get("units")), _strs(p.get("roles")), _strs(p.get("professions")),
                None if days is None else int(days))

    async def write(self, conn: asyncpg.Connection, families: frozenset[str], changes: Changes | None) -> None:
        """Write the batch into the tables first on the search_path (inside the caller's
        transaction); note in ``changes`` whom it touched (None: no one asks, a rebuild's bulk
        pass, which computes the status rows afterwards)."""
        sid = self.store_id
        if changes is not None:
            changes.persons.update(person for person, _ in self.employments)
            changes.everything |= bool(self.units or self.requirements)
        if "links" in families and self.links:
            if changes is not None:
                before = await conn.fetch(sql("rm_links_persons"), sid, list(self.links))
                changes.persons.update(r["person_id"] for r in before)
                changes.persons.update(self.links)
                changes.persons.update(v for v in self.links.values() if v is not None)
            gone = [k for k, v in self.links.items() if v is None]
            kept = [(k, v) for k, v in self.links.items() if v is not None]
            if gone:
                await conn.execute(sql("rm_links_delete"), sid, gone)
            if kept:
                await conn.execute(sql("rm_links_upsert"), sid, [k for k, _ in kept], [v for _, v in kept])
        if "org" in families and self.units:
            await conn.execute(sql("rm_units_upsert"), sid, *_columns(self.units.values(), 7))
        if "employments" in families and self.employments:
            await conn.execute(sql("rm_employments_upsert"), sid, *_columns(self.employments.values(), 7))
        if "requirements" in families and self.requirements:
            rows = list(self.requirements.values())
            # arrays of arrays cannot be unnested row by row; each list travels as one JSON text
            await conn.execute(sql("rm_requirements_upsert"), sid, [r[0] for r in rows], [r[1] for r in rows],
                               *([orjson.dumps(list(r[i])).decode() for r in rows] for i in (2, 3, 4, 5)),
                               [r[6] for r in rows])


def _strs(value: Any) -> tuple[str, ...]:
    if value in (None, ""):
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def _columns(rows: Iterable[Sequence[Any]], width: int) -> list[list[Any]]:
    cols: list[list[Any]] = [[] for _ in range(width)]
    for row in rows:
        for i in range(width):
            cols[i].append(row[i])
    return cols


async def apply_window(conn: asyncpg.Connection, w: Window, families: frozenset[str]) -> Changes:
    """Fold the window's events into the families' tables on the search_path; what changed.

    Within a window the order does not matter (see above): statement facts are inserted unless
    voided, then the statements voided in the window are recorded and removed (for a ``bulk``
    window, only recorded).
    """
    changes = Changes()
    kinds = sorted(k for f in families for k in FAMILY_KINDS.get(f, ()))
    rows = await conn.fetch(sql("projection_reference_events"), w.store_id, w.after, w.upto, kinds) if kinds else []
    if rows:
        batch = Batch(w.store_id)
        for r in rows:
            batch.add(Event(r["store_id"], r["position"], r["kind"], r["recorded_at"], r["statement_id"],
                            r["payload"]), families)
        await batch.write(conn, families, None if w.bulk else changes)
    after = max(w.after, w.prefilled_upto)
    if after >= w.upto:
        return changes
    span = (w.store_id, after, w.upto)
    if "completions" in families:
        added = await conn.fetch(sql("rm_completions_from_log"), *span)
        changes.completions.update((r["ifi"], r["activity_id"]) for r in added)
    if "activity" in families:
        await conn.execute(sql("rm_activity_from_log"), *span)
    if "voided" in families:
        voids = [r["voids"] for r in await conn.fetch(sql("rm_voids_in_log"), *span)]
        if voids:
            await conn.execute(sql("rm_voided_insert"), w.store_id, voids)
            if w.bulk:
                return changes
            if "completions" in families:
                gone = await conn.fetch(sql("rm_completions_void"), w.store_id, voids)
                changes.completions.update((r["ifi"], r["activity_id"]) for r in gone)
            if "activity" in families:
                await conn.execute(sql("rm_activity_void"), w.store_id, voids)
    return changes


async def remove_voided(conn: asyncpg.Connection, families: frozenset[str]) -> None:
    """Remove every voided statement from the fact tables on the search_path: what the windows of
    a rebuild's bulk pass left for the end (then the tables hold what windows that removed
    as they went would have left: the voided set only grows)."""
    if "completions" in families:
        await conn.execute(sql("rm_completions_void_all"))
    if "activity" in families:
        await conn.execute(sql("rm_activity_void_all"))
