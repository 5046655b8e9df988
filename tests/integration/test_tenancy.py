"""Stores are tenants, enforced by PostgreSQL: the service's role sees only the stores its
connection is scoped to, even for a query with no store filter at all."""

from __future__ import annotations

import asyncpg
import pytest

from lrs.ops.statements import Query, store_statements
from lrs.store.credentials import PgCredentialRepository
from lrs.store.db import create_pool, scoped
from lrs.store.statements import PgStatementRepository
from tests.statements import statement
from tests.store_access import principal


@pytest.fixture
async def app_pool(db_url: str):  # type: ignore[no-untyped-def]
    pool = await create_pool(db_url, role="spor_app")
    yield pool
    await pool.close()


async def _two_stores_with_statements(conn: asyncpg.Connection, pool: asyncpg.Pool) -> tuple[int, int]:
    repo = PgCredentialRepository(conn)
    a, b = await repo.create_store("akershus", None), await repo.create_store("ostfold", None)
    statements = PgStatementRepository(pool)
    await store_statements(statements, principal(a), "2.0.0", [statement(actor="kari"), statement(actor="ola")])
    await store_statements(statements, principal(b), "2.0.0", [statement(actor="per")])
    return a, b


async def test_a_query_without_a_store_filter_returns_only_the_scoped_store(
    conn: asyncpg.Connection, app_pool: asyncpg.Pool
) -> None:
    a, b = await _two_stores_with_statements(conn, app_pool)
    async with scoped(app_pool, [a]) as c:
        assert await c.fetchval("SELECT current_user") == "spor_app"
        assert await c.fetchval("SELECT count(*) FROM events") == 2
        assert await c.fetchval("SELECT count(*) FROM statements") == 2
        assert {r["store_id"] for r in await c.fetch("SELECT store_id FROM statement_terms")} == {a}
    async with scoped(app_pool, [b]) as c:
        assert await c.fetchval("SELECT count(*) FROM events") == 1
    # the owner (migrations, CLI) sees both
    assert await conn.fetchval("SELECT count(*) FROM events") == 3


async def test_an_unscoped_service_connection_sees_nothing(conn: asyncpg.Connection, app_pool: asyncpg.Pool) -> None:
    await _two_stores_with_statements(conn, app_pool)
    async with app_pool.acquire() as c:
        assert await c.fetchval("SELECT count(*) FROM events") == 0
        assert await c.fetchval("SELECT count(*) FROM statements") == 0


async def test_the_service_cannot_write_into_another_store(conn: asyncpg.Connection, app_pool: asyncpg.Pool) -> None:
    a, b = await _two_stores_with_statements(conn, app_pool)
    async with scoped(app_pool, [a], a) as c:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await c.execute("INSERT INTO attachments (store_id, sha2, content_type, content) "
                            "VALUES ($1, 'x', 'text/plain', 'x')", b)
        # updates of another store's rows silently touch nothing
        assert await c.execute("UPDATE statements SET voided = true WHERE store_id = $1", b) == "UPDATE 0"
    assert await conn.fetchval("SELECT count(*) FROM statements WHERE voided") == 0


async def test_the_service_role_cannot_rewrite_the_log_or_read_the_audit_trail(
    conn: asyncpg.Connection, app_pool: asyncpg.Pool
) -> None:
    a, _ = await _two_stores_with_statements(conn, app_pool)
    async with scoped(app_pool, [a], a) as c:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await c.execute("DELETE FROM events WHERE store_id = $1", a)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await c.fetch("SELECT * FROM audit_log")


async def test_repository_reads_through_the_service_role_stay_in_their_store(
    conn: asyncpg.Connection, app_pool: asyncpg.Pool
) -> None:
    a, b = await _two_stores_with_statements(conn, app_pool)
    repo = PgStatementRepository(app_pool)
    rows_a = (await repo.query(a, Query(limit=10))).rows
    rows_b = (await repo.query(b, Query(limit=10))).rows
    assert len(rows_a) == 2 and len(rows_b) == 1
    assert {r.id for r in rows_a}.isdisjoint({r.id for r in rows_b})


async def test_a_scoped_connection_back_in_the_pool_sees_nothing(conn: asyncpg.Connection, db_url: str) -> None:
    """The pool resets only connections that carried a scope; the next borrower of the very same
    connection, unscoped, sees no store's rows — also after a scoped block that failed."""
    pool = await create_pool(db_url, min_size=1, max_size=1, role="spor_app")
    try:
        a, _ = await _two_stores_with_statements(conn, pool)
        async with scoped(pool, [a]) as c:
            pid = await c.fetchval("SELECT pg_backend_pid()")
            assert await c.fetchval("SELECT count(*) FROM events") == 2
        async with pool.acquire() as c:
            assert await c.fetchval("SELECT pg_backend_pid()") == pid
            assert await c.fetchval("SELECT count(*) FROM events") == 0
            assert await c.fetchval("SELECT current_user") == "spor_app"
        with pytest.raises(ZeroDivisionError):
            async with scoped(pool, [a]):
                raise ZeroDivisionError
        async with pool.acquire() as c:
            assert await c.fetchval("SELECT pg_backend_pid()") == pid
            assert await c.fetchval("SELECT count(*) FROM statements") == 0
    finally:
        await pool.close()
