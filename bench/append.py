"""The common statement append alone, on one connection: CPU per statement in PostgreSQL and in
the server's Python, beside a baseline measured in the same run.

bench/ingest.py (b) measures the whole server over HTTP, where the machine's two cores are shared
by the server, PostgreSQL and the load generators, and the rate moves with everything else on the
machine. This measures one part of it, with less noise: the append a server process makes for a
group of statements (``PgStatementRepository._write_group``: reservation, ``spor_append_group``,
the caches of known names and definitions), one group at a time on one connection, on a fresh
durable cluster. The statements are bench/ingest.py's, validated and prepared before the clock
starts, so neither parsing nor validation is counted.

(a) baseline  ``copy_records_to_table`` of the same bodies into a bare table
              (id uuid primary key, stored timestamptz, payload json), one COPY per group;
(b) append    the groups through ``_write_group``, after ``--warm-up`` groups (which fill the
              store's activities and the process's caches, as a running server's are).

For each: wall time, PostgreSQL CPU (the cluster's processes, ``bench.ingest.tree_cpu``) and
this process's CPU, per statement, and (b)/(a).

    python -m bench.append                   # 150 groups of 192 statements after 20
    python -m bench.append --groups 300 --group 100
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import orjson

from bench.cluster import bench_database
from bench.ingest import Generator, Population, tree_cpu
from lrs.ops.principal import Principal
from lrs.ops.statements import Prepared, prepare, validate
from lrs.store.credentials import PgCredentialRepository
from lrs.store.db import create_pool
from lrs.store.migrate import migrate
from lrs.store.statements import PgStatementRepository, _Write

AUTHORITY = {"objectType": "Agent", "account": {"homePage": "https://bench.example.org", "name": "bench"}}


@dataclass
class Figures:
    wall: float
    pg_cpu: float
    own_cpu: float

    def per_statement(self, n: int) -> str:
        return (f"wall {1e6 * self.wall / n:6.1f} us, PostgreSQL CPU {1e6 * self.pg_cpu / n:6.1f} us, "
                f"this process's CPU {1e6 * self.own_cpu / n:6.1f} us a statement")


def _postmaster(data_directory: str) -> int:
    """The postmaster's pid, from its pid file."""
    return int(Path(data_directory, "postmaster.pid").read_text().split()[0])


class Clock:
    def __init__(self, postmaster: int) -> None:
        self.postmaster = postmaster

    def __enter__(self) -> Clock:
        self.t0, self.c0, self.p0 = time.perf_counter(), tree_cpu(self.postmaster), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.figures = Figures(time.perf_counter() - self.t0, tree_cpu(self.postmaster) - self.c0,
                               time.process_time() - self.p0)


def _groups(store_id: int, count: int, size: int) -> list[list[Prepared]]:
    who = Principal(store_id, None, frozenset({"all"}), AUTHORITY, "account:https://bench.example.org|bench")
    gen = Generator(Population(), seed=7)
    out = []
    for _ in range(count):
        group = []
        for _ in range(size):
            s = gen.statement()
            validate(s, "1.0.3", "")
            group.append(prepare(s, who, "1.0.3"))
        out.append(group)
    return out


async def run(args: argparse.Namespace) -> None:
    async with bench_database("spor-bench-append-") as url:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
            store = await PgCredentialRepository(conn).create_store("bench", "Benchmark HF")
            await conn.execute("CREATE TABLE bench_baseline (id uuid PRIMARY KEY, stored timestamptz, payload json)")
            postmaster = _postmaster(await conn.fetchval("SHOW data_directory"))
        finally:
            await conn.close()
        groups = _groups(store, args.warm_up + args.groups, args.group)
        n = args.groups * args.group
        print(f"Spor append benchmark: {args.groups} groups of {args.group} statements after {args.warm_up}, "
              f"one connection, durable cluster")

        base = await asyncpg.connect(url)
        try:
            rows = [[(uuid.UUID(p.id), datetime.now(UTC), orjson.dumps(p.body).decode()) for p in g]
                    for g in groups[args.warm_up:]]
            with Clock(postmaster) as a:
                for chunk in rows:
                    await base.copy_records_to_table("bench_baseline", columns=["id", "stored", "payload"],
                                                     records=chunk)
        finally:
            await base.close()
        print(f"(a) baseline COPY:  {a.figures.per_statement(n)}")

        pool = await create_pool(url, min_size=1, max_size=1)
        try:
            repo = PgStatementRepository(pool)
            for group in groups[:args.warm_up]:
                await repo._write_group(store, [_Write(group, [], True)])
            with Clock(postmaster) as b:
                for group in groups[args.warm_up:]:
                    done = await repo._write_group(store, [_Write(group, [], True)])
                    if not isinstance(done[0], datetime):
                        raise SystemExit(f"an append failed: {done[0]!r}")
        finally:
            await pool.close()
        print(f"(b) append:         {b.figures.per_statement(n)}")
        pg_ratio = f"{b.figures.pg_cpu / a.figures.pg_cpu:.2f}" if a.figures.pg_cpu else "n/a (too short to measure)"
        print(f"    (b)/(a): wall {b.figures.wall / a.figures.wall:.2f}, PostgreSQL CPU {pg_ratio}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--groups", type=int, default=150, help="groups measured")
    p.add_argument("--group", type=int, default=192, help="statements a group (bench/ingest (b) groups ~190)")
    p.add_argument("--warm-up", type=int, default=20, help="groups appended before the clock starts")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
