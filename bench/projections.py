"""Projection benchmark: rebuild throughput of all read models and live lag, beside baselines
measured in the same run on the same cluster (compliance query latency: bench/compliance.py).

(a) baseline  reading the whole log in position order in batches (what any rebuild must do),
              events/s;
(b) rebuild   ``runner.rebuild`` of transcript, course_status and compliance (each replays the
              whole log into fresh tables and swaps), statements/s per projection, all three one
              after another, and all three at once (``spor projections rebuild all``).

The log is written straight into ``events`` (no statement index: projections read only the
log): first the region of bench.compliance (org tree, ``--people`` made-up people linked and
employed, 20 requirements), then realistic completion/attempt statements of those people, 2%
voided, a tenth of them about courses a requirement counts. The compliance rebuild includes
computing its status rows; in (c) the worker keeps them current.

    python -m bench.projections                 # 100,000 statements
    python -m bench.projections --statements 1000000

(c) live lag  statements appended through the real write path (validation, group appender, the
              one-round-trip append) at a steady rate (default 2,000/s) for a while, with a
              ``spor projections run compliance`` worker process running: for every statement,
              the time from its stored time (taken inside the append transaction, so this
              over-states the lag by the append's own duration) until the compliance checkpoint
              covering it is visible to a poller (every 10 ms): p50/p95/p99. Beside it, the
              baseline: the append latency (submit to commit) of the same statements.

    python -m bench.projections --lag-rate 2000 --lag-seconds 30

"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson

from bench.cluster import bench_database, percentile
from bench.compliance import append_log, person_events, reference_events
from lrs.ops.principal import Principal
from lrs.ops.statements import store_statements
from lrs.store.db import create_pool
from lrs.store.migrate import migrate
from lrs.store.statements import PgStatementRepository
from projections import runner
from projections.models import ALL

VERBS = ["attempted", "completed", "passed", "failed", "registered"]


def _statement(i: int, rng: random.Random, t0: datetime) -> tuple[str, dict]:
    sid = str(uuid.UUID(int=rng.getrandbits(128)))
    verb = rng.choice(VERBS)
    s = {"id": sid, "actor": {"objectType": "Agent", "account": {"homePage": "https://id.example.org",
                                                                 "name": f"emp-{rng.randrange(80_000)}"}},
         "verb": {"id": f"http://adlnet.gov/expapi/verbs/{verb}", "display": {"en-US": verb}},
         "object": {"objectType": "Activity", "id": f"https://courses.example.org/c{rng.randrange(200)}/m{rng.randrange(5)}",
                    "definition": {"name": {"nb-NO": "Modul"}}},
         "context": {"contextActivities": {"parent": [{"id": f"https://courses.example.org/c{rng.randrange(200)}"}]}},
         "result": {"success": rng.random() < 0.8, "score": {"scaled": round(rng.random(), 2)}, "duration": "PT12M"},
         "timestamp": (t0 + timedelta(seconds=i)).isoformat(), "stored": (t0 + timedelta(seconds=i)).isoformat(),
         "authority": {"objectType": "Agent", "account": {"homePage": "https://spor.example.org", "name": "bench"}},
         "version": "1.0.3"}
    return sid, s


async def load(url: str, n: int, people: int) -> int:
    """The log of store 1: reference data, then n statements; its length."""
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        sid = await conn.fetchval("INSERT INTO stores (name) VALUES ('bench') RETURNING id")
        rng = random.Random(1)
        t0 = datetime(2023, 1, 1, tzinfo=UTC)
        # the region of bench.compliance: org tree, people (linked, employed) and 20 requirements
        # over courses c0..c19, which the statements below also use
        ref = [] if not people else reference_events() + [e for i in range(people) for e in person_events(i, rng)]
        events: list[tuple[str, datetime, uuid.UUID | None, str]] = [
            (kind, t0, None, orjson.dumps(p).decode()) for kind, p in ref]
        ids: list[str] = []
        for i in range(n):
            s_id, s = _statement(i, rng, t0)
            ids.append(s_id)
            if i and rng.random() < 0.02:
                target = ids[rng.randrange(len(ids) - 1)]
                s = {**s, "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
                     "object": {"objectType": "StatementRef", "id": target}}
            events.append(("statement", t0, uuid.UUID(s_id), orjson.dumps(s).decode()))
        await append_log(conn, sid, events)
        await conn.execute("VACUUM ANALYZE events")
        return len(events)
    finally:
        await conn.close()


async def baseline(url: str, batch: int) -> float:
    conn = await runner.connect(url)
    try:
        t = time.perf_counter()
        pos, total = 0, 0
        while True:
            rows = await conn.fetch("SELECT position, kind, recorded_at, statement_id::text, payload FROM events "
                                    "WHERE store_id = 1 AND position > $1 ORDER BY position LIMIT $2", pos, batch)
            if not rows:
                break
            pos = rows[-1][0]
            total += len(rows)
        return total / (time.perf_counter() - t)
    finally:
        await conn.close()


async def live_lag(url: str, store_id: int, rate: int, seconds: float, start_index: int) -> None:
    """(c): steady ingest through the real write path, a real worker process, a poller."""
    env = {**os.environ, "SPOR_DATABASE_URL": url, "SPOR_LOG_LEVEL": "warning"}
    worker = subprocess.Popen(  # noqa: ASYNC220 (started once, before the measurement)
        [sys.executable, "-m", "lrs.cli", "projections", "run", "compliance"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pool = await create_pool(url, role="spor_app")
    repo = PgStatementRepository(pool)
    who = Principal(store_id, None, frozenset({"all"}),
                    {"objectType": "Agent", "account": {"homePage": "https://spor.example.org", "name": "bench"}},
                    "bench")
    poller = await asyncpg.connect(url)
    lags: list[float] = []
    append_ms: list[float] = []
    done = asyncio.Event()
    try:
        await asyncio.sleep(2.0)  # the worker starts and catches up
        cp = await poller.fetchval("SELECT position FROM rm_compliance.checkpoint WHERE store_id = $1", store_id) or 0
        head0 = await poller.fetchval("SELECT last_position FROM stores WHERE id = $1", store_id)

        async def poll() -> None:
            nonlocal cp
            while not done.is_set() or cp < await poller.fetchval("SELECT last_position FROM stores WHERE id = $1",
                                                                  store_id):
                now_cp = await poller.fetchval("SELECT position FROM rm_compliance.checkpoint WHERE store_id = $1",
                                               store_id)
                if now_cp > cp:
                    rows = await poller.fetch(
                        "SELECT extract(epoch FROM clock_timestamp() - recorded_at) AS lag FROM events "
                        "WHERE store_id = $1 AND position > greatest($2::bigint, $3::bigint) AND position <= $4",
                        store_id, cp, head0, now_cp)
                    lags.extend(float(r["lag"]) for r in rows)
                    cp = now_cp
                await asyncio.sleep(0.01)

        async def send(batch: list[dict]) -> None:
            t = time.perf_counter()
            await store_statements(repo, who, "1.0.3", batch)
            append_ms.append((time.perf_counter() - t) * 1000)

        poll_task = asyncio.create_task(poll())
        rng = random.Random(7)
        t0 = datetime(2024, 1, 1, tzinfo=UTC)
        per_tick, tick = max(1, rate // 100), 0.01
        sends: list[asyncio.Task[None]] = []
        start = time.perf_counter()
        i = start_index
        while time.perf_counter() - start < seconds:
            batch = []
            for _ in range(per_tick):
                _, st = _statement(i, rng, t0)
                batch.append(st)
                i += 1
            sends.append(asyncio.create_task(send(batch)))
            next_tick = start + len(sends) * tick
            await asyncio.sleep(max(0.0, next_tick - time.perf_counter()))
        await asyncio.gather(*sends)
        sent_rate = (i - start_index) / (time.perf_counter() - start)
        done.set()
        await asyncio.wait_for(poll_task, timeout=120)
        print(f"(c) live lag at {sent_rate:,.0f} statements/s for {seconds:.0f} s ({i - start_index:,} statements): "
              f"commit -> visible in compliance p50 {percentile(lags, 0.5) * 1000:,.0f} ms, "
              f"p95 {percentile(lags, 0.95) * 1000:,.0f} ms, p99 {percentile(lags, 0.99) * 1000:,.0f} ms   "
              f"target p95 <= 1,000 ms: {'meets' if percentile(lags, 0.95) <= 1.0 else 'BELOW'}")
        ratio = percentile(lags, 0.95) * 1000 / percentile(append_ms, 0.95)
        print(f"    baseline: append latency (submit -> committed) p50 {percentile(append_ms, 0.5):,.0f} ms, "
              f"p95 {percentile(append_ms, 0.95):,.0f} ms; ratio of p95s {ratio:.1f}")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        await poller.close()
        await pool.close()


async def main(n: int, people: int, batch: int, lag_rate: int, lag_seconds: float) -> None:
    async with bench_database("spor-bench-proj-") as url:
        t = time.perf_counter()
        head = await load(url, n, people)
        print(f"loaded {n:,} statements and {head - n:,} reference-data events ({people:,} people) "
              f"in {time.perf_counter() - t:.1f} s")
        rate = await baseline(url, batch)
        print(f"(a) baseline: read the log in batches of {batch}: {rate:,.0f} events/s")
        conn = await runner.connect(url)
        try:
            t_all = time.perf_counter()
            for p in ALL.values():
                t = time.perf_counter()
                await runner.rebuild(conn, p, batch_size=batch)
                r = n / (time.perf_counter() - t)
                print(f"(b) rebuild {p.name:<14} {r:>10,.0f} statements/s  ({r / rate:.2f} x baseline)")
            r = n / (time.perf_counter() - t_all)
            print(f"(b) rebuild all three, one after another {r:>10,.0f} statements/s  ({r / rate:.2f} x baseline)")
        finally:
            await conn.close()
        t = time.perf_counter()
        await runner.rebuild_concurrently(url, list(ALL.values()), batch_size=batch)
        r = n / (time.perf_counter() - t)
        print(f"(b) rebuild all three at once (rebuild all) {r:>10,.0f} statements/s  "
              f"({r / rate:.2f} x baseline)   target >= 20,000: {'meets' if r >= 20_000 else 'BELOW'}")
        if lag_seconds > 0:
            await live_lag(url, 1, lag_rate, lag_seconds, head)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--statements", type=int, default=100_000)
    ap.add_argument("--people", type=int, default=80_000,
                    help="people (with employments) and the 20 requirements of bench.compliance; 0: none")
    ap.add_argument("--batch-size", type=int, default=5000)
    ap.add_argument("--lag-rate", type=int, default=2000, help="statements/s appended in (c)")
    ap.add_argument("--lag-seconds", type=float, default=30.0, help="duration of (c); 0 skips it")
    a = ap.parse_args()
    asyncio.run(main(a.statements, a.people, a.batch_size, a.lag_rate, a.lag_seconds))
