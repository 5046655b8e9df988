"""Compliance query latency on a region-sized read model, beside a baseline from the same run.

Builds, on a fresh durable embedded PostgreSQL: an org tree (one region, 11 trusts, departments),
``--people`` made-up people (one identifier and one employment each), 20 requirements and
``--statements`` completion/attempt statements written straight into the log, then rebuilds the
compliance read model from the log and times, ``--runs`` times each:

(baseline) one pass over the read model's completions (``count(*)``, a sequential scan);
(unit)     ``GET /api/v1/compliance?unit=...``: the people of one department, all requirements;
(trust)    ``GET /api/v1/compliance/rollup?level=trust``: every trust of the region;
(region)   ``GET /api/v1/compliance/rollup?level=region``.

    python -m bench.compliance                                   # 80,000 people, 5,000,000 statements
    python -m bench.compliance --people 8000 --statements 500000 # a tenth, for a quick look

Each query runs under a statement timeout (``--timeout`` seconds); a run that hits it is
reported as such. Target (issue 5): p95 at most 100 ms for each of unit, trust and region.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from bench.cluster import bench_database, percentile
from lrs.store.migrate import migrate
from projections import queries, runner
from projections.facts import EMPLOYMENT, ORG_UNIT, PERSON_LINKED, REQUIREMENT
from projections.models import COMPLIANCE

HOME = "https://id.example.org"
COURSES = "https://courses.example.org"
TRUSTS = 11
DEPARTMENTS = 20  # per trust
ROLES = ["nurse", "doctor", "secretary", "cleaner"]
VERBS = ["attempted", "completed", "passed", "failed"]
T0 = datetime(2022, 1, 1, tzinfo=UTC)


def reference_events() -> list[tuple[str, dict[str, Any]]]:
    """Org units and requirements (people come separately)."""
    out: list[tuple[str, dict[str, Any]]] = [
        (ORG_UNIT, {"unit_id": "R", "valid_from": "2020-01-01", "name": "Region", "parent_id": None,
                    "level": "region"})]
    for t in range(TRUSTS):
        out.append((ORG_UNIT, {"unit_id": f"T{t}", "valid_from": "2020-01-01", "name": f"Trust {t}",
                               "parent_id": "R", "level": "trust"}))
        for d in range(DEPARTMENTS):
            out.append((ORG_UNIT, {"unit_id": f"T{t}-D{d}", "valid_from": "2020-01-01", "name": f"Department {t}.{d}",
                                   "parent_id": f"T{t}", "level": "department"}))
    for k in range(20):
        out.append((REQUIREMENT, {
            "requirement_id": f"req-{k}", "name": f"Requirement {k}",
            "activity_ids": [f"{COURSES}/c{k}/m{m}" for m in range(5)],
            "units": [f"T{k % TRUSTS}"] if k >= 15 else [],
            "roles": [ROLES[k % len(ROLES)]] if 10 <= k < 15 else [],
            "validity_days": [365, 730, None][k % 3]}))
    return out


def person_events(i: int, rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    return [
        (PERSON_LINKED, {"ifi": f"account:{HOME}|emp-{i}", "person_id": f"P{i}"}),
        (EMPLOYMENT, {"person_id": f"P{i}", "employment_id": "e1",
                      "unit_id": f"T{rng.randrange(TRUSTS)}-D{rng.randrange(DEPARTMENTS)}",
                      "role": rng.choice(ROLES), "profession": "", "valid_from": "2020-01-01", "valid_to": None}),
    ]


def statement(i: int, people: int, rng: random.Random) -> dict[str, Any]:
    verb = rng.choice(VERBS)
    at = T0 + timedelta(seconds=i * 15)
    return {"id": str(uuid.UUID(int=rng.getrandbits(128))),
            "actor": {"objectType": "Agent", "account": {"homePage": HOME, "name": f"emp-{rng.randrange(people)}"}},
            "verb": {"id": f"http://adlnet.gov/expapi/verbs/{verb}", "display": {"en-US": verb}},
            "object": {"objectType": "Activity", "id": f"{COURSES}/c{rng.randrange(60)}/m{rng.randrange(5)}"},
            "result": {"success": rng.random() < 0.9, "score": {"scaled": round(rng.random(), 2)}, "duration": "PT9M"},
            "timestamp": at.isoformat(), "stored": at.isoformat(), "version": "1.0.3",
            "authority": {"objectType": "Agent", "account": {"homePage": "https://spor.example.org", "name": "bench"}}}


async def load(url: str, people: int, statements: int) -> int:
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        sid = await conn.fetchval("INSERT INTO stores (name) VALUES ('region') RETURNING id")
        rng = random.Random(5)
        position = 0
        cols = ["store_id", "position", "kind", "recorded_at", "statement_id", "payload"]
        rows: list[tuple[Any, ...]] = []
        for kind, payload in reference_events() + [e for i in range(people) for e in person_events(i, rng)]:
            position += 1
            rows.append((sid, position, kind, T0, None, orjson.dumps(payload).decode()))
        await conn.copy_records_to_table("events", records=rows, columns=cols)
        chunk = 100_000
        for start in range(0, statements, chunk):
            rows = []
            for i in range(start, min(statements, start + chunk)):
                s = statement(i, people, rng)
                position += 1
                rows.append((sid, position, "statement", T0 + timedelta(seconds=i * 15), uuid.UUID(s["id"]),
                             orjson.dumps(s).decode()))
            await conn.copy_records_to_table("events", records=rows, columns=cols)
        await conn.execute("UPDATE stores SET last_position = $1 WHERE id = $2", position, sid)
        await conn.execute("VACUUM ANALYZE events")
        return int(sid)
    finally:
        await conn.close()


async def timed(conn: asyncpg.Connection, runs: int, limit_s: float, call: Any) -> tuple[list[float], int]:
    """Milliseconds per run (runs over the statement timeout excluded) and how many were over."""
    await conn.execute(f"SET statement_timeout = {int(limit_s * 1000)}")
    out: list[float] = []
    timeouts = 0
    for _ in range(runs):
        t = time.perf_counter()
        try:
            await call()
        except asyncpg.QueryCanceledError:
            timeouts += 1
            continue
        out.append((time.perf_counter() - t) * 1000)
    return out, timeouts


async def main(people: int, statements: int, runs: int, limit_s: float) -> None:
    async with bench_database("spor-bench-compliance-") as url:
        t = time.perf_counter()
        sid = await load(url, people, statements)
        print(f"loaded {people:,} people, 20 requirements, {statements:,} statements "
              f"in {time.perf_counter() - t:.0f} s")
        conn = await runner.connect(url)
        try:
            t = time.perf_counter()
            await runner.rebuild(conn, COMPLIANCE)
            print(f"rebuilt the compliance read model in {time.perf_counter() - t:.0f} s")
            await conn.execute("ANALYZE")
            n = await conn.fetchval("SELECT count(*) FROM rm_compliance.completions")
            print(f"{n:,} completions in the read model")
            today = date(2025, 6, 1)
            opts = queries.Options(suppression_threshold=5, expiring_window_days=60, timezone="Europe/Oslo")
            cases = [
                ("baseline: count(*) over completions", lambda: conn.fetchval(
                    "SELECT count(*) FROM rm_compliance.completions")),
                ("unit: one department, every person", lambda: queries.compliance(
                    conn, [sid], as_of=today, unit="T3-D7", options=opts)),
                ("trust: rollup per trust", lambda: queries.compliance_rollup(
                    conn, [sid], level="trust", as_of=today, options=opts)),
                ("region: rollup of the region", lambda: queries.compliance_rollup(
                    conn, [sid], level="region", as_of=today, options=opts)),
            ]
            base_p95 = None
            for label, call in cases:
                ms, timeouts = await timed(conn, runs, limit_s, call)
                p95 = percentile(ms, 0.95)
                base_p95 = base_p95 or p95
                verdict = "" if label.startswith("baseline") else (
                    f"   target p95 <= 100 ms: {'meets' if ms and not timeouts and p95 <= 100 else 'BELOW'}")
                print(f"{label:<40} p50 {percentile(ms, 0.5):>9,.0f} ms  p95 {p95:>9,.0f} ms  "
                      f"({p95 / base_p95:.1f} x baseline; {timeouts} of {runs} runs over {limit_s:.0f} s){verdict}")
        finally:
            await conn.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="python -m bench.compliance", description=__doc__.split("\n\n")[0])
    ap.add_argument("--people", type=int, default=80_000)
    ap.add_argument("--statements", type=int, default=5_000_000)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--timeout", type=float, default=60.0, help="statement timeout per query, seconds")
    a = ap.parse_args()
    asyncio.run(main(a.people, a.statements, a.runs, a.timeout))
