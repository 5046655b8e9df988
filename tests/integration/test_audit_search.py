"""The audit trail answers "who read my records" (audit_by_person) by index, not by reading every
row of a trail that only grows (migration 0017)."""

from __future__ import annotations

import io
import json

import asyncpg
import orjson
import pytest

from lrs import person_export
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


async def _newer_reads_elsewhere(conn: asyncpg.Connection) -> None:
    """Five reads about P-0042 in another store, "elsewhere", newer than _trail's."""
    other = await PgCredentialRepository(conn).create_store("elsewhere", None)
    await conn.executemany(
        "INSERT INTO audit_log (store_id, credential_id, person, action, request, records) "
        "VALUES ($1, NULL, NULL, 'xapi.statements', $2::jsonb, 1)",
        [(other, json.dumps({"persons": ["P-0042"]})) for _ in range(5)])


async def test_the_reads_about_a_person_are_found_all_three_ways(conn: asyncpg.Connection) -> None:
    await _trail(conn)
    found = await conn.fetch(sql("audit_by_person"), "P-0042", 100, None)
    assert [(r["action"], r["person"]) for r in found] == [
        ("xapi.statements", "P-0042"), ("xapi.statements", None), ("analyst.compliance", None)]
    assert len(await conn.fetch(sql("audit_by_person"), "P-0150", 100, None)) == 2


async def test_a_search_by_person_reads_indexes_not_the_whole_trail(conn: asyncpg.Connection) -> None:
    store = await _trail(conn)
    for in_store in ("NULL", str(store)):
        query = sql("audit_by_person").replace("$1", "'P-0042'").replace("$2", "100").replace("$3", in_store)
        plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + query))
        assert "Seq Scan on audit_log" not in plan, plan
        for index in ("audit_log_persons", "audit_log_agent", "audit_log_person"):
            assert index in plan, plan


async def test_a_search_in_one_store_is_not_crowded_out_by_other_stores_reads(conn: asyncpg.Connection) -> None:
    """The limit counts the store's reads only (a person's export, lrs/person_export.py _reads):
    newer reads about the person in another store, more than the limit, do not hide them."""
    store = await _trail(conn)
    await _newer_reads_elsewhere(conn)
    everywhere = await conn.fetch(sql("audit_by_person"), "P-0042", 3, None)
    assert [r["store"] for r in everywhere] == ["elsewhere"] * 3
    here = await conn.fetch(sql("audit_by_person"), "P-0042", 3, store)
    assert [(r["store"], r["action"]) for r in here] == [
        ("audited", "xapi.statements"), ("audited", "xapi.statements"), ("audited", "analyst.compliance")]


async def test_an_export_lists_the_store_s_reads_however_many_another_store_has(
        conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    store = await _trail(conn)
    await _newer_reads_elsewhere(conn)
    monkeypatch.setattr(person_export, "READS_MAX", 3)
    out = io.BytesIO()
    counts = person_export.Counts()
    w = person_export._JsonWriter(out)
    await person_export._reads(conn, store, person_export.Identity([], ["P-0042"]), w, counts)
    w.close()
    reads = orjson.loads(out.getvalue())["reads"]
    assert counts.reads == 3 and {r["store"] for r in reads} == {"audited"}
