"""Migration 0042 turns the filter-term rows of a store into runs: every entry kept, with its
`direct` flag, runs of one term disjoint and in order, and queries find what they found."""

from __future__ import annotations

import asyncpg

from lrs.store.embedded import EmbeddedPostgres
from lrs.store.migrate import migrate
from tests.conftest import new_database

RUNS = 42


async def test_the_terms_of_a_store_migrate_into_disjoint_runs_holding_every_entry(pg: EmbeddedPostgres) -> None:
    url = await new_database(pg, template=None)
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn, upto=RUNS - 1)
        a = await conn.fetchval("INSERT INTO stores (name) VALUES ('a') RETURNING id")
        b = await conn.fetchval("INSERT INTO stores (name) VALUES ('b') RETURNING id")
        rows = (
            # a verb on 700 positions (three groups of 256), an actor on some, another store's
            [(a, "v:https://verbs.example.org/completed", p, True) for p in range(1, 701)]
            + [(a, "a:mbox:mailto:ola@example.org", p, p % 3 == 0) for p in range(5, 700, 7)]
            + [(a, "o:https://courses.example.org/c", p, p % 2 == 0) for p in (255, 256, 257, 511, 512)]
            + [(b, "v:https://verbs.example.org/completed", p, False) for p in (1, 2, 300)]
        )
        await conn.copy_records_to_table("statement_terms", records=rows,
                                         columns=["store_id", "term", "position", "direct"])
        await migrate(conn)
        entries = await conn.fetch("SELECT store_id, term, position, direct FROM statement_terms")
        assert sorted(tuple(r) for r in entries) == sorted(rows)
        runs = await conn.fetch("SELECT store_id, term, first_position, last_position, offsets, direct "
                                "FROM statement_term_runs ORDER BY store_id, term, first_position")
        previous: dict[tuple[int, str], int] = {}
        for r in runs:
            offsets = r["offsets"]
            assert offsets[0] == 0 and offsets == sorted(set(offsets)) and len(r["direct"]) == len(offsets)
            assert r["last_position"] == r["first_position"] + offsets[-1]
            assert r["last_position"] - r["first_position"] < 256
            key = (r["store_id"], r["term"])
            assert previous.get(key, 0) < r["first_position"]  # disjoint, in order
            previous[key] = r["last_position"]
        assert len([r for r in runs if r["store_id"] == a and r["term"].startswith("v:")]) == 3
        # the probe a query makes: the run that may hold position 256 of the course holds it
        # (256, 257 and 511; 255 is in the run of the positions below 256)
        held = await conn.fetchrow(
            "SELECT first_position, offsets, direct FROM statement_term_runs WHERE store_id = $1 AND term = $2 "
            "AND first_position <= 256 ORDER BY first_position DESC LIMIT 1", a, "o:https://courses.example.org/c")
        assert (held["first_position"], held["offsets"], held["direct"]) == (256, [0, 1, 255], [True, False, False])
    finally:
        await conn.close()
