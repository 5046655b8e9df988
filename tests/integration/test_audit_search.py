"""The audit trail answers "who read my records" (audit_by_person) by index, not by reading every
row of a trail that only grows (migration 0017)."""

from __future__ import annotations

import json

import asyncpg

from lrs.store.credentials import PgCredentialRepository
from lrs.store.queries import sql


async def _trail(conn: asyncpg.Connection) -> int:
    store = await PgCredentialRepository(conn).create_store("audited", None)
    # many reads about other people, three about P-0042: as an analyst row, an agent parameter
    # and the reader itself
    await conn.executemany(
        "INSERT INTO audit_log (store_id, credential_id, person, action, request, records) "
        "VALUES ($1, NULL, $2, $3, $4::jsonb, 1)",
        [(store, None, "analyst.compliance", json.dumps({"persons": [f"P-{i:04d}", f"P-{i + 1:04d}"]}))
         for i in range(100, 3100)]
        + [(store, None, "analyst.compliance", json.dumps({"persons": ["P-0041", "P-0042"]})),
           (store, None, "xapi.statements", json.dumps({"agent": "P-0042"})),
           (store, "P-0042", "xapi.statements", json.dumps({}))])
    await conn.execute("ANALYZE audit_log")
    return store


async def test_the_reads_about_a_person_are_found_all_three_ways(conn: asyncpg.Connection) -> None:
    await _trail(conn)
    found = await conn.fetch(sql("audit_by_person"), "P-0042", 100)
    assert [(r["action"], r["person"]) for r in found] == [
        ("xapi.statements", "P-0042"), ("xapi.statements", None), ("analyst.compliance", None)]
    assert len(await conn.fetch(sql("audit_by_person"), "P-0150", 100)) == 2


async def test_a_search_by_person_reads_indexes_not_the_whole_trail(conn: asyncpg.Connection) -> None:
    await _trail(conn)
    query = sql("audit_by_person").replace("$1", "'P-0042'").replace("$2", "100")
    plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + query))
    assert "Seq Scan on audit_log" not in plan, plan
    for index in ("audit_log_persons", "audit_log_agent", "audit_log_person"):
        assert index in plan, plan
