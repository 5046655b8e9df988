"""Property: for random histories (statements, voidings, identifier links, org moves, employment
and requirement changes), incremental application == full rebuild == brute-force recomputation
straight from the log."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lrs.ops.statements import store_statements
from lrs.ops.terms import VOIDED_VERB
from lrs.store.credentials import PgCredentialRepository
from lrs.store.db import create_pool
from lrs.store.embedded import EmbeddedPostgres
from lrs.store.statements import PgStatementRepository
from projections import queries, reference, runner
from projections.facts import (
    CMI5,
    COMPLETION_VERBS,
    EMPLOYMENT,
    ORG_UNIT,
    PERSON_LINKED,
    PERSON_UNLINKED,
    REQUIREMENT,
    SATISFIED,
    WAIVED,
    Event,
    statement_facts,
)
from projections.models import ALL
from tests.conftest import new_database
from tests.store_access import principal

HOME = "https://id.example.org"
EMPS = ["emp-a", "emp-b", "emp-c", "emp-d"]
IFIS = [f"account:{HOME}|{e}" for e in EMPS]
PEOPLE = ["P1", "P2", "P3"]
COURSES = [f"https://courses.example.org/{c}" for c in ("hygiene", "fire", "cpr")]
VERBS = ["registered", "attempted", "completed", "passed", "failed", "satisfied", "waived"]
CMI5_VERBS = {"satisfied", "waived"}  # defined by cmi5, in its namespace
UNITS = ["100", "101", "200", "201", "202"]  # 100 region, 101 trust..., re-parented at random
AS_OF = date(2025, 1, 1)
LATER = date(2027, 3, 1)  # after every completion; some employments of the histories end before it
TZ = "Europe/Oslo"
OPTS = queries.Options(suppression_threshold=0, expiring_window_days=60, timezone=TZ)


def today() -> date:
    """Today where compliance dates are counted (the date the status rows are computed for)."""
    return datetime.now(ZoneInfo(TZ)).date()


# --- histories --------------------------------------------------------------------------------

days = st.integers(min_value=0, max_value=900).map(lambda d: date(2023, 1, 1) + timedelta(days=d))
# statements may be dated after they are stored (the read models take the stored time, 0035);
# still before LATER
statement_days = st.one_of(days, st.integers(min_value=1, max_value=60).map(lambda d: today() + timedelta(days=d)))

statement_op = st.fixed_dictionaries({
    "op": st.just("statement"),
    "actor": st.sampled_from(EMPS),
    "verb": st.sampled_from(VERBS),
    "course": st.sampled_from(COURSES),
    "lesson": st.sampled_from([None, "l1", "l2"]),
    "day": statement_days,
    "hour": st.integers(min_value=0, max_value=23),
    "success": st.sampled_from([None, True, False]),
    "score": st.sampled_from([None, 0.2, 0.5, 0.9]),
    "duration": st.sampled_from([None, "PT5M", "PT1H2M", "PT30S"]),
})
void_op = st.fixed_dictionaries({"op": st.just("void"), "pick": st.integers(0, 1000),
                                 "early": st.booleans()})
link_op = st.fixed_dictionaries({"op": st.just("link"), "ifi": st.sampled_from(IFIS),
                                 "person": st.sampled_from([*PEOPLE, None])})
org_op = st.fixed_dictionaries({
    "op": st.just("org"), "unit": st.sampled_from(UNITS), "day": days,
    "parent": st.sampled_from([None, "100", "101", "200"]),
    "level": st.sampled_from(["region", "trust", "department"])})
job_op = st.fixed_dictionaries({
    "op": st.just("job"), "person": st.sampled_from(PEOPLE), "emp": st.sampled_from(["e1", "e2"]),
    "unit": st.sampled_from(UNITS), "role": st.sampled_from(["nurse", "doctor"]),
    "start": days, "months": st.sampled_from([None, 6, 24])})
req_op = st.fixed_dictionaries({
    "op": st.just("req"), "rid": st.sampled_from(["r1", "r2"]),
    "acts": st.lists(st.sampled_from(COURSES), min_size=1, max_size=2, unique=True),
    "units": st.sampled_from([[], ["101"], ["200", "201"]]),
    "roles": st.sampled_from([[], ["nurse"]]),
    "validity": st.sampled_from([None, 365, 730])})
catch_up_op = st.fixed_dictionaries({"op": st.just("catch_up"), "batch": st.integers(1, 7),
                                     "which": st.sampled_from(sorted(ALL))})

history = st.lists(st.one_of(statement_op, statement_op, void_op, link_op, org_op, job_op, req_op, catch_up_op),
                   min_size=1, max_size=30)


def make_statement(o: dict[str, Any]) -> dict[str, Any]:
    ts = datetime(o["day"].year, o["day"].month, o["day"].day, o["hour"], tzinfo=ZoneInfo("UTC"))
    obj_id = o["course"] + ("/" + o["lesson"] if o["lesson"] else "")
    s: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "actor": {"objectType": "Agent", "account": {"homePage": HOME, "name": o["actor"]}},
        "verb": {"id": (CMI5 if o["verb"] in CMI5_VERBS else "http://adlnet.gov/expapi/verbs/") + o["verb"],
                 "display": {"en-US": o["verb"]}},
        "object": {"objectType": "Activity", "id": obj_id},
        "timestamp": ts.isoformat(),
    }
    if o["lesson"]:
        s["context"] = {"contextActivities": {"parent": [{"id": o["course"]}]}}
    result: dict[str, Any] = {}
    if o["success"] is not None:
        result["success"] = o["success"]
    if o["score"] is not None:
        result["score"] = {"scaled": o["score"]}
    if o["duration"] is not None:
        result["duration"] = o["duration"]
    if result:
        s["result"] = result
    return s


def ref_event(o: dict[str, Any]) -> reference.RefEvent:
    if o["op"] == "link":
        if o["person"] is None:
            return reference.RefEvent(PERSON_UNLINKED, o["ifi"], {"ifi": o["ifi"]})
        return reference.RefEvent(PERSON_LINKED, o["ifi"], {"ifi": o["ifi"], "person_id": o["person"]})
    if o["op"] == "org":
        parent = o["parent"] if o["parent"] != o["unit"] else None
        p = {"unit_id": o["unit"], "id_kind": "resh", "name": f"Enhet {o['unit']}", "parent_id": parent,
             "level": o["level"], "valid_from": o["day"].isoformat(), "closed": False}
        return reference.RefEvent(ORG_UNIT, f"{o['unit']}@{o['day']}", p)
    if o["op"] == "job":
        end = None if o["months"] is None else (o["start"] + timedelta(days=30 * o["months"])).isoformat()
        p = {"person_id": o["person"], "employment_id": o["emp"], "unit_id": o["unit"], "role": o["role"],
             "profession": "sykepleier" if o["role"] == "nurse" else "lege", "valid_from": o["start"].isoformat(),
             "valid_to": end}
        return reference.RefEvent(EMPLOYMENT, f"{o['person']}\x1f{o['emp']}", p)
    p = {"requirement_id": o["rid"], "name": o["rid"], "activity_ids": o["acts"], "units": o["units"],
         "roles": o["roles"], "professions": [], "validity_days": o["validity"]}
    return reference.RefEvent(REQUIREMENT, o["rid"], p)


async def play(url: str, store_id: int, ops: list[dict[str, Any]], conn: asyncpg.Connection) -> None:
    pool = await create_pool(url, min_size=1, max_size=2)
    repo = PgStatementRepository(pool)
    who = principal(store_id)
    stored: list[str] = []
    voided: set[str] = set()
    try:
        for o in ops:
            if o["op"] == "statement":
                s = make_statement(o)
                await store_statements(repo, who, "1.0.3", [s])
                stored.append(s["id"])
            elif o["op"] == "void":
                if o["early"]:
                    # void a statement that arrives only afterwards (xAPI allows the order)
                    target = make_statement({**o, "op": "statement", "actor": "emp-a", "verb": "completed",
                                             "course": COURSES[0], "lesson": None, "day": date(2024, 6, 1),
                                             "hour": 12, "success": None, "score": None, "duration": None})
                    await store_statements(repo, who, "1.0.3", [voiding(target["id"])])
                    await store_statements(repo, who, "1.0.3", [target])
                    continue
                candidates = [i for i in stored if i not in voided]
                if candidates:
                    t = candidates[o["pick"] % len(candidates)]
                    voided.add(t)
                    await store_statements(repo, who, "1.0.3", [voiding(t)])
            elif o["op"] == "catch_up":
                await runner.catch_up(conn, ALL[o["which"]], batch_size=o["batch"])
            else:
                await reference.append(conn, store_id, [ref_event(o)])
    finally:
        await pool.close()


def voiding(target: str) -> dict[str, Any]:
    return {"actor": {"objectType": "Agent", "account": {"homePage": HOME, "name": "admin"}},
            "verb": {"id": VOIDED_VERB, "display": {"en-US": "voided"}},
            "object": {"objectType": "StatementRef", "id": target}}


# --- brute force: the read models straight from the log, in Python ----------------------------

class BruteForce:
    def __init__(self, events: list[Event]) -> None:
        self.voided: set[str] = set()
        self.facts: list[tuple[Event, Any]] = []
        self.links: dict[str, str] = {}
        self.units: dict[tuple[str, date], dict[str, Any]] = {}
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.reqs: dict[str, dict[str, Any]] = {}
        for ev in events:
            p = ev.payload
            if ev.kind == "statement":
                f = statement_facts(ev)
                if f.voids:
                    self.voided.add(f.voids)
                else:
                    self.facts.append((ev, f))
            elif ev.kind == PERSON_LINKED:
                self.links[p["ifi"]] = p["person_id"]
            elif ev.kind == PERSON_UNLINKED:
                self.links.pop(p["ifi"], None)
            elif ev.kind == ORG_UNIT:
                self.units[(p["unit_id"], date.fromisoformat(p["valid_from"]))] = p
            elif ev.kind == EMPLOYMENT:
                self.jobs[(p["person_id"], p["employment_id"])] = p
            elif ev.kind == REQUIREMENT:
                self.reqs[p["requirement_id"]] = p
        self.live = [(ev, f) for ev, f in self.facts if f.statement_id not in self.voided]

    def person(self, ifi: str) -> str:
        return self.links.get(ifi, ifi)

    def transcript(self, person: str) -> list[tuple[Any, ...]]:
        out = []
        for _ev, f in self.live:
            if f.verb in COMPLETION_VERBS and f.activity_id and self.person(f.ifi) == person:
                # docs/projections.md: the longest validity of the requirements the activity
                # satisfies; none when one of them never expires, or for a failed attempt (the
                # model said "the longest of those that expire" until hypothesis found a
                # requirement that never expires beside one that does)
                rs = [r for r in self.reqs.values() if f.activity_id in r["activity_ids"]]
                ds = [r["validity_days"] for r in rs if r["validity_days"] is not None]
                never = len(ds) < len(rs)
                # the day it stops counting, as compliance: its date in the reporting time zone
                # + the validity (it was the instant + the days until an audit)
                until = (f.at.astimezone(ZoneInfo(TZ)).date() + timedelta(days=max(ds))
                         if ds and not never and f.success is not False else None)
                out.append((f.statement_id, f.activity_id, f.verb, f.success, f.score, f.duration_s, f.at, until))
        return sorted(out, key=lambda r: (r[6], r[0]))

    def course_status(self) -> list[tuple[Any, ...]]:
        by: dict[tuple[str, str], list[tuple[Event, Any]]] = defaultdict(list)
        for ev, f in self.live:
            for c in f.courses:
                by[(c, self.person(f.ifi))].append((ev, f))
        courses: dict[str, dict[str, Any]] = {}
        adl = "http://adlnet.gov/expapi/verbs/"
        for (course, _person), items in sorted(by.items()):
            c = courses.setdefault(course, {"learners": 0, **{k: 0 for k in queries.COUNTS}, "scores": [],
                                            "durations": [], "stops": defaultdict(int)})
            verbs = {f.verb for _, f in items}
            # results count for the course only when it is their object, not one of its modules
            own = [f for _, f in items if f.activity_id == course]
            results = {f.verb for f in own}
            c["learners"] += 1
            c["registered"] += adl + "registered" in verbs
            c["started"] += bool(verbs - {adl + "registered"})
            # a cmi5 course is completed when the LMS says so (satisfied); a learner who failed
            # and then passed counts as passed only; one whose AU was waived did not stop in it
            completed = adl + "completed" in results or SATISFIED in results
            passed = adl + "passed" in results
            done = completed or passed or WAIVED in results
            c["completed"] += completed
            c["passed"] += passed
            c["failed"] += adl + "failed" in results and not passed
            # averages are over learners, of each one's latest result of the course itself (the
            # model averaged every attempt, which the SQL stopped doing; hypothesis found two
            # scored completions of one learner at one time)
            scored = [(ev, f) for ev, f in items if f.activity_id == course and f.score is not None
                      and f.verb in {adl + "completed", adl + "passed", adl + "failed"}]
            timed = [(ev, f) for ev, f in items if f.activity_id == course and f.duration_s is not None
                     and f.verb in {adl + "completed", adl + "passed"}]
            if scored:
                c["scores"].append(max(scored, key=lambda x: (x[1].at, x[0].position))[1].score)
            if timed:
                c["durations"].append(max(timed, key=lambda x: (x[1].at, x[0].position))[1].duration_s)
            if not done:
                last = max(items, key=lambda x: (x[1].at, x[0].position))
                c["stops"][last[1].activity_id or course] += 1
        out = []
        for course, c in sorted(courses.items()):
            avg_s = round(sum(c["scores"]) / len(c["scores"]), 6) if c["scores"] else None
            avg_d = round(sum(c["durations"]) / len(c["durations"]), 6) if c["durations"] else None
            out.append((course, c["learners"], *(c[k] for k in queries.COUNTS), avg_s, avg_d, dict(c["stops"])))
        return out

    def unit_version(self, unit: str, d: date) -> dict[str, Any] | None:
        vs = [(vf, p) for (u, vf), p in self.units.items() if u == unit and vf <= d]
        return max(vs, key=lambda x: x[0])[1] if vs else None

    def ancestors(self, unit: str, d: date) -> list[tuple[str, str]]:
        """(ancestor id, level) from the unit itself upwards, as the SQL walks it (depth < 32)."""
        out: list[tuple[str, str]] = []
        v = self.unit_version(unit, d)
        depth = 0
        while v is not None and depth <= 32:
            out.append((v["unit_id"], v["level"]))
            parent = v["parent_id"]
            v = self.unit_version(parent, d) if parent else None
            depth += 1
        return out

    def compliance(self, d: date, window: int) -> list[tuple[Any, ...]]:
        tz = ZoneInfo(TZ)
        rows = set()
        for job in self.jobs.values():
            start = date.fromisoformat(job["valid_from"])
            end = date.fromisoformat(job["valid_to"]) if job["valid_to"] else None
            if not (start <= d and (end is None or end > d)):
                continue
            anc = {a for a, _ in self.ancestors(job["unit_id"], d)}
            for r in self.reqs.values():
                if r["roles"] and job["role"] not in r["roles"]:
                    continue
                if r["professions"] and job["profession"] not in r["professions"]:
                    continue
                if r["units"] and not (job["unit_id"] in r["units"] or anc & set(r["units"])):
                    continue
                dates = [f.at.astimezone(tz).date() for _, f in self.live
                         if f.verb in COMPLETION_VERBS and f.activity_id in r["activity_ids"]
                         and f.success is not False and self.person(f.ifi) == job["person_id"]
                         and f.at.astimezone(tz).date() <= d]
                last = max(dates) if dates else None
                days_ = r["validity_days"]
                expires = last + timedelta(days=days_) if last and days_ is not None else None
                if last is None:
                    status = "missing"
                elif days_ is None:
                    status = "valid"
                elif expires <= d:
                    status = "expired"
                elif expires <= d + timedelta(days=window):
                    status = "expiring"
                else:
                    status = "valid"
                rows.add((job["person_id"], job["unit_id"], r["requirement_id"], last, expires, status))
        return sorted(rows, key=lambda x: (x[1], x[0], x[2]))

    def rollup(self, d: date, window: int, level: str) -> list[tuple[Any, ...]]:
        rows = set()
        for person, unit, rid, _last, _exp, status in self.compliance(d, window):
            g = unit if level == "unit" else next((a for a, lv in self.ancestors(unit, d) if lv == level), None)
            rows.add((g, person, rid, status))
        counts: dict[tuple[Any, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(queries.STATUSES, 0))
        for g, _person, rid, status in rows:
            counts[(g, rid)][status] += 1
        return sorted(((g, rid, sum(c.values()), *(c[s] for s in queries.STATUSES)) for (g, rid), c in counts.items()),
                      key=lambda x: (x[0] is None, x[0] or "", x[1]))


# --- reading the read models ------------------------------------------------------------------

# The people per (store, level, group, requirement, expiry date) of the compliance status rows:
# the summary rows and the changes not folded into them yet, together.
STATUS_HISTOGRAM = (
    "SELECT store_id, level, group_id, requirement_id, expires_on, sum(n) AS n FROM ("
    " SELECT s.store_id, s.level, s.group_id, s.requirement_id, u.expires_on, u.n"
    " FROM rm_compliance.status_summary s, unnest(s.dates, s.counts) AS u(expires_on, n)"
    " WHERE u.expires_on > '-infinity'"
    " UNION ALL SELECT store_id, level, group_id, requirement_id, '-infinity', missing"
    " FROM rm_compliance.status_summary"
    " UNION ALL SELECT store_id, level, group_id, requirement_id, expires_on, n"
    " FROM rm_compliance.status_pending) x"
    " GROUP BY 1, 2, 3, 4, 5 HAVING sum(n) <> 0")


async def dump(conn: asyncpg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every read-model table (checkpoints without their timestamps)."""
    out = {}
    tables = await conn.fetch("SELECT table_schema, table_name FROM information_schema.tables "
                              "WHERE table_schema LIKE 'rm\\_%' ORDER BY 1, 2")
    for t in tables:
        if t[1] in ("status_summary", "status_pending"):
            continue  # how much is folded into the summary depends on the batches: compared below
        # (not the times rows were written; status_meta.max_completed is only an upper bound
        # between full computations)
        cols = {"checkpoint": "store_id, position, failed_position",
                "status_meta": "store_id, as_of, tz"}.get(t[1], "*")
        rows = await conn.fetch(f"SELECT {cols} FROM {t[0]}.{t[1]}")
        out[f"{t[0]}.{t[1]}"] = sorted(tuple(r) for r in rows)
    # the people per (level, group, requirement, expiry date): summary and pending together
    out["rm_compliance.status_summary+pending"] = sorted(tuple(r) for r in await conn.fetch(STATUS_HISTOGRAM))
    return out


async def read_models(conn: asyncpg.Connection, store_id: int) -> dict[str, Any]:
    persons = sorted({*PEOPLE, *IFIS})
    out: dict[str, Any] = {}
    for p in persons:
        out[f"transcript:{p}"] = [
            (r["statement_id"], r["activity_id"], r["verb"], r["success"], r["score"], r["duration_s"],
             r["completed_at"], r["expires_on"]) for r in await queries.transcript(conn, [store_id], p)]
    out["course_status"] = [
        (r["course_id"], r["learners"], *(r[k] for k in queries.COUNTS),
         None if r["avg_score"] is None else round(r["avg_score"], 6),
         None if r["avg_duration_s"] is None else round(r["avg_duration_s"], 6), r["stopped_at"])
        for r in await queries.course_status(conn, [store_id], options=OPTS)]
    # compliance as of a date the status rows cannot answer (completions after it), today (they
    # must answer), and a later date (they answer unless an employment or unit changes between);
    # today also from the fact tables, to compare the two ways directly
    assert await queries.compliance_source(conn, [store_id], today(), TZ) == "status"
    for d, source in [(AS_OF, None), (today(), None), (today(), "facts"), (LATER, None)]:
        out.update(await compliance_views(conn, store_id, d, source))
    return out


async def compliance_views(conn: asyncpg.Connection, store_id: int, d: date, source: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    key = f"{d}:{source or 'auto'}:"
    out[key + "compliance"] = [
        (r["person_id"], r["unit_id"], r["requirement_id"], r["last_completed"], r["expires_on"], r["status"])
        for r in await queries.compliance(conn, [store_id], as_of=d, options=OPTS, source=source)]
    for unit in UNITS:
        out[f"{key}compliance:unit={unit}"] = [
            (r["person_id"], r["unit_id"], r["requirement_id"], r["last_completed"], r["expires_on"], r["status"])
            for r in await queries.compliance(conn, [store_id], as_of=d, unit=unit, options=OPTS, source=source)]
    for level in ("unit", "trust", "region"):
        out[f"{key}rollup:{level}"] = [
            (r["group_id"], r["requirement_id"], r["total"], *(r[s] for s in queries.STATUSES))
            for r in await queries.compliance_rollup(conn, [store_id], level=level, as_of=d, options=OPTS,
                                                     suppress=False, source=source)]
    return out


def expected(bf: BruteForce) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in sorted({*PEOPLE, *IFIS}):
        out[f"transcript:{p}"] = bf.transcript(p)
    out["course_status"] = bf.course_status()
    for d, source in [(AS_OF, "auto"), (today(), "auto"), (today(), "facts"), (LATER, "auto")]:
        key = f"{d}:{source}:"
        out[key + "compliance"] = bf.compliance(d, OPTS.expiring_window_days)
        for unit in UNITS:
            # the unit itself, or a unit below it in the tree as of the date
            out[f"{key}compliance:unit={unit}"] = [
                row for row in out[key + "compliance"]
                if row[1] == unit or unit in {a for a, _ in bf.ancestors(row[1], d)}]
        for level in ("unit", "trust", "region"):
            out[f"{key}rollup:{level}"] = bf.rollup(d, OPTS.expiring_window_days, level)
    return out


async def check(pg: EmbeddedPostgres, ops: list[dict[str, Any]]) -> None:
    url = await new_database(pg)
    conn = await runner.connect(url)
    try:
        sid = await PgCredentialRepository(conn).create_store("hist", None)
        await play(url, sid, ops, conn)
        for p in ALL.values():
            await runner.catch_up(conn, p, batch_size=3)
        failed = [(s.projection, s.error) for s in await runner.status(conn, list(ALL.values())) if s.error]
        assert not failed
        incremental = await dump(conn)
        inc_models = await read_models(conn, sid)
        for p in ALL.values():
            await runner.rebuild(conn, p, batch_size=4)
        rebuilt = await dump(conn)
        assert rebuilt == incremental
        assert await read_models(conn, sid) == inc_models
        # all at once (`rebuild all`): the statement facts extracted once, in chunks of a few
        # positions on several connections, into every read model's tables
        await runner.rebuild_concurrently(url, list(ALL.values()), batch_size=5, prefill_chunk=3,
                                           status_parts=3)
        assert await dump(conn) == incremental
        events = [Event(r["store_id"], r["position"], r["kind"], r["recorded_at"], r["statement_id"], r["payload"])
                  for r in await conn.fetch("SELECT store_id, position, kind, recorded_at, statement_id::text "
                                            "AS statement_id, payload FROM events ORDER BY position")]
        want = expected(BruteForce(events))
        for key in want:
            assert inc_models[key] == want[key], key
    finally:
        await conn.close()
        admin = await asyncpg.connect(pg.url())
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")
        finally:
            await admin.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(ops=history)
def test_incremental_equals_rebuild_equals_brute_force(pg: EmbeddedPostgres, ops: list[dict[str, Any]]) -> None:
    asyncio.run(check(pg, ops))


def test_a_known_history_with_every_kind_of_change(pg: EmbeddedPostgres) -> None:
    d = date(2024, 3, 1)
    ops: list[dict[str, Any]] = [
        {"op": "org", "unit": "100", "day": date(2023, 1, 1), "parent": None, "level": "region"},
        {"op": "org", "unit": "101", "day": date(2023, 1, 1), "parent": "100", "level": "trust"},
        {"op": "org", "unit": "200", "day": date(2023, 1, 1), "parent": "100", "level": "trust"},
        {"op": "org", "unit": "201", "day": date(2023, 1, 1), "parent": "101", "level": "department"},
        {"op": "org", "unit": "201", "day": date(2024, 6, 1), "parent": "200", "level": "department"},  # moves
        {"op": "job", "person": "P1", "emp": "e1", "unit": "201", "role": "nurse", "start": date(2023, 1, 1),
         "months": None},
        {"op": "job", "person": "P2", "emp": "e1", "unit": "201", "role": "nurse", "start": date(2023, 1, 1),
         "months": None},
        {"op": "req", "rid": "r1", "acts": [COURSES[0]], "units": ["101", "200"], "roles": ["nurse"],
         "validity": 365},
        # the compliance status rows are computed here; what follows changes them incrementally
        {"op": "catch_up", "batch": 3, "which": "compliance"},
        {"op": "link", "ifi": IFIS[0], "person": "P1"},
        {"op": "link", "ifi": IFIS[1], "person": "P1"},
        {"op": "statement", "actor": "emp-b", "verb": "completed", "course": COURSES[0], "lesson": None, "day": d,
         "hour": 23, "success": True, "score": 0.9, "duration": "PT5M"},
        {"op": "statement", "actor": "emp-c", "verb": "passed", "course": COURSES[0], "lesson": None, "day": d,
         "hour": 1, "success": True, "score": 0.5, "duration": None},
        {"op": "void", "pick": 1, "early": False},
        {"op": "link", "ifi": IFIS[2], "person": "P2"},
        {"op": "statement", "actor": "emp-d", "verb": "attempted", "course": COURSES[1], "lesson": "l1",
         "day": d, "hour": 3, "success": None, "score": None, "duration": None},
        {"op": "void", "pick": 0, "early": True},
        {"op": "catch_up", "batch": 2, "which": "compliance"},
        {"op": "job", "person": "P3", "emp": "e1", "unit": "201", "role": "nurse", "start": date(2024, 1, 1),
         "months": None},
        {"op": "link", "ifi": IFIS[1], "person": "P3"},
        {"op": "statement", "actor": "emp-a", "verb": "completed", "course": COURSES[0], "lesson": None,
         "day": date(2024, 8, 1), "hour": 9, "success": None, "score": None, "duration": None},
    ]
    asyncio.run(check(pg, ops))
