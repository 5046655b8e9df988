"""The statement index under the Statements rules, without HTTP: StatementRef filter inheritance
(xAPI Communication 2.1.3.s3) in every arrival order, voiding (Data 2.3.2) and idempotent writes
racing each other (Communication 2.1.2.s2.b4/b5) on a real PostgreSQL.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from typing import Any

import asyncpg
import orjson
import pytest

from lrs.errors import Conflict
from lrs.ops import terms as T
from lrs.ops.principal import Principal
from lrs.ops.statements import Query, store_statements
from lrs.store.credentials import PgCredentialRepository
from lrs.store.queries import sql
from lrs.store.statements import PgStatementRepository
from tests.statements import agent, statement

AUTHORITY = {"objectType": "Agent", "account": {"homePage": "https://spor.example.org", "name": "query-test"}}
VOIDED = "http://adlnet.gov/expapi/verbs/voided"


def principal(store_id: int) -> Principal:
    return Principal(store_id, None, frozenset({"all"}), AUTHORITY, "account:query-test")


@pytest.fixture
def repo(pool: asyncpg.Pool) -> PgStatementRepository:
    return PgStatementRepository(pool)


@pytest.fixture
async def store(conn: asyncpg.Connection) -> int:
    return await PgCredentialRepository(conn).create_store("queries-" + uuid.uuid4().hex[:6], None)


def ref(target: str, by: str, verb: str = "http://example.org/verbs/confirmed") -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "actor": agent(by), "verb": {"id": verb},
            "object": {"objectType": "StatementRef", "id": target}}


def agent_key(name: str) -> str:
    key = T.agent_key(agent(name))
    assert key is not None
    return key


async def ids_for(repo: PgStatementRepository, store: int, **q: Any) -> set[str]:
    rows = (await repo.query(store, Query(limit=100, **q))).rows
    return {r.id for r in rows}


def chain() -> dict[str, dict[str, Any]]:
    """c is Kari's statement about an activity; b targets c; a targets b."""
    c = {"id": str(uuid.uuid4()), **statement(actor="kari", activity="sepsis")}
    b = ref(c["id"], by="ola")
    a = ref(b["id"], by="per")
    return {"a": a, "b": b, "c": c}


async def new_store(conn: asyncpg.Connection) -> int:
    return await PgCredentialRepository(conn).create_store("queries-" + uuid.uuid4().hex[:6], None)


async def test_statement_ref_chain_matches_the_targets_filters_in_any_arrival_order(
    repo: PgStatementRepository, conn: asyncpg.Connection
) -> None:
    """Communication 2.1.3.s3: a targets b targets c; a and b match c's filters recursively,
    whichever of the three is stored first (one request each). Every order gets its own store;
    the orders that lose a match are listed together."""
    wrong: dict[str, list[str]] = {}
    for order in itertools.permutations("abc"):
        store = await new_store(conn)
        stmts = chain()
        for name in order:
            await store_statements(repo, principal(store), "1.0.3", [stmts[name]])
        everyone = {s["id"] for s in stmts.values()}
        got = {
            "agent": await ids_for(repo, store, agent=agent_key("kari")),
            "activity": await ids_for(repo, store, activity="https://courses.example.org/sepsis"),
        }
        names = {s["id"]: n for n, s in stmts.items()}
        for what, found in got.items():
            if found != everyone:
                wrong["".join(order) + " " + what] = sorted(names[i] for i in everyone - found)
    assert wrong == {}, f"arrival order -> statements missing from the match: {wrong}"


async def test_statement_ref_chain_in_one_batch_matches_in_any_order(
    repo: PgStatementRepository, conn: asyncpg.Connection
) -> None:
    """Communication 2.1.3.s3 within one batch, in any order inside it."""
    wrong: dict[str, list[str]] = {}
    for order in itertools.permutations("abc"):
        store = await new_store(conn)
        stmts = chain()
        await store_statements(repo, principal(store), "1.0.3", [stmts[n] for n in order])
        found = await ids_for(repo, store, agent=agent_key("kari"))
        if found != {s["id"] for s in stmts.values()}:
            wrong["".join(order)] = sorted(n for n, s in stmts.items() if s["id"] not in found)
    assert wrong == {}, f"batch order -> statements missing from the match: {wrong}"


async def test_a_voided_target_is_hidden_but_its_referrers_still_match_its_filters(
    repo: PgStatementRepository, store: int
) -> None:
    """Communication 2.1.4.s1.b1/b2: the voided statement is never returned; statements targeting
    it (the voiding statement included) still match through it."""
    target = {"id": str(uuid.uuid4()), **statement(actor="kari")}
    comment = ref(target["id"], by="ola")
    voiding = ref(target["id"], by="admin", verb=VOIDED)
    await store_statements(repo, principal(store), "1.0.3", [target, comment])
    await store_statements(repo, principal(store), "1.0.3", [voiding])
    assert await ids_for(repo, store, agent=agent_key("kari")) == {comment["id"], voiding["id"]}
    row = await repo.get(store, target["id"])
    assert row is not None and row.voided


async def test_identical_statement_stored_concurrently_is_stored_once_without_error(
    repo: PgStatementRepository, store: int, conn: asyncpg.Connection
) -> None:
    """Communication 2.1.2.s2.b4: writers racing with the same statement all succeed (the later
    ones are matching re-sends) and one copy is stored."""
    s = {"id": str(uuid.uuid4()), **statement(actor="kari")}
    results = await asyncio.gather(
        *(store_statements(repo, principal(store), "1.0.3", [dict(s)]) for _ in range(6)), return_exceptions=True
    )
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert await conn.fetchval("SELECT count(*) FROM statements WHERE store_id = $1", store) == 1


async def test_different_statements_with_one_id_stored_concurrently_keep_one_and_conflict_the_rest(
    repo: PgStatementRepository, store: int, conn: asyncpg.Connection
) -> None:
    """Communication 2.1.2.s2.b5: of racing writers with one id and different content, one wins;
    the others get Conflict (409)."""
    sid = str(uuid.uuid4())
    versions = [{"id": sid, **statement(actor=f"person{i}")} for i in range(6)]
    results = await asyncio.gather(
        *(store_statements(repo, principal(store), "1.0.3", [v]) for v in versions), return_exceptions=True
    )
    assert sum(1 for r in results if not isinstance(r, BaseException)) == 1
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException))
    assert await conn.fetchval("SELECT count(*) FROM statements WHERE store_id = $1", store) == 1


def _scans_of(plan: dict[str, Any], relation: str) -> list[dict[str, Any]]:
    found = [plan] if plan.get("Relation Name") == relation else []
    for child in plan.get("Plans", []):
        found += _scans_of(child, relation)
    return found


async def test_a_query_reads_its_filter_terms_from_the_index_alone(
        repo: PgStatementRepository, conn: asyncpg.Connection, store: int) -> None:
    """The terms index carries ``direct`` (0023): a query by agent and activity, related or not,
    checks its terms without reading the statement_terms heap. A person's statements lie across
    the whole history, so in a store larger than memory each heap read was a random read from
    disk (agent queries at 10,000,000 statements: 49 ms p95, most of it these reads)."""
    stmts = [{"id": str(uuid.uuid4()), **statement(actor=f"p{i % 4}", activity=f"course-{i % 3}")} for i in range(120)]
    await store_statements(repo, principal(store), "1.0.3", stmts)
    # the test cluster commits without waiting for the WAL (synchronous_commit off), and a row
    # cannot be marked visible to all before its commit's WAL is on disk: a checkpoint puts it
    # there, then the vacuum autovacuum would run
    await conn.execute("CHECKPOINT")
    await conn.execute("VACUUM statement_terms")
    horizon = await conn.fetchval("SELECT last_position FROM stores WHERE id = $1", store)
    activity = T.ACTIVITY + "https://courses.example.org/course-1"
    for related in (False, True):
        args = [store, T.AGENT + agent_key("p1"), related, horizon, None, None, None, 101,
                activity, related, None, False, None, False, None]
        async with conn.transaction():
            # a planner that would read a tiny table whole is told to use its indexes, as it
            # does for a big one
            await conn.execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off")
            explained = await conn.fetchval(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + sql("query_by_term_desc"), *args)
        plan = (orjson.loads(explained) if isinstance(explained, str) else explained)[0]["Plan"]
        scans = _scans_of(plan, "statement_terms")
        assert len(scans) == 2, plan  # the agent drives, the activity is checked
        assert [(s["Node Type"], s["Heap Fetches"]) for s in scans] == [("Index Only Scan", 0)] * 2, scans
        rows = await conn.fetch(sql("query_by_term_desc"), *args)
        want = {s["id"] for i, s in enumerate(stmts) if i % 4 == 1 and i % 3 == 1}
        assert {r["id"] for r in rows} == want
