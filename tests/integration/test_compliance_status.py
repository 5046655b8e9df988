"""The compliance status rows the compliance projection keeps (migration 0010,
projections/status.py) against real PostgreSQL: computed on catch-up, moved by each kind of
change, answering only the dates they hold for, and moved to a new day."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from lrs.store.credentials import PgCredentialRepository
from projections import queries, reference, runner
from projections.facts import EMPLOYMENT, ORG_UNIT, PERSON_LINKED, REQUIREMENT
from projections.models import COMPLIANCE
from projections.status import REPORTING_TIMEZONE
from tests.integration.test_projection_properties import STATUS_HISTOGRAM
from tests.integration.test_projection_runner import _post, voiding
from tests.statements import statement, with_id

COURSE = "https://courses.example.org/hand-hygiene"
OPTS = queries.Options(suppression_threshold=0, expiring_window_days=30)


def today() -> date:
    return datetime.now(ZoneInfo(REPORTING_TIMEZONE)).date()


def unit(uid: str, parent: str | None, level: str, since: str = "2020-01-01") -> reference.RefEvent:
    return reference.RefEvent(ORG_UNIT, f"{uid}@{since}", {
        "unit_id": uid, "name": f"Enhet {uid}", "parent_id": parent, "level": level, "valid_from": since})


def job(person: str, unit_id: str, since: str = "2020-01-01", until: str | None = None,
        emp: str = "e1") -> reference.RefEvent:
    return reference.RefEvent(EMPLOYMENT, f"{person}\x1f{emp}", {
        "person_id": person, "employment_id": emp, "unit_id": unit_id, "role": "nurse", "profession": "",
        "valid_from": since, "valid_to": until})


def link(name: str, person: str) -> reference.RefEvent:
    ifi = f"account:https://id.example.org|emp-{name}"
    return reference.RefEvent(PERSON_LINKED, ifi, {"ifi": ifi, "person_id": person})


def requirement(validity_days: int | None = 365) -> reference.RefEvent:
    return reference.RefEvent(REQUIREMENT, "hygiene", {
        "requirement_id": "hygiene", "name": "Hand hygiene", "activity_ids": [COURSE], "units": [], "roles": [],
        "validity_days": validity_days})


def completion(name: str, day: date, **extra: Any) -> dict[str, Any]:
    at = datetime(day.year, day.month, day.day, 12, tzinfo=ZoneInfo(REPORTING_TIMEZONE))
    return with_id(statement(actor=name, timestamp=at.isoformat(), **extra))


class Region:
    """A store with a region R, a trust T and departments D1 and D2; Kari (P1, in D1) and Ola
    (P2, in D2) are linked; one requirement; the compliance read model caught up."""

    def __init__(self, db_url: str, conn: asyncpg.Connection, pc: asyncpg.Connection, store_id: int) -> None:
        self.db_url, self.conn, self.pc, self.sid = db_url, conn, pc, store_id

    @classmethod
    async def make(cls, db_url: str, conn: asyncpg.Connection, pc: asyncpg.Connection) -> Region:
        sid = await PgCredentialRepository(conn).create_store("region", None)
        r = cls(db_url, conn, pc, sid)
        await r.ref(unit("R", None, "region"), unit("T", "R", "trust"), unit("D1", "T", "department"),
                    unit("D2", "T", "department"), job("P1", "D1"), job("P2", "D2"), link("kari", "P1"),
                    link("ola", "P2"), requirement())
        await r.catch_up()
        return r

    async def ref(self, *events: reference.RefEvent) -> None:
        await reference.append(self.conn, self.sid, list(events))

    async def post(self, *stmts: dict[str, Any]) -> None:
        await _post(self.db_url, self.sid, list(stmts))

    async def catch_up(self) -> None:
        await runner.catch_up(self.pc, COMPLIANCE, batch_size=2)

    async def rows(self) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self.conn.fetch(
            "SELECT person_id, unit_id, last_completed, expires_on FROM rm_compliance.status "
            "WHERE store_id = $1 ORDER BY person_id, unit_id", self.sid)]

    async def counts(self, level: str) -> dict[tuple[str, date], int]:
        """People per (group, expiry date) at a level: the summary plus the pending changes."""
        rows = await self.conn.fetch(f"SELECT group_id, expires_on, n FROM ({STATUS_HISTOGRAM}) h "
                                     "WHERE store_id = $1 AND level = $2", self.sid, level)
        return {(r["group_id"], r["expires_on"]): r["n"] for r in rows}

    async def source(self, d: date, tz: str = REPORTING_TIMEZONE) -> str:
        return await queries.compliance_source(self.conn, [self.sid], d, tz)

    async def both(self, d: date) -> list[dict[str, Any]]:
        """Compliance as of d, from the status rows and from the fact tables (which must agree)."""
        a = await queries.compliance(self.conn, [self.sid], as_of=d, options=OPTS, source="status")
        b = await queries.compliance(self.conn, [self.sid], as_of=d, options=OPTS, source="facts")
        assert a == b
        for level in ("unit", "trust", "region"):
            ra = await queries.compliance_rollup(self.conn, [self.sid], level=level, as_of=d, options=OPTS,
                                                 suppress=False, source="status")
            rb = await queries.compliance_rollup(self.conn, [self.sid], level=level, as_of=d, options=OPTS,
                                                 suppress=False, source="facts")
            assert ra == rb, level
        return a


@pytest.fixture
async def r(db_url: str, conn: asyncpg.Connection) -> AsyncIterator[Region]:
    pc = await runner.connect(db_url)
    try:
        yield await Region.make(db_url, conn, pc)
    finally:
        await pc.close()


async def test_rows_are_computed_on_catch_up_and_answer_today(r: Region, conn: asyncpg.Connection) -> None:
    done = today() - timedelta(days=10)
    await r.post(completion("kari", done))
    await r.catch_up()
    meta = await conn.fetchrow("SELECT as_of, tz FROM rm_compliance.status_meta WHERE store_id = $1", r.sid)
    assert (meta["as_of"], meta["tz"]) == (today(), REPORTING_TIMEZONE)
    assert await r.rows() == [("P1", "D1", done, done + timedelta(days=365)),
                              ("P2", "D2", None, date.min)]  # -infinity: no completion
    assert await r.source(today()) == "status"
    got = await r.both(today())
    assert [(x["person_id"], x["status"]) for x in got] == [("P1", "valid"), ("P2", "missing")]
    trust = await queries.compliance_rollup(conn, [r.sid], level="trust", options=OPTS, suppress=False)
    assert [(x["group_id"], x["total"], x["valid"], x["missing"]) for x in trust] == [("T", 2, 1, 1)]


async def test_a_regions_people_in_no_trust_are_counted_on_both_sources(r: Region, conn: asyncpg.Connection) -> None:
    """Suppression needs the people of a region in no trust (migration 0018). P3 works at the
    region unit, in S (a department under it, in no trust) and in D1; P4 at the region unit
    only; P5 in X, a unit under no region. The region (4) minus its trust (3) says 1, but 2 are
    in no trust, and P3 counts once though employed three times."""
    await r.ref(unit("S", "R", "department"), unit("X", None, "department"), job("P3", "R"),
                job("P3", "S", emp="e2"), job("P3", "D1", emp="e3"), job("P4", "R"), job("P5", "X"))
    await r.catch_up()
    assert await r.source(today()) == "status"
    got = {}
    for source in ("status", "facts"):
        for requirement in (None, "hygiene", "none-such"):
            rows = await queries.rollup_rows(conn, [r.sid], today(), ["region", "trust", "rest"], options=OPTS,
                                             source=source, requirement=requirement)
            got[source, requirement] = sorted((x["level"], x["group_id"] or "", x["total"]) for x in rows)
    expected = [("region", "", 1), ("region", "R", 4), ("rest", "", 1), ("rest", "R", 2), ("trust", "", 3),
                ("trust", "T", 3)]
    for source in ("status", "facts"):
        assert got[source, None] == got[source, "hygiene"] == expected, source
        assert got[source, "none-such"] == []
    # the status rows' count can be read by a partial index (a region holds ~100,000 rows), and
    # a rebuild makes the index again
    index = "status_store_id_region_id_requirement_id_person_id_idx"
    for rebuilt in (False, True):
        if rebuilt:
            await runner.rebuild(r.pc, COMPLIANCE, batch_size=3)
        async with conn.transaction():
            await conn.execute("SET LOCAL enable_seqscan = off")
            plan = await conn.fetchval(
                "EXPLAIN (FORMAT JSON) SELECT count(DISTINCT (store_id, person_id)) FROM rm_compliance.status "
                "WHERE store_id = ANY($1::bigint[]) AND trust_id IS NULL GROUP BY region_id, requirement_id",
                [r.sid])
        assert index in str(plan), rebuilt


async def test_completions_voids_links_and_employments_move_the_rows_and_counts(
        r: Region, conn: asyncpg.Connection) -> None:
    d1, d2 = today() - timedelta(days=100), today() - timedelta(days=20)
    first = completion("ola", d1)
    await r.post(first, completion("kari", d2))
    await r.catch_up()
    year = timedelta(days=365)
    assert await r.rows() == [("P1", "D1", d2, d2 + year), ("P2", "D2", d1, d1 + year)]
    assert await r.counts("trust") == {("T", d1 + timedelta(days=365)): 1, ("T", d2 + timedelta(days=365)): 1}
    # a void takes Ola's completion away again
    await r.post(voiding(first["id"]))
    await r.catch_up()
    assert (await r.rows())[1] == ("P2", "D2", None, date.min)
    assert await r.counts("trust") == {("T", date.min): 1, ("T", d2 + timedelta(days=365)): 1}
    # Kari's identifier now belongs to Ola: Kari has nothing, Ola has her completion
    await r.ref(link("kari", "P2"))
    await r.catch_up()
    assert await r.rows() == [("P1", "D1", None, date.min), ("P2", "D2", d2, d2 + timedelta(days=365))]
    # Ola also works in D1 from now on: a row there, and one person in the trust still
    await r.ref(job("P2", "D1", emp="e2"))
    await r.catch_up()
    assert ("P2", "D1", d2, d2 + timedelta(days=365)) in await r.rows()
    assert await r.counts("trust") == {("T", date.min): 1, ("T", d2 + timedelta(days=365)): 1}
    assert await r.counts("unit") == {("D1", date.min): 1, ("D1", d2 + timedelta(days=365)): 1,
                                      ("D2", d2 + timedelta(days=365)): 1}
    answers = await r.both(today())
    # folding every pending change into the summary rows changes no answer
    assert await conn.fetchval("SELECT count(*) FROM rm_compliance.status_pending") > 0
    counts = {level: await r.counts(level) for level in ("unit", "trust", "region")}
    async with r.pc.transaction():
        await r.pc.execute("SET LOCAL search_path TO rm_compliance, public")
        await r.pc.execute("SELECT projections.compliance_status_fold($1, NULL, NULL, NULL)", r.sid)
    assert await conn.fetchval("SELECT count(*) FROM rm_compliance.status_pending") == 0
    assert {level: await r.counts(level) for level in ("unit", "trust", "region")} == counts
    assert await r.both(today()) == answers


async def test_a_unit_nobody_is_due_in_any_more_leaves_the_units_as_a_rebuild_would(
        r: Region, conn: asyncpg.Connection) -> None:
    async def units() -> list[str]:
        return [u for (u,) in await conn.fetch(
            "SELECT unit_id FROM rm_compliance.status_units WHERE store_id = $1 ORDER BY unit_id", r.sid)]

    assert await units() == ["D1", "D2"]
    # Ola's job in D2 ended long ago and Ola works in D1: nobody is due in D2 any more
    await r.ref(job("P2", "D2", until="2020-06-01"), job("P2", "D1", emp="e2"))
    await r.catch_up()
    assert {row[:2] for row in await r.rows()} == {("P1", "D1"), ("P2", "D1")}
    assert await units() == ["D1"]
    await runner.rebuild(r.pc, COMPLIANCE, batch_size=3)
    assert await units() == ["D1"]
    await r.both(today())


async def test_a_later_completion_of_a_requirement_that_never_expires_is_not_answered_for_earlier_dates(
        r: Region, conn: asyncpg.Connection) -> None:
    """The row's last completion moves while its expiry ('infinity') and so every count stays:
    the rows still learn of the newer completion, and a date before it goes to the fact tables."""
    await r.ref(requirement(validity_days=None))
    d1, d2 = today() - timedelta(days=100), today() - timedelta(days=10)
    await r.post(completion("kari", d1))
    await r.catch_up()
    await r.post(completion("kari", d2))
    await r.catch_up()
    assert (await r.rows())[0] == ("P1", "D1", d2, date.max)
    between = today() - timedelta(days=50)
    assert await r.source(between) == "facts"
    got = await queries.compliance(conn, [r.sid], as_of=between, options=OPTS)
    assert got == await queries.compliance(conn, [r.sid], as_of=between, options=OPTS, source="facts")
    assert got[0]["last_completed"] == d1
    assert await r.source(today()) == "status"


async def test_a_completion_of_an_activity_no_requirement_counts_changes_nothing(
        r: Region, conn: asyncpg.Connection) -> None:
    before = await r.rows()
    await r.post(completion("kari", today() - timedelta(days=3), object={
        "objectType": "Activity", "id": "https://courses.example.org/fire-safety"}))
    await r.catch_up()
    assert await r.rows() == before


async def test_a_requirement_or_org_change_recomputes_the_store(r: Region, conn: asyncpg.Connection) -> None:
    done = today() - timedelta(days=10)
    await r.post(completion("kari", done))
    await r.catch_up()
    await r.ref(requirement(validity_days=5))
    await r.catch_up()
    assert (await r.rows())[0] == ("P1", "D1", done, done + timedelta(days=5))
    got = await r.both(today())
    assert got[0]["status"] == "expired"
    # D2 moves to a trust of its own (from long ago): Ola's row and the trust counts follow
    await r.ref(unit("T2", "R", "trust"), unit("D2", "T2", "department", since="2021-01-01"))
    await r.catch_up()
    assert set(await r.counts("trust")) == {("T", done + timedelta(days=5)), ("T2", date.min)}
    await r.both(today())


async def test_only_dates_the_rows_hold_for_are_answered_from_them(r: Region, conn: asyncpg.Connection) -> None:
    assert await r.source(today()) == "status"
    assert await r.source(today() + timedelta(days=400)) == "status"
    assert await r.source(today(), tz="UTC") == "facts"
    # a completion dated in the future (a clock ahead) counts from when it was stored, today
    # (0035): the rows still answer today. Until 0035 it was not counted before its date, and
    # today's answers came from the facts until then.
    ahead = today() + timedelta(days=3)
    await r.post(completion("kari", ahead))
    await r.catch_up()
    assert await r.source(today()) == "status"
    assert await r.source(ahead) == "status"
    assert [x["status"] for x in await r.both(today())] == ["valid", "missing"]
    # before the latest completion the rows count, the facts answer (the rows cannot leave it out)
    yesterday = today() - timedelta(days=1)
    assert await r.source(yesterday) == "facts"
    earlier = await queries.compliance(conn, [r.sid], as_of=yesterday, options=OPTS)
    assert [x["status"] for x in earlier] == ["missing", "missing"]
    # an employment that ends in two months: dates after that are computed from the facts
    end = today() + timedelta(days=60)
    await r.ref(job("P2", "D2", until=end.isoformat()))
    await r.catch_up()
    assert await r.source(ahead) == "status"
    assert await r.source(end - timedelta(days=1)) == "status"
    assert await r.source(end) == "facts"
    after = await queries.compliance(conn, [r.sid], as_of=end, options=OPTS)
    assert [x["person_id"] for x in after] == ["P1"]


async def test_settle_moves_the_rows_to_a_new_day_or_recomputes_them(r: Region, conn: asyncpg.Connection) -> None:
    back = today() - timedelta(days=30)
    # as if computed a month ago with nothing taking effect since: moved, not recomputed
    await conn.execute("UPDATE rm_compliance.status_meta SET as_of = $2, computed_at = '2000-01-01' "
                       "WHERE store_id = $1", r.sid, back)
    await r.catch_up()
    meta = await conn.fetchrow("SELECT as_of, computed_at FROM rm_compliance.status_meta WHERE store_id = $1",
                               r.sid)
    assert meta["as_of"] == today() and meta["computed_at"].year == 2000
    # an employment that began a week ago, applied while the rows were a month old (they
    # leave it out, as of their date); the new day recomputes them
    await conn.execute("UPDATE rm_compliance.status_meta SET as_of = $2 WHERE store_id = $1", r.sid, back)
    await r.ref(job("P3", "D1", since=(today() - timedelta(days=7)).isoformat()))
    await runner.step(r.pc, COMPLIANCE, r.sid)
    assert "P3" not in [p for p, *_ in await r.rows()]
    assert await r.source(today()) == "facts"
    await runner.settle(r.pc, COMPLIANCE, r.sid)
    meta = await conn.fetchrow("SELECT as_of, computed_at FROM rm_compliance.status_meta WHERE store_id = $1",
                               r.sid)
    assert meta["as_of"] == today() and meta["computed_at"].year > 2000
    assert "P3" in [p for p, *_ in await r.rows()]
    assert await r.source(today()) == "status"
    await r.both(today())


async def test_a_rebuild_computes_the_rows_before_the_swap(r: Region, conn: asyncpg.Connection) -> None:
    await r.post(completion("kari", today() - timedelta(days=2)))
    await r.catch_up()
    before = await r.rows()
    await runner.rebuild(r.pc, COMPLIANCE, batch_size=3)
    assert await r.rows() == before
    assert await r.source(today()) == "status"


async def test_a_key_with_many_pending_changes_is_folded_into_its_summary(r: Region, conn: asyncpg.Connection) -> None:
    people = [f"n{i}" for i in range(40)]
    await r.ref(*(job(f"Q{i}", "D1") for i in range(40)), *(link(n, f"Q{i}") for i, n in enumerate(people)))
    await r.catch_up()
    # forty people, each with a completion on a day of their own: forty changes to the region's key
    await r.post(*(completion(n, today() - timedelta(days=i + 1)) for i, n in enumerate(people)))
    await r.catch_up()
    pending = await conn.fetchval("SELECT count(*) FROM rm_compliance.status_pending WHERE store_id = $1 "
                                  "AND level = 'region'", r.sid)
    dates = await conn.fetchval("SELECT cardinality(dates) FROM rm_compliance.status_summary WHERE store_id = $1 "
                                "AND level = 'region'", r.sid)
    assert pending < 32 and dates > 32 - pending  # folded once it had gathered 32
    rollup = await queries.compliance_rollup(conn, [r.sid], level="region", options=OPTS, suppress=False)
    assert [(x["total"], x["valid"], x["missing"]) for x in rollup] == [(42, 40, 2)]
    await r.both(today())


class Unsettled(runner.Projection):
    """The compliance read model, whose settling fails on its data."""

    def __init__(self) -> None:
        super().__init__(COMPLIANCE.name, COMPLIANCE.families)
        self.tries = 0

    async def settle(self, conn: asyncpg.Connection, store_id: int) -> None:
        self.tries += 1
        raise ValueError("cannot settle")


async def test_a_worker_that_cannot_settle_a_store_logs_it_and_goes_on(r: Region, conn: asyncpg.Connection) -> None:
    await r.post(completion("kari", today()))
    broken = Unsettled()
    worker = runner.Worker(r.db_url, [broken], runner.WorkerOptions(settle_retry_seconds=3600))
    assert await worker.run_once(r.pc) == 1  # the statement is applied; settling fails and is logged
    assert await worker.run_once(r.pc) == 0 and broken.tries == 1  # and is not tried again at once
    worker.options.settle_retry_seconds = 0
    worker._settle_after.clear()
    await worker.run_once(r.pc)
    assert broken.tries == 2


async def test_a_requirement_whose_expiry_leaves_the_calendar_fails_the_read_model(
        r: Region, conn: asyncpg.Connection) -> None:
    # (the import refuses it; the log may hold one written by other means)
    await r.ref(reference.RefEvent(REQUIREMENT, "forever", {
        "requirement_id": "forever", "name": "Forever", "activity_ids": [COURSE], "units": [], "roles": [],
        "validity_days": 2_000_000_000}))
    await r.catch_up()
    st = next(s for s in await runner.status(conn, [COMPLIANCE]) if s.store_id == r.sid)
    assert st.state == "failed" and "validity_days" in (st.error or "")


async def test_pages_after_a_row_are_the_same_from_the_status_rows_and_the_fact_tables(
        r: Region, conn: asyncpg.Connection) -> None:
    """queries.compliance(after=...) on both sources: one row a page, through every row, in
    the same order as the whole list (P3 is employed twice, so a person's rows are not adjacent
    to the key's last part)."""
    await r.ref(unit("S", "R", "department"), job("P3", "D2"), job("P3", "S", emp="e2"), job("P4", "D1"))
    await r.catch_up()
    for source in ("status", "facts"):
        whole = await queries.compliance(conn, [r.sid], options=OPTS, source=source)
        paged: list[dict[str, Any]] = []
        after = None
        while True:
            page = await queries.compliance(conn, [r.sid], options=OPTS, source=source, limit=1, after=after)
            if not page:
                break
            paged += page
            after = queries.row_key(page[-1])
        assert paged == whole and len(whole) == 5, source
