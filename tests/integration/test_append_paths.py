"""The two statement append paths: the one-round-trip function (migrations 0007, 0016, 0022) takes the
common case, and hands every case that needs the general path's rules back untouched."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import orjson
import pytest

from lrs.errors import Conflict
from lrs.ops import terms as T
from lrs.ops.activities import LANGUAGE_TAGS_MAX, merge_definition, with_tag_order
from lrs.ops.statements import get_statement, prepare, store_statements
from lrs.ops.timestamps import format_timestamp
from lrs.store.activities import definition_args
from lrs.store.credentials import PgCredentialRepository
from lrs.store.log import Reservation
from lrs.store.queries import sql
from lrs.store.statements import _Write, body_column, statement_columns
from tests.statements import agent, statement, with_id
from tests.store_access import principal, run_columns, statement_repository

WHO = principal(0)


async def _call(conn: asyncpg.Connection, store: int, stmts: list[dict],
                defs: dict[str, dict] | None = None, ticket: asyncpg.Record | None = None) -> datetime | None:
    """spor_append_group with the arguments the repository would build; ``defs``: the
    Activity definitions to merge (none by default); ``ticket``: one reserved already (a new
    one by default). The ticket is let go after, as the repository does."""
    items = [prepare(s, WHO, "1.0.3") for s in stmts]
    if ticket is None:
        ticket = await conn.fetchrow(sql("reserve_ticket"), store, len(items))
    try:
        done = await conn.fetchrow(
            sql("append_in_one_call"), store, *statement_columns(items),
            [], [], [], orjson.dumps(defs or {}).decode(), "[]", *ticket, None, *run_columns(items))
        return done["stored"]
    finally:
        await conn.execute(sql("release_tickets"))


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
    # every term of each statement, at its position, direct where the plain filter matches
    terms = await conn.fetch("SELECT term, position, direct FROM statement_terms WHERE store_id = $1", store)
    expected = {(term, pos, direct) for pos, s in ((1, timed), (2, untimed))
                for term, direct in prepare(s, WHO, "1.0.3").terms.items()}
    assert {(t["term"], t["position"], t["direct"]) for t in terms} == expected
    assert (T.AGENT + T.agent_key(agent("ola")), 1, True) in expected
    assert any(not direct for _, _, direct in expected)
    assert await conn.fetchval("SELECT last_position FROM stores WHERE id = $1", store) == 2
    # a later call's rows continue after the store's last position
    third = with_id(statement(actor="per"))
    assert await _call(conn, store, [third]) is not None
    later = await conn.fetch("SELECT term, position, direct FROM statement_terms WHERE store_id = $1 AND position > 2",
                             store)
    assert {(t["term"], t["position"], t["direct"]) for t in later} == {
        (term, 3, direct) for term, direct in prepare(third, WHO, "1.0.3").terms.items()}


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
    who = principal(store)
    async with statement_repository(db_url) as repo:
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
    assert await conn.fetchval("SELECT count(*) FROM events WHERE store_id = $1", store) == 3


async def test_definitions_are_merged_and_one_already_contained_leaves_its_row_alone(
        conn: asyncpg.Connection) -> None:
    """Migration 0016: a definition the stored one contains is filtered out before the upsert,
    so its row is neither updated nor locked (a lock sets the row's xmax), while a new or
    changed definition is still merged (language maps key by key, other properties replaced)."""
    store = await PgCredentialRepository(conn).create_store("s", None)
    aid = "https://courses.example.org/hand-hygiene"
    other = "https://courses.example.org/sterile-field"

    async def row(activity: str) -> asyncpg.Record:
        return await conn.fetchrow("SELECT definition, xmin::text AS xmin, xmax::text AS xmax FROM activities "
                                   "WHERE store_id = $1 AND activity_id = $2", store, activity)

    first = {"name": {"en-US": "Hand hygiene", "nb-NO": "Håndhygiene"}, "type": "http://example.org/old"}
    assert await _call(conn, store, [with_id(statement())], {aid: first}) is not None
    stored = await row(aid)
    assert stored["definition"] == first

    # contained: a subset of the stored definition (one language of the name), and a new activity
    assert await _call(conn, store, [with_id(statement())],
                       {aid: {"name": {"nb-NO": "Håndhygiene"}}, other: {"type": "http://example.org/t"}}) is not None
    after = await row(aid)
    assert after["definition"] == first
    assert (after["xmin"], after["xmax"]) == (stored["xmin"], "0")
    assert (await row(other))["definition"] == {"type": "http://example.org/t"}

    # a change: the name map merges, the type is replaced
    changed = {"name": {"en-US": "Hand hygiene 2026"}, "type": "http://adlnet.gov/expapi/activities/course",
               "extensions": {"https://example.org/minutes": 10, "https://example.org/level": 2}}
    assert await _call(conn, store, [with_id(statement())], {aid: changed}) is not None
    assert (await row(aid))["definition"] == {"name": {"en-US": "Hand hygiene 2026", "nb-NO": "Håndhygiene"},
                                              "type": "http://adlnet.gov/expapi/activities/course",
                                              "extensions": {"https://example.org/minutes": 10,
                                                             "https://example.org/level": 2}}

    # a property replaced by less is a change too (the stored one contains it, yet it differs)
    fewer = {"extensions": {"https://example.org/minutes": 10}}
    assert await _call(conn, store, [with_id(statement())], {aid: fewer}) is not None
    assert (await row(aid))["definition"]["extensions"] == fewer["extensions"]


MERGE_CASES = [
    ({"name": {"en-US": "A"}}, {"name": {"nb-NO": "B"}}),
    ({"name": {"en-US": "A"}, "type": "https://t/1"}, {"name": {"en-US": "A2"}, "type": "https://t/2"}),
    ({"description": {"en-US": "d"}}, {"description": {"en-US": "d"}}),
    ({"extensions": {"https://x/a": 1, "https://x/b": 2}}, {"extensions": {"https://x/a": 1}}),
    ({"interactionType": "choice", "choices": [{"id": "a"}, {"id": "b"}]},
     {"interactionType": "choice", "choices": [{"id": "a"}]}),
    ({"name": "not a map"}, {"name": {"en-US": "A"}}),
    ({"name": {"en-US": "A"}}, {"moreInfo": "https://m"}),
    # a definition naming an interactionType replaces the interaction as a whole (0027, 0030);
    # one naming none keeps it
    ({"name": {"en-US": "Q"}, "interactionType": "choice", "choices": [{"id": "a"}], "correctResponsesPattern": ["a"]},
     {"interactionType": "likert", "scale": [{"id": "1"}, {"id": "2"}]}),
    ({"interactionType": "matching", "source": [{"id": "s"}], "target": [{"id": "t"}]},
     {"interactionType": "sequencing", "choices": [{"id": "a"}], "correctResponsesPattern": ["a"]}),
    ({"interactionType": "choice", "choices": [{"id": "a"}]}, {"interactionType": "choice"}),
    ({"interactionType": "choice", "choices": [{"id": "a"}]}, {"name": {"en-US": "Q"}}),
    ({"name": {"en-US": "Q"}, "type": "http://adlnet.gov/expapi/activities/cmi.interaction"},
     {"interactionType": "true-false", "correctResponsesPattern": ["true"]}),
]


def _tags(numbers: range, text: str) -> dict[str, str]:
    return {f"en-x-t{i:03d}": f"{text}{i}" for i in numbers}


# more language tags together than a canonical map keeps (LANGUAGE_TAGS_MAX, 0032): the merge keeps
# the stored tags, with the values sent, and adds new ones in the order sent while there is room;
# each side alone is within the bound, as a statement's offer is
BOUNDED_CASES = [
    ({"name": _tags(range(0, 150, 2), "a")}, {"name": _tags(range(1, 150, 2), "b")}),
    ({"description": _tags(range(60, 140), "c"), "type": "https://t/1"},
     {"description": _tags(range(0, 100, 3), "d") | {"EN-AA": "upper case first"}}),
    ({"name": _tags(range(30, 100), "e")}, {"name": _tags(range(20, 90), "f"), "type": "https://t/2"}),
]


async def test_the_sql_merge_of_definitions_is_the_python_one(conn: asyncpg.Connection) -> None:
    """spor_merge_definition (0016, 0030) and lrs.ops.activities.merge_definition (the fold of one
    batch) are one rule: language maps merged, other properties replaced, also by less; a
    definition naming an interactionType replaces the interaction as a whole."""
    for stored, incoming in MERGE_CASES + BOUNDED_CASES:
        got = await conn.fetchval("SELECT spor_merge_definition($1::jsonb, $2::jsonb)", stored,
                                  with_tag_order(incoming))
        assert got == merge_definition(stored, incoming), (stored, incoming)
    kept = merge_definition(*BOUNDED_CASES[0])["name"]
    # the 75 stored, then the first 25 sent
    assert list(kept) == list(_tags(range(0, 150, 2), "a")) + list(_tags(range(1, 50, 2), "b"))
    # the values of the tags it has are replaced, a full map or not; "EN-AA", sent last, has no room
    assert merge_definition(*BOUNDED_CASES[1])["description"] == {**_tags(range(60, 140), "c"),
                                                                  **_tags(range(60, 100, 3), "d"),
                                                                  **_tags(range(0, 60, 3), "d")}
    likert = merge_definition(*MERGE_CASES[-5])
    assert likert == {"name": {"en-US": "Q"}, "interactionType": "likert", "scale": [{"id": "1"}, {"id": "2"}]}
    assert merge_definition(*MERGE_CASES[-3]) == {"interactionType": "choice"}
    assert merge_definition(*MERGE_CASES[-2])["choices"] == [{"id": "a"}]  # no type named: kept


async def test_a_canonical_definition_does_not_depend_on_how_appends_are_grouped(conn: asyncpg.Connection) -> None:
    """One append's statements are folded in Python (merge_definition) and merged into the stored
    definition once (spor_merge_definition); appended one by one, each is merged in turn. Both
    must end alike, in whatever groups the statements arrive (a batch, or the requests group
    commit joins): for every stored definition and every pair, merging one by one equals
    merging the fold. (0027 failed it: stored a choice with choices, then a likert, then a bare
    choice gave a bare choice one by one and the old choices in one group; 0030.)"""
    # (a name that is not a language map cannot pass validation; merging it is not associative)
    definitions = [d for pair in MERGE_CASES + BOUNDED_CASES for d in pair
                   if not isinstance(d.get("name", {}), str)] + [{}]
    triples = [(stored, a, b) for stored in definitions for a in definitions for b in definitions]
    grouped = [r[0] for r in await conn.fetch(
        "SELECT spor_merge_definition(s, f) FROM unnest($1::jsonb[], $2::jsonb[]) WITH ORDINALITY AS u(s, f, n) "
        "ORDER BY n", [t[0] for t in triples],
        [with_tag_order(merge_definition(a, b, bounded=False)) for _, a, b in triples])]
    assert len(grouped) == len(triples) > 1000
    for (stored, a, b), got in zip(triples, grouped, strict=True):
        assert got == merge_definition(merge_definition(stored, a), b), (stored, a, b)


async def test_a_definition_is_unchanged_exactly_when_its_merge_changes_nothing(conn: asyncpg.Connection) -> None:
    """spor_definition_unchanged (0016), the append's cheap filter, says "unchanged" exactly
    when merging gives back the stored definition: a subset of a language map is unchanged, a
    property replaced by less (fewer extension keys, fewer choices) is a change."""
    cases = [*MERGE_CASES, *((stored, stored) for stored, _ in MERGE_CASES),
             ({"name": {"en-US": "A", "nb-NO": "B"}, "type": "https://t/1"}, {"name": {"nb-NO": "B"}}),
             ({"extensions": {"https://x/a": 1}}, {"extensions": {}}),
             ({"interactionType": "choice", "choices": [{"id": "a"}, {"id": "b"}]},
              {"choices": [{"id": "b"}, {"id": "a"}]}),
             ({"interactionType": "sequencing", "correctResponsesPattern": ["a[,]b"]},
              {"correctResponsesPattern": ["a[,]b"]}),
             # naming the type without the stored components drops them (0030): a change
             ({"interactionType": "choice", "choices": [{"id": "a"}]}, {"interactionType": "choice"}),
             ({"interactionType": "choice", "choices": [{"id": "a"}]},
              {"interactionType": "choice", "choices": [{"id": "a"}]}),
             *(({"interactionType": kind, prop: value}, {"interactionType": kind})
               for kind, prop, value in (("likert", "scale", [{"id": "1"}]), ("matching", "source", [{"id": "s"}]),
                                         ("matching", "target", [{"id": "t"}]),
                                         ("performance", "steps", [{"id": "p"}]),
                                         ("fill-in", "correctResponsesPattern", ["x"]))),
             # a full map: a new tag is left out, so unchanged (0032); a new value of its own is not
             ({"name": _tags(range(100), "n")}, {"name": {"en-US": "Hand hygiene"}}),
             ({"name": _tags(range(100), "n")}, {"name": {"en-US": "Hand hygiene", "en-x-t005": "n5"}}),
             ({"name": _tags(range(100), "n")}, {"name": {"en-US": "Hand hygiene", "en-x-t005": "new"}}),
             ({"name": _tags(range(99), "n")}, {"name": {"en-US": "Hand hygiene"}}),
             *BOUNDED_CASES]
    for stored, incoming in cases:
        got = await conn.fetchval("SELECT spor_definition_unchanged($1::jsonb, $2::jsonb)", stored,
                                  with_tag_order(incoming))
        assert got is (merge_definition(stored, incoming) == stored), (stored, incoming)


async def test_the_unchanged_check_is_inlined_into_the_query_calling_it(conn: asyncpg.Connection) -> None:
    """Migration 0034: with a sub-select in its body (0032) PostgreSQL could not inline it, and each
    of the ~160 calls of an append group under the store's lock started the SQL-function
    executor (~20 us)."""
    await conn.execute("CREATE TEMP TABLE defs (s jsonb, i jsonb)")
    rows = await conn.fetch("EXPLAIN (VERBOSE) SELECT spor_definition_unchanged(s, i) FROM defs")
    plan = "\n".join(r[0] for r in rows)
    assert "spor_definition_unchanged" not in plan and "@>" in plan, plan


async def test_the_append_functions_use_generic_plans(conn: asyncpg.Connection) -> None:
    """Migration 0016: with few statements per call, custom plans were made again on every call
    (a third of a one-statement append); the functions' plans do not depend on the values."""
    rows = await conn.fetch("SELECT proname, proconfig FROM pg_proc "
                            "WHERE proname IN ('spor_append_group', 'spor_merge_definitions')")
    assert {r["proname"]: r["proconfig"] for r in rows} == {
        "spor_append_group": ["plan_cache_mode=force_generic_plan"],
        "spor_merge_definitions": ["plan_cache_mode=force_generic_plan"],
    }


async def test_a_body_holding_a_record_separator_comes_back_as_sent(conn: asyncpg.Connection) -> None:
    """Migration 0022 joins the bodies with U+001E; a statement whose strings hold that
    character (and other control characters) is stored whole, since JSON escapes them."""
    store = await PgCredentialRepository(conn).create_store("s", None)
    odd = with_id(statement(actor="ola"))
    odd["result"] = {"response": "a\x1eb\x1fc\nd"}
    plain = with_id(statement(actor="kari"))
    assert await _call(conn, store, [odd, plain]) is not None
    payloads = await conn.fetch("SELECT payload::text AS p FROM events WHERE store_id = $1 ORDER BY position", store)
    first, second = (orjson.loads(r["p"]) for r in payloads)
    assert first["result"]["response"] == "a\x1eb\x1fc\nd"
    assert (first["id"], second["id"]) == (odd["id"], plain["id"])


async def test_a_call_whose_documents_do_not_match_its_ids_is_refused_and_writes_nothing(
        conn: asyncpg.Connection) -> None:
    store = await PgCredentialRepository(conn).create_store("s", None)
    items = [prepare(with_id(statement()), WHO, "1.0.3") for _ in range(2)]
    before = await _counts(conn, store)
    ticket = await conn.fetchrow(sql("reserve_ticket"), store, len(items))
    with pytest.raises(asyncpg.InvalidParameterValueError,
                       match="2 ids, 1 bodies, 2 attachment lists, 2 authority keys"):
        ids, _, *rest = statement_columns(items)
        await conn.fetchval(
            sql("append_in_one_call"), store, ids, body_column(items[:1]), *rest,
            [], [], [], "{}", "[]", *ticket, None, *run_columns(items))
    await conn.execute(sql("release_tickets"))
    assert await _counts(conn, store) == before


def _named(name: str, actor: str = "ola") -> dict:
    return with_id({**statement(), "actor": {**agent(actor), "name": name}})


async def _names(conn: asyncpg.Connection, store: int, actor: str = "ola") -> list[str]:
    return await conn.fetchval("SELECT coalesce(array_agg(name ORDER BY name), '{}') FROM agent_names "
                               "WHERE store_id = $1 AND agent_key = $2", store, T.agent_key(agent(actor)))


async def test_agent_names_are_stored_and_names_known_stored_are_not_sent_again(
        db_url: str, conn: asyncpg.Connection) -> None:
    """Names go into agent_names with the statement; a name this process saw committed is left
    out of the next append's documents (rows are never deleted), on both append paths."""
    store = await PgCredentialRepository(conn).create_store("s", None)
    who = principal(store)
    key = T.agent_key(agent("ola"))
    async with statement_repository(db_url) as repo:
        first = _named("Ola Nordmann")
        await store_statements(repo, who, "1.0.3", [first])
        assert await _names(conn, store) == ["Ola Nordmann"]
        assert repo.known_names.unknown(store, [(key, "Ola Nordmann"), (key, "Ola N.")]) == [(key, "Ola N.")]
        # left out of what the next append sends
        again = definition_args(store, [prepare(_named("Ola Nordmann"), who, "1.0.3")], repo.known_names)
        assert again.names == []
        # deleted behind the cache's back, a known name is not sent again: proof that it was left out
        await conn.execute("DELETE FROM agent_names WHERE store_id = $1", store)
        await store_statements(repo, who, "1.0.3", [_named("Ola Nordmann")])
        assert await _names(conn, store) == []
        # a second name of the same person is still stored, by the general path too (a re-send)
        renamed = _named("Ola N.")
        await store_statements(repo, who, "1.0.3", [first, renamed])
        assert await _names(conn, store) == ["Ola N."]
        assert repo.known_names.unknown(store, [(key, "Ola N.")]) == []
        # known per store: the same pair in another store is not known there
        assert repo.known_names.unknown(store + 1, [(key, "Ola N.")]) == [(key, "Ola N.")]


async def test_names_are_remembered_only_when_their_append_commits(db_url: str, conn: asyncpg.Connection) -> None:
    """A failed one-call append (no such store), and a request refused with 409 inside a group
    that the general path writes, leave their names unknown; the accepted request's are known."""
    store = await PgCredentialRepository(conn).create_store("s", None)
    who = principal(store)
    key = T.agent_key(agent("ola"))
    async with statement_repository(db_url) as repo:
        with pytest.raises(asyncpg.ForeignKeyViolationError, match=r"store 999999 does not exist"):
            await repo.append(999999, [prepare(_named("Ola Nordmann"), principal(999999), "1.0.3")], [])
        assert repo.known_names.unknown(999999, [(key, "Ola Nordmann")]) == [(key, "Ola Nordmann")]

        stored = _named("Ola Nordmann")
        await store_statements(repo, who, "1.0.3", [stored])
        clash = prepare({**_named("Ola the Conflicting"), "id": stored["id"]}, who, "1.0.3")
        fine = prepare(_named("Kari Nordmann", actor="kari"), who, "1.0.3")
        outcomes = await repo._write_group(store, [_Write([clash], [], True), _Write([fine], [], True)])
        assert isinstance(outcomes[0], Conflict) and isinstance(outcomes[1], datetime)
        kari = T.agent_key(agent("kari"))
        assert repo.known_names.unknown(store, [(key, "Ola the Conflicting"), (kari, "Kari Nordmann")]) == [
            (key, "Ola the Conflicting")]
        assert await _names(conn, store, "kari") == ["Kari Nordmann"]
        assert await _names(conn, store) == ["Ola Nordmann"]


async def test_a_new_pool_connection_empties_the_known_names(db_url: str, conn: asyncpg.Connection) -> None:
    """After the pool reconnects (a failover, a restore) the database may not hold what the
    cache learnt: the names are sent again, and stored again."""
    store = await PgCredentialRepository(conn).create_store("s", None)
    who = principal(store)
    async with statement_repository(db_url, min_size=1, max_size=1) as repo:
        await store_statements(repo, who, "1.0.3", [_named("Ola Nordmann")])
        await conn.execute("DELETE FROM agent_names WHERE store_id = $1", store)  # as if restored from before
        await repo.pool.expire_connections()
        await store_statements(repo, who, "1.0.3", [_named("Ola Nordmann")])
        assert await _names(conn, store) == ["Ola Nordmann"]


async def test_stored_definitions_with_more_tags_are_cut_by_the_migration(conn: asyncpg.Connection) -> None:
    """Migration 0032 cuts the language maps of definitions stored before it to the tags a merge
    keeps now; a definition within the bound is not rewritten."""
    store = await PgCredentialRepository(conn).create_store("s", None)
    many = {"name": _tags(range(150), "n"), "description": _tags(range(40), "d"), "type": "https://t/1"}
    few = {"name": _tags(range(5), "n")}
    await conn.executemany("INSERT INTO activities (store_id, activity_id, definition) VALUES ($1, $2, $3)",
                           [(store, "https://a/many", many), (store, "https://a/few", few)])
    before = await conn.fetchval("SELECT xmin::text FROM activities WHERE activity_id = 'https://a/few'")
    text = (Path(__file__).parents[2] / "lrs/store/sql/migrations/0032_canonical_definitions_bounded.sql").read_text()
    await conn.execute(text[text.rindex("UPDATE activities"):])
    got = await conn.fetchval("SELECT definition FROM activities WHERE activity_id = 'https://a/many'")
    assert got == {**many, "name": _tags(range(LANGUAGE_TAGS_MAX), "n")}
    assert await conn.fetchval("SELECT xmin::text FROM activities WHERE activity_id = 'https://a/few'") == before


async def test_an_append_keeps_the_canonical_definition_within_its_bounds(db_url: str,
                                                                          conn: asyncpg.Connection) -> None:
    """Statements sending new language tags, one request after another and in batches, do not
    grow the canonical definition past LANGUAGE_TAGS_MAX tags a map, the first to arrive; a
    statement whose definition is over DEFINITION_BYTES_MAX is stored as sent and leaves the
    canonical definition alone."""
    store = await PgCredentialRepository(conn).create_store("s", None)
    aid = "https://courses.example.org/many-languages"

    def sent(numbers: range, **more: object) -> dict:
        s = statement()
        s["object"] = {"id": aid, "definition": {"name": _tags(numbers, "n"), **more}}
        return s

    async with statement_repository(db_url) as repo:
        for i in range(4):
            await store_statements(repo, principal(store), "1.0.3", [sent(range(200 - 50 * i, 250 - 50 * i))])
        await store_statements(repo, principal(store), "1.0.3",
                               [sent(range(300 + 40 * i, 340 + 40 * i)) for i in range(5)])
        big = sent(range(1), extensions={"https://example.org/blob": "z" * 300_000})
        await store_statements(repo, principal(store), "1.0.3", [big])
    stored = await conn.fetchval("SELECT payload::text FROM events WHERE store_id = $1 ORDER BY position DESC LIMIT 1",
                                 store)
    definition = await conn.fetchval("SELECT definition FROM activities WHERE store_id = $1 AND activity_id = $2",
                                     store, aid)
    # the first hundred to arrive: the first two requests' (a map never gives a tag up again)
    assert definition == {"name": _tags(range(150, 250), "n")}
    assert len(orjson.loads(stored)["object"]["definition"]["extensions"]["https://example.org/blob"]) == 300_000


async def test_full_maps_merge_alike_in_any_grouping_for_random_definitions(conn: asyncpg.Connection) -> None:
    """Random maps from a pool of 160 tags, each in its own order, near and past the bound: the
    store's merge of a group's fold (SQL) equals merging the statements one by one (Python), and
    the store's merges one by one (SQL) equal Python's."""
    rng = random.Random(20261128)
    pool = [f"en-x-t{i:03d}" for i in range(160)]

    def a_map(text: str) -> dict[str, str]:
        return {tag: f"{text}{tag[-3:]}" for tag in rng.sample(pool, rng.choice([0, 1, 2, 30, 60, 99, 100]))}

    triples = [({"name": a_map("s")}, {"name": a_map("a"), "description": a_map("d")}, {"name": a_map("b")})
               for _ in range(300)]
    grouped = [r[0] for r in await conn.fetch(
        "SELECT spor_merge_definition(s, f) FROM unnest($1::jsonb[], $2::jsonb[]) WITH ORDINALITY AS u(s, f, n) "
        "ORDER BY n", [t[0] for t in triples],
        [with_tag_order(merge_definition(a, b, bounded=False)) for _, a, b in triples])]
    stepwise = [r[0] for r in await conn.fetch(
        "SELECT spor_merge_definition(spor_merge_definition(s, a), b) "
        "FROM unnest($1::jsonb[], $2::jsonb[], $3::jsonb[]) WITH ORDINALITY AS u(s, a, b, n) ORDER BY n",
        [t[0] for t in triples], [with_tag_order(t[1]) for t in triples], [with_tag_order(t[2]) for t in triples])]
    full = 0
    for (stored, a, b), got, step in zip(triples, grouped, stepwise, strict=True):
        expected = merge_definition(merge_definition(stored, a), b)
        assert got == expected == step, (stored, a, b)
        full += len(expected["name"]) == LANGUAGE_TAGS_MAX
    assert full > 50


async def test_an_append_attempt_rolled_back_leaves_no_time_in_the_statements_it_retries(db_url: str) -> None:
    """The general path puts the stored time (and the timestamp, when the statement has none,
    xAPI Data 2.4.7) into the bodies it writes. When a group's transaction fails, its requests
    are retried one by one with the same prepared statements: a body that kept the failed
    attempt's time was stored with that time as its timestamp, earlier than its stored time."""
    async with statement_repository(db_url) as repo, repo.pool.acquire() as conn:
        store = await PgCredentialRepository(conn).create_store("s", None)
        target = with_id(statement(actor="ola"))
        await repo.append(store, [prepare(target, WHO, "1.0.3")], [])
        # a StatementRef takes the general path
        ref = with_id(statement(actor="kari"))
        ref["object"] = {"objectType": "StatementRef", "id": target["id"]}
        items = [prepare(ref, WHO, "1.0.3")]
        attempt = Reservation(2, 1, datetime(2020, 1, 1, tzinfo=UTC))
        tr = conn.transaction()
        await tr.start()
        await repo._insert(conn, store, items, [], attempt, set())
        await tr.rollback()
        stored = await repo.append(store, items, [])
        row = await repo.get(store, ref["id"])
    assert row is not None and stored is not None
    body = orjson.loads(row.payload)
    assert body["timestamp"] == body["stored"] == format_timestamp(stored)


async def test_a_statement_ref_retried_alone_does_not_keep_the_terms_of_a_target_never_stored(
        db_url: str, conn: asyncpg.Connection) -> None:
    """A StatementRef inherits its target's filter terms (Communication 2.1.3). When the target
    is new in another request of the same group, and the group's transaction fails, each request
    is retried alone: the StatementRef's retry kept the terms it had inherited, so it would be
    found by the filters of a statement that was never stored. Here the database refuses the
    target's activity term (a trigger the test installs), so the target fails for good."""
    await conn.execute("""
        CREATE FUNCTION pg_temp_refuse_term() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.term = 'o:https://courses.example.org/refused' THEN
                RAISE EXCEPTION 'this test refuses the term %', NEW.term;
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_term BEFORE INSERT ON statement_term_runs
            FOR EACH ROW EXECUTE FUNCTION pg_temp_refuse_term();""")
    store = await PgCredentialRepository(conn).create_store("s", None)
    target = with_id(statement(actor="ola"))
    target["object"] = {"objectType": "Activity", "id": "https://courses.example.org/refused"}
    ref = with_id(statement(actor="kari"))
    ref["object"] = {"objectType": "StatementRef", "id": target["id"]}
    async with statement_repository(db_url) as repo:
        # submitted together, so the appender writes them as one group first
        got = await asyncio.gather(repo.append(store, [prepare(target, WHO, "1.0.3")], []),
                                   repo.append(store, [prepare(ref, WHO, "1.0.3")], []), return_exceptions=True)
        assert isinstance(got[0], Exception) and isinstance(got[1], datetime), got
        assert repo.appender.groups_written == 1  # (the group failed; the retry of the ref was written)
    terms = await conn.fetch("SELECT term FROM statement_terms WHERE store_id = $1", store)
    assert {r["term"] for r in terms} == set(T.statement_terms(prepare(ref, WHO, "1.0.3").body))


@pytest.mark.parametrize("separators", [None, ["\x1e"]])
async def test_a_term_holding_the_separator_is_indexed_whole(
        db_url: str, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch, separators: list[str] | None) -> None:
    """The one-call path sends a call's run terms joined by a character none of them holds
    (an account name may hold any, U+001E too); when every candidate is taken (here: the only
    one), the general path takes the group. Either way the term is indexed as it is."""
    from lrs.store import statements as statements_module

    if separators is not None:
        monkeypatch.setattr(statements_module, "_TERM_SEPARATORS", separators)
    store = await PgCredentialRepository(conn).create_store("s", None)
    odd = with_id(statement())
    odd["actor"] = {"account": {"homePage": "https://id.example.org", "name": "kari\x1enordmann"}}
    plain = with_id(statement(actor="ola"))
    items = [prepare(odd, WHO, "1.0.3"), prepare(plain, WHO, "1.0.3")]
    # (None: the one-call path hands the group to the general path)
    assert (statements_module.term_run_columns(items) is None) == (separators is not None)
    async with statement_repository(db_url) as repo:
        assert await repo.append(store, items, []) is not None
    rows = await conn.fetch("SELECT term, position, direct FROM statement_terms WHERE store_id = $1 AND position <= 2",
                            store)
    want = {(t, n, d) for n, p in enumerate(items, 1) for t, d in p.terms.items()}
    assert {(r["term"], r["position"], r["direct"]) for r in rows} == want
    assert T.AGENT + "account:https://id.example.org|kari\x1enordmann" in {t for t, _, _ in want}
