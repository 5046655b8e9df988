"""Definitions a server process merged already are left out of its next appends (migration 0040),
and merged again whenever anything changed the store's definitions since: later still wins."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
import pytest

from lrs.ops.principal import Principal
from lrs.ops.statements import prepare, store_statements
from lrs.store.activities import definition_args
from lrs.store.credentials import PgCredentialRepository
from lrs.store.db import create_pool
from lrs.store.queries import sql
from lrs.store.statements import DEFINITIONS_CHANGED, PgStatementRepository
from tests.statements import statement, with_id

AUTHORITY = {"objectType": "Agent", "account": {"homePage": "https://spor.example.org", "name": "test"}}
COURSE = "https://courses.example.org/hand-hygiene"


def _principal(store_id: int) -> Principal:
    return Principal(store_id, None, frozenset({"all"}), AUTHORITY, "account:x")


@contextlib.asynccontextmanager
async def _process(db_url: str) -> AsyncIterator[PgStatementRepository]:
    """What one server process has: a repository on a pool of its own, and its caches."""
    pool = await create_pool(db_url, min_size=1, max_size=4)
    try:
        yield PgStatementRepository(pool)
    finally:
        await pool.close()


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
    who = _principal(store)
    async with _process(db_url) as repo:
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
    who = _principal(store)
    async with _process(db_url) as a, _process(db_url) as b:
        await store_statements(a, who, "1.0.3", [_named("One")])
        await store_statements(b, who, "1.0.3", [_named("Two")])
        assert await _title(conn, store) == "Two"
        # A would leave it out, at the version it knows, which the store has passed
        args = definition_args(store, [prepare(_named("One"), who, "1.0.3")], None, a.known_definitions)
        assert args.defs == b"{}" and args.version is not None
        assert args.version < await _version(conn, store)
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
    who = _principal(store)
    async with _process(db_url) as a, _process(db_url) as b:
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
    who = _principal(store)
    async with _process(db_url) as repo:
        await store_statements(repo, who, "1.0.3", [_named("Hand hygiene")])
        version = await _version(conn, store)
        await conn.execute("DELETE FROM activities WHERE store_id = $1", store)
        assert await _version(conn, store) == version + 1
        await store_statements(repo, who, "1.0.3", [_named("Hand hygiene")])
        assert await _title(conn, store) == "Hand hygiene"


async def test_every_change_of_a_stored_definition_counts_and_no_other(conn: asyncpg.Connection) -> None:
    """The trigger adds one per statement that updates or deletes stored definitions, for each
    store it touches; new Activities, and a merge that changes nothing, leave the version alone."""
    credentials = PgCredentialRepository(conn)
    s1, s2 = await credentials.create_store("s1", None), await credentials.create_store("s2", None)
    definition = '{"https://a/1": {"name": {"en-US": "one"}}, "https://a/2": {"name": {"en-US": "two"}}}'
    await conn.execute(sql("merge_definitions"), s1, definition, "[]")  # new
    await conn.execute(sql("merge_definitions"), s1, definition, "[]")  # nothing changes
    assert (await _version(conn, s1), await _version(conn, s2)) == (0, 0)
    await conn.execute(sql("merge_definitions"), s1, '{"https://a/1": {"name": {"nb-NO": "en"}}}', "[]")
    assert await _version(conn, s1) == 1
    await conn.execute("INSERT INTO activities (store_id, activity_id, definition) VALUES ($1, 'https://a/3', '{}'),"
                       " ($2, 'https://a/3', '{}')", s1, s2)
    await conn.execute("UPDATE activities SET definition = '{}' WHERE activity_id = 'https://a/9'")  # no row
    assert (await _version(conn, s1), await _version(conn, s2)) == (1, 0)
    await conn.execute("UPDATE activities SET definition = '{\"type\": \"https://t\"}' WHERE activity_id = 'https://a/3'")
    assert (await _version(conn, s1), await _version(conn, s2)) == (2, 1)
    await conn.execute("DELETE FROM activities WHERE store_id = $1 AND activity_id = 'https://a/3'", s2)
    assert (await _version(conn, s1), await _version(conn, s2)) == (2, 2)


async def test_an_append_naming_a_passed_version_keeps_nothing(conn: asyncpg.Connection) -> None:
    """spor_append_group with definitions left out at a version the store has passed fails with
    SPD01 in ticket order, and nothing of it is kept; at the current version it is stored."""
    store = await PgCredentialRepository(conn).create_store("s", None)
    await conn.execute(sql("merge_definitions"), store, '{"https://a/1": {"name": {"en-US": "one"}}}', "[]")
    current = await _version(conn, store)
    item = prepare(_named("Hand hygiene"), _principal(store), "1.0.3")

    async def call(version: int) -> asyncpg.Record:
        ticket = await conn.fetchrow(sql("reserve_ticket"), store, 1)
        try:
            return await conn.fetchrow(
                sql("append_in_one_call"), store, [item.id], orjson.dumps(item.body), [True], [None],
                orjson.dumps([item.terms]).decode(), ["account:x"], [], [], [], "{}", "[]",
                *ticket, version)
        finally:
            await conn.execute(sql("release_tickets"))

    with pytest.raises(asyncpg.PostgresError, match="changed since version") as failed:
        await call(current - 1)
    assert failed.value.sqlstate == DEFINITIONS_CHANGED
    assert await conn.fetchval("SELECT count(*) FROM events WHERE store_id = $1", store) == 0
    done = await call(current)
    assert done["stored"] is not None and (done["defs_before"], done["defs_after"]) == (current, current)
    assert await conn.fetchval("SELECT count(*) FROM events WHERE store_id = $1", store) == 1
