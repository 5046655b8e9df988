"""The two statement append paths: the one-round-trip function (migration 0007) takes the
common case, and hands every case that needs the general path's rules back untouched."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg
import orjson

from lrs.ops import terms as T
from lrs.ops.principal import Principal
from lrs.ops.statements import get_statement, prepare, store_statements
from lrs.ops.timestamps import format_timestamp
from lrs.store.credentials import PgCredentialRepository
from lrs.store.db import create_pool
from lrs.store.queries import sql
from lrs.store.statements import PgStatementRepository
from tests.statements import agent, statement, with_id

AUTHORITY = {"objectType": "Agent", "account": {"homePage": "https://spor.example.org", "name": "test"}}
WHO = Principal(0, None, frozenset({"all"}), AUTHORITY, "account:x")


def _principal(store_id: int) -> Principal:
    return Principal(store_id, None, frozenset({"all"}), AUTHORITY, "account:x")


async def _call(conn: asyncpg.Connection, store: int, stmts: list[dict]) -> datetime | None:
    """spor_append_statements with the arguments the repository would build (no definitions)."""
    items = [prepare(s, WHO, "1.0.3") for s in stmts]
    bodies, fill, names, rows, direct = [], [], [], [], []
    for row, p in enumerate(items, start=1):
        fill.append("timestamp" not in p.body)
        bodies.append(orjson.dumps(p.body).decode())
        for term, d in p.terms.items():
            names.append(term)
            rows.append(row)
            direct.append(d)
    return await conn.fetchval(
        sql("append_in_one_call"), store, [p.id for p in items], bodies, fill, [None] * len(items),
        [p.terms for p in items], ["account:x"] * len(items), names, rows, direct,
        [], [], [], [], [], [], [])


async def _counts(conn: asyncpg.Connection, store: int) -> tuple[int, int, int, int]:
    return (
        await conn.fetchval("SELECT count(*) FROM events WHERE store_id = $1", store),
        await conn.fetchval("SELECT count(*) FROM statements WHERE store_id = $1", store),
        await conn.fetchval("SELECT count(*) FROM statement_terms WHERE store_id = $1", store),
        await conn.fetchval("SELECT last_position FROM stores WHERE id = $1", store),
    )


async def test_one_call_writes_log_index_terms_and_counter(conn: asyncpg.Connection) -> None:
    store = await PgCredentialRepository(conn).create_store("s", None)
    timed = with_id(statement(actor="ola", timestamp="2026-03-01T08:00:00.000Z"))
    untimed = with_id(statement(actor="kari"))
    stored = await _call(conn, store, [timed, untimed])
    assert isinstance(stored, datetime)
    text = format_timestamp(stored)
    rows = await conn.fetch(
        "SELECT position, statement_id::text AS id, payload::text AS payload, recorded_at FROM events "
        "WHERE store_id = $1 ORDER BY position", store)
    assert [(r["position"], r["id"]) for r in rows] == [(1, timed["id"]), (2, untimed["id"])]
    assert all(r["recorded_at"] == stored for r in rows)
    first, second = (orjson.loads(r["payload"]) for r in rows)
    # stored is set by the LRS; a missing timestamp becomes the stored time (Data 2.4.7)
    assert first["stored"] == text and first["timestamp"] == "2026-03-01T08:00:00.000Z"
    assert second["stored"] == text and second["timestamp"] == text
    assert first["actor"] == timed["actor"] and second["verb"] == untimed["verb"]
    terms = await conn.fetch("SELECT term, position FROM statement_terms WHERE store_id = $1", store)
    assert (T.AGENT + T.agent_key(agent("ola")), 1) in {(t["term"], t["position"]) for t in terms}
    assert len(terms) == sum(len(prepare(s, WHO, "1.0.3").terms) for s in (timed, untimed))
    assert await conn.fetchval("SELECT last_position FROM stores WHERE id = $1", store) == 2


async def test_an_id_stored_already_hands_the_whole_call_back_and_writes_nothing(conn: asyncpg.Connection) -> None:
    store = await PgCredentialRepository(conn).create_store("s", None)
    old = with_id(statement())
    assert await _call(conn, store, [old]) is not None
    before = await _counts(conn, store)
    assert await _call(conn, store, [with_id(statement(actor="ola")), old]) is None
    assert await _counts(conn, store) == before


async def test_a_stored_statement_referring_to_a_new_id_hands_the_call_back(conn: asyncpg.Connection) -> None:
    store = await PgCredentialRepository(conn).create_store("s", None)
    target = str(uuid.uuid4())
    # the voiding statement comes first; the function itself is never sent one that refers
    await conn.execute(
        "INSERT INTO statements (store_id, statement_id, position, stored, voids, refers_to, authority_key, terms) "
        "VALUES ($1, $2, 1, now(), $3, $3, 'account:x', '{}')", store, uuid.uuid4(), uuid.UUID(target))
    await conn.execute("UPDATE stores SET last_position = 1 WHERE id = $1", store)
    before = await _counts(conn, store)
    assert await _call(conn, store, [{**statement(), "id": target}]) is None
    assert await _counts(conn, store) == before


async def test_the_repository_falls_back_to_the_general_path(db_url: str, conn: asyncpg.Connection) -> None:
    """A re-send (same content) and a target whose voiding statement came first are both
    handled by the general path after the one call hands them back."""
    store = await PgCredentialRepository(conn).create_store("s", None)
    who = _principal(store)
    pool = await create_pool(db_url)
    try:
        repo = PgStatementRepository(pool)
        target = with_id(statement())
        voiding = with_id({"actor": target["actor"], "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
                           "object": {"objectType": "StatementRef", "id": target["id"]}})
        await store_statements(repo, who, "1.0.3", [voiding])
        await store_statements(repo, who, "1.0.3", [target])
        assert (await get_statement(repo, who, target["id"], voided=True)).voided
        again = await store_statements(repo, who, "1.0.3", [target])
        assert again.stored is None  # acknowledged, no second copy
        plain = with_id(statement(actor="ola"))
        ids = await store_statements(repo, who, "1.0.3", [plain])
        assert ids.stored is not None
    finally:
        await pool.close()
    assert await conn.fetchval("SELECT count(*) FROM events WHERE store_id = $1", store) == 3
