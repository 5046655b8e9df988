"""Appends of one store written in parallel and committed in ticket order (migration 0039).

The common append reserves its positions and a ticket in a short transaction, writes its rows
while other appends write theirs, and commits only after every earlier ticket has ended. These
tests hold tickets on connections of their own to make each interleaving happen for certain.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

from lrs.errors import ServiceUnavailable
from lrs.ops.statements import prepare, store_statements
from lrs.store.credentials import PgCredentialRepository
from lrs.store.db import create_pool
from lrs.store.log import reserve
from lrs.store.queries import sql
from lrs.store.statements import PgStatementRepository, _Write
from tests.integration.test_append_paths import WHO, _call
from tests.statements import statement, with_id
from tests.store_access import principal


@asynccontextmanager
async def _connections(db_url: str, n: int) -> AsyncIterator[list[asyncpg.Connection]]:
    conns = [await asyncpg.connect(db_url) for _ in range(n)]
    try:
        yield conns
    finally:
        for c in conns:
            if not c.is_closed():
                await c.close()


async def _waiting_on_a_ticket(watch: asyncpg.Connection, other: asyncpg.Connection | None = None) -> None:
    """Until ``other``'s backend (by default: any of the database's) waits for an advisory lock
    (a ticket, or the store's lock)."""
    pid = other.get_server_pid() if other is not None else None
    for _ in range(500):
        if await watch.fetchval("SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = current_database() "
                                "AND wait_event = 'advisory' AND (pid = $1 OR $1 IS NULL)", pid):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the append never waited for the earlier ticket")


async def _positions(conn: asyncpg.Connection, store: int) -> dict[str, int]:
    rows = await conn.fetch("SELECT statement_id::text AS id, position FROM statements WHERE store_id = $1", store)
    return {r["id"]: r["position"] for r in rows}


async def test_a_later_append_writes_its_rows_while_an_earlier_one_is_in_flight_and_commits_after_it(
        db_url: str, conn: asyncpg.Connection) -> None:
    store = await PgCredentialRepository(conn).create_store("s", None)
    first, second = with_id(statement(actor="kari")), with_id(statement(actor="ola"))
    async with _connections(db_url, 2) as (a, b):
        early = await a.fetchrow(sql("reserve_ticket"), store, 1)
        later = asyncio.create_task(_call(b, store, [second]))
        await _waiting_on_a_ticket(conn, b)
        # the later append has written its rows (its filter terms are its last insert) ...
        assert await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE pid = $1 AND relation = 'statement_term_runs'::regclass",
            b.get_server_pid()) > 0
        # ... and none of it is visible, nor has the store's horizon moved
        assert await _positions(conn, store) == {}
        assert await conn.fetchval("SELECT last_position FROM stores WHERE id = $1", store) == 0
        assert await _call(a, store, [first], ticket=early) is not None
        assert await asyncio.wait_for(later, 10) is not None
    assert await _positions(conn, store) == {first["id"]: 1, second["id"]: 2}
    assert await conn.fetchval("SELECT last_position FROM stores WHERE id = $1", store) == 2
    stored = await conn.fetch("SELECT stored FROM statements WHERE store_id = $1 ORDER BY position", store)
    assert stored[0]["stored"] < stored[1]["stored"]


async def test_a_reader_never_sees_a_later_ticket_before_an_earlier_one_commits(
        db_url: str, conn: asyncpg.Connection) -> None:
    """The later append is done writing, the earlier one has not begun: the later one's commit
    waits, so a reader that saw its position could never find the earlier one below it."""
    store = await PgCredentialRepository(conn).create_store("s", None)
    async with _connections(db_url, 2) as (a, b):
        early = await a.fetchrow(sql("reserve_ticket"), store, 3)
        later = asyncio.create_task(_call(b, store, [with_id(statement())]))
        await _waiting_on_a_ticket(conn, b)
        await asyncio.sleep(0.2)
        assert not later.done()
        assert await conn.fetchval("SELECT count(*) FROM events WHERE store_id = $1", store) == 0
        await _call(a, store, [with_id(statement()) for _ in range(3)], ticket=early)
        await asyncio.wait_for(later, 10)
    assert [r["position"] for r in await conn.fetch(
        "SELECT position FROM events WHERE store_id = $1 ORDER BY position", store)] == [1, 2, 3, 4]


async def test_a_ticket_whose_connection_dies_does_not_hold_up_the_next(db_url: str, conn: asyncpg.Connection) -> None:
    """A server process killed between reserving and committing: its ticket (a session lock) goes
    with its connection, and the next append commits. Its positions are left unused."""
    store = await PgCredentialRepository(conn).create_store("s", None)
    async with _connections(db_url, 2) as (a, b):
        await a.fetchrow(sql("reserve_ticket"), store, 5)
        later = asyncio.create_task(_call(b, store, [only := with_id(statement())]))
        await _waiting_on_a_ticket(conn, b)
        a.terminate()
        assert await asyncio.wait_for(later, 10) is not None
    assert await _positions(conn, store) == {only["id"]: 6}
    # a reader's Consistent-Through is now again (no ticket in flight)
    assert await conn.fetchval("SELECT ended_ticket FROM stores WHERE id = $1", store) == 2


async def test_an_append_that_holds_the_store_lock_waits_for_the_tickets_in_flight(
        db_url: str, conn: asyncpg.Connection) -> None:
    """Documents, reference data, an erasure and the general statement path hold the store's lock
    to their commit: they first wait for the appends in flight, and then see them."""
    store = await PgCredentialRepository(conn).create_store("s", None)
    async with _connections(db_url, 2) as (a, e):
        ticket = await a.fetchrow(sql("reserve_ticket"), store, 2)

        async def exclusive() -> int:
            async with e.transaction():
                return (await reserve(e, store, 1)).first

        holder = asyncio.create_task(exclusive())
        await _waiting_on_a_ticket(conn, e)
        # while it waits, no new ticket can be drawn: a reservation waits for the store's lock
        blocked = asyncio.create_task(conn.fetchrow(sql("reserve_ticket"), store, 1))
        await asyncio.sleep(0.2)
        assert not holder.done() and not blocked.done()
        await _call(a, store, [with_id(statement()), with_id(statement())], ticket=ticket)
        assert await asyncio.wait_for(holder, 10) == 3
        late = await asyncio.wait_for(blocked, 10)
        await conn.execute(sql("release_tickets"))
    assert late["first_position"] == 3  # the exclusive append wrote nothing past its reservation


async def test_two_appends_of_one_id_in_flight_store_it_once_without_a_deadlock(
        db_url: str, conn: asyncpg.Connection) -> None:
    """A later ticket wrote an id's events and terms before an earlier one wrote the same id:
    the primary key's rows are written in ticket order, so the earlier one stores it at once and
    the later one, after that commit, finds it stored and hands its group to the general path,
    which acknowledges the same content. (Before the rows were ordered, each waited for the other
    until PostgreSQL broke the deadlock after deadlock_timeout, a second.)"""
    store = await PgCredentialRepository(conn).create_store("s", None)
    again = with_id(statement(actor="kari"))
    pool = await create_pool(db_url, min_size=1, max_size=2)
    try:
        async with _connections(db_url, 1) as (held,):
            early = await held.fetchrow(sql("reserve_ticket"), store, 1)
            later = asyncio.create_task(
                store_statements(PgStatementRepository(pool), principal(store), "1.0.3", [again]))
            await _waiting_on_a_ticket(conn)
            started = time.monotonic()
            assert await _call(held, store, [again], ticket=early) is not None
            assert await asyncio.wait_for(later, 10) == [again["id"]]
            assert time.monotonic() - started < 0.9  # no deadlock_timeout (1 s) in between
    finally:
        await pool.close()
    assert await _positions(conn, store) == {again["id"]: 1}  # stored once, by the earlier ticket
    assert await conn.fetchval("SELECT count(*) FROM events WHERE store_id = $1", store) == 1


async def test_a_reservation_never_waits_for_a_ticket_a_failed_one_kept(db_url: str, conn: asyncpg.Connection) -> None:
    """A session lock outlives a rollback: a reservation cancelled before its commit keeps the
    ticket it drew, and the counter goes back. The next reservation draws the same number; it
    fails, naming it, instead of waiting for good with the store's lock held."""
    store = await PgCredentialRepository(conn).create_store("s", None)
    async with _connections(db_url, 1) as (failed,):
        await failed.fetchrow(sql("reserve_ticket"), store, 1)  # ticket 1, committed
        await failed.execute(sql("release_tickets"))
        await failed.execute("BEGIN")
        await failed.fetchrow(sql("reserve_ticket"), store, 1)
        await failed.execute("ROLLBACK")
        with pytest.raises(asyncpg.LockNotAvailableError, match=r"ticket 2 of store \d+ is still held"):
            await asyncio.wait_for(conn.fetchrow(sql("reserve_ticket"), store, 1), 5)
        await failed.execute(sql("release_tickets"))
    assert (await conn.fetchrow(sql("reserve_ticket"), store, 1))["ticket"] == 2
    await conn.execute(sql("release_tickets"))


async def test_an_append_that_fails_after_its_reservation_lets_its_ticket_go(
        db_url: str, conn: asyncpg.Connection) -> None:
    """The driver gives up on the call (its command timeout) while it waits for an earlier
    ticket: the repository lets its ticket go; the earlier one's commit ends it too, and the
    store takes appends again with no pooled connection holding a lock."""
    store = await PgCredentialRepository(conn).create_store("s", None)
    pool = await create_pool(db_url, min_size=1, max_size=2, command_timeout=0.5)
    try:
        repo = PgStatementRepository(pool)
        async with _connections(db_url, 1) as (held,):
            early = await held.fetchrow(sql("reserve_ticket"), store, 1)
            with pytest.raises(ServiceUnavailable):
                await store_statements(repo, principal(store), "1.0.3", [with_id(statement())])
            await _call(held, store, [with_id(statement())], ticket=early)
        assert await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid <> pg_backend_pid()") == 0
        # the earlier ticket's commit ended the abandoned one too: no ticket is in flight, and
        # Consistent-Through is "now" again, not the last stored time
        assert await conn.fetchval("SELECT ended_ticket FROM stores WHERE id = $1", store) == 2
        last = await conn.fetchval("SELECT last_stored FROM stores WHERE id = $1", store)
        await asyncio.sleep(0.05)
        assert await repo.consistent_through(store) > last
        ids = await store_statements(repo, principal(store), "1.0.3", [with_id(statement())])
        assert len(ids) == 1
    finally:
        await pool.close()


async def test_a_failed_append_with_none_in_flight_settles_its_ticket(db_url: str, conn: asyncpg.Connection) -> None:
    """An append that fails after its reservation, with no other in flight and none to follow:
    the repository waits for the tickets once (none), so its ticket ends and Consistent-Through is
    "now" rather than stuck at the last stored time until the store's next append."""
    store = await PgCredentialRepository(conn).create_store("s", None)
    pool = await create_pool(db_url, min_size=1, max_size=2)
    try:
        repo = PgStatementRepository(pool)
        await store_statements(repo, principal(store), "1.0.3", [with_id(statement())])
        # a NUL in a term: PostgreSQL's text refuses it, after the reservation (the server's
        # checks refuse it earlier; this goes around them to make the call itself fail)
        odd = with_id(statement())
        item = prepare(odd, WHO, "1.0.3")
        item.terms["a:mbox:mailto:x\x00@example.org"] = False
        with pytest.raises(asyncpg.PostgresError):
            await repo._write_group(store, [_Write([item], [], True)])
        assert await conn.fetchval("SELECT ended_ticket FROM stores WHERE id = $1", store) == 2
        assert await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid <> pg_backend_pid()") == 0
    finally:
        await pool.close()


async def test_a_failed_append_does_not_make_the_store_wait_for_the_tickets_in_flight(
        db_url: str, conn: asyncpg.Connection) -> None:
    """A request that fails while an earlier ticket is in flight answers at once, and holds up no
    reservation; the earlier ticket's commit ends the failed one's ticket (a review: settling by
    the store's lock made the request and every new append wait for the ticket in flight)."""
    store = await PgCredentialRepository(conn).create_store("s", None)
    pool = await create_pool(db_url, min_size=1, max_size=2)
    try:
        repo = PgStatementRepository(pool)
        async with _connections(db_url, 1) as (held,):
            early = await held.fetchrow(sql("reserve_ticket"), store, 1)
            item = prepare(with_id(statement()), WHO, "1.0.3")
            item.terms["a:mbox:mailto:x\x00@example.org"] = False
            started = time.monotonic()
            with pytest.raises(asyncpg.PostgresError):
                await asyncio.wait_for(repo._write_group(store, [_Write([item], [], True)]), 5)
            assert time.monotonic() - started < 0.5
            # a new reservation is not held up either
            third = await asyncio.wait_for(conn.fetchrow(sql("reserve_ticket"), store, 1), 1)
            await conn.execute(sql("release_tickets"))
            await _call(held, store, [with_id(statement())], ticket=early)
        assert third["ticket"] == 3
        assert await conn.fetchval("SELECT ended_ticket FROM stores WHERE id = $1", store) == 3
    finally:
        await pool.close()
