"""The projection engine against real PostgreSQL: exactly-once batches, voiding, failure,
leases shared by several workers, NOTIFY wake-up and atomic rebuild."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from lrs.ops.statements import store_statements
from lrs.person_erasure import erase_person
from lrs.store.credentials import PgCredentialRepository
from lrs.store.db import create_pool
from lrs.store.statements import PgStatementRepository
from projections import reference, runner
from projections.facts import EMPLOYMENT, ORG_UNIT, Window
from projections.models import ALL, COMPLIANCE, TRANSCRIPT
from tests.conftest import ROOT
from tests.proxy import DatabaseProxy
from tests.statements import statement
from tests.store_access import principal


async def _store(conn: asyncpg.Connection, name: str = "s") -> int:
    return await PgCredentialRepository(conn).create_store(name, None)


async def _post(db_url: str, store_id: int, stmts: list[dict]) -> list[str]:
    pool = await create_pool(db_url)
    try:
        return await store_statements(PgStatementRepository(pool), principal(store_id), "1.0.3", stmts)
    finally:
        await pool.close()


def voiding(target: str) -> dict:
    return {"actor": {"objectType": "Agent", "account": {"homePage": "https://id.example.org", "name": "admin"}},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/voided", "display": {"en-US": "voided"}},
            "object": {"objectType": "StatementRef", "id": target}}


async def _completions(conn: asyncpg.Connection, schema: str = "rm_transcript") -> list[str]:
    rows = await conn.fetch(f"SELECT statement_id::text FROM {schema}.completions ORDER BY position")
    return [r[0] for r in rows]


async def test_batches_apply_every_event_once_and_move_the_checkpoint(db_url: str, conn: asyncpg.Connection) -> None:
    sid = await _store(conn)
    ids = await _post(db_url, sid, [statement(actor=f"p{i}") for i in range(25)])
    pc = await runner.connect(db_url)
    try:
        assert await runner.catch_up(pc, TRANSCRIPT, batch_size=7) == 25
        assert await runner.catch_up(pc, TRANSCRIPT, batch_size=7) == 0
        assert await _completions(conn) == ids
        assert await conn.fetchval("SELECT position FROM rm_transcript.checkpoint WHERE store_id = $1", sid) == 25
    finally:
        await pc.close()


async def test_voided_completion_disappears_whichever_arrives_first(db_url: str, conn: asyncpg.Connection) -> None:
    sid = await _store(conn)
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    await _post(db_url, sid, [{**statement(actor="kari"), "id": a}, {**statement(actor="ola"), "id": b}])
    pc = await runner.connect(db_url)
    try:
        await runner.catch_up(pc, TRANSCRIPT)
        assert sorted(await _completions(conn)) == sorted([a, b])
        await _post(db_url, sid, [voiding(a)])
        # a voiding that arrives before its target (allowed by xAPI): the target never counts
        c = str(uuid.uuid4())
        await _post(db_url, sid, [voiding(c)])
        await _post(db_url, sid, [{**statement(actor="per"), "id": c}])
        await runner.catch_up(pc, TRANSCRIPT, batch_size=1)
        assert await _completions(conn) == [b]
    finally:
        await pc.close()


async def test_a_failing_event_marks_only_that_projection_failed(db_url: str, conn: asyncpg.Connection) -> None:
    sid = await _store(conn)
    await _post(db_url, sid, [statement(actor="kari")])
    # an org event with a date no fold can read (written straight to the log, as a buggy feed might)
    pc = await runner.connect(db_url)
    try:
        await reference.append(pc, sid, [reference.RefEvent(ORG_UNIT, "1@x", {
            "unit_id": "1", "name": "X", "level": "trust", "valid_from": "not-a-date"})])
        await _post(db_url, sid, [statement(actor="ola")])
        await runner.catch_up(pc, COMPLIANCE, batch_size=100)
        await runner.catch_up(pc, TRANSCRIPT, batch_size=100)
        st = {s.projection: s for s in await runner.status(pc, list(ALL.values()))}
        assert st["compliance"].state == "failed"
        assert st["compliance"].failed_position == 2
        assert st["compliance"].position == 1  # the event before the bad one was applied
        assert "not-a-date" in (st["compliance"].error or "")
        assert st["transcript"].state == "current"  # it has no org tables: the event is nothing to it
        assert len(await _completions(conn)) == 2
        assert st["course_status"].lag_events == 3 and st["course_status"].state == "behind"
    finally:
        await pc.close()


async def test_lag_and_rebuild_progress_count_events_not_positions(db_url: str, conn: asyncpg.Connection) -> None:
    """An erasure leaves gaps in a store's positions; the lag counts the events that are there,
    and a rebuild's progress, whose total is positions, ends at the events it applied (both
    counted positions, and over-stated the lag and ended the bar short)."""
    sid = await _store(conn)
    await _post(db_url, sid, [statement(actor="kari") for _ in range(6)])
    await _post(db_url, sid, [statement(actor="ola") for _ in range(3)])
    pc = await runner.connect(db_url)
    try:
        await erase_person(pc, sid, ["account:https://id.example.org|emp-kari"], [], apply=True, by="test")
        head = await conn.fetchval("SELECT last_position FROM stores WHERE id = $1", sid)
        assert head == 10  # 9 statements and the erasure's own event
        assert await conn.fetchval("SELECT count(*) FROM events WHERE store_id = $1", sid) == 4
        st = {s.projection: s for s in await runner.status(pc, list(ALL.values()))}
        assert (st["transcript"].lag_events, st["transcript"].head, st["transcript"].state) == (4, 10, "behind")
        # part of the way: two events applied, two left
        assert (await runner.step(pc, TRANSCRIPT, sid, batch_size=2)).applied == 2
        st = {s.projection: s for s in await runner.status(pc, list(ALL.values()))}
        assert st["transcript"].position == 8 and st["transcript"].lag_events == 2
        await runner.catch_up(pc, TRANSCRIPT)
        st = {s.projection: s for s in await runner.status(pc, list(ALL.values()))}
        assert (st["transcript"].lag_events, st["transcript"].state) == (0, "current")

        calls: list[tuple[int, int]] = []
        assert await runner.rebuild(pc, TRANSCRIPT, progress=lambda d, t: calls.append((d, t))) == 4
        # the total is positions (10), an upper bound; at the end the bar stands at the events (4)
        assert calls[0][1] == 10 and calls[-1] == (4, 4)
    finally:
        await pc.close()


async def test_lag_past_the_counted_bound_is_the_difference_of_positions(
        db_url: str, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counting stops at LAG_COUNTED_UP_TO events; past it the lag is the (larger) difference of
    positions, which reads no index."""
    sid = await _store(conn)
    await _post(db_url, sid, [statement(actor="kari") for _ in range(6)])
    await _post(db_url, sid, [statement(actor="ola") for _ in range(3)])
    monkeypatch.setattr(runner, "LAG_COUNTED_UP_TO", 3)
    pc = await runner.connect(db_url)
    try:
        await erase_person(pc, sid, ["account:https://id.example.org|emp-kari"], [], apply=True, by="test")
        st = {s.projection: s for s in await runner.status(pc, list(ALL.values()))}
        assert st["transcript"].lag_events == 10  # 4 events, 3 or more counted: positions 1 to 10
        await runner.step(pc, TRANSCRIPT, sid, batch_size=2)
        st = {s.projection: s for s in await runner.status(pc, list(ALL.values()))}
        assert st["transcript"].lag_events == 2  # below the bound: counted
    finally:
        await pc.close()


async def test_odd_values_the_lrs_accepts_do_not_fail_a_read_model(db_url: str, conn: asyncpg.Connection) -> None:
    """Each of these statements is valid xAPI 1.0.3 and was stored, and each made the folds' SQL
    raise (an offset beyond PostgreSQL's 15:59, an instant before the year 1 in UTC, a duration
    no double holds), which failed the read model at that statement for its store (0020)."""
    sid = await _store(conn)
    odd = [statement(actor="a", timestamp="2025-05-01T10:00:00+23:59"),
           statement(actor="b", timestamp="0001-01-01T00:00:00+01:00"),
           {**statement(actor="c"), "result": {"duration": "PT" + "9" * 400 + "S", "completion": True}}]
    ids = await _post(db_url, sid, odd)
    pc = await runner.connect(db_url)
    try:
        for p in ALL.values():
            await runner.catch_up(pc, p, batch_size=100)
        st = await runner.status(pc, list(ALL.values()))
        assert [(s.projection, s.state, s.error) for s in st] == [(s.projection, "current", None) for s in st]
        assert sorted(await _completions(conn)) == sorted(ids)
        at = await conn.fetch("SELECT statement_id::text, completed_at FROM rm_transcript.completions")
        when = {r[0]: r[1] for r in at}
        assert when[ids[0]] == datetime(2025, 4, 30, 10, 1, tzinfo=UTC)
        assert when[ids[1]] == datetime(1, 1, 1, tzinfo=UTC)  # the nearest instant a reader can decode
        assert await conn.fetchval("SELECT duration_s FROM rm_transcript.completions WHERE statement_id = $1::uuid",
                                   ids[2]) == float("inf")
    finally:
        await pc.close()


async def test_an_event_too_large_for_an_index_fails_its_read_model_for_its_store_only(
        db_url: str, conn: asyncpg.Connection) -> None:
    """An employment whose unit id is 3,000 characters (written straight to the log, as a buggy
    feed might: the import refuses it now) cannot enter the employments index. The error was
    taken as transient: the worker retried it for ever, said nothing, and every store's read
    models that keep employments stalled behind it. It is the read model's failure at that event
    now, for that store; other stores and read models go on."""
    sid = await _store(conn)
    other = await _store(conn, "other")
    pc = await runner.connect(db_url)
    try:
        await reference.append(pc, sid, [reference.RefEvent(EMPLOYMENT, "P1\x1fE1", {
            "person_id": "P1", "employment_id": "E1", "unit_id": os.urandom(1500).hex(), "role": "", "profession": "",
            "valid_from": "2024-01-01", "valid_to": None})])
        await _post(db_url, sid, [statement(actor="kari")])
        await _post(db_url, other, [statement(actor="ola")])
        for p in ALL.values():
            await runner.catch_up(pc, p, batch_size=100)
        st = {(s.projection, s.store_id): s for s in await runner.status(pc, list(ALL.values()))}
        for name in ("course_status", "compliance"):
            assert st[(name, sid)].state == "failed" and st[(name, sid)].failed_position == 1, st[(name, sid)]
            assert "ProgramLimitExceeded" in (st[(name, sid)].error or "")
            assert st[(name, other)].state == "current"
        assert st[("transcript", sid)].state == "current"  # it keeps no employments
    finally:
        await pc.close()


async def test_concurrent_workers_never_apply_an_event_twice(db_url: str, conn: asyncpg.Connection) -> None:
    stores = [await _store(conn, f"s{i}") for i in range(3)]
    for sid in stores:
        await _post(db_url, sid, [statement(actor=f"p{i}") for i in range(60)])
    applied: list[tuple[int, int]] = []

    async def record(p: runner.Projection, store_id: int, window: Window) -> None:
        applied.extend((store_id, position) for position in window.positions)
        await asyncio.sleep(0.01)

    stop = asyncio.Event()
    workers = [runner.Worker(db_url, [TRANSCRIPT], runner.WorkerOptions(batch_size=5, poll_seconds=0.05),
                             before_commit=record) for _ in range(4)]
    tasks = [asyncio.create_task(w.run(stop)) for w in workers]
    try:
        for _ in range(200):
            if await conn.fetchval("SELECT count(*) FROM rm_transcript.completions") == 180:
                break
            await asyncio.sleep(0.05)
        # more arrive while they run
        await _post(db_url, stores[0], [statement(actor="late")])
        for _ in range(100):
            if await conn.fetchval("SELECT count(*) FROM rm_transcript.completions") == 181:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    assert await conn.fetchval("SELECT count(*) FROM rm_transcript.completions") == 181
    # before_commit runs inside the apply transaction; only committed batches count, and a
    # batch can only commit once, so committed positions are unique
    cps = await conn.fetch("SELECT store_id, position FROM rm_transcript.checkpoint ORDER BY store_id")
    assert [(r[0], r[1]) for r in cps] == [(stores[0], 61), (stores[1], 60), (stores[2], 60)]
    assert len(applied) == len(set(applied)) == 181
    assert sum(w.applied for w in workers) == 181


async def test_a_stopping_worker_starts_no_further_batch_and_releases_its_lease(
        db_url: str, conn: asyncpg.Connection) -> None:
    """SIGTERM sets ``stop``: the batch in hand commits, no further one starts (a pass over a
    backlog is up to 20 batches per store), and the lease is released for the next worker."""
    sid = await _store(conn)
    await _post(db_url, sid, [statement(actor=f"p{i}") for i in range(50)])
    stop = asyncio.Event()

    async def stop_now(p: runner.Projection, store_id: int, window: Window) -> None:
        stop.set()

    w = runner.Worker(db_url, [TRANSCRIPT], runner.WorkerOptions(batch_size=10, poll_seconds=30),
                      before_commit=stop_now)
    await asyncio.wait_for(w.run(stop), timeout=30)
    assert w.applied == 10
    assert await conn.fetchval("SELECT position FROM rm_transcript.checkpoint WHERE store_id = $1", sid) == 10
    assert await conn.fetchval("SELECT count(*) FROM projections.leases WHERE owner = $1", w.owner) == 0


async def test_a_dead_workers_lease_passes_on(db_url: str, conn: asyncpg.Connection) -> None:
    sid = await _store(conn)
    await _post(db_url, sid, [statement(actor="kari")])
    await conn.execute("INSERT INTO projections.leases VALUES ('transcript', $1, 'dead', now() + interval '1 hour')",
                       sid)
    w = runner.Worker(db_url, [TRANSCRIPT], runner.WorkerOptions(poll_seconds=0.1))
    pc = await runner.connect(db_url)
    try:
        assert await w.run_once(pc) == 0  # leased by someone else
        # the dead worker renews it no more: it runs out
        await conn.execute(
            "UPDATE projections.leases SET expires_at = now() - interval '1 second' WHERE owner = 'dead'")
        assert await w.run_once(pc) == 1
        assert await conn.fetchval("SELECT owner FROM projections.leases WHERE store_id = $1", sid) == w.owner
    finally:
        await pc.close()


async def test_notify_wakes_a_sleeping_worker(db_url: str, conn: asyncpg.Connection) -> None:
    sid = await _store(conn)
    stop = asyncio.Event()
    w = runner.Worker(db_url, [COMPLIANCE], runner.WorkerOptions(poll_seconds=30))
    task = asyncio.create_task(w.run(stop))
    try:
        await asyncio.sleep(0.3)  # asleep now, for up to 30 s
        pc = await runner.connect(db_url)
        try:
            await reference.append(pc, sid, [reference.RefEvent(ORG_UNIT, "100@2024-01-01", {
                "unit_id": "100", "id_kind": "resh", "name": "Testsykehuset HF", "parent_id": None,
                "level": "trust", "valid_from": "2024-01-01", "closed": False})])
        finally:
            await pc.close()
        for _ in range(400):  # (20 s, less than the 30 s poll: only the NOTIFY can wake it)
            if await conn.fetchval("SELECT count(*) FROM rm_compliance.units") == 1:
                break
            await asyncio.sleep(0.05)
        assert await conn.fetchval("SELECT count(*) FROM rm_compliance.units") == 1
    finally:
        stop.set()
        await task


async def test_rebuild_all_extracts_the_facts_once_and_counts_them_in_its_progress(
        db_url: str, conn: asyncpg.Connection) -> None:
    sid = await _store(conn)
    ids = await _post(db_url, sid, [statement(actor=f"p{i}") for i in range(30)])
    progress: list[tuple[int, int]] = []
    counts = await runner.rebuild_concurrently(db_url, list(ALL.values()), batch_size=7,
                                               progress=lambda d, t: progress.append((d, t)))
    assert counts == {name: 30 for name in ALL}
    assert await _completions(conn) == ids
    # the statement facts (30 positions) and each read model's replay (30 each), never backwards
    assert progress[-1] == (120, 120)
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)


async def test_the_bulk_pass_extracts_the_statements_the_prefill_did_not_cover(
        db_url: str, conn: asyncpg.Connection) -> None:
    """A rebuild's prefill covers the log as it stood when the rebuild began; what arrived after
    (here: positions above 11, in the middle of a window) is extracted by the windows of the
    bulk pass. Each statement must land in the fact tables exactly once, voided ones not at all,
    whichever side of that position a statement or its voiding is on."""
    sid = await _store(conn)
    ids = await _post(db_url, sid, [statement(actor=f"p{i}") for i in range(16)])
    await _post(db_url, sid, [voiding(ids[2]), voiding(ids[14])])  # positions 17 and 18
    await _post(db_url, sid, [statement(actor="late")])
    late = (await conn.fetchval("SELECT statement_id::text FROM events WHERE position = 19"))
    builds = []
    for p in ALL.values():
        builds.append(await runner.Rebuild.begin(await runner.connect(db_url), p, None))
    try:
        await runner.prefill_facts(db_url, builds, {sid: 11}, chunk=4, connections=2)
        for b in builds:
            await b.fold_bulk(3, {sid: 11})
            await b.finish(3)
    finally:
        for b in builds:
            await b.end()
            await b.conn.close()
    kept = sorted([i for i in ids if i not in (ids[2], ids[14])] + [late])
    assert sorted(await _completions(conn)) == kept
    assert sorted(await _completions(conn, "rm_compliance")) == kept
    facts = await conn.fetch("SELECT DISTINCT statement_id::text FROM rm_course_status.activity_facts ORDER BY 1")
    assert [r[0] for r in facts] == kept


async def test_rebuild_swaps_atomically_and_readers_see_the_old_version_until_then(
        db_url: str, conn: asyncpg.Connection) -> None:
    sid = await _store(conn)
    ids = await _post(db_url, sid, [statement(actor=f"p{i}") for i in range(50)])
    pc = await runner.connect(db_url)
    try:
        await runner.catch_up(pc, TRANSCRIPT)
        # damage the live read model so the rebuild's result is distinguishable
        await conn.execute("DELETE FROM rm_transcript.completions WHERE position > 10")
        seen_during: list[int] = []

        reader = await asyncpg.connect(db_url)
        progress: list[tuple[int, int]] = []

        def on_progress(done: int, total: int) -> None:
            progress.append((done, total))

        async def watch() -> None:
            while True:
                seen_during.append(await reader.fetchval("SELECT count(*) FROM rm_transcript.completions"))
                await asyncio.sleep(0.001)

        async def seen(n: int) -> None:  # the watcher has read n times (within 20 s)
            for _ in range(2000):
                if len(seen_during) >= n:
                    return
                await asyncio.sleep(0.01)

        watcher = asyncio.create_task(watch())
        await seen(1)
        assert await runner.rebuild(pc, TRANSCRIPT, batch_size=5, progress=on_progress) == 50
        await seen(len(seen_during) + 2)  # a read begun after the swap has finished
        watcher.cancel()
        await reader.close()
        assert set(seen_during) <= {10, 50}, "a reader saw a half-built read model"
        assert seen_during[0] == 10 and seen_during[-1] == 50
        assert await _completions(conn) == ids
        assert progress[-1] == (50, 50)
        assert not await conn.fetchval(
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'rm_transcript_%'")
    finally:
        await pc.close()


async def test_a_rebuild_does_not_wait_for_a_reader_still_in_the_tables_it_replaces(
        db_url: str, conn: asyncpg.Connection) -> None:
    """An analyst's export reads its snapshot of the read model in one long transaction. The
    swap must not wait for it (a DROP queued behind its locks would hold every new read of the
    read model, and the workers, behind it): the rebuild swaps, leaves the old tables to the
    next rebuild, and a new reader meanwhile finds the new tables without waiting."""
    sid = await _store(conn)
    await _post(db_url, sid, [statement(actor=f"p{i}") for i in range(20)])
    pc = await runner.connect(db_url)
    exporter = await asyncpg.connect(db_url)
    try:
        await runner.catch_up(pc, TRANSCRIPT)
        export = exporter.transaction(isolation="repeatable_read", readonly=True)
        await export.start()
        assert await exporter.fetchval("SELECT count(*) FROM rm_transcript.completions") == 20
        await asyncio.wait_for(runner.rebuild(pc, TRANSCRIPT, batch_size=5), 30)
        await conn.execute("SET lock_timeout = '1s'")  # a new reader must not queue behind anything
        assert await conn.fetchval("SELECT count(*) FROM rm_transcript.completions") == 20
        assert await exporter.fetchval("SELECT count(*) FROM rm_transcript.completions") == 20  # its snapshot
        assert await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = 'rm_transcript_old'") == 1
        # the operator sees what was left and how much disk it takes
        [left] = await runner.leftovers(pc, list(ALL.values()))
        assert (left.projection, left.schema) == ("transcript", "rm_transcript_old") and left.bytes > 0
        shown = _spor(db_url, "projections", "status")
        assert "leftover rm_transcript_old:" in shown.stdout and "MB" in shown.stdout, shown.stdout + shown.stderr
        assert "projections rebuild transcript" in shown.stdout
        await export.rollback()
        await runner.rebuild(pc, TRANSCRIPT, batch_size=5)
        assert not await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'rm_transcript_%'")
        assert await runner.leftovers(pc, list(ALL.values())) == []
        assert "leftover" not in _spor(db_url, "projections", "status").stdout
    finally:
        await exporter.close()
        await pc.close()


async def _index_definitions(conn: asyncpg.Connection, schema: str) -> list[str]:
    rows = await conn.fetch("SELECT indexdef FROM pg_indexes WHERE schemaname = $1", schema)
    return sorted(r[0].replace(f"{schema}.", "<schema>.") for r in rows)


async def test_a_rebuild_ends_with_every_key_and_index_of_a_fresh_read_model_and_without_voided_facts(
        db_url: str, conn: asyncpg.Connection) -> None:
    # the first pass of a rebuild folds into fact tables without keys and removes voided
    # statements only at the end; the swapped-in tables must have them all again, or later
    # live batches would add a statement twice
    sid = await _store(conn)
    ids = await _post(db_url, sid, [statement(actor=f"p{i}") for i in range(12)])
    await _post(db_url, sid, [voiding(ids[3]), voiding(ids[8])])
    await runner.rebuild_concurrently(db_url, list(ALL.values()), batch_size=5)
    for p in ALL.values():
        await conn.execute("CREATE SCHEMA fresh_model")
        await conn.execute("SELECT projections.create_read_model('fresh_model', $1)", sorted(p.families))
        assert await _index_definitions(conn, p.schema) == await _index_definitions(conn, "fresh_model"), p.name
        await conn.execute("DROP SCHEMA fresh_model CASCADE")
    kept = [i for i in ids if i not in (ids[3], ids[8])]
    assert await _completions(conn) == kept
    assert sorted(await _completions(conn, "rm_compliance")) == sorted(kept)
    facts = await conn.fetch("SELECT DISTINCT statement_id::text FROM rm_course_status.activity_facts")
    assert sorted(r[0] for r in facts) == sorted(kept)
    # the live fold goes on from the rebuilt checkpoint into the rebuilt tables
    pc = await runner.connect(db_url)
    try:
        more = await _post(db_url, sid, [statement(actor="late")])
        await runner.catch_up(pc, TRANSCRIPT)
        assert await _completions(conn) == kept + more
    finally:
        await pc.close()


def _spor(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SPOR_DATABASE_URL": db_url}
    return subprocess.run([sys.executable, "-m", "projections.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)


async def test_a_build_schema_is_a_leftover_only_when_no_rebuild_is_filling_it(
        db_url: str, conn: asyncpg.Connection) -> None:
    """A rebuild that stopped half way leaves rm_<name>_build; one that is running fills it. The
    rebuild's advisory lock tells them apart."""
    await conn.execute("CREATE SCHEMA rm_course_status_build")
    await conn.execute("CREATE TABLE rm_course_status_build.t AS SELECT g FROM generate_series(1, 1000) g")
    pc = await runner.connect(db_url)
    rebuilding = await asyncpg.connect(db_url)
    try:
        [left] = await runner.leftovers(pc, list(ALL.values()))
        assert left.schema == "rm_course_status_build" and left.bytes > 0
        assert "a rebuild that stopped before its swap" in _spor(db_url, "projections", "status").stdout
        key = runner._REBUILD_LOCK, runner._stable_index("course_status")
        await rebuilding.execute("SELECT pg_advisory_lock($1, $2)", *key)
        assert await runner.leftovers(pc, list(ALL.values())) == []
        await rebuilding.execute("SELECT pg_advisory_unlock($1, $2)", *key)
        assert [x.schema for x in await runner.leftovers(pc, list(ALL.values()))] == ["rm_course_status_build"]
        # a table of it held by someone: listed at once, its size unknown, instead of waiting
        async with rebuilding.transaction():
            await rebuilding.execute("LOCK TABLE rm_course_status_build.t IN ACCESS EXCLUSIVE MODE")
            [left] = await asyncio.wait_for(runner.leftovers(pc, list(ALL.values())), 10)
            assert left.schema == "rm_course_status_build" and left.bytes is None
            assert "size unknown" in _spor(db_url, "projections", "status").stdout
    finally:
        await rebuilding.close()
        await pc.close()


async def test_rebuild_all_computes_the_status_rows_in_parts_that_add_up(
        db_url: str, conn: asyncpg.Connection, tmp_path: Path) -> None:
    """`rebuild all` computes each store's compliance status rows in parts, one part of the people
    on each connection (migration 0021): the parts meet on the same units and count keys, and
    the counts must be the sums of theirs, a person employed twice in a trust counted once."""
    sid = await _store(conn)
    (tmp_path / "org.csv").write_text("unit_id,name,parent_id,level,valid_from\n1,Region,,region,2020-01-01\n"
                                      "2,Trust,1,trust,2020-01-01\n3,Ward A,2,department,2020-01-01\n"
                                      "4,Ward B,2,department,2020-01-01\n")
    people = "".join(f"P{i:02},account:https://id.example.org|emp-p{i},E1,3,nurse,2021-01-01\n" for i in range(11))
    people += "P00,,E2,4,nurse,2021-01-01\n"  # one person in both wards of the trust
    (tmp_path / "people.csv").write_text("person_id,identifiers,employment_id,unit_id,role,valid_from\n" + people)
    (tmp_path / "req.csv").write_text("requirement_id,activity_ids,validity_days\nhygiene,https://courses.example."
                                      "org/hand-hygiene,365\n")
    for kind, name in (("org", "org.csv"), ("people", "people.csv"), ("requirements", "req.csv")):
        await reference.import_file(conn, sid, kind, tmp_path / name)
    await _post(db_url, sid, [statement(actor=f"p{i}") for i in range(4)])  # four of them completed it
    totals = ("SELECT s.level, s.group_id, coalesce(s.total, 0) + coalesce(p.n, 0) FROM rm_compliance.status_summary s "
              "FULL JOIN (SELECT level, group_id, sum(n) AS n FROM rm_compliance.status_pending GROUP BY 1, 2) p "
              "USING (level, group_id) ORDER BY 1, 2")
    await runner.rebuild(conn, COMPLIANCE, batch_size=5)  # one part, one connection
    one = [tuple(r) for r in await conn.fetch(totals)]
    assert one == [("region", "1", 11), ("trust", "2", 11), ("unit", "3", 11), ("unit", "4", 1)]
    await runner.rebuild_concurrently(db_url, [COMPLIANCE], batch_size=5, status_parts=3)
    assert [tuple(r) for r in await conn.fetch(totals)] == one
    status = "SELECT person_id, unit_id, last_completed IS NOT NULL FROM rm_compliance.status ORDER BY 1, 2"
    rows = [tuple(r) for r in await conn.fetch(status)]
    assert len(rows) == 12 and sum(done for *_, done in rows) == 5  # P00 completed, counted in both wards
    assert await conn.fetchval("SELECT count(*) FROM rm_compliance.status_units") == 2


async def _terminate_others(conn: asyncpg.Connection) -> int:
    """Cut every other session of this database, as a database restart or failover would."""
    return len(await conn.fetch(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"))


async def _completions_reach(conn: asyncpg.Connection, want: int, tries: int = 400) -> int:
    n = 0
    for _ in range(tries):
        n = await conn.fetchval("SELECT count(*) FROM rm_transcript.completions")
        if n == want:
            break
        await asyncio.sleep(0.05)
    return int(n)


async def test_a_worker_whose_connections_are_cut_reconnects_and_listens_again(
        db_url: str, conn: asyncpg.Connection) -> None:
    """A database restart, a failover or a terminated session cuts the worker's connections: it
    connects again and goes on, and LISTENs again (the poll here is 30 s, so only a notification
    wakes it in time), instead of ending with the connection's error."""
    sid = await _store(conn)
    await _post(db_url, sid, [statement(actor="kari")])
    stop = asyncio.Event()
    w = runner.Worker(db_url, [TRANSCRIPT], runner.WorkerOptions(poll_seconds=30))
    task = asyncio.create_task(w.run(stop))
    try:
        assert await _completions_reach(conn, 1) == 1
        for round_ in range(2):  # a second cut, after the first reconnect
            await asyncio.sleep(0.3)  # asleep on the notification
            assert await _terminate_others(conn) >= 2  # its work and its listening connection
            await asyncio.sleep(0.5)
            assert not task.done(), task.exception() if task.done() else None
            await _post(db_url, sid, [statement(actor=f"ola{round_}")])
            pc = await runner.connect(db_url)
            try:  # an org import notifies the workers
                await reference.append(pc, sid, [reference.RefEvent(ORG_UNIT, f"10{round_}@2024-01-01", {
                    "unit_id": f"10{round_}", "id_kind": "resh", "name": "Testsykehuset HF", "parent_id": None,
                    "level": "trust", "valid_from": "2024-01-01", "closed": False})])
            finally:
                await pc.close()
            assert await _completions_reach(conn, 2 + round_) == 2 + round_
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
    assert await conn.fetchval("SELECT count(*) FROM projections.leases WHERE owner = $1", w.owner) == 0


async def test_a_worker_waits_out_a_database_it_cannot_reach_and_goes_on(
        db_url: str, conn: asyncpg.Connection) -> None:
    """Cut off while the database refuses new connections (as during a restart): the worker
    tries again, waiting longer each time, and when the database takes connections again it
    applies what arrived meanwhile."""
    sid = await _store(conn)
    await _post(db_url, sid, [statement(actor="ola")])
    db = await conn.fetchval("SELECT current_database()")
    stop = asyncio.Event()
    w = runner.Worker(db_url, [TRANSCRIPT], runner.WorkerOptions(poll_seconds=0.2))
    task = asyncio.create_task(w.run(stop))
    admin = await asyncpg.connect(db_url.rsplit("/", 1)[0] + "/postgres")
    try:
        assert await _completions_reach(conn, 1) == 1  # it works (connected, listening)
        await admin.execute(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS false')
        try:
            await _terminate_others(conn)
            await asyncio.sleep(1.5)  # several refused attempts
            assert not task.done(), task.exception() if task.done() else None
        finally:
            await admin.execute(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS true')
            await admin.close()
        await _post(db_url, sid, [statement(actor="kari")])
        assert await _completions_reach(conn, 2) == 2
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def test_cuts_in_the_middle_of_a_backlog_lose_nothing_and_apply_nothing_twice(
        db_url: str, conn: asyncpg.Connection) -> None:
    """Sessions cut at random moments while a backlog is applied (mid-query, mid-transaction,
    between two queries, when asyncpg is left with the server's farewell and no closed socket
    yet): the worker goes on, and every event is applied exactly once."""
    sid = await _store(conn)
    await _post(db_url, sid, [statement(actor=f"p{i}") for i in range(600)])
    stop = asyncio.Event()
    w = runner.Worker(db_url, [TRANSCRIPT], runner.WorkerOptions(batch_size=5, poll_seconds=0.1,
                                                                 reconnect_max_seconds=0.4))
    task = asyncio.create_task(w.run(stop))
    rng = random.Random(7)
    cuts = 0
    try:
        deadline = time.monotonic() + 30
        for i in itertools.count():  # 60 cuts at least, and 5 that found the worker connected
            if i >= 60 and (cuts >= 5 or time.monotonic() > deadline):
                break
            await asyncio.sleep(rng.uniform(0, 0.05))
            cuts += await _terminate_others(conn) > 0
            assert not task.done(), task.exception() if task.done() else None
        assert await _completions_reach(conn, 600, tries=400) == 600
        assert not task.done()
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
    assert cuts >= 5  # the worker was cut at least this often (some cuts find it reconnecting)
    assert await conn.fetchval("SELECT position FROM rm_transcript.checkpoint WHERE store_id = $1", sid) == 600


async def _worker_through_proxy(db_url: str, conn: asyncpg.Connection,
                                ) -> tuple[DatabaseProxy, runner.Worker, asyncio.Event, asyncio.Task[None]]:
    """A store with one statement, and a running worker that reaches the database through a
    ``DatabaseProxy`` (connection attempts given 60 s, so only ``stop`` ends one early)."""
    sid = await _store(conn)
    await _post(db_url, sid, [statement(actor="kari")])
    proxy = DatabaseProxy(db_url)
    url = await proxy.start()
    stop = asyncio.Event()
    w = runner.Worker(url, [TRANSCRIPT], runner.WorkerOptions(poll_seconds=0.1, connect_timeout_seconds=60))
    return proxy, w, stop, asyncio.create_task(w.run(stop))


async def test_stop_ends_a_worker_at_once_while_its_database_does_not_answer(
        db_url: str, conn: asyncpg.Connection) -> None:
    """A host that takes connections and never answers would hold a connection attempt for its
    whole timeout; ``stop`` (SIGTERM) ends the attempt and the worker at once."""
    proxy, _worker, stop, task = await _worker_through_proxy(db_url, conn)
    try:
        assert await _completions_reach(conn, 1) == 1
        proxy.black_hole = True
        proxy.cut()
        await asyncio.sleep(1.0)  # trying to connect, into the black hole
        assert not task.done()
        stop.set()
        t0 = time.monotonic()
        await asyncio.wait_for(task, timeout=30)
        assert time.monotonic() - t0 < 10  # not the 60 s its connection attempt may take
    finally:
        stop.set()
        await proxy.close()


class _BuggyFold(runner.Projection):
    """A read model whose fold has a bug asyncpg reports as an InterfaceError (a query given the
    wrong number of arguments), on a connection that is fine."""

    def __init__(self) -> None:
        super().__init__(TRANSCRIPT.name, TRANSCRIPT.families)

    async def apply(self, conn: asyncpg.Connection, window: Window) -> None:
        await conn.fetchval("SELECT $1::int")


async def test_a_bug_in_a_fold_ends_the_worker_rather_than_looking_like_a_cut(
        db_url: str, conn: asyncpg.Connection) -> None:
    sid = await _store(conn)
    await _post(db_url, sid, [statement(actor="kari")])
    w = runner.Worker(db_url, [_BuggyFold()], runner.WorkerOptions(poll_seconds=0.1, reconnect_max_seconds=0.2))
    with pytest.raises(asyncpg.InterfaceError, match="argument"):
        await asyncio.wait_for(w.run(asyncio.Event()), timeout=20)
    assert await conn.fetchval("SELECT count(*) FROM projections.leases WHERE owner = $1", w.owner) == 0


async def test_stop_while_only_the_listener_reconnects_still_releases_the_leases(
        db_url: str, conn: asyncpg.Connection) -> None:
    proxy, w, stop, task = await _worker_through_proxy(db_url, conn)
    try:
        assert await _completions_reach(conn, 1) == 1
        assert await conn.fetchval("SELECT count(*) FROM projections.leases WHERE owner = $1", w.owner) == 1
        proxy.black_hole = True  # new connections hang; the working one goes on
        await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND query ILIKE 'LISTEN%'")
        await asyncio.sleep(1.0)  # reconnecting its listener, into the black hole
        assert not task.done()
        stop.set()
        await asyncio.wait_for(task, timeout=5)
    finally:
        stop.set()
        await proxy.close()
    assert await conn.fetchval("SELECT count(*) FROM projections.leases WHERE owner = $1", w.owner) == 0


@pytest.mark.parametrize("cut", [1, 2], ids=["its-connection-at-its-codecs", "its-listener-at-its-LISTEN"])
async def test_a_cut_while_the_worker_sets_up_its_connections_is_a_cut_like_any_other(
        db_url: str, conn: asyncpg.Connection, cut: int) -> None:
    """Both connections are made, and one is cut at its first query, as a session terminated
    while the worker starts would be (the worker's own connection is the first, its listener's
    the second): the worker makes it again and applies the events."""
    sid = await _store(conn)
    await _post(db_url, sid, [statement(actor="kari")])
    proxy = DatabaseProxy(db_url)
    url = await proxy.start()
    proxy.cut_at_first_query = {cut}
    stop = asyncio.Event()
    w = runner.Worker(url, [TRANSCRIPT], runner.WorkerOptions(poll_seconds=0.1))
    task = asyncio.create_task(w.run(stop))
    try:
        assert await _completions_reach(conn, 1) == 1, task.exception() if task.done() else None
        assert proxy.arrived == 3  # the cut one was made again
        assert not task.done()
    finally:
        stop.set()
        await proxy.close()
        await asyncio.wait_for(task, timeout=30)
