"""Definitions a server process merged already are left out of its next appends (migration 0040),
and merged again whenever anything changed the store's definitions since: later still wins."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import asyncpg
import orjson
import pytest

from lrs.ops.activities import canonical_offer, merge_definition
from lrs.ops.statements import prepare, store_statements
from lrs.store import statements as statements_module
from lrs.store.activities import definition_args
from lrs.store.credentials import PgCredentialRepository
from lrs.store.db import create_pool
from lrs.store.queries import sql
from lrs.store.statements import DEFINITIONS_CHANGED, PgStatementRepository, statement_columns
from tests.statements import statement, with_id
from tests.store_access import principal, run_columns, statement_repository

COURSE = "https://courses.example.org/hand-hygiene"

# the pool of one server process (a repository has its caches, as the process has)
PROCESS = {"min_size": 1, "max_size": 4}


def _named(title: str, actor: str = "kari") -> dict[str, Any]:
    s = with_id(statement(actor=actor))
    s["object"]["definition"] = {"name": {"en-US": title}, "type": "http://adlnet.gov/expapi/activities/course"}
    return s


async def _title(conn: asyncpg.Connection, store: int) -> str:
    definition = await conn.fetchval("SELECT definition FROM activities WHERE store_id = $1 AND activity_id = $2",
                                     store, COURSE)
    return str(definition["name"]["en-US"])


async def _version(conn: asyncpg.Connection, store: int) -> int:
    return int(await conn.fetchval("SELECT definitions_version FROM stores WHERE id = $1", store))


async def test_a_definition_merged_already_is_left_out(db_url: str, conn: asyncpg.Connection) -> None:
    """After an append the process knows its definition: the next statement with the same one
    sends no definition, names the version, and changes nothing; a different one is sent."""
    store = await PgCredentialRepository(conn).create_store("s", None)
    who = principal(store)
    async with statement_repository(db_url, **PROCESS) as repo:
        await store_statements(repo, who, "1.0.3", [_named("Hand hygiene")])
        version = await _version(conn, store)
        same = definition_args(store, [prepare(_named("Hand hygiene"), who, "1.0.3")], None, repo.known_definitions)
        assert (same.defs, same.version) == (b"{}", version)
        other = definition_args(store, [prepare(_named("Hand hygiene 2"), who, "1.0.3")], None,
                                repo.known_definitions)
        assert b"Hand hygiene 2" in other.defs and other.version is None
        await store_statements(repo, who, "1.0.3", [_named("Hand hygiene")])
        assert await _version(conn, store) == version
        assert await _title(conn, store) == "Hand hygiene"


async def test_a_definition_changed_by_another_process_is_merged_again(db_url: str,
                                                                       conn: asyncpg.Connection) -> None:
    """Two processes: A merges "One", B then "Two"; A sending "One" again must make it the
    canonical definition again (later wins), though A's cache says it merged "One" already."""
    store = await PgCredentialRepository(conn).create_store("s", None)
    who = principal(store)
    async with statement_repository(db_url, **PROCESS) as a, statement_repository(db_url, **PROCESS) as b:
        await store_statements(a, who, "1.0.3", [_named("One")])
        await store_statements(b, who, "1.0.3", [_named("Two")])
        assert await _title(conn, store) == "Two"
        # A would leave it out, at the version it knows, which the store has passed
        args = definition_args(store, [prepare(_named("One"), who, "1.0.3")], None, a.known_definitions)
        assert args.defs == b"{}" and args.version is not None
        assert args.version != await _version(conn, store)
        await store_statements(a, who, "1.0.3", [_named("One")])
        assert await _title(conn, store) == "One"
        # and A knows the store again: the next "One" is left out at the current version
        again = definition_args(store, [prepare(_named("One"), who, "1.0.3")], None, a.known_definitions)
        assert (again.defs, again.version) == (b"{}", await _version(conn, store))


async def test_concurrent_appends_of_two_processes_end_with_the_last_definition(
        db_url: str, conn: asyncpg.Connection) -> None:
    """Many appends of both processes at once, each title sent by both; then one last append: its
    definition is the canonical one, and every statement is stored."""
    store = await PgCredentialRepository(conn).create_store("s", None)
    who = principal(store)
    async with statement_repository(db_url, **PROCESS) as a, statement_repository(db_url, **PROCESS) as b:
        sent = [store_statements(repo, who, "1.0.3", [_named(f"Title {i % 3}", actor=f"p{i}")])
                for i in range(40) for repo in (a, b)]
        await asyncio.gather(*sent)
        for repo, title in ((a, "Title 0"), (b, "Title 1"), (a, "Title 0")):
            await store_statements(repo, who, "1.0.3", [_named(title)])
            assert await _title(conn, store) == title
    assert await conn.fetchval("SELECT count(*) FROM statements WHERE store_id = $1", store) == 83


async def test_an_erased_definition_is_merged_again(db_url: str, conn: asyncpg.Connection) -> None:
    """A definition deleted (as an erasure deletes one no statement names) moves the version on:
    the process sends it again, and it is stored again."""
    store = await PgCredentialRepository(conn).create_store("s", None)
    who = principal(store)
    async with statement_repository(db_url, **PROCESS) as repo:
        await store_statements(repo, who, "1.0.3", [_named("Hand hygiene")])
        version = await _version(conn, store)
        await conn.execute("DELETE FROM activities WHERE store_id = $1", store)
        assert await _version(conn, store) != version
        await store_statements(repo, who, "1.0.3", [_named("Hand hygiene")])
        assert await _title(conn, store) == "Hand hygiene"


async def test_every_change_of_a_stored_definition_moves_the_version_and_no_other(conn: asyncpg.Connection) -> None:
    """The triggers give a store a new version for each statement that updates, deletes or
    truncates stored definitions of it; new Activities, and a merge that changes nothing, leave
    the version alone."""
    credentials = PgCredentialRepository(conn)
    s1, s2 = await credentials.create_store("s1", None), await credentials.create_store("s2", None)

    async def versions() -> tuple[int, int]:
        return await _version(conn, s1), await _version(conn, s2)

    definition = '{"https://a/1": {"name": {"en-US": "one"}}, "https://a/2": {"name": {"en-US": "two"}}}'
    await conn.execute(sql("merge_definitions"), s1, definition, "[]")  # new
    await conn.execute(sql("merge_definitions"), s1, definition, "[]")  # nothing changes
    assert await versions() == (0, 0)
    await conn.execute(sql("merge_definitions"), s1, '{"https://a/1": {"name": {"nb-NO": "en"}}}', "[]")
    v1, v2 = await versions()
    assert v1 != 0 and v2 == 0
    await conn.execute("INSERT INTO activities (store_id, activity_id, definition) VALUES ($1, 'https://a/3', '{}'),"
                       " ($2, 'https://a/3', '{}')", s1, s2)
    await conn.execute("UPDATE activities SET definition = '{}' WHERE activity_id = 'https://a/9'")  # no row
    assert await versions() == (v1, 0)
    await conn.execute("UPDATE activities SET definition = $1 WHERE activity_id = 'https://a/3'", {"type": "https://t"})
    w1, w2 = await versions()
    assert w1 not in (0, v1) and w2 != 0
    await conn.execute("DELETE FROM activities WHERE store_id = $1 AND activity_id = 'https://a/3'", s2)
    x1, x2 = await versions()
    assert x1 == w1 and x2 not in (0, w2)
    await conn.execute("TRUNCATE activities")
    y1, y2 = await versions()
    assert y1 not in (0, w1) and y2 not in (0, x2)


async def test_an_append_naming_a_passed_version_keeps_nothing(conn: asyncpg.Connection) -> None:
    """spor_append_group with definitions left out at a version the store has passed fails with
    SPD01 in ticket order, and nothing of it is kept; at the current version it is stored."""
    store = await PgCredentialRepository(conn).create_store("s", None)
    await conn.execute(sql("merge_definitions"), store, '{"https://a/1": {"name": {"en-US": "one"}}}', "[]")
    current = await _version(conn, store)
    item = prepare(_named("Hand hygiene"), principal(store), "1.0.3")

    async def call(version: int) -> asyncpg.Record:
        ticket = await conn.fetchrow(sql("reserve_ticket"), store, 1)
        try:
            return await conn.fetchrow(
                sql("append_in_one_call"), store, *statement_columns([item]), [], [], [], "{}", "[]",
                *ticket, version, *run_columns([item]))
        finally:
            await conn.execute(sql("release_tickets"))

    with pytest.raises(asyncpg.PostgresError, match="changed since version") as failed:
        await call(current + 1)
    assert failed.value.sqlstate == DEFINITIONS_CHANGED
    assert await conn.fetchval("SELECT count(*) FROM events WHERE store_id = $1", store) == 0
    done = await call(current)
    assert done["stored"] is not None and (done["defs_before"], done["defs_after"]) == (current, current)
    assert await conn.fetchval("SELECT count(*) FROM events WHERE store_id = $1", store) == 1


async def test_a_process_that_learns_after_another_changed_keeps_only_its_own(db_url: str,
                                                                                conn: asyncpg.Connection) -> None:
    """A knows "One"; B changes it to "Two"; A then appends an unrelated Activity (nothing left
    out, so nothing is checked): what A knew of the course must not survive that, or A's next
    "One" would be left out at a version that stands, and "Two" would stay."""
    store = await PgCredentialRepository(conn).create_store("s", None)
    who = principal(store)
    async with statement_repository(db_url, **PROCESS) as a, statement_repository(db_url, **PROCESS) as b:
        await store_statements(a, who, "1.0.3", [_named("One")])
        await store_statements(b, who, "1.0.3", [_named("Two")])
        other = with_id(statement(activity="fire-safety"))
        await store_statements(a, who, "1.0.3", [other])
        await store_statements(a, who, "1.0.3", [_named("One")])
        assert await _title(conn, store) == "One"


async def test_a_new_pool_connection_empties_the_known_definitions(db_url: str, conn: asyncpg.Connection) -> None:
    """After the pool reconnects (a failover, a restore) the definitions are sent again."""
    store = await PgCredentialRepository(conn).create_store("s", None)
    who = principal(store)
    pool = await create_pool(db_url, min_size=1, max_size=1)
    try:
        repo = PgStatementRepository(pool)
        await store_statements(repo, who, "1.0.3", [_named("Hand hygiene")])
        assert repo.known_definitions.version(store)[1]
        # as if restored from before the definition, with the version it had then
        await conn.execute("ALTER TABLE activities DISABLE TRIGGER activities_truncated")
        await conn.execute("TRUNCATE activities")
        await conn.execute("ALTER TABLE activities ENABLE TRIGGER activities_truncated")
        await pool.expire_connections()
        await store_statements(repo, who, "1.0.3", [_named("Hand hygiene")])
        assert await _title(conn, store) == "Hand hygiene"
    finally:
        await pool.close()


async def test_concurrent_appends_end_with_the_fold_of_the_log(db_url: str, conn: asyncpg.Connection,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Rounds of appends from two processes at once, with definitions that change and switch
    interaction types: after each round every canonical definition is the merge of the stored
    statements' definitions in position order, as if nothing had ever been left out."""
    left_out = 0

    def counting(*args: Any) -> Any:
        nonlocal left_out
        found = definition_args(*args)
        left_out += found.version is not None
        return found

    monkeypatch.setattr(statements_module, "definition_args", counting)
    store = await PgCredentialRepository(conn).create_store("s", None)
    who = principal(store)
    rng = random.Random(2040)
    kinds = [
        {"type": "http://adlnet.gov/expapi/activities/course", "name": {"en-US": "Course"}},
        {"name": {"en-US": "Course", "nb-NO": "Kurs"}},
        {"interactionType": "choice", "choices": [{"id": "a", "description": {"en-US": "A"}}],
         "correctResponsesPattern": ["a"]},
        {"interactionType": "true-false", "correctResponsesPattern": ["true"]},
        {"name": {"en-US": "Renamed"}, "extensions": {"https://x.example.org/e": 1}},
    ]

    def statement_for(i: int) -> dict[str, Any]:
        s = with_id(statement(actor=f"p{i % 7}", activity=f"a{rng.randrange(3)}"))
        # mostly the first: what a process knows is left out often, and the others change it
        s["object"]["definition"] = kinds[0] if rng.random() < 0.8 else rng.choice(kinds[1:])
        return s

    async with statement_repository(db_url, **PROCESS) as a, statement_repository(db_url, **PROCESS) as b:
        for _ in range(30):
            requests = [store_statements(repo, who, "1.0.3", [statement_for(i) for i in range(rng.randrange(1, 3))])
                        for repo in (a, b, rng.choice((a, b)))]
            # the same definitions again, mostly: what the processes know gets left out
            await asyncio.gather(*requests)
            expected: dict[str, dict[str, Any]] = {}
            for row in await conn.fetch("SELECT payload::text AS p FROM events WHERE store_id = $1 "
                                        "AND kind = 'statement' ORDER BY position", store):
                obj = orjson.loads(row["p"])["object"]
                offer = canonical_offer(obj["definition"])
                if offer is not None:
                    expected[obj["id"]] = merge_definition(expected.get(obj["id"]), offer)
            stored = {r["activity_id"]: r["definition"] for r in
                      await conn.fetch("SELECT activity_id, definition FROM activities WHERE store_id = $1", store)}
            assert stored == expected
    assert left_out > 5  # the rounds did leave definitions out
