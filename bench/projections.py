"""Projection benchmark (partial): rebuild throughput of all read models, beside a baseline
measured in the same run on the same cluster.

(a) baseline  reading the whole log in position order in batches (what any rebuild must do),
              events/s;
(b) rebuild   ``runner.rebuild`` of transcript, course_status and compliance (each replays the
              whole log into fresh tables and swaps), statements/s per projection, all three one
              after another, and all three at once (``spor projections rebuild all``).

The log is written straight into ``events`` (no statement index: projections read only the
log), with realistic completion/attempt statements of made-up people, 2% voided.

    python -m bench.projections                 # 100,000 statements
    python -m bench.projections --statements 1000000

Not yet measured here (left for the follow-up): live lag under sustained ingest, compliance
query p95 at 80,000 people / 20 requirements / 5,000,000 statements.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import orjson

from lrs.store.embedded import EmbeddedPostgres
from lrs.store.migrate import migrate
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


async def load(url: str, n: int) -> int:
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        sid = await conn.fetchval("INSERT INTO stores (name) VALUES ('bench') RETURNING id")
        rng = random.Random(1)
        t0 = datetime(2023, 1, 1, tzinfo=UTC)
        ids: list[str] = []
        rows = []
        for i in range(n):
            s_id, s = _statement(i, rng, t0)
            ids.append(s_id)
            if i and rng.random() < 0.02:
                target = ids[rng.randrange(len(ids) - 1)]
                s = {**s, "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
                     "object": {"objectType": "StatementRef", "id": target}}
            rows.append((sid, i + 1, "statement", t0, uuid.UUID(s_id), orjson.dumps(s).decode()))
        await conn.copy_records_to_table("events", records=rows,
                                         columns=["store_id", "position", "kind", "recorded_at", "statement_id",
                                                  "payload"])
        await conn.execute("UPDATE stores SET last_position = $1 WHERE id = $2", n, sid)
        await conn.execute("VACUUM ANALYZE events")
        return int(sid)
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


def _folder() -> Path:
    base = Path(tempfile.mkdtemp(prefix="spor-bench-proj-"))
    base.chmod(0o755)
    return base


async def main(n: int, batch: int) -> None:
    pg = EmbeddedPostgres(_folder(), durable=True)
    base = pg.data_dir
    admin = pg.start()
    try:
        c = await asyncpg.connect(admin)
        await c.execute("CREATE DATABASE bench")
        await c.close()
        url = pg.url("bench")
        t = time.perf_counter()
        await load(url, n)
        print(f"loaded {n:,} statements in {time.perf_counter() - t:.1f} s")
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
        print(f"(b) rebuild all three at once (spor projections rebuild all) {r:>10,.0f} statements/s  "
              f"({r / rate:.2f} x baseline)   target >= 20,000: {'meets' if r >= 20_000 else 'BELOW'}")
        conn = await runner.connect(url)
        try:
            pass
        finally:
            await conn.close()
    finally:
        pg.stop("fast")
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--statements", type=int, default=100_000)
    ap.add_argument("--batch-size", type=int, default=5000)
    a = ap.parse_args()
    asyncio.run(main(a.statements, a.batch_size))
