"""The event log: append-only in the database itself, and positions reach readers in commit order."""

from __future__ import annotations

import asyncio
import itertools
import random
import uuid
from datetime import datetime, timedelta

import asyncpg
import pytest

from lrs.ops.statements import Query, store_statements
from lrs.store.credentials import PgCredentialRepository
from lrs.store.db import create_pool
from lrs.store.statements import PgStatementRepository
from tests.statements import statement
from tests.store_access import principal


async def _store(conn: asyncpg.Connection, name: str = "s") -> int:
    return await PgCredentialRepository(conn).create_store(name, None)


async def test_events_refuse_update_delete_and_truncate(db_url: str, conn: asyncpg.Connection) -> None:
    store = await _store(conn)
    pool = await create_pool(db_url)
    try:
        await store_statements(PgStatementRepository(pool), principal(store), "1.0.3", [statement()])
    finally:
        await pool.close()
    assert await conn.fetchval("SELECT count(*) FROM events") == 1
    for sql in ("UPDATE events SET kind = 'x'", "DELETE FROM events", "TRUNCATE events CASCADE"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute(sql)
    assert await conn.fetchval("SELECT count(*) FROM events") == 1


async def test_only_an_erasure_deletes_events_and_never_the_audit_trail(db_url: str, conn: asyncpg.Connection) -> None:
    """Migration 0037: a transaction that says it erases (spor.erasure on) may DELETE events;
    UPDATE and TRUNCATE stay refused, as does any change to the audit trail, and the service's
    role cannot delete at all."""
    store = await _store(conn)
    pool = await create_pool(db_url)
    try:
        await store_statements(PgStatementRepository(pool), principal(store), "1.0.3", [statement(), statement()])
    finally:
        await pool.close()
    await conn.execute("INSERT INTO audit_log (store_id, action, request, records) VALUES ($1, 'x', '{}', 0)", store)
    async with conn.transaction():
        await conn.execute("SELECT set_config('spor.erasure', 'on', true)")
        for sql in ("UPDATE events SET kind = 'x'", "TRUNCATE events CASCADE", "DELETE FROM audit_log",
                    "UPDATE audit_log SET records = 1"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="is append-only"):
                async with conn.transaction():  # a savepoint: the next statement still runs
                    await conn.execute(sql)
        assert await conn.execute("DELETE FROM events WHERE position = 1") == "DELETE 1"
    # the setting ends with its transaction
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="events is append-only"):
        await conn.execute("DELETE FROM events")
    assert await conn.fetchval("SELECT count(*) FROM events") == 1
    assert await conn.fetchval("SELECT count(*) FROM audit_log") == 1
    async with conn.transaction():
        await conn.execute("SET LOCAL ROLE spor_app")
        await conn.execute("SELECT set_config('spor.erasure', 'on', true)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            await conn.execute("DELETE FROM events")


async def test_statement_and_index_rows_are_written_in_one_transaction(db_url: str, conn: asyncpg.Connection) -> None:
    store = await _store(conn)
    pool = await create_pool(db_url)
    try:
        ids = await store_statements(PgStatementRepository(pool), principal(store), "1.0.3",
                                     [statement(), statement(actor="ola")])
    finally:
        await pool.close()
    rows = await conn.fetch(
        "SELECT e.position, e.statement_id::text AS eid, s.statement_id::text AS sid "
        "FROM events e JOIN statements s USING (store_id, position) WHERE e.store_id = $1 ORDER BY 1", store)
    assert [r["eid"] for r in rows] == ids
    assert [r["position"] for r in rows] == [1, 2]
    assert await conn.fetchval("SELECT last_position FROM stores WHERE id = $1", store) == 2


async def test_concurrent_writers_never_let_a_reader_skip_a_position(db_url: str, conn: asyncpg.Connection) -> None:
    """Eight writers append while a reader tails the log. Positions are gapless per store, so a
    reader that ever sees a gap would later find a committed event below what it has read: the
    reader asserts every read continues exactly where the previous one stopped."""
    store = await _store(conn)
    writers, batches, per_batch = 8, 12, 5
    total = writers * batches * per_batch
    pool = await create_pool(db_url, min_size=writers + 1, max_size=writers + 2)
    repo = PgStatementRepository(pool)
    done = asyncio.Event()

    async def writer(w: int) -> None:
        for b in range(batches):
            await store_statements(repo, principal(store), "1.0.3",
                                   [statement(actor=f"writer{w}", activity=f"b{b}-{i}") for i in range(per_batch)])
            await asyncio.sleep(0)

    seen: list[int] = []

    async def reader() -> None:
        last = 0
        while True:
            finished = done.is_set()
            rows = await conn.fetch(
                "SELECT position FROM events WHERE store_id = $1 AND position > $2 ORDER BY position", store, last)
            for r in rows:
                assert r["position"] == last + 1, f"reader at {last} saw {r['position']}: a lower one was not visible"
                last = r["position"]
                seen.append(last)
            if finished and last >= total:
                return
            if finished and not rows:
                raise AssertionError(f"writers finished but the reader only reached {last} of {total}")
            await asyncio.sleep(0.001)

    try:
        read_task = asyncio.create_task(reader())
        await asyncio.gather(*(writer(w) for w in range(writers)))
        done.set()
        await asyncio.wait_for(read_task, timeout=30)
    finally:
        await pool.close()
    assert seen == list(range(1, total + 1))
    stored = await conn.fetch("SELECT position, stored FROM statements WHERE store_id = $1 ORDER BY position", store)
    # stored times never go backwards along positions, so 'since'/'until' agree with paging order
    assert all(a["stored"] <= b["stored"] for a, b in itertools.pairwise(stored))


async def test_a_recent_consistent_through_is_reused_only_within_its_max_age(db_url: str,
                                                                            conn: asyncpg.Connection) -> None:
    """Error responses take a Consistent-Through read at most a second ago (a flood of 429s costs
    no query each): still true, since it only moves forward. Without max_age it is read anew."""
    store = await _store(conn)
    pool = await create_pool(db_url)
    try:
        repo = PgStatementRepository(pool)
        first = await repo.consistent_through(store)
        await store_statements(repo, principal(store), "1.0.3", [statement()])
        assert await repo.consistent_through(store, max_age=3600) == first
        fresh = await repo.consistent_through(store)
        assert fresh > first
        assert await repo.consistent_through(store, max_age=3600) == fresh
        assert await repo.consistent_through(store, max_age=0) >= fresh
    finally:
        await pool.close()


async def test_every_statement_stored_by_consistent_through_is_in_the_page_read_with_it(
        db_url: str, conn: asyncpg.Connection) -> None:
    """Communication 2.1.3: Consistent-Through is a time before which every statement "stored" is
    available. Writers in three processes' worth of pools append while readers query: every page
    must hold every statement stored at or before the page's Consistent-Through. An incremental
    reader that asks since the last Consistent-Through (since is exclusive) relies on it, and
    would lose a statement for good otherwise. It failed twice over: store_horizon read the
    store's row in the snapshot taken before it tried the append lock, so an append that
    committed in between was outside the page yet older than its "now" (three of four runs
    before 0028); and two appends in one millisecond shared a stored time, so one still in
    flight had the page's Consistent-Through (three of three runs before 0029)."""
    store = await _store(conn)
    pools = [await create_pool(db_url, min_size=2, max_size=3) for _ in range(3)]
    repos = [PgStatementRepository(p) for p in pools]
    stop = asyncio.Event()
    pages: list[tuple[set[str], datetime]] = []

    async def writer(repo: PgStatementRepository, w: int) -> None:
        n = 0
        while not stop.is_set():
            await store_statements(repo, principal(store), "1.0.3", [statement(actor=f"w{w}", activity=f"a{n}")])
            n += 1
            # pauses, so readers also find the store's lock free (Consistent-Through is then "now")
            await asyncio.sleep(random.random() * 0.003)

    async def reader(repo: PgStatementRepository) -> None:
        while not stop.is_set():
            page = await repo.query(store, Query(limit=1_000_000))
            pages.append(({r.id for r in page.rows}, page.consistent_through))

    try:
        tasks = [asyncio.create_task(writer(repo, i)) for i, repo in enumerate(repos)]
        tasks += [asyncio.create_task(reader(repo)) for repo in repos]
        await asyncio.sleep(4)
        stop.set()
        await asyncio.gather(*tasks)
    finally:
        for p in pools:
            await p.close()
    stored = await conn.fetch("SELECT statement_id::text AS id, stored FROM statements WHERE store_id = $1", store)
    assert len(pages) > 100 and len(stored) > 100, (len(pages), len(stored))
    for ids, through in pages:
        # at or before: a client that asks since the last Consistent-Through (since is exclusive)
        # would otherwise never see a statement stored in that very millisecond
        missing = [r["id"] for r in stored if r["stored"] <= through and r["id"] not in ids]
        assert not missing, f"Consistent-Through {through}, yet {len(missing)} statements stored by then missing"


async def test_an_append_is_stored_after_the_last_one_never_with_it(db_url: str, conn: asyncpg.Connection) -> None:
    """Stored times strictly increase from append to append (0029), so nothing can be stored in
    the millisecond of a Consistent-Through already handed out. With the store's last stored time
    ahead of the clock (as after appends in the same millisecond), the next append, by either
    path (the one-call function, or the general one a StatementRef takes), is a millisecond
    after it, not at it."""
    store = await _store(conn)
    pool = await create_pool(db_url)
    try:
        repo = PgStatementRepository(pool)
        first = {"id": str(uuid.uuid4()), **statement(actor="kari")}
        for sent in ([first], [{"id": str(uuid.uuid4()), "actor": {"mbox": "mailto:ola@example.org"},
                                "verb": {"id": "http://example.org/verbs/confirmed"},
                                "object": {"objectType": "StatementRef", "id": first["id"]}}]):
            ahead = await conn.fetchval("UPDATE stores SET last_stored = date_trunc('milliseconds', now()) "
                                        "+ interval '1 hour' WHERE id = $1 RETURNING last_stored", store)
            await store_statements(repo, principal(store), "1.0.3", sent)
            got = await conn.fetchval("SELECT stored FROM statements WHERE store_id = $1 AND statement_id = $2::uuid",
                                      store, sent[0]["id"])
            assert got == ahead + timedelta(milliseconds=1), (got, ahead)
    finally:
        await pool.close()
