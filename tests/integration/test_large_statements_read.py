"""Large statements read within bounds. A statement's size is stored with its event, and a
query page ends at a byte budget (migration 0031): a page of a hundred statements of 60 MB each
was read and built at once. Communication 2.1.3 lets a page hold fewer statements than the
limit; its more goes on. A single statement's read names its actor without parsing it whole."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import orjson
import pytest

from lrs.ops.principal import Principal
from lrs.ops.statements import Query, StatementRow, _about, get_statement, store_statements
from lrs.ops.terms import agent_key
from lrs.store.credentials import PgCredentialRepository
from lrs.store.queries import sql
from lrs.store.statements import PgStatementRepository
from tests.statements import agent, statement, with_id

AUTHORITY = {"objectType": "Agent", "account": {"homePage": "https://spor.example.org", "name": "bytes-test"}}
OTHER = {"objectType": "Agent", "account": {"homePage": "https://spor.example.org", "name": "someone-else"}}
VOIDED = "http://adlnet.gov/expapi/verbs/voided"
COMPLETED = "http://adlnet.gov/expapi/verbs/completed"
MINE = agent_key(AUTHORITY)
KARI = agent_key(agent("kari"))


def principal(store_id: int, authority: dict[str, Any] = AUTHORITY) -> Principal:
    return Principal(store_id, None, frozenset({"all"}), authority, agent_key(authority) or "")


@pytest.fixture
def repo(pool: asyncpg.Pool) -> PgStatementRepository:
    return PgStatementRepository(pool)


@pytest.fixture
async def store(conn: asyncpg.Connection) -> int:
    return await PgCredentialRepository(conn).create_store("bytes-" + uuid.uuid4().hex[:6], None)


def padded(size: int, actor: str = "kari", **extra: Any) -> dict[str, Any]:
    """A statement carrying ``size`` characters of padding, two octets each in UTF-8."""
    return with_id(statement(actor=actor, result={"extensions": {"https://example.org/pad": "ø" * size}}, **extra))


async def sizes_by_id(conn: asyncpg.Connection, store: int) -> dict[str, int]:
    rows = await conn.fetch("SELECT statement_id::text AS id, payload_bytes FROM events WHERE store_id = $1", store)
    return {r["id"]: r["payload_bytes"] for r in rows}


async def test_both_append_paths_store_each_statements_size_in_octets(
        repo: PgStatementRepository, conn: asyncpg.Connection, store: int) -> None:
    who = principal(store)
    # the one-call path: with a timestamp sent, and one the LRS fills in
    timed = padded(300, timestamp="2026-03-01T08:00:00.000Z")
    await store_statements(repo, who, "1.0.3", [timed, padded(10, actor="ola")])
    # the general path: a target whose voiding statement came first, in a batch with another
    target = padded(50)
    voiding = with_id({"actor": agent("admin"), "verb": {"id": VOIDED},
                       "object": {"objectType": "StatementRef", "id": target["id"]}})
    await store_statements(repo, who, "1.0.3", [voiding])
    await store_statements(repo, who, "2.0.0", [target, padded(7, actor="per")])
    rows = await conn.fetch("SELECT payload_bytes, octet_length(payload::text) AS octets FROM events "
                            "WHERE store_id = $1", store)
    assert len(rows) == 5
    assert all(r["payload_bytes"] == r["octets"] for r in rows), [tuple(r) for r in rows]
    assert max(r["octets"] for r in rows) > 600  # "ø" is two octets: characters would be fewer


async def pages(repo: PgStatementRepository, store: int, budget: int | None, **q: Any) -> list[list[str]]:
    """The ids of each page of a query, following the position cursor as a more URL would."""
    out: list[list[str]] = []
    query = Query(limit=q.pop("limit", 100), page_bytes=budget, **q)
    horizon = None
    while True:
        page = await repo.query(store, query)
        assert not page.ends_early or len(page.rows) <= query.limit
        rows = page.rows[: query.limit]
        out.append([r.id for r in rows])
        if not (len(page.rows) > query.limit or page.ends_early):
            return out
        horizon = page.horizon if horizon is None else horizon
        query = Query(**{**query.__dict__, "after": rows[-1].position, "horizon": horizon})


QUERIES: dict[str, dict[str, Any]] = {
    "the whole store, newest first": {},
    "the whole store, oldest first": {"ascending": True},
    "by agent (from the event log)": {"agent": KARI},
    "by agent, oldest first": {"agent": KARI, "ascending": True},
    "by agent with attachment hashes": {"agent": KARI, "attachments": True},
    "a credential's own statements": {"authority": MINE},
    "a credential's own, by verb": {"authority": MINE, "verb": COMPLETED},
}


@pytest.mark.parametrize("name", QUERIES)
async def test_a_page_ends_where_its_statements_would_pass_the_budget(
        repo: PgStatementRepository, conn: asyncpg.Connection, store: int, name: str) -> None:
    """Every query path (the whole store, a page by filter term from the event log or from the
    statement index) keeps to the budget, the first statement of a page always comes however
    large, and the pages together hold every statement once, in order."""
    who = principal(store)
    q = dict(QUERIES[name])
    # sizes in characters of padding: a big one alone over the budget, and a voided one
    sizes = [100, 100, 100, 1500, 100, 600, 100, 100]
    sent = [padded(n) for n in sizes]
    for s in sent:  # one append each: positions in this order
        await store_statements(repo, who, "1.0.3", [s])
    voided = sent[1]
    void = {"actor": agent("admin"), "verb": {"id": VOIDED},
            "object": {"objectType": "StatementRef", "id": voided["id"]}}
    await store_statements(repo, who, "1.0.3", [with_id(void)])
    size = await sizes_by_id(conn, store)
    order = [s["id"] for s in sent if s is not voided]
    if not q.get("ascending"):
        order.reverse()
    # the voiding statement is in every answer (by filter term, as a StatementRef to a match)
    voiding = next(i for i in size if i not in {s["id"] for s in sent})
    order = [voiding, *order] if not q.get("ascending") else [*order, voiding]
    budget = size[sent[0]["id"]] * 2 + size[sent[0]["id"]] // 2  # two small ones fit, not three

    got = await pages(repo, store, budget, **q)
    assert [i for p in got for i in p] == order
    for p in got:
        assert len(p) == 1 or sum(size[i] for i in p) <= budget, (p, budget)
    # each page is as full as the budget allows: the next statement would not have fitted
    flat = [i for p in got for i in p]
    at = 0
    for p in got[:-1]:
        at += len(p)
        assert sum(size[i] for i in p) + size[flat[at]] > budget
    # without a budget, or with a large one, one page
    assert await pages(repo, store, None, **q) == [order]
    assert await pages(repo, store, 10**9, **q) == [order]
    # a budget of one octet: one statement a page
    assert await pages(repo, store, 1, **q) == [[i] for i in order]


async def test_a_limit_still_ends_a_page_within_the_budget(
        repo: PgStatementRepository, conn: asyncpg.Connection, store: int) -> None:
    who = principal(store)
    sent = [padded(10) for _ in range(7)]
    await store_statements(repo, who, "1.0.3", sent)
    assert await pages(repo, store, 10**6, limit=3, ascending=True) == [
        [s["id"] for s in sent[:3]], [s["id"] for s in sent[3:6]], [sent[6]["id"]]]


async def test_a_page_read_in_rounds_keeps_what_is_left_of_the_budget(
        repo: PgStatementRepository, conn: asyncpg.Connection, store: int) -> None:
    """A page by term reads positions in rounds when statement filters drop some (here the
    since window drops none, but another authority's statements are dropped for a credential
    reading its own): a later round gets only what the earlier ones left, and its first row
    ends the page when that alone is over it."""
    mine, theirs = principal(store), principal(store, OTHER)
    # the first page asks for limit + 1 positions: three; the other credential's two in between
    # send the page into a second round
    a, b = padded(100), padded(100)
    x, y = padded(100), padded(100)
    c = padded(100)
    for s, who in ((a, mine), (x, theirs), (y, theirs), (b, mine), (c, mine)):
        await store_statements(repo, who, "1.0.3", [s])
    size = await sizes_by_id(conn, store)
    got = await pages(repo, store, size[a["id"]] * 2 + 10, limit=2, verb=COMPLETED, authority=MINE,
                      ascending=True)
    assert got == [[a["id"], b["id"]], [c["id"]]]
    got = await pages(repo, store, size[a["id"]] + 10, limit=2, verb=COMPLETED, authority=MINE,
                      ascending=True)
    assert got == [[a["id"]], [b["id"]], [c["id"]]]


async def test_events_without_a_stored_size_are_measured(
        repo: PgStatementRepository, conn: asyncpg.Connection, store: int) -> None:
    """Events written before 0031 (or by an older server) have no size: readers measure the
    body itself, and the budget holds the same."""
    who = principal(store)
    sent = [padded(n) for n in (100, 100, 100, 700, 100)]
    for s in sent:
        await store_statements(repo, who, "1.0.3", [s])
    size = await sizes_by_id(conn, store)
    budget = size[sent[0]["id"]] * 2 + 5
    queries: dict[str, dict[str, Any]] = {"all": {}, "verb": {"verb": COMPLETED},
                                          "mine": {"authority": MINE, "verb": COMPLETED}}
    expected = {name: await pages(repo, store, budget, **q) for name, q in queries.items()}
    assert expected["all"] == [[sent[4]["id"]], [sent[3]["id"]], [sent[2]["id"], sent[1]["id"]], [sent[0]["id"]]]
    async with conn.transaction():
        await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
        await conn.execute("UPDATE events SET payload_bytes = NULL WHERE store_id = $1", store)
        await conn.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
    assert set((await sizes_by_id(conn, store)).values()) == {None}
    for name, q in queries.items():
        assert await pages(repo, store, budget, **q) == expected[name], name


async def test_a_single_read_names_whom_it_is_about_without_parsing_the_statement(
        repo: PgStatementRepository, store: int) -> None:
    """The audit trail records whom a read statement is about; that parsed the whole statement
    on the event loop (20 MB: 1.4 s and 600 MB, a memory audit). The repository reads the actor
    and an Agent or Group object apart; the keys come from them alone."""
    who = principal(store)
    s = padded(1000, actor="ola")
    s["object"] = {"objectType": "Group", "member": [agent("kari")]}
    await store_statements(repo, who, "1.0.3", [s])
    row = await repo.get(store, s["id"])
    assert row is not None and row.actor is not None
    assert orjson.loads(row.actor) == s["actor"]
    assert row.agent_object is not None and orjson.loads(row.agent_object) == s["object"]
    assert (await get_statement(repo, who, s["id"], voided=False)).id == s["id"]
    # the json operators refuse a body holding \u0000 anywhere (an extension value may): no
    # actor read apart, and the statement still reads (its actor from the body)
    nul = with_id(statement(actor="per", result={"extensions": {"https://example.org/nul": "a\x00b"}}))
    await store_statements(repo, who, "1.0.3", [nul])
    nul_row = await repo.get(store, nul["id"])
    assert nul_row is not None and nul_row.actor is None
    assert _about(nul_row) == (agent_key(nul["actor"]), [agent_key(nul["actor"])])
    assert (await get_statement(repo, who, nul["id"], voided=False)).id == nul["id"]
    # the payload is not read for it: a row whose body is no JSON at all still names its actor
    assert _about(StatementRow(id=s["id"], payload=b"not json", stored=row.stored, voided=False,
                               actor=row.actor, agent_object=row.agent_object)) == (
        agent_key(s["actor"]), [agent_key(s["actor"]), KARI])


async def test_a_later_round_reads_no_body_past_what_is_left(
        repo: PgStatementRepository, conn: asyncpg.Connection, store: int) -> None:
    """The first kept row of a read always had its body, for the page's first statement; in a
    page's later round that body was read and thrown away when it alone was over what was left
    (a review: a 60 MB statement read for nothing each page). Given that the page has rows, the
    readers leave it out."""
    who = principal(store)
    sent = [padded(500) for _ in range(3)]
    for s in sent:
        await store_statements(repo, who, "1.0.3", [s])
    positions = [r[0] for r in await conn.fetch(
        "SELECT position FROM statements WHERE store_id = $1 ORDER BY position", store)]
    for name, extra in (("log_statements_at", []), ("statements_at", [None])):
        for started, bodies in ((False, 1), (True, 0)):
            rows = await conn.fetch(sql(name), store, positions, None, None, *extra, 10, started)
            assert sum(r["payload"] is not None for r in rows) == bodies, (name, started)
            assert all(r["kept"] and r["bytes"] > 10 for r in rows)
        rows = await conn.fetch(sql(name), store, positions, None, None, *extra, 10**6, True)
        assert all(r["payload"] is not None for r in rows)


async def test_a_read_mine_page_is_not_cut_by_the_statements_it_leaves_out(
        repo: PgStatementRepository, store: int) -> None:
    """The statements a read/mine credential's filters match only by another's terms (its own
    StatementRefs to another's statement) are left out before the byte budget is counted (a
    review: they used it up, the page came back empty and cut, and the server failed on it)."""
    theirs = with_id(statement(actor="sigrid"))
    await store_statements(repo, principal(store, OTHER), "1.0.3", [theirs])
    refs = [padded(4000, actor="kari", object={"objectType": "StatementRef", "id": theirs["id"]}) for _ in range(3)]
    own = padded(4000, actor="sigrid")
    await store_statements(repo, principal(store), "1.0.3", [own])
    await store_statements(repo, principal(store), "1.0.3", refs)
    sigrid = agent_key(agent("sigrid"))
    page = await repo.query(store, Query(agent=sigrid, limit=10, authority=MINE, page_bytes=20_000))
    assert [r.id for r in page.rows] == [own["id"]] and not page.ends_early


async def test_a_read_mine_credential_s_long_chain_to_another_s_statement_matches_by_its_own_terms(
        repo: PgStatementRepository, store: int) -> None:
    """A statement inherits the recorded terms of its target, which hold its whole chain's: a
    chain written a statement at a time has no depth limit, so a read/mine credential's chain of
    34 to another's statement matched that one's filters past the 32 the check walked (a review)."""
    theirs = with_id(statement(actor="sigrid"))
    await store_statements(repo, principal(store, OTHER), "1.0.3", [theirs])
    target = theirs["id"]
    for _ in range(34):
        ref = with_id(statement(actor="kari", object={"objectType": "StatementRef", "id": target}))
        await store_statements(repo, principal(store), "1.0.3", [ref])
        target = ref["id"]
    sigrid = agent_key(agent("sigrid"))
    page = await repo.query(store, Query(agent=sigrid, limit=100, authority=MINE))
    assert page.rows == []
    # the whole store's reader gets every referrer by the target's terms
    page = await repo.query(store, Query(agent=sigrid, limit=100))
    assert len(page.rows) == 35
