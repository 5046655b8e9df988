"""An upgrade past a migration that changes the read models' rules says that folded facts keep
the old rule until a rebuild; a new database says nothing of the kind."""

from __future__ import annotations

import uuid

import asyncpg
import orjson

from lrs.store.embedded import EmbeddedPostgres
from lrs.store.migrate import READ_MODEL_RULES, migrate, rebuild_advised
from tests.conftest import new_database, start_server, stop_server

LAST = max(READ_MODEL_RULES)


async def test_serve_on_a_log_folded_under_the_old_rules_says_to_rebuild(pg: EmbeddedPostgres) -> None:
    url = await new_database(pg, template=None)
    conn = await asyncpg.connect(url)
    try:
        # the database as the release before the last rule change left it, with a statement
        await migrate(conn, upto=LAST - 1)
        store = await conn.fetchval("INSERT INTO stores (name) VALUES ('ahus') RETURNING id")
        sid = uuid.uuid4()
        body = {"id": str(sid), "actor": {"mbox": "mailto:kari.nordmann@example.org"},
                "verb": {"id": "http://adlnet.gov/expapi/verbs/completed"}, "object": {"id": "https://x.example.org/c"}}
        await conn.execute("INSERT INTO events (store_id, position, kind, recorded_at, statement_id, payload) "
                           "VALUES ($1, 1, 'statement', now(), $2, $3::text::json)", store, sid,
                           orjson.dumps(body).decode())
        await conn.execute("UPDATE stores SET last_position = 1 WHERE id = $1", store)
    finally:
        await conn.close()
    server = start_server(url)
    try:
        logs = server.logs()
    finally:
        stop_server(server)
    assert f"database migrated: {LAST:04d}" in logs
    assert f"read models: migration {LAST:04d} changed what the read models take from a statement" in logs
    assert "spor projections rebuild all" in logs


async def test_a_new_database_is_told_nothing_about_rebuilding(pg: EmbeddedPostgres) -> None:
    conn = await asyncpg.connect(await new_database(pg, template=None))
    try:
        applied = await migrate(conn)
        assert LAST in applied
        assert await rebuild_advised(conn, applied) == []
    finally:
        await conn.close()
