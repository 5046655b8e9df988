"""Compliance query latency on a region-sized read model, beside a baseline from the same run.

Builds, on a fresh durable embedded PostgreSQL: an org tree (one region, 11 trusts, departments),
``--people`` made-up people (one identifier and one employment each), 20 requirements and
``--statements`` completion/attempt statements over the 2.4 years up to now, written straight
into the log; rebuilds the compliance read model (the status rows included) and times as of
today, ``--runs`` times each:

(baseline) one pass over the read model's completions (``count(*)``, a sequential scan);
(unit)     ``GET /api/v1/compliance?unit=...``: the people of one department, all requirements;
(trust)    ``GET /api/v1/compliance/rollup?level=trust``: every trust of the region;
(region)   ``GET /api/v1/compliance/rollup?level=region``;
(units)    ``GET /api/v1/compliance/rollup?level=unit``: every department;

each read from the status rows (what the API does for today) and, ``--facts-runs`` times,
computed from the fact tables (what it does for a date the rows do not hold for). Then the
whole region's compliance rows as a CSV export (``GET /api/v1/compliance?format=csv``: a cursor
and the API's CSV chunks), beside PostgreSQL's own ``COPY ... TO STDOUT (FORMAT csv)`` of the
same rows, with the growth of this process's memory while it streams. Then ``--live`` more
statements are applied incrementally, as a worker would, keeping the rows current.

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
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import orjson

from bench.cluster import bench_database, percentile
from lrs.store.migrate import migrate
from projections import api, queries, runner
from projections.facts import EMPLOYMENT, ORG_UNIT, PERSON_LINKED, REQUIREMENT
from projections.models import COMPLIANCE
from projections.status import REPORTING_TIMEZONE

HOME = "https://id.example.org"
COURSES = "https://courses.example.org"
TRUSTS = 11
DEPARTMENTS = 20  # per trust
ROLES = ["nurse", "doctor", "secretary", "cleaner"]
VERBS = ["attempted", "completed", "passed", "failed"]
SPACING = 15  # seconds between statements: 5,000,000 of them span the 2.4 years before now


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


def statement(i: int, people: int, rng: random.Random, t0: datetime) -> dict[str, Any]:
    verb = rng.choice(VERBS)
    at = t0 + timedelta(seconds=i * SPACING)
    return {"id": str(uuid.UUID(int=rng.getrandbits(128))),
            "actor": {"objectType": "Agent", "account": {"homePage": HOME, "name": f"emp-{rng.randrange(people)}"}},
            "verb": {"id": f"http://adlnet.gov/expapi/verbs/{verb}", "display": {"en-US": verb}},
            "object": {"objectType": "Activity", "id": f"{COURSES}/c{rng.randrange(60)}/m{rng.randrange(5)}"},
            "result": {"success": rng.random() < 0.9, "score": {"scaled": round(rng.random(), 2)}, "duration": "PT9M"},
            "timestamp": at.isoformat(), "stored": at.isoformat(), "version": "1.0.3",
            "authority": {"objectType": "Agent", "account": {"homePage": "https://spor.example.org", "name": "bench"}}}


async def load(url: str, people: int, statements: int, t0: datetime) -> int:
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        sid = await conn.fetchval("INSERT INTO stores (name) VALUES ('region') RETURNING id")
        rng = random.Random(5)
        rows = [(kind, payload) for kind, payload in reference_events()]
        rows += [e for i in range(people) for e in person_events(i, rng)]
        await append_log(conn, sid, [(kind, t0, None, orjson.dumps(p).decode()) for kind, p in rows])
        await append_statements(conn, sid, range(statements), people, rng, t0)
        await conn.execute("VACUUM ANALYZE events")
        return int(sid)
    finally:
        await conn.close()


async def append_statements(conn: asyncpg.Connection, sid: int, numbers: range, people: int, rng: random.Random,
                            t0: datetime) -> None:
    """Statements number ``numbers`` (their times follow from the number), straight into the log."""
    chunk = 100_000
    for start in range(numbers.start, numbers.stop, chunk):
        batch = []
        for i in range(start, min(numbers.stop, start + chunk)):
            s = statement(i, people, rng, t0)
            batch.append(("statement", t0 + timedelta(seconds=i * SPACING), uuid.UUID(s["id"]),
                          orjson.dumps(s).decode()))
        await append_log(conn, sid, batch)


async def append_log(conn: asyncpg.Connection, sid: int, events: list[tuple[str, datetime, Any, str]]) -> None:
    """Events (kind, recorded_at, statement id, payload) after the store's last position."""
    head = await conn.fetchval("SELECT last_position FROM stores WHERE id = $1", sid)
    rows = [(sid, head + k + 1, *ev) for k, ev in enumerate(events)]
    await conn.copy_records_to_table("events", records=rows, columns=[
        "store_id", "position", "kind", "recorded_at", "statement_id", "payload"])
    await conn.execute("UPDATE stores SET last_position = $1 WHERE id = $2", head + len(events), sid)


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


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def export(conn: asyncpg.Connection, sid: int, today: date, opts: queries.Options) -> None:
    """The region's compliance rows as the API exports them, and COPY of the same rows."""
    async def sink(_: bytes) -> None:
        return None

    t = time.perf_counter()
    await conn.copy_from_query(
        "SELECT store_id, person_id, unit_id, requirement_id, last_completed, expires_on FROM rm_compliance.status "
        "WHERE store_id = $1 ORDER BY store_id, unit_id, person_id, requirement_id", sid,
        output=sink, format="csv", header=True)
    copy_s = time.perf_counter() - t
    sent: dict[str, Any] = {"rows": 0, "persons": set()}
    size, before, peak = 0, _rss_mb(), 0.0
    t = time.perf_counter()
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        rows = queries.compliance_all(conn, [sid], as_of=today, options=opts)
        async for chunk in api.csv_chunks(rows, api.columns("/v1/compliance"), sent, "person_id"):
            size += len(chunk)
            peak = max(peak, _rss_mb() - before)
    took = time.perf_counter() - t
    print(f"export: {sent['rows']:,} rows, {size / 1e6:,.0f} MB of CSV in {took:.1f} s "
          f"({sent['rows'] / took:,.0f} rows/s; {took / copy_s:.1f} x COPY's {copy_s:.1f} s); "
          f"this process grew by {peak:,.0f} MB while streaming")


async def main(people: int, statements: int, runs: int, facts_runs: int, live: int, limit_s: float) -> None:
    t0 = datetime.now(UTC) - timedelta(seconds=statements * SPACING)
    async with bench_database("spor-bench-compliance-") as url:
        t = time.perf_counter()
        sid = await load(url, people, statements, t0)
        print(f"loaded {people:,} people, 20 requirements, {statements:,} statements "
              f"in {time.perf_counter() - t:.0f} s")
        conn = await runner.connect(url)
        try:
            t = time.perf_counter()
            await runner.rebuild(conn, COMPLIANCE)
            print(f"rebuilt the compliance read model (status rows included) in {time.perf_counter() - t:.0f} s")
            await conn.execute("ANALYZE")
            n = await conn.fetchval("SELECT count(*) FROM rm_compliance.completions")
            rows = await conn.fetchval("SELECT count(*) FROM rm_compliance.status")
            summary = await conn.fetchval("SELECT count(*) FROM rm_compliance.status_summary")
            dates = await conn.fetchval("SELECT sum(cardinality(dates)) FROM rm_compliance.status_summary")
            print(f"{n:,} completions, {rows:,} status rows, {summary:,} summary rows ({dates:,} expiry dates) "
                  "in the read model")
            today = datetime.now(ZoneInfo(REPORTING_TIMEZONE)).date()
            opts = queries.Options(suppression_threshold=5, expiring_window_days=60)
            print(f"as of today ({today}) the status rows answer: "
                  f"{await queries.compliance_source(conn, [sid], today, opts.timezone) == 'status'}")
            cases: list[tuple[str, int, Any]] = [
                ("baseline: count(*) over completions", runs, lambda: conn.fetchval(
                    "SELECT count(*) FROM rm_compliance.completions"))]
            for source, n_runs in (("status", runs), ("facts", facts_runs)):
                cases += [
                    (f"unit: one department, every person [{source}]", n_runs, lambda s=source: queries.compliance(
                        conn, [sid], as_of=today, unit="T3-D7", options=opts, source=s)),
                    (f"trust: rollup per trust [{source}]", n_runs, lambda s=source: queries.compliance_rollup(
                        conn, [sid], level="trust", as_of=today, options=opts, source=s)),
                    (f"region: rollup of the region [{source}]", n_runs, lambda s=source: queries.compliance_rollup(
                        conn, [sid], level="region", as_of=today, options=opts, source=s)),
                    (f"units: rollup per unit [{source}]", n_runs, lambda s=source: queries.compliance_rollup(
                        conn, [sid], level="unit", as_of=today, options=opts, source=s)),
                ]
            base_p95 = None
            for label, n_runs, call in cases:
                if not n_runs:
                    continue
                ms, timeouts = await timed(conn, n_runs, limit_s, call)
                p95 = percentile(ms, 0.95)
                base_p95 = base_p95 or p95
                verdict = "" if "[status]" not in label else (
                    f"   target p95 <= 100 ms: {'meets' if ms and not timeouts and p95 <= 100 else 'BELOW'}")
                print(f"{label:<48} p50 {percentile(ms, 0.5):>9,.0f} ms  p95 {p95:>9,.0f} ms  "
                      f"({p95 / base_p95:.1f} x baseline; {timeouts} of {n_runs} runs over {limit_s:.0f} s){verdict}")
            await export(conn, sid, today, opts)
            if live:
                # new statements after the load, applied as a worker would (status rows kept current)
                await conn.execute("RESET statement_timeout")
                plain = await asyncpg.connect(url)  # (the runner's connection decodes json as text)
                try:
                    await append_statements(plain, sid, range(statements, statements + live), people,
                                            random.Random(6), t0)
                finally:
                    await plain.close()
                t = time.perf_counter()
                applied = await runner.catch_up(conn, COMPLIANCE, batch_size=1000)
                took = time.perf_counter() - t
                print(f"incremental: {applied:,} new statements applied in batches of 1,000 in {took:.1f} s "
                      f"({applied / took:,.0f}/s, status rows and counts kept current)")
        finally:
            await conn.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="python -m bench.compliance", description=__doc__.split("\n\n")[0])
    ap.add_argument("--people", type=int, default=80_000)
    ap.add_argument("--statements", type=int, default=5_000_000)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--facts-runs", type=int, default=1,
                    help="runs of each query computed from the fact tables, for comparison (0: none)")
    ap.add_argument("--live", type=int, default=20_000, help="statements applied incrementally at the end")
    ap.add_argument("--timeout", type=float, default=60.0, help="statement timeout per query, seconds")
    a = ap.parse_args()
    asyncio.run(main(a.people, a.statements, a.runs, a.facts_runs, a.live, a.timeout))
