"""Whom a query's returned statements are about, for its audit row (lrs/ops/statements.py
_persons): small bodies are parsed, a large one's actor and object are read apart in the
database, and one whose body holds the escape \\u0000 is parsed after all. Real PostgreSQL."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from lrs.ops import statements as ops
from lrs.ops.principal import Principal
from lrs.ops.statements import Query, query_statements, record_query, store_statements
from lrs.ops.terms import agent_key
from lrs.store.credentials import PgCredentialRepository
from tests.statements import agent, statement
from tests.store_access import principal, statement_repository


class _Trail:
    def __init__(self) -> None:
        self.rows: list[tuple[str, dict[str, Any], int]] = []

    async def record(self, who: Principal, action: str, request: dict[str, Any], records: int) -> None:
        self.rows.append((action, request, records))


async def test_large_bodies_are_not_parsed_for_whom_they_are_about(
        db_url: str, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    store = await PgCredentialRepository(conn).create_store("s", None)
    big = statement(actor="siri")
    big["result"] = {"extensions": {"https://example.org/ext/log": "x" * 70_000}}
    nul = statement(actor="ola")
    nul["result"] = {"extensions": {"https://example.org/ext/note": "a\u0000b" + "y" * 70_000}}
    group = {**statement(), "actor": {"objectType": "Group", "member": [agent("per"), agent("eva")]}}
    small = statement(actor="kari")
    parsed: list[int] = []
    about = ops._about

    def spy(row: ops.StatementRow) -> tuple[str | None, list[str]]:
        if row.actor is None:
            parsed.append(len(row.payload))
        return about(row)

    monkeypatch.setattr(ops, "_about", spy)
    async with statement_repository(db_url) as repo:
        await store_statements(repo, principal(store), "1.0.3", [big, nul, group, small])
        trail = _Trail()
        page = await query_statements(repo, principal(store), Query(limit=10), audit=trail, asked={"limit": 10})
        assert trail.rows == []  # a read is recorded with what the response holds, by record_query
        await record_query(repo, trail, principal(store), {"limit": 10}, page.rows)
    [(action, request, records)] = trail.rows
    assert (action, records) == ("statements.query", 4)
    expected = {agent_key(agent(n)) for n in ("siri", "ola", "per", "eva", "kari")}
    assert sorted(request["persons"]) == sorted(expected) and request["limit"] == 10
    # parsed: the two small bodies and the large one the database could not read (\u0000); not
    # the large one it could
    assert len(parsed) == 3
    assert sorted(n > ops.PARSED_FOR_PERSONS_MAX for n in parsed) == [False, False, True]
