"""Documents in the log: events per write, the inline projection, rebuild, the If-Match race,
and the canonical Activity projection written in the statement append."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator

import asyncpg
import orjson
import pytest

from lrs.errors import BadRequest, Conflict, PreconditionFailed
from lrs.ops import documents as ops
from lrs.ops.documents import DocKey, Preconditions, Scope
from lrs.ops.statements import store_statements
from lrs.store.activities import agent_names, canonical_definitions
from lrs.store.credentials import PgCredentialRepository
from lrs.store.db import create_pool
from lrs.store.documents import PgDocumentRepository, rebuild_documents
from lrs.store.statements import PgStatementRepository
from tests.statements import statement
from tests.store_access import principal

AGENT = {"objectType": "Agent", "mbox": "mailto:kari@example.org"}
ACTIVITY = "https://courses.example.org/hand-hygiene"


def state_key(doc_id: str = "bookmark", registration: str = "") -> DocKey:
    return DocKey("state", ACTIVITY, "mbox:mailto:kari@example.org", registration, doc_id)


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(db_url)
    yield p
    await p.close()


async def _store(conn: asyncpg.Connection, name: str = "s") -> int:
    return await PgCredentialRepository(conn).create_store(name, None)


async def _projection(conn: asyncpg.Connection, store: int) -> list[tuple[object, ...]]:
    rows = await conn.fetch(
        "SELECT resource, activity_id, agent_key, registration, doc_id, content_type, encode(sha256, 'hex') AS sha,"
        " etag, updated, position FROM documents WHERE store_id = $1 ORDER BY 1, 2, 3, 4, 5", store)
    return [tuple(r.values()) for r in rows]


async def test_every_document_write_is_an_event_and_bumps_the_store_counter(
        pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
    store = await _store(conn)
    repo = PgDocumentRepository(pool)
    who = principal(store)
    pre = Preconditions()
    await ops.put_document(repo, who, "1.0.3", state_key(), AGENT, b'{"x":"foo","y":"bar"}', "application/json", pre)
    await ops.post_document(repo, who, state_key(), AGENT, b'{"x":"bash","z":"faz"}', "application/json", pre)
    await ops.delete_document(repo, who, state_key(), pre)
    events = await conn.fetch("SELECT position, kind, payload FROM events WHERE store_id = $1 ORDER BY position", store)
    assert [(e["position"], e["kind"]) for e in events] == [
        (1, "document.put"), (2, "document.merge"), (3, "document.delete")]
    merged = events[1]["payload"]
    # Events carry the content address, not the bytes.
    assert "content" not in merged
    content = await conn.fetchval("SELECT content FROM document_contents WHERE store_id = $1 AND sha256 = $2",
                                  store, bytes.fromhex(merged["sha256"]))
    assert orjson.loads(content) == {"x": "bash", "y": "bar", "z": "faz"}
    assert merged["etag"] == hashlib.sha1(content).hexdigest()
    assert await conn.fetchval("SELECT last_position FROM stores WHERE id = $1", store) == 3
    assert await repo.get(store, state_key()) is None


async def test_identical_content_is_stored_once(pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
    store = await _store(conn)
    repo = PgDocumentRepository(pool)
    for doc_id in ("a", "b", "c"):
        await ops.put_document(repo, principal(store), "1.0.3", state_key(doc_id), AGENT, b"same bytes", "text/plain",
                               Preconditions())
    assert await conn.fetchval("SELECT count(*) FROM document_contents WHERE store_id = $1", store) == 1
    assert await conn.fetchval("SELECT count(*) FROM documents WHERE store_id = $1", store) == 3


async def test_rebuild_from_the_log_reproduces_every_document_and_etag(
        pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
    store = await _store(conn)
    other = await _store(conn, "other")
    repo = PgDocumentRepository(pool)
    who = principal(store)
    reg = "6a1d3f4e-2b1c-4e5f-9a8b-7c6d5e4f3a2b"
    await ops.put_document(repo, who, "1.0.3", state_key("a"), AGENT, b'{"n":1}', "application/json", Preconditions())
    await ops.post_document(repo, who, state_key("a"), AGENT, b'{"m":2}', "application/json", Preconditions())
    await ops.put_document(repo, who, "1.0.3", state_key("b", reg), AGENT, b"binary\x00", "application/octet-stream",
                           Preconditions())
    await ops.put_document(repo, who, "1.0.3", state_key("c"), AGENT, b"gone soon", "text/plain", Preconditions())
    await ops.delete_document(repo, who, state_key("c"), Preconditions())
    profile = DocKey("activity_profile", ACTIVITY, "", "", "p")
    await ops.put_document(repo, who, "1.0.3", profile, None, b"v1", "text/plain", Preconditions(None, ["*"]))
    etag = (await repo.get(store, profile)).etag  # type: ignore[union-attr]
    await ops.put_document(repo, who, "1.0.3", profile, None, b"v2", "text/plain", Preconditions([etag], None))
    await ops.put_document(repo, principal(other), "1.0.3", state_key("x"), AGENT, b"other store", "text/plain",
                           Preconditions())
    await ops.delete_documents(repo, who, Scope("state", ACTIVITY, "mbox:mailto:kari@example.org", reg))

    before = await _projection(conn, store)
    other_before = await _projection(conn, other)
    assert [r[4] for r in before] == ["p", "a"]
    await conn.execute("DELETE FROM documents WHERE store_id = $1", store)
    await rebuild_documents(conn, store)
    assert await _projection(conn, store) == before
    assert await _projection(conn, other) == other_before
    doc = await repo.get(store, state_key("a"))
    assert doc is not None and orjson.loads(doc.content or b"") == {"n": 1, "m": 2}
    assert doc.etag == hashlib.sha1(doc.content or b"").hexdigest()


async def test_two_writers_racing_with_the_same_if_match_exactly_one_wins(
        pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
    """Both read the same ETag; the store lock makes the second see the first's new ETag."""
    store = await _store(conn)
    repo = PgDocumentRepository(pool)
    who = principal(store)
    key = DocKey("agent_profile", "", "mbox:mailto:kari@example.org", "", "prefs")
    await ops.put_document(repo, who, "2.0.0", key, AGENT, b'{"v":0}', "application/json", Preconditions(None, ["*"]))
    etag = (await repo.get(store, key)).etag  # type: ignore[union-attr]
    for round_ in range(5):
        results = await asyncio.gather(*(
            ops.put_document(repo, who, "2.0.0", key, AGENT, orjson.dumps({"v": round_, "w": i}), "application/json",
                             Preconditions([etag], None))
            for i in range(6)
        ), return_exceptions=True)
        winners = [r for r in results if r is None]
        losers = [r for r in results if isinstance(r, PreconditionFailed)]
        assert len(winners) == 1 and len(losers) == 5, results
        etag = (await repo.get(store, key)).etag  # type: ignore[union-attr]
    puts = await conn.fetchval("SELECT count(*) FROM events WHERE store_id = $1 AND kind = 'document.put'", store)
    assert puts == 1 + 5


async def test_failed_preconditions_and_conflicts_write_nothing(pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
    store = await _store(conn)
    repo = PgDocumentRepository(pool)
    who = principal(store)
    key = DocKey("activity_profile", ACTIVITY, "", "", "p")
    await ops.put_document(repo, who, "1.0.3", key, None, b"v1", "text/plain", Preconditions(None, ["*"]))
    with pytest.raises(Conflict):
        await ops.put_document(repo, who, "1.0.3", key, None, b"v2", "text/plain", Preconditions())
    with pytest.raises(PreconditionFailed):
        await ops.put_document(repo, who, "1.0.3", key, None, b"v2", "text/plain", Preconditions(None, ["*"]))
    with pytest.raises(PreconditionFailed):
        await ops.delete_document(repo, who, key, Preconditions(["nope"], None))
    assert await conn.fetchval("SELECT count(*) FROM events WHERE store_id = $1", store) == 1
    assert await conn.fetchval("SELECT last_position FROM stores WHERE id = $1", store) == 1


async def test_document_and_statement_appends_share_one_position_sequence(
        pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
    store = await _store(conn)
    repo = PgDocumentRepository(pool)
    stmts = PgStatementRepository(pool)
    who = principal(store)
    await asyncio.gather(
        *(ops.put_document(repo, who, "1.0.3", state_key(f"d{i}"), AGENT, b"x", "text/plain", Preconditions())
          for i in range(10)),
        *(store_statements(stmts, who, "1.0.3", [statement(actor=f"p{i}")]) for i in range(10)),
    )
    positions = [r["position"] for r in await conn.fetch(
        "SELECT position FROM events WHERE store_id = $1 ORDER BY position", store)]
    assert positions == list(range(1, 21))


async def test_statement_append_merges_canonical_activity_definitions(
        pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
    store = await _store(conn)
    stmts = PgStatementRepository(pool)
    who = principal(store)
    first = statement()
    first["object"]["definition"] = {"name": {"en-US": "Hand hygiene"}, "type": "http://example.org/old",
                                     "moreInfo": "https://courses.example.org/info"}
    second = statement()
    second["object"]["definition"] = {"name": {"nb-NO": "Håndhygiene"}, "description": {"nb-NO": "Kurs"},
                                      "type": "http://adlnet.gov/expapi/activities/course"}
    sub = statement(activity="sub-activity")
    sub["object"]["definition"] = {"name": {"en-US": "Sub"}}
    third = statement(activity="other", context={"contextActivities": {
        "parent": [{"id": ACTIVITY, "definition": {"name": {"en-GB": "Hand hygiene (GB)"}}}]}},
        object={"objectType": "SubStatement", "actor": {"mbox": "mailto:ola@example.org", "name": "Ola"},
                "verb": {"id": "http://adlnet.gov/expapi/verbs/attempted"}, "object": sub["object"]})
    await store_statements(stmts, who, "1.0.3", [first])
    await store_statements(stmts, who, "1.0.3", [second, third])
    defs = await canonical_definitions(pool, store, [ACTIVITY, "https://courses.example.org/sub-activity", "x:none"])
    assert defs[ACTIVITY] == {
        "name": {"en-US": "Hand hygiene", "nb-NO": "Håndhygiene", "en-GB": "Hand hygiene (GB)"},
        "description": {"nb-NO": "Kurs"},
        "type": "http://adlnet.gov/expapi/activities/course",
        "moreInfo": "https://courses.example.org/info",
    }
    assert defs["https://courses.example.org/sub-activity"] == {"name": {"en-US": "Sub"}}
    assert "x:none" not in defs
    assert await agent_names(pool, store, "mbox:mailto:ola@example.org") == ["Ola"]


async def test_documents_and_activities_work_under_row_level_security(db_url: str, conn: asyncpg.Connection) -> None:
    """As the service role (spor_app, migration 0004) every query sees only its own store."""
    mine = await _store(conn, "mine")
    theirs = await _store(conn, "theirs")
    app_pool = await create_pool(db_url, role="spor_app")
    try:
        repo = PgDocumentRepository(app_pool)
        for store in (mine, theirs):
            await ops.put_document(repo, principal(store), "1.0.3", state_key(), AGENT, f"{store}".encode(),
                                   "text/plain", Preconditions())
            await ops.post_document(repo, principal(store), state_key("j"), AGENT, b'{"a":1}', "application/json",
                                    Preconditions())
            await store_statements(PgStatementRepository(app_pool), principal(store), "1.0.3", [statement()])
        doc = await repo.get(mine, state_key())
        assert doc is not None and doc.content == f"{mine}".encode()
        ids, _ = await repo.ids(mine, Scope("state", ACTIVITY, "mbox:mailto:kari@example.org", None), None)
        assert sorted(ids) == ["bookmark", "j"]
        assert await ops.delete_documents(repo, principal(mine), Scope("state", ACTIVITY,
                                                                        "mbox:mailto:kari@example.org", None)) == 2
        assert ACTIVITY in await canonical_definitions(app_pool, mine, [ACTIVITY])
        assert await agent_names(app_pool, mine, "account:https://id.example.org|emp-kari") == ["Kari"]
    finally:
        await app_pool.close()
    assert await conn.fetchval("SELECT count(*) FROM documents WHERE store_id = $1", theirs) == 2


async def test_a_large_merge_is_split_before_the_store_lock_so_statements_do_not_wait(
        db_url: str, conn: asyncpg.Connection) -> None:
    """A document audit: merging into a JSON document of many members split it under the store's
    append lock (about 5 µs a member), so every statement of the store waited seconds. It is split
    in a thread before the lock now, holding no connection of the pool (a review: the first fix
    held one throughout; here the pool has one connection); a statement sent meanwhile is stored
    at once."""
    store = await _store(conn)
    pool = await create_pool(db_url, min_size=1, max_size=1)
    docs, statements = PgDocumentRepository(pool), PgStatementRepository(pool)
    who = principal(store)
    key = state_key("many-members")
    members = 600_000
    big = b"{" + b",".join(b'"k%d":%d' % (i, i) for i in range(members)) + b"}"
    assert len(big) > ops.SPLIT_IN_THREAD_BYTES
    await ops.put_document(docs, who, "2.0.0", key, AGENT, big, "application/json", Preconditions())
    merge = asyncio.create_task(ops.post_document(docs, who, key, AGENT, b'{"new": true}', "application/json",
                                                  Preconditions(), max_bytes=64 * 1024 * 1024))
    await asyncio.sleep(0.3)  # the merge has read the document and is splitting it
    assert not merge.done()
    async with pool.acquire(timeout=1):  # the pool's one connection is free meanwhile
        pass
    await store_statements(statements, who, "2.0.0", [statement()])
    assert not merge.done(), "the statement waited for the merge"
    await merge
    merged = orjson.loads((await docs.get(store, key)).content)  # type: ignore[union-attr, arg-type]
    assert len(merged) == members + 1 and merged["new"] is True and merged["k599999"] == 599_999
    await pool.close()


async def test_a_merge_splits_both_documents_inside_its_room_in_the_write_buffer(
        pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
    """A JSON POST holds its document split into members, ~18 times its size: split before the
    room in the write buffer was taken, four waiting 15 MB POSTs held 566 MB (an audit). The
    room, for the posted and the large stored document together, comes first; the splits
    happen inside it, and the merge is right."""
    store = await _store(conn)
    repo = PgDocumentRepository(pool)
    who = principal(store)
    stored = {f"s{i}": i for i in range(30_000)}  # ~300 KB: larger than SPLIT_IN_THREAD_BYTES
    stored_bytes = orjson.dumps(stored)
    await ops.put_document(repo, who, "1.0.3", state_key(), AGENT, stored_bytes, "application/json", Preconditions())
    posted = orjson.dumps({"p": 1, "s0": "new"})
    seen: list[tuple[int, bool]] = []
    decision = ops.MergeDecision(Preconditions(), posted, "application/json", None)

    @contextlib.asynccontextmanager
    async def hold(n: int) -> AsyncIterator[None]:
        seen.append((n, decision.posted is None and decision._split is None))
        yield

    await repo.change(store, state_key(), AGENT, decision, with_content=True, prepare=decision.prepare, hold=hold)
    assert seen == [(len(stored_bytes), True)]  # nothing split before the room was taken
    got = await repo.get(store, state_key())
    assert got is not None and orjson.loads(got.content or b"") == {**stored, "p": 1, "s0": "new"}
    # and through the operation: the room is for the posted and the stored document together
    sizes: list[int] = []

    @contextlib.asynccontextmanager
    async def room(n: int) -> AsyncIterator[None]:
        sizes.append(n)
        yield

    more = orjson.dumps({"q": 2})
    await ops.post_document(repo, who, state_key(), AGENT, more, "application/json", Preconditions(), hold=room)
    current = await repo.get(store, state_key())
    assert current is not None and sizes == [len(more) + len(current.content or b"") - len(b',"q":2')]
    # a posted document that is no object is refused, inside the room, with nothing written
    with pytest.raises(BadRequest, match="the posted document is not a JSON object"):
        await ops.post_document(repo, who, state_key(), AGENT, b"[1]", "application/json", Preconditions(), hold=room)
