"""The projection engine: checkpoints, leases, LISTEN/NOTIFY, failure, lag and rebuild.

A projection is a name, the table families of its read model, and ``apply(conn, events)``. Its
tables and its per-store checkpoint live in one schema, ``rm_<name>``.

Exactly-once effect. Each batch is applied in one transaction that first locks the store's
checkpoint row (``SELECT ... FOR UPDATE``), reads the events after it, writes the read-model rows
and moves the checkpoint. Two workers can never apply the same events: the second blocks on the
row lock and then sees the moved checkpoint. A crash rolls the whole batch back.

Leases (``projections.leases``: owner + expiry, renewed every batch) spread (projection, store)
pairs over worker processes so they do not queue on each other's row locks; a dead worker's
lease expires and another takes over. Correctness does not depend on them (see above).

Wake-up. Workers ``LISTEN spor_events`` and also poll, since a notification is only a hint
(it is lost while a worker reconnects, and statement appends only notify once the trigger in
docs/projections.md is installed).

Rebuild. Fill a fresh schema ``rm_<name>_build`` from position 0 (same DDL, through
``projections.create_read_model``), then in one transaction lock the live checkpoint table,
apply what arrived meanwhile and swap the schemas by renaming. Readers see the old version until
that commit; data and checkpoint travel together. ``rebuild_concurrently`` rebuilds several
read models at once and extracts the statement facts once for all of them, in parallel chunks
(``prefill_facts``), while each folds its reference data.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import socket
import sys
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import structlog

from lrs.store.db import close_quietly, connect_direct
from lrs.store.queries import sql
from projections import status as compliance_status
from projections.facts import FACT_TABLES, Window, apply_window, remove_voided

log = structlog.get_logger("spor.projections")
CHANNEL = "spor_events"
_SCHEMA = re.compile(r"^[a-z][a-z0-9_]*$")
_REBUILD_LOCK = 0x5370_5242  # with the projection's index: one rebuild of a projection at a time
# Events per window: a worker keeps windows small (each commits, and the lag follows); a
# rebuild's first pass folds reference data window by window, and larger windows make fewer
# round trips (1,000,000 statements, 80,000 people: `rebuild all` ~6% faster at 5,000 than at
# 1,000, which is what bench/projections measures).
RUN_BATCH = 1000
REBUILD_BATCH = 5000


class Projection:
    """A read model: a name, the table families it keeps, and how events change it."""

    def __init__(self, name: str, families: Sequence[str]) -> None:
        if not _SCHEMA.match(name):
            raise ValueError(f"bad projection name {name!r}")
        self.name = name
        self.families = frozenset(families)

    @property
    def schema(self) -> str:
        """The live schema of the read model (a constant derived from the name)."""
        return f"rm_{self.name}"

    async def apply(self, conn: asyncpg.Connection, window: Window) -> None:
        """Fold a window of one store's log into the tables first on the search_path."""
        changes = await apply_window(conn, window, self.families)
        # (a bulk window is a rebuild's first pass: its fresh schema has no status rows yet to
        # keep current, the settling after the pass computes them)
        if "status" in self.families and not window.bulk:
            await compliance_status.refresh(conn, window.store_id, changes)

    async def settle(self, conn: asyncpg.Connection, store_id: int) -> None:
        """Work that follows the log rather than an event: (re)compute the compliance status
        rows of a store that has none, and move them to a new day (projections/status.py)."""
        if "status" in self.families:
            await compliance_status.settle(conn, store_id)


async def init_connection(conn: asyncpg.Connection) -> None:
    """jsonb as Python values (orjson) on a projection connection, and planner settings for the
    fold's queries (measured at 80,000 people, 200,000 statements; docs/projections.md):

    - no JIT compilation: the planner misjudges the row counts of the status refresh (a few
      people, estimated as the whole table), and compiling its plan took 4 s of every
      1,000-statement window;
    - no Memoize: it cached the per-statement facts keyed on the payload (hashed six times a
      row, never hit), a quarter of the time of folding a window into the course facts;
    - work_mem 64 MB: computing a store's status rows sorts ~1 M rows, which spilled to disk
      at the default 4 MB.
    """
    await conn.execute("SET jit = off; SET work_mem = '64MB'")
    if conn.get_server_version() >= (14, 0):  # Memoize (and its setting) came in PostgreSQL 14
        await conn.execute("SET enable_memoize = off")

    def enc(v: Any) -> str:
        return v if isinstance(v, str) else orjson.dumps(v).decode()

    for t in ("jsonb", "json"):
        await conn.set_type_codec(t, encoder=enc, decoder=orjson.loads, schema="pg_catalog")


async def connect(url: str, *, connect_timeout: float = 60) -> asyncpg.Connection:
    """A single connection with the projection codecs (``connect_timeout``: for the connection
    to be made, asyncpg's default)."""
    conn = await connect_direct(url, connect_timeout=connect_timeout)
    try:
        await init_connection(conn)
    except BaseException:
        conn.terminate()
        raise
    return conn


async def _use_schema(conn: asyncpg.Connection, schema: str) -> None:
    if not _SCHEMA.match(schema):
        raise ValueError(f"bad schema {schema!r}")
    # SET cannot take a bind parameter; the schema is a constant derived from a projection name.
    await conn.execute(f"SET LOCAL search_path TO {schema}, public")


# Errors that say "this event cannot be applied" (bad data, a bug in a fold), as opposed to
# transient ones (connection lost, lock timeout, a schema swapped by a rebuild) that are retried.
DATA_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, KeyError, TypeError, AttributeError, AssertionError, ArithmeticError,
    asyncpg.DataError, asyncpg.IntegrityConstraintViolationError,
    # (an index entry too large for its row: retrying cannot help, it was retried for ever)
    asyncpg.ProgramLimitExceededError,
)


@dataclass
class StepResult:
    """What one apply step did."""

    applied: int = 0
    failed: bool = False


# A hook the kill-mid-batch test and benchmarks use: called after the rows are written and
# before the transaction commits.
BeforeCommit = Callable[[Projection, int, Window], Awaitable[None]]


async def step(conn: asyncpg.Connection, projection: Projection, store_id: int, *, batch_size: int = RUN_BATCH,
               schema: str | None = None, before_commit: BeforeCommit | None = None,
               bulk: bool = False, prefilled_upto: int = 0) -> StepResult:
    """Apply the next batch of one store's events to one projection, exactly once.

    On an error the batch is rolled back and replayed event by event, so the events before the
    bad one are applied and the bad one is recorded (position + error) as the failure.
    """
    target = schema or projection.schema
    try:
        async with conn.transaction():
            await _use_schema(conn, target)
            window = await _locked_window(conn, store_id, batch_size, bulk, prefilled_upto)
            if window is None:
                return StepResult(failed=True)
            if not window.count:
                return StepResult()
            await projection.apply(conn, window)
            await conn.execute(sql("rm_checkpoint_advance"), store_id, window.upto)
            if before_commit is not None:
                await before_commit(projection, store_id, window)
        return StepResult(window.count)
    except DATA_ERRORS as exc:
        if batch_size == 1:
            await _record_failure(conn, target, store_id, exc)
            return StepResult(failed=True)
    # find the event that fails: one transaction per event; those before it are applied
    applied = 0
    while applied < batch_size:
        r = await step(conn, projection, store_id, batch_size=1, schema=target, bulk=bulk,
                       prefilled_upto=prefilled_upto)
        applied += r.applied
        if r.failed:
            return StepResult(applied, failed=True)
        if r.applied == 0:
            break
    return StepResult(applied)


async def _locked_window(conn: asyncpg.Connection, store_id: int, batch_size: int,
                         bulk: bool = False, prefilled_upto: int = 0) -> Window | None:
    """The next batch of the store's log after the locked checkpoint (None: the read model has
    failed for the store). Statement events are not fetched: they are folded in the database."""
    cp = await _locked_checkpoint(conn, store_id)
    if cp is None:
        return None
    end = await conn.fetchrow(sql("projection_batch_end"), store_id, cp["position"], batch_size)
    assert end is not None
    return Window(store_id, cp["position"], end["upto"] or cp["position"], end["n"], bulk, prefilled_upto)


async def _locked_checkpoint(conn: asyncpg.Connection, store_id: int) -> asyncpg.Record | None:
    """The store's checkpoint row, locked for this transaction; None when the read model has
    failed for the store."""
    await conn.execute(sql("rm_checkpoint_ensure"), store_id)
    cp = await conn.fetchrow(sql("rm_checkpoint_lock"), store_id)
    assert cp is not None
    return cp if cp["failed_position"] is None else None


async def _record_failure(conn: asyncpg.Connection, schema: str, store_id: int, exc: BaseException) -> None:
    async with conn.transaction():
        await _use_schema(conn, schema)
        # (the row the failed batch made was rolled back with it when the store's first event
        # is the bad one: without it the failure went unrecorded and was met again and again)
        await conn.execute(sql("rm_checkpoint_ensure"), store_id)
        cp = await conn.fetchrow(sql("rm_checkpoint_lock"), store_id)
        position = (cp["position"] if cp else 0) + 1
        msg = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        await conn.execute(sql("rm_checkpoint_fail"), store_id, position, msg[:2000])


async def settle(conn: asyncpg.Connection, projection: Projection, store_id: int, *,
                 schema: str | None = None) -> None:
    """``projection.settle`` for one store, under its checkpoint lock (so no batch of the same
    store runs meanwhile); nothing for a store whose read model has failed."""
    async with conn.transaction():
        await _use_schema(conn, schema or projection.schema)
        if await _locked_checkpoint(conn, store_id) is not None:
            await projection.settle(conn, store_id)


async def catch_up(conn: asyncpg.Connection, projection: Projection, *, batch_size: int = RUN_BATCH,
                   schema: str | None = None, progress: Callable[[int], None] | None = None,
                   prefilled: Mapping[int, int] | None = None, bulk: bool = False) -> int:
    """Apply every pending event of every store, then settle it (no leases: for tests, rebuild
    and one-shot runs). ``bulk``: a rebuild's first pass (see ``Window``), which does not
    settle: the caller removes the voided facts and builds the indexes first. ``prefilled``:
    per store, the position up to which the statement facts are in already (``prefill_facts``)."""
    total = 0
    for s in await conn.fetch(sql("projection_stores")):
        while True:
            r = await step(conn, projection, s["id"], batch_size=batch_size, schema=schema,
                           prefilled_upto=(prefilled or {}).get(s["id"], 0), bulk=bulk)
            total += r.applied
            if progress is not None and r.applied:
                progress(r.applied)
            if r.failed or r.applied == 0:
                break
        if not bulk:
            await settle(conn, projection, s["id"], schema=schema)
    return total


# --- status and lag ---------------------------------------------------------------------------

@dataclass(frozen=True)
class StoreStatus:
    """One (projection, store): where it is, how far behind, and whether it failed."""

    projection: str
    store_id: int
    store: str
    position: int
    head: int
    lag_events: int
    lag_seconds: float
    state: str
    failed_position: int | None
    error: str | None
    lease_owner: str | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


async def status(conn: asyncpg.Connection, projections: Sequence[Projection]) -> list[StoreStatus]:
    """Position, lag (events and seconds) and state of every projection for every store."""
    stores = await conn.fetch(sql("projection_stores"))
    leases = {(r["projection"], r["store_id"]): r["owner"] for r in await conn.fetch(sql("projection_leases"))
              if r["live"]}
    now = datetime.now(UTC)
    out: list[StoreStatus] = []
    counted: dict[tuple[int, int, int], int] = {}  # projections at one checkpoint count it once
    for p in projections:
        async with conn.transaction():
            await _use_schema(conn, p.schema)
            cps = {r["store_id"]: r for r in await conn.fetch(sql("rm_checkpoints"))}
        for s in stores:
            cp = cps.get(s["id"])
            pos = cp["position"] if cp else 0
            span = (s["id"], pos, s["last_position"])
            if span not in counted:
                counted[span] = await _events_between(conn, *span)
            lag = counted[span]
            seconds = 0.0
            if lag:
                t = await conn.fetchval(sql("projection_event_time"), s["id"], pos + 1)
                seconds = max(0.0, (now - t).total_seconds()) if t else 0.0
            failed_at = cp["failed_position"] if cp is not None else None
            error = cp["error"] if cp is not None else None
            out.append(StoreStatus(
                p.name, s["id"], s["name"], pos, s["last_position"], lag, round(seconds, 3),
                "failed" if failed_at is not None else ("current" if lag == 0 else "behind"),
                failed_at, error, leases.get((p.name, s["id"]))))
    return out


# Lag is counted event by event up to this many; beyond it, the difference of positions (an upper
# bound: the gaps an erasure or a failed append left) saves reading an index of millions (and
# the heap pages of the events no vacuum has marked visible yet) every time /metrics samples.
LAG_COUNTED_UP_TO = 100_000


async def _events_between(conn: asyncpg.Connection, store_id: int, after: int, upto: int) -> int:
    """The events of a store's log after position ``after`` up to ``upto``: counted (positions
    have gaps) up to ``LAG_COUNTED_UP_TO``, the difference of positions beyond it."""
    if upto <= after:
        return 0
    counted = int(await conn.fetchval(sql("projection_events_between"), store_id, after, upto, LAG_COUNTED_UP_TO))
    return counted if counted < LAG_COUNTED_UP_TO else upto - after


@dataclass
class Leftover:
    """Tables a rebuild left behind: ``<live>_old`` (the replaced read model, kept because a
    reader was still in a transaction on it) or ``<live>_build`` (a rebuild that stopped half
    way). The next rebuild of the projection drops both."""

    projection: str
    schema: str
    bytes: int | None


async def leftovers(conn: asyncpg.Connection, projections: Sequence[Projection]) -> list[Leftover]:
    """The leftover schemas of the projections and the disk they take (None when a table of it is
    locked: measuring waits for no one). None are listed for a projection while a rebuild of it
    runs: it fills ``_build`` and drops ``_old``."""
    out: list[Leftover] = []
    for p in projections:
        # looked up, not taken: taking it, even for a moment, could make a rebuild starting
        # then fail as "already running"
        if await conn.fetchval(sql("projection_rebuild_running"), *_rebuild_lock(p)):
            continue
        for schema in (p.schema + "_old", p.schema + "_build"):
            size: int | None
            try:
                async with conn.transaction():
                    # the size takes a share lock on each table; a reader's export or a rebuild's
                    # drop must not make the status command wait
                    await conn.execute("SET LOCAL lock_timeout = '1s'")
                    measured = await conn.fetchval(sql("projection_schema_bytes"), schema)
                if measured is None:
                    continue  # no such schema
                size = int(measured)
            except asyncpg.LockNotAvailableError:
                size = None
            out.append(Leftover(p.name, schema, size))
    return out


async def retry(conn: asyncpg.Connection, projection: Projection, store_ids: Sequence[int]) -> None:
    """Clear recorded failures so the runner tries the failed event again (after a fix)."""
    async with conn.transaction():
        await _use_schema(conn, projection.schema)
        await conn.execute(sql("rm_checkpoint_clear_failure"), list(store_ids))


# --- rebuild ----------------------------------------------------------------------------------

async def rebuild(conn: asyncpg.Connection, projection: Projection, *, batch_size: int = REBUILD_BATCH,
                  progress: Callable[[int, int], None] | None = None) -> int:
    """Replay the whole log into fresh tables and swap them in atomically; returns events applied.

    ``progress(done, total)`` is called as batches complete. Workers may keep running: they
    write to the live schema until the swap, then continue from the rebuilt checkpoint. One
    connection does all of it (``rebuild_concurrently`` spreads a rebuild over several).
    """
    build = await Rebuild.begin(conn, projection, progress)
    try:
        await build.fold_bulk(batch_size, {})
        await build.finish(batch_size)
        build.completed()
        return build.done
    finally:
        await build.end()


@dataclass
class Rebuild:
    """One rebuild of a projection, on its own connection: the fresh schema ``rm_<name>_build``,
    the indexes it builds at the end, and the events applied so far."""

    conn: asyncpg.Connection
    projection: Projection
    deferred: list[asyncpg.Record]
    total: int
    progress: Callable[[int, int], None] | None
    done: int = 0

    @property
    def schema(self) -> str:
        return self.projection.schema + "_build"

    @classmethod
    async def begin(cls, conn: asyncpg.Connection, projection: Projection,
                    progress: Callable[[int, int], None] | None) -> Rebuild:
        """Take the projection's rebuild lock and make the empty build schema (every store
        from position 0)."""
        live = projection.schema
        build, old = live + "_build", live + "_old"
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", *_rebuild_lock(projection)):
            raise RuntimeError(f"a rebuild of {projection.name} is already running")
        try:
            # positions, an upper bound of the events (an erasure or a failed append leaves
            # gaps): counting them would read the whole log first; the bar ends at what was done
            total = sum(r["last_position"] for r in await conn.fetch(sql("projection_stores")))
            async with conn.transaction():
                # identifiers below are constants derived from the projection name (checked by _SCHEMA)
                await conn.execute(f"DROP SCHEMA IF EXISTS {build} CASCADE")
                await conn.execute(f"DROP SCHEMA IF EXISTS {old} CASCADE")  # left by a rebuild before
                await conn.execute(f"CREATE SCHEMA {build}")
                await conn.execute("SELECT projections.create_read_model($1, $2)", build, sorted(projection.families))
                # The indexes of the statement facts (and every secondary one) are built once at
                # the end (a sort) rather than row by row; the first pass is a bulk one (see Window).
                deferred = await conn.fetch(sql("rm_rebuild_deferred_indexes"), build, list(FACT_TABLES))
                for ix in deferred:
                    await conn.execute(ix["drop_sql"])
        except BaseException:
            await conn.execute("SELECT pg_advisory_unlock($1, $2)", *_rebuild_lock(projection))
            raise
        return cls(conn, projection, list(deferred), total, progress)

    def tick(self, n: int) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(self.done, max(self.total, self.done))

    def completed(self) -> None:
        """The progress at its end: the total was positions, an upper bound of the events."""
        self.total = self.done
        if self.progress is not None:
            self.progress(self.done, self.done)

    async def fold_bulk(self, batch_size: int, prefilled: Mapping[int, int]) -> None:
        """The first pass over the log (see ``Window``); per store, the statements up to
        ``prefilled`` are in the fact tables already (``prefill_facts``)."""
        await catch_up(self.conn, self.projection, batch_size=batch_size, schema=self.schema, progress=self.tick,
                       prefilled=prefilled, bulk=True)

    async def finish(self, batch_size: int, *, url: str | None = None, parts: int = 1) -> None:
        """Remove the voided facts, build the indexes, fold what arrived meanwhile, settle, and
        swap the build schema in. With ``url`` and ``parts`` > 1, each store's compliance status
        rows are computed in that many parts on connections of their own."""
        conn, live, build, old = self.conn, self.projection.schema, self.schema, self.projection.schema + "_old"
        async with conn.transaction():
            await _use_schema(conn, build)
            await remove_voided(conn, self.projection.families)
            for ix in self.deferred:
                if ix["table_name"] in FACT_TABLES:
                    await conn.execute(ix["create_sql"])
        if url is not None and parts > 1 and "status" in self.projection.families:
            # (before the events that arrived meanwhile: those windows keep the rows current, and
            # the settling then finds them computed for today)
            await _status_in_parts(conn, url, build, parts)
        # what arrived meanwhile (folded as usual: the fact tables have their keys again), and
        # the settling: the compliance status rows, whose secondary index comes after them (their
        # key stays: each store's computation deletes and reads its own rows by it)
        await catch_up(conn, self.projection, batch_size=batch_size, schema=build, progress=self.tick)
        for ix in self.deferred:
            if ix["table_name"] not in FACT_TABLES:
                await conn.execute(ix["create_sql"])
        async with conn.transaction():
            # Waits for in-flight live batches; new ones queue behind the swap and, once it
            # commits, find the rebuilt tables (and checkpoint) under the live name.
            await conn.execute(f"LOCK TABLE {live}.checkpoint IN ACCESS EXCLUSIVE MODE")
            await catch_up(conn, self.projection, batch_size=batch_size, schema=build, progress=self.tick)
            await conn.execute(f"ALTER SCHEMA {live} RENAME TO {old}")
            await conn.execute(f"ALTER SCHEMA {build} RENAME TO {live}")
        await drop_old(conn, old)

    async def end(self) -> None:
        await self.conn.execute("SELECT pg_advisory_unlock($1, $2)", *_rebuild_lock(self.projection))


async def _status_in_parts(conn: asyncpg.Connection, url: str, schema: str, parts: int) -> None:
    """The compliance status rows of every store of a rebuild's build schema as of today, each
    store's people in ``parts`` parts, one per connection of its own at once (migration 0021;
    nothing else writes a build schema). A store whose read model failed is left to settle."""
    tz = compliance_status.REPORTING_TIMEZONE
    today = await conn.fetchval(sql("rm_status_today"), tz)
    helpers: list[asyncpg.Connection] = []
    try:
        for _ in range(parts):
            helpers.append(await connect(url))
        for store in await conn.fetch(sql("projection_stores")):
            sid = store["id"]
            async with conn.transaction():
                await _use_schema(conn, schema)
                if await _locked_checkpoint(conn, sid) is None:
                    continue
                await conn.execute(sql("rm_status_reset"), sid, today, tz)
                people = [r["person_id"] for r in await conn.fetch(sql("rm_status_people"), sid)]
            await asyncio.gather(*(_status_part(h, schema, sid, today, tz, people[i::parts])
                                   for i, h in enumerate(helpers) if people[i::parts]))
            async with conn.transaction():
                await _use_schema(conn, schema)
                await conn.execute(sql("rm_status_finish"), sid)
    finally:
        for h in helpers:
            await h.close()


async def _status_part(conn: asyncpg.Connection, schema: str, store_id: int, today: Any, tz: str,
                       people: list[str]) -> None:
    async with conn.transaction():
        await _use_schema(conn, schema)
        await conn.execute(sql("rm_status_add"), store_id, today, tz, people)


async def drop_old(conn: asyncpg.Connection, old: str) -> None:
    """Drop the replaced read model's tables, outside the swap: a reader still in a transaction
    on them (an analyst's export streaming its snapshot) keeps its locks until it ends, and a
    DROP waiting for those inside the swap would hold every new read of the read model (and the
    workers) behind it. Waited for 2 s a lock at most; else (or on any other error: the swap has
    committed) the next rebuild drops them."""
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL lock_timeout = '2s'")
            await conn.execute(f"DROP SCHEMA {old} CASCADE")
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        log.warning("rebuild_old_tables_kept", schema=old, error=repr(exc),
                    reason="still being read; the next rebuild drops them")


def _prefill_sql(builds: Sequence[Rebuild]) -> str:
    """prefill_facts with one insert per fact table of the build schemas."""
    inserts = [sql(f"prefill_{family}").replace("{schema}", b.schema)
               for b in builds for family in ("completions", "activity", "voided") if family in b.projection.families]
    return sql("prefill_facts").replace(
        "{inserts}", "".join(f", i{n} AS ({text})\n" for n, text in enumerate(inserts)))


async def prefill_facts(url: str, builds: Sequence[Rebuild], heads: Mapping[int, int], *, chunk: int = 50_000,
                        connections: int = 0, progress: Callable[[int, int], None] | None = None) -> None:
    """The statement facts of every store's positions up to ``heads`` into the fact tables of
    the build schemas, each payload parsed once for all of them, chunks of positions on several
    connections at once (a bulk pass only inserts, so the order does not matter).
    ``progress(done, total)`` counts positions."""
    query = _prefill_sql(builds)
    work = [(sid, a, min(a + chunk, head)) for sid, head in heads.items() for a in range(0, head, chunk)]
    total = sum(heads.values())
    done = 0

    async def worker() -> None:
        nonlocal done
        c = await connect(url)
        try:
            while work:
                sid, after, upto = work.pop(0)
                await c.execute(query, sid, after, upto)
                done += upto - after
                if progress is not None:
                    progress(done, total)
        finally:
            await c.close()

    n = connections or max(1, min(os.cpu_count() or 1, 4))
    await asyncio.gather(*(worker() for _ in range(min(n, len(work)))))


async def rebuild_concurrently(url: str, projections: Sequence[Projection], *, batch_size: int = REBUILD_BATCH,
                               progress: Callable[[int, int], None] | None = None,
                               prefill_chunk: int = 50_000, status_parts: int = 0) -> dict[str, int]:
    """Rebuild one or several read models at once, each on a connection of its own, which also
    folds its reference data; the statement facts of the log as it stands when they begin are
    extracted meanwhile on further connections, once for all of them (``prefill_facts``). The
    folding happens in the database, so on a machine with several cores they run in parallel.
    Events applied per name. ``progress(done, total)`` sums over all of them, the prefill's
    positions included; each total is positions (an upper bound of the events: gaps) until that
    rebuild ends. The compliance status rows are computed in ``status_parts`` parts at
    once (0: one per core, at most four)."""
    state: dict[str, tuple[int, int]] = {}

    def report(name: str, done: int, total: int) -> None:
        state[name] = (done, total)
        if progress is not None:
            progress(sum(d for d, _ in state.values()), sum(t for _, t in state.values()))

    if not projections:
        return {}
    builds: list[Rebuild] = []
    try:
        for p in projections:
            conn = await connect(url)
            try:
                builds.append(await Rebuild.begin(conn, p, functools.partial(report, p.name)))
            except BaseException:
                await conn.close()
                raise
        heads = {int(r["id"]): int(r["last_position"]) for r in await builds[0].conn.fetch(sql("projection_stores"))}
        await asyncio.gather(
            prefill_facts(url, builds, heads, chunk=prefill_chunk,
                          progress=lambda d, t: report("statement facts", d, t)),
            *(b.fold_bulk(batch_size, heads) for b in builds))
        parts = status_parts or max(1, min(4, os.cpu_count() or 1))
        await asyncio.gather(*(b.finish(batch_size, url=url, parts=parts) for b in builds))
        for b in builds:
            b.completed()
        return {b.projection.name: b.done for b in builds}
    finally:
        for b in builds:
            with contextlib.suppress(Exception):
                await b.end()
            await b.conn.close()


def _rebuild_lock(projection: Projection) -> tuple[int, int]:
    """The advisory lock (two keys) that one rebuild of the projection holds at a time."""
    return _REBUILD_LOCK, _stable_index(projection.name)


def _stable_index(name: str) -> int:
    return sum((i + 1) * ord(c) for i, c in enumerate(name)) % 2_000_000_000


# --- the worker -------------------------------------------------------------------------------

@dataclass
class WorkerOptions:
    """Tuning knobs of a worker process."""

    batch_size: int = RUN_BATCH
    lease_seconds: float = 30.0
    poll_seconds: float = 1.0
    # batches per (projection, store) before moving on, so one busy store cannot starve others
    max_batches: int = 20
    # after settling a (projection, store) failed on its data, wait this long before trying again
    settle_retry_seconds: float = 300.0
    # cut off from the database: wait 0.1 s, doubling after each further cut or failed attempt
    # (until a pass goes through) up to this; and give a connection attempt this long
    reconnect_max_seconds: float = 30.0
    connect_timeout_seconds: float = 10.0


class Worker:
    """Runs projections: leases (projection, store) pairs, applies batches, sleeps on NOTIFY/poll."""

    def __init__(self, url: str, projections: Sequence[Projection], options: WorkerOptions | None = None,
                 *, owner: str | None = None, before_commit: BeforeCommit | None = None) -> None:
        self.url = url
        self.projections = list(projections)
        self.options = options or WorkerOptions()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.before_commit = before_commit
        self.wake = asyncio.Event()
        self.applied = 0
        self._settle_after: dict[tuple[str, int], float] = {}

    def _notified(self, *args: Any) -> None:
        self.wake.set()

    async def run_once(self, conn: asyncpg.Connection, stop: asyncio.Event | None = None) -> int:
        """One pass over every (projection, store) whose lease this worker gets; events applied.
        Once ``stop`` is set, no further batch starts: a pass over a long backlog would otherwise
        keep a stopping worker (and its service manager) waiting for minutes."""
        o = self.options
        done = 0

        def stopping() -> bool:
            return stop is not None and stop.is_set()

        stores = await conn.fetch(sql("projection_stores"))
        for p in self.projections:
            for s in stores:
                held = None
                for _ in range(o.max_batches):
                    if stopping():
                        break
                    held = await conn.fetchval(sql("projection_lease_acquire"), p.name, s["id"], self.owner,
                                               o.lease_seconds)
                    if held is None:
                        break
                    r = await step(conn, p, s["id"], batch_size=o.batch_size, before_commit=self.before_commit)
                    done += r.applied
                    if r.failed or r.applied < o.batch_size:
                        break
                if stopping():
                    break  # the next worker settles the pair
                if held is not None:
                    await self._settle(conn, p, s["id"])
            if stopping():
                break
        self.applied += done
        return done

    async def _settle(self, conn: asyncpg.Connection, p: Projection, store_id: int) -> None:
        """``settle`` the pair; when it fails on the data, log it and try again only after
        ``settle_retry_seconds`` (the read model's answers stay correct meanwhile: the analyst
        queries compute from the fact tables while the status rows are missing or stale)."""
        key = (p.name, store_id)
        if time.monotonic() < self._settle_after.get(key, 0.0):
            return
        try:
            await settle(conn, p, store_id)
        except DATA_ERRORS as exc:
            self._settle_after[key] = time.monotonic() + self.options.settle_retry_seconds
            log.warning("projection_settle_failed", projection=p.name, store_id=store_id, error=str(exc)[:500])

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set; releases its leases on the way out.

        A database restart, a failover or a terminated session cuts the worker's connections:
        it connects again and LISTENs again, and the batch the cut interrupted, rolled back, is
        applied again. It waits 0.1 s before reconnecting, twice as long after each further cut
        or failed attempt until a pass goes through (up to ``reconnect_max_seconds``), so a
        batch that keeps bringing its session down does not keep the database busy. ``stop``
        ends a wait or a connection attempt at once. Only a first connection that cannot be
        made ends the worker, with that error (a wrong URL should not loop). Once made, a session
        cut while the worker sets it up (its codecs, its first LISTEN) is a cut like any later one.
        """
        o = self.options
        conn: asyncpg.Connection | None = await connect_direct(self.url, connect_timeout=o.connect_timeout_seconds)
        set_up = False  # whether init_connection has been through conn
        listener: asyncpg.Connection | None = None
        try:
            retries = 0
            cuts = 0
            while not stop.is_set():
                self.wake.clear()
                if conn is None or conn.is_closed() or listener is None or listener.is_closed():
                    if cuts:
                        await _sleep_unless(stop, min(0.1 * 2 ** min(cuts - 1, 20), o.reconnect_max_seconds))
                        if stop.is_set():
                            break
                    if conn is None or conn.is_closed():
                        set_up = False  # a new one is made
                    conn, listener = await self._reconnect(conn, listener, cuts, stop)
                    if conn is None or listener is None:
                        cuts += 1
                        continue
                    retries = 0
                try:
                    if not set_up:
                        await init_connection(conn)
                        set_up = True
                    did = await self.run_once(conn, stop)
                    retries = cuts = 0
                except Exception as exc:
                    if not await _connection_lost(conn, exc):
                        if not isinstance(exc, asyncpg.PostgresError):
                            raise
                        # transient (e.g. a rebuild swapped the schema under an in-flight
                        # statement): the batch rolled back, so going again is safe; said in the
                        # log, and waited for longer each time it happens again (up to the poll
                        # interval)
                        retries += 1
                        # the same error pass after pass is more than a hiccup: said louder
                        (log.error if retries >= 10 else log.warning)(
                            "projection_pass_retried", error=type(exc).__name__,
                            sqlstate=getattr(exc, "sqlstate", None), retries=retries, detail=str(exc)[:200])
                        await asyncio.sleep(min(0.1 * 2 ** min(retries - 1, 10), max(o.poll_seconds, 0.1)))
                        continue
                    cuts += 1
                    log.warning("projection_connection_lost", error=type(exc).__name__,
                                sqlstate=getattr(exc, "sqlstate", None), cuts=cuts)
                    conn.terminate()
                    continue
                if did:
                    continue
                waiters = [asyncio.ensure_future(self.wake.wait()), asyncio.ensure_future(stop.wait())]
                await asyncio.wait(waiters, timeout=o.poll_seconds, return_when=asyncio.FIRST_COMPLETED)
                for w in waiters:
                    w.cancel()
        finally:
            if conn is not None and not conn.is_closed():
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(5):
                        await conn.execute(sql("projection_lease_release"), self.owner)
            for c in (conn, listener):
                if c is not None:
                    await close_quietly(c)

    async def _listen(self) -> asyncpg.Connection:
        """A connection LISTENing on the event channel; its loss wakes the worker."""
        # (a direct connection: an idle listener notices a host gone silent)
        listener = await connect_direct(self.url, connect_timeout=self.options.connect_timeout_seconds)
        try:
            listener.add_termination_listener(self._notified)
            await listener.add_listener(CHANNEL, self._notified)
        except BaseException:
            listener.terminate()
            raise
        return listener

    async def _reconnect(self, conn: asyncpg.Connection | None, listener: asyncpg.Connection | None,
                         cuts: int, stop: asyncio.Event) -> Connections:
        """Both connections again, keeping one that still works. A side that cannot be made yet
        (refused, timed out, or ``stop`` set meanwhile) comes back None, said in the log; a kept
        one is never dropped here, so the worker can still release its leases on it."""
        if conn is not None and conn.is_closed():
            conn = None
        if listener is not None and listener.is_closed():
            listener = None
        try:
            if conn is None:
                conn = await _unless_stopped(
                    stop, connect_direct(self.url, connect_timeout=self.options.connect_timeout_seconds))
            if listener is None and conn is not None:
                listener = await _unless_stopped(stop, self._listen())
        except (*CONNECTION_LOST, asyncpg.PostgresError) as exc:
            log.warning("projection_reconnect_failed", error=type(exc).__name__, attempts=cuts + 1)
            return conn, listener
        if conn is not None and listener is not None and cuts:
            log.info("projection_reconnected")
        # events that arrived while it was cut off are found by the pass that follows
        return conn, listener


# A connection gone (closed, reset, refused, timed out, or left in a state asyncpg cannot use:
# InternalClientError when the server's farewell arrives between two queries): connect again.
CONNECTION_LOST: tuple[type[BaseException], ...] = (
    asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, TimeoutError)
# SQLSTATEs that end a session or say the server cannot take this worker's writes: connection
# exceptions (08), shutdown and restart (57P01-57P03), a read-only server (25006: the old
# primary back as a standby; a URL with target_session_attrs=read-write finds the new one).
SESSION_ENDED = ("57P01", "57P02", "57P03", "25006")


async def _connection_lost(conn: asyncpg.Connection, exc: BaseException) -> bool:
    """Whether ``exc`` from a pass means the connection is gone or unusable, rather than a bug
    or a statement that failed (asyncpg raises InterfaceError for a wrong number of arguments
    too): a client-side error on a connection that still looks open is put to the test."""
    await asyncio.sleep(0)  # the socket's close may be waiting to be read
    if conn.is_closed():
        return True
    sqlstate = str(getattr(exc, "sqlstate", "") or "")
    if sqlstate.startswith("08") or sqlstate in SESSION_ENDED:
        return True
    if not isinstance(exc, CONNECTION_LOST):
        return False
    try:
        async with asyncio.timeout(2):
            await conn.fetchval("SELECT 1")
    except Exception:
        return True
    return False


Connections = tuple[asyncpg.Connection | None, asyncpg.Connection | None]


async def _unless_stopped(stop: asyncio.Event, work: Awaitable[asyncpg.Connection]) -> asyncpg.Connection | None:
    """``work``'s connection, or None as soon as ``stop`` is set; ``work`` never outlives the
    call (cancelled, whatever ends the wait, the caller's cancellation included)."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([task, stopped], return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        return None
    finally:
        stopped.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


class Progress:
    """A plain progress bar on stderr (no dependency): ``done/total`` with rate, redrawn in place."""

    def __init__(self, label: str, stream: Any = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.start = time.monotonic()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < 0.2 and done < total:
            return
        self.last = now
        width = 30
        frac = done / total if total else 1.0
        bar = "#" * int(frac * width)
        rate = done / max(now - self.start, 1e-9)
        self.stream.write(f"\r{self.label} [{bar:<{width}}] {done}/{total} ({rate:,.0f} events/s)")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()
