"""The filter-term runs (migration 0042) against the rows they replaced, by property: after the
runs are edited every way the code edits them (the migration, appends of both paths at once,
StatementRefs whose target comes later, an erasure, the helpers directly), the runs of a term
stay disjoint with ascending offsets, their entries are the statements' recorded terms, and
the page queries return what the queries over one row a term and position returned, run over
the view that unfolds the runs."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import asyncpg
import orjson
import pytest

from lrs.ops.statements import store_statements
from lrs.ops.terms import AGENT as T_AGENT
from lrs.ops.terms import statement_terms
from lrs.person_erasure import erase_person
from lrs.store.credentials import PgCredentialRepository
from lrs.store.embedded import EmbeddedPostgres
from lrs.store.migrate import migrate
from lrs.store.queries import sql
from tests.conftest import new_database
from tests.statements import agent, statement, with_id
from tests.store_access import principal, statement_repository

RUNS = 42


def _rows_query(order: str) -> str:
    """The page query before 0042 (one row a term and position), over the view."""
    bound = ("t.position < coalesce($5::bigint, 9223372036854775807)" if order == "DESC"
             else "t.position > coalesce($5::bigint, 0)")
    checks = "".join(
        f"  AND (${t}::text IS NULL OR EXISTS (SELECT 1 FROM statement_terms x WHERE x.store_id = $1 "
        f"AND x.term = ${t} AND x.position = t.position AND (x.direct OR ${t + 1})))\n" for t in (7, 9, 11))
    return (f"SELECT t.position FROM statement_terms t\n"
            f"WHERE t.store_id = $1 AND t.term = $2 AND (t.direct OR $3) AND t.position <= $4 AND {bound}\n"
            f"{checks}ORDER BY t.position {order} LIMIT $6")


BY_ROWS = {"term_positions_desc": _rows_query("DESC"), "term_positions_asc": _rows_query("ASC")}


def _params(rng: random.Random, store: int, terms: list[str], top: int) -> list[Any]:
    """A page query's arguments: a driving term, up to three others, flags true, false or NULL,
    horizons and cursors around the ends and the migration's 256-position groups."""
    drive = rng.choice(terms)
    rest = [t for t in terms if t != drive]
    others: list[str | None] = list(rng.sample(rest, k=rng.randint(0, min(3, len(rest)))))
    others += [None] * (3 - len(others))
    horizon = rng.choice([top, top + 5, rng.randint(0, top), 0, 1, 255, 256, 257])
    after = rng.choice([None, None, rng.randint(0, top + 2), 1, 256, 257, 512, top, top + 1])
    out: list[Any] = [store, drive, rng.choice([True, False, None]), horizon, after, rng.choice([1, 3, 10, 100_000])]
    for other in others:
        out += [other, rng.choice([True, False, None]) if other is not None else False]
    return out


async def _same_pages(conn: asyncpg.Connection, rng: random.Random, store: int, terms: list[str], top: int,
                      rounds: int) -> int:
    """Compare the run queries with the row queries; how many pages held something."""
    filled = 0
    for _ in range(rounds):
        args = _params(rng, store, terms, top)
        for name, by_rows in BY_ROWS.items():
            got = [r[0] for r in await conn.fetch(sql(name), *args)]
            assert got == [r[0] for r in await conn.fetch(by_rows, *args)], (name, args)
            filled += bool(got)
    return filled


async def _runs_hold(conn: asyncpg.Connection) -> None:
    """Every run: offsets ascending, each once, within its interval; runs of a term disjoint."""
    last: dict[tuple[int, str], int] = {}
    for r in await conn.fetch("SELECT store_id, term, first_position, last_position, offsets, direct "
                              "FROM statement_term_runs ORDER BY store_id, term, first_position"):
        offsets = r["offsets"]
        assert offsets and offsets == sorted(set(offsets)) and offsets[0] >= 0, r
        assert len(r["direct"]) == len(offsets) and r["last_position"] >= r["first_position"] + offsets[-1], r
        key = (r["store_id"], r["term"])
        assert last.get(key, -1) < r["first_position"], r
        last[key] = r["last_position"]


@pytest.mark.parametrize("seed", range(3))
async def test_migrated_and_edited_runs_answer_as_the_rows_did(pg: EmbeddedPostgres, seed: int) -> None:
    rng = random.Random(seed)
    conn = await asyncpg.connect(await new_database(pg, template=None))
    try:
        await migrate(conn, upto=RUNS - 1)
        a = await conn.fetchval("INSERT INTO stores (name) VALUES ('a') RETURNING id")
        b = await conn.fetchval("INSERT INTO stores (name) VALUES ('b') RETURNING id")
        terms = [f"o:https://courses.example.org/{i}" for i in range(5)]
        top = rng.choice([300, 800, 1500])
        positions = sorted(rng.sample(range(1, top + 1), k=top // 2))
        far = [3_000_000_000, 3_000_000_001, 6_000_000_000]  # offsets beyond an integer from low runs
        rows = [(a, t, p, rng.random() < 0.6) for p in positions + far for t in terms
                if p in far or rng.random() < (0.9 if t == terms[0] else 0.5)]
        rows += [(b, t, p, True) for t in terms for p in (1, 2, 3)]
        await conn.copy_records_to_table("statement_terms", records=rows,
                                         columns=["store_id", "term", "position", "direct"])
        await migrate(conn)
        await _runs_hold(conn)
        top = far[-1] + 1
        assert await _same_pages(conn, random.Random(seed + 7), a, terms, top, 150) > 0
        # entries taken out and added at any position, as an erasure and a StatementRef do
        for _ in range(40):
            n = rng.randint(1, 20)
            chosen = [rng.choice(terms) for _ in range(n)]
            at = [rng.choice([*positions, *far, rng.randint(1, 2000)]) for _ in range(n)]
            if rng.random() < 0.5:
                await conn.fetch("SELECT * FROM spor_terms_remove($1, $2::text[], $3::bigint[])", a, chosen, at)
            else:
                await conn.execute("SELECT spor_terms_add($1, $2::text[], $3::bigint[], $4::boolean[])", a, chosen, at,
                                   [rng.random() < 0.5 for _ in range(n)])
            await _runs_hold(conn)
        assert await _same_pages(conn, random.Random(seed + 11), a, terms, top, 150) > 0
    finally:
        await conn.close()


async def _entries_are_the_recorded_terms(conn: asyncpg.Connection, store: int) -> None:
    await _runs_hold(conn)
    entries = await conn.fetch("SELECT term, position, direct FROM statement_terms WHERE store_id = $1", store)
    rows = await conn.fetch("SELECT s.position, s.terms::text AS terms, e.payload::text AS payload FROM statements s "
                            "JOIN events e USING (store_id, position) WHERE s.store_id = $1", store)
    # terms NULL: the body's own (0044), as statement_terms gives them for the body as stored
    recorded = []
    for r in rows:
        terms = orjson.loads(r["terms"]) if r["terms"] else statement_terms(orjson.loads(r["payload"]))
        recorded += [(t, r["position"], d) for t, d in terms.items()]
    assert sorted(tuple(r) for r in entries) == sorted(recorded)


@pytest.mark.parametrize("role", [None, "spor_app"])
@pytest.mark.parametrize("seed", range(2))
async def test_runs_written_by_every_path_answer_as_the_rows_did(
        db_url: str, conn: asyncpg.Connection, seed: int, role: str | None) -> None:
    """Batches stored side by side by two processes' repositories (as the owner, and as the
    service role under row-level security): StatementRefs to stored statements and to ones that
    come later, names holding the run separators; then a person erased, and more appends."""
    rng = random.Random(seed)
    store = await PgCredentialRepository(conn).create_store("s", None)
    who = principal(store)
    people = ["kari", "ola", "nora", "per", "åse😀", "x\x1ey\x1fz", "q\ue000r"]
    stored: list[str] = []
    awaited: list[str] = []

    def one() -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if rng.random() < 0.3:
            extra["context"] = {"instructor": agent(rng.choice(people)), "contextActivities": {
                "parent": [{"id": f"https://courses.example.org/{rng.choice(['a1', 'a2', 'a3'])}"}]}}
        pick = rng.random()
        ref = {"actor": agent(rng.choice(people)), "verb": {"id": "http://example.org/v/ref"}, **extra}
        if pick < 0.15 and stored:
            return with_id({**ref, "object": {"objectType": "StatementRef", "id": rng.choice(stored)}})
        if pick < 0.35:
            awaited.append(str(uuid.uuid4()))
            return with_id({**ref, "object": {"objectType": "StatementRef", "id": awaited[-1]}})
        s = statement(rng.choice(people), rng.choice(["completed", "attempted", "passed"]),
                      rng.choice(["a1", "a2", "a3"]), **extra)
        if pick < 0.55 and awaited:
            return {**s, "id": awaited.pop(rng.randrange(len(awaited)))}
        return with_id(s)

    async def same_pages() -> None:
        terms = [r[0] for r in await conn.fetch("SELECT DISTINCT term FROM statement_terms WHERE store_id = $1", store)]
        top = await conn.fetchval("SELECT last_position FROM stores WHERE id = $1", store)
        assert await _same_pages(conn, random.Random(seed), store, terms, top, 150) > 0

    pool_args: dict[str, Any] = {"role": role} if role else {}
    async with statement_repository(db_url, **pool_args) as one_process, \
            statement_repository(db_url, **pool_args) as another:
        for _ in range(20):
            batches = [[one() for _ in range(rng.randint(1, 12))] for _ in range(rng.randint(1, 4))]
            done = await asyncio.gather(*(store_statements(rng.choice([one_process, another]), who, "1.0.3", b)
                                          for b in batches))
            assert len(done) == len(batches)
            stored.extend(s["id"] for b in batches for s in b)
        await _entries_are_the_recorded_terms(conn, store)
        assert await conn.fetchval("SELECT count(*) FROM statements WHERE store_id = $1 AND refers_to IS NOT NULL",
                                   store) > 0
        # both kinds of row: terms recorded (the general path) and the body's own (NULL, 0044)
        assert await conn.fetchval("SELECT count(DISTINCT terms IS NULL) FROM statements WHERE store_id = $1",
                                   store) == 2
        await same_pages()
        owner = await asyncpg.connect(db_url)
        try:
            await erase_person(owner, store, ["account:https://id.example.org|emp-kari"], [], apply=True, by="test")
        finally:
            await owner.close()
        await _entries_are_the_recorded_terms(conn, store)
        for _ in range(5):
            await store_statements(one_process, who, "1.0.3", [one() for _ in range(rng.randint(1, 8))])
        await _entries_are_the_recorded_terms(conn, store)
        await same_pages()


def _scans_of_runs(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The plan nodes that read statement_term_runs (a bitmap heap scan with its index scans)."""
    found = [plan] if plan.get("Relation Name") == "statement_term_runs" and plan["Node Type"] != "ModifyTable" else []
    for child in plan.get("Plans", []):
        found += _scans_of_runs(child)
    return found


def _conditions(node: dict[str, Any]) -> str:
    return " ".join([str(node.get("Index Cond", ""))] + [_conditions(c) for c in node.get("Plans", [])])


_TERMS = ["a:mbox:mailto:ola@example.org", False, "o:https://courses.example.org/c", True,
          "r:4e2b1f0a-0000-4000-8000-000000000000", False]


async def _course_and_people(conn: asyncpg.Connection) -> tuple[int, str]:
    """A store whose runs are a course's 400 and 4,000 people's one each, analysed."""
    store = await PgCredentialRepository(conn).create_store("s", None)
    course = "o:https://courses.example.org/c"
    rows = [(store, course, 10 * i, 10 * i + 5, [0, 5], [False, True]) for i in range(400)]
    rows += [(store, f"a:mbox:mailto:p{i}@example.org", 10 * i + 1, 10 * i + 1, [0], [True]) for i in range(4000)]
    await conn.copy_records_to_table("statement_term_runs", records=rows, columns=[
        "store_id", "term", "first_position", "last_position", "offsets", "direct"])
    await conn.execute("ANALYZE statement_term_runs")
    return store, course


# (the server reads as the service role, under row-level security; an erasure and an export
# run as the owner of the tables)
@pytest.mark.parametrize("name, args, role", [
    ("term_positions_desc", [1, "v:https://verbs.example.org/completed", True, 10_000, None, 10, *_TERMS], "spor_app"),
    ("term_positions_asc", [1, "v:https://verbs.example.org/completed", True, 10_000, 17, 10, *_TERMS], "spor_app"),
    ("term_positions_desc", [1, "v:https://verbs.example.org/completed", True, 10_000, None, 10, *_TERMS], None),
    ("person_statement_positions", [1, ["a:mbox:mailto:ola@example.org", "a:mbox:mailto:kari@example.org"]], None),
    ("person_erase_terms_elsewhere", [1, ["a:mbox:mailto:ola@example.org"]], None),
    ("person_erase_activities", [1, ["https://courses.example.org/c"]], None),
])
async def test_every_query_of_the_runs_by_term_finds_them_by_the_hash_of_the_term(
        conn: asyncpg.Connection, name: str, args: list[Any], role: str | None) -> None:
    """Migration 0043 indexes the runs by (store_id, term_key, first_position), term_key a hash
    of the term: a query naming only `term = X` is answered right but reads every run of the
    store, and so does one whose hash condition row-level security keeps out of the index scan
    (a function not leakproof applied to a column: the first form of 0043, 4.5 s a query at
    1,000,000 statements). Each scan of the runs in each query's plan is an index scan on it."""
    store, _ = await _course_and_people(conn)
    assert store == 1
    await conn.execute("SET enable_seqscan = off")
    if role is not None:
        await conn.execute(f"SET ROLE {role}")
        await conn.execute(sql("set_scope"), "1", "1")
    try:
        raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql(name)}", *args)
    finally:
        await conn.execute("RESET ROLE")
    plan = raw if isinstance(raw, list) else orjson.loads(raw)  # (the fixture's codec may decode it)
    scans = _scans_of_runs(plan[0]["Plan"])
    assert scans, name
    for scan in scans:
        assert scan["Node Type"] in ("Index Scan", "Bitmap Heap Scan"), (name, scan["Node Type"])
        assert "term_key = " in _conditions(scan), (name, _conditions(scan))


async def test_the_planner_counts_the_term_and_its_hash_once(conn: asyncpg.Connection) -> None:
    """`term_key = hash(X) AND term = X` is as selective as `term = X` (statistics on both, 0043):
    estimated as two independent conditions, a term with hundreds of runs (a course) was
    expected to have one, and a page query sorted all its runs instead of reading the newest
    few in index order."""
    store, course = await _course_and_people(conn)
    for mode in ("force_custom_plan", "force_generic_plan"):
        await conn.execute(f"SET plan_cache_mode = {mode}")
        raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql('term_positions_desc')}",
                                  store, course, True, 10_000, None, 101, None, False, None, False, None, False)
        plan = raw if isinstance(raw, list) else orjson.loads(raw)
        [scan] = _scans_of_runs(plan[0]["Plan"])
        assert scan["Plan Rows"] >= 100, (mode, scan["Plan Rows"])


async def _recorded(conn: asyncpg.Connection, store: int, statement_id: str) -> str | None:
    return await conn.fetchval("SELECT terms::text FROM statements WHERE store_id = $1 AND statement_id = $2::uuid",
                               store, statement_id)


async def test_own_terms_are_not_recorded_until_an_erasure_or_a_reference_changes_them(
        db_url: str, conn: asyncpg.Connection) -> None:
    """Migration 0044: the common append records no terms (NULL: the body's own). A StatementRef
    to such a statement inherits its body's terms; an erasure of a person the statement names
    (it stays: it is another's) records the rest, so neither a later reference nor a later
    erasure brings the person's term back."""
    store = await PgCredentialRepository(conn).create_store("s", None)
    who = principal(store)
    kari = T_AGENT + "account:https://id.example.org|emp-kari"
    taught = with_id(statement("ola", context={"instructor": agent("kari")}))
    plain = with_id(statement("nora"))
    async with statement_repository(db_url) as repo:
        await store_statements(repo, who, "1.0.3", [taught, plain])
        assert await _recorded(conn, store, taught["id"]) is None
        assert await _recorded(conn, store, plain["id"]) is None
        ref = {"actor": agent("per"), "verb": {"id": "http://example.org/v/ref"}}
        to_plain = with_id({**ref, "object": {"objectType": "StatementRef", "id": plain["id"]}})
        await store_statements(repo, who, "1.0.3", [to_plain])
        inherited = orjson.loads(await _recorded(conn, store, to_plain["id"]) or "{}")
        # the target's actor, direct as in the target: the agent filter finds statements referring
        # to those it finds (Communication 2.1.3)
        assert inherited[T_AGENT + "account:https://id.example.org|emp-nora"] is True
        await _entries_are_the_recorded_terms(conn, store)

        owner = await asyncpg.connect(db_url)
        try:
            await erase_person(owner, store, [kari.removeprefix(T_AGENT)], [], apply=True, by="test")
        finally:
            await owner.close()
        after = orjson.loads(await _recorded(conn, store, taught["id"]) or "null")
        assert after is not None and kari not in after
        assert after[T_AGENT + "account:https://id.example.org|emp-ola"] is True
        await _entries_are_the_recorded_terms(conn, store)

        to_taught = with_id({**ref, "object": {"objectType": "StatementRef", "id": taught["id"]}})
        await store_statements(repo, who, "1.0.3", [to_taught])
        assert kari not in orjson.loads(await _recorded(conn, store, to_taught["id"]) or "{}")
        assert await conn.fetchval("SELECT count(*) FROM statement_term_runs WHERE store_id = $1 AND term = $2",
                                   store, kari) == 0
        await _entries_are_the_recorded_terms(conn, store)


async def test_the_helpers_find_runs_by_the_hash_under_row_level_security(conn: asyncpg.Connection) -> None:
    """spor_terms_add (the general append, as the service role) and spor_terms_remove probe the
    run that may hold a position by term_key: each of their statements on the runs, as the
    service role under row-level security with the plan PostgreSQL caches, is an index scan on
    term_key (auto_explain's plans of the statements inside the functions, sent to the client)."""
    store, course = await _course_and_people(conn)
    plans: list[str] = []
    conn.add_log_listener(lambda _c, message: plans.append(str(message.message)))
    try:
        await conn.execute("LOAD 'auto_explain'")
    except asyncpg.UndefinedFileError:  # a PostgreSQL build without its contrib modules
        pytest.skip("this PostgreSQL has no auto_explain module")
    await conn.execute("SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on; "
                       "SET auto_explain.log_format = json; SET client_min_messages = log; SET enable_seqscan = off")
    await conn.execute("SET ROLE spor_app")
    await conn.execute(sql("set_scope"), str(store), str(store))
    try:
        for i in range(7):  # past the five custom plans: the generic one too
            await conn.execute("SELECT spor_terms_add($1, $2::text[], $3::bigint[], $4::boolean[])",
                               store, [course], [10 * i + 7], [True])
            await conn.fetch("SELECT * FROM spor_terms_remove($1, $2::text[], $3::bigint[])", store, [course], [10 * i])
    finally:
        await conn.execute("RESET ROLE; RESET client_min_messages")
    inner = [orjson.loads(p[p.index("{"):]) for p in plans if "statement_term_runs" in p and "{" in p]
    scans = [s for p in inner for s in _scans_of_runs(p["Plan"])]
    assert len(scans) >= 14, plans[:3]
    for scan in scans:
        assert scan["Node Type"] in ("Index Scan", "Bitmap Heap Scan"), scan["Node Type"]
        assert "term_key = " in _conditions(scan), _conditions(scan)
