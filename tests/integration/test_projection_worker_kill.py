"""A worker process killed in the middle of a batch (SIGKILL, a real process kill) leaves the
read models exactly as a rebuild from the log makes them, once another worker has finished."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import asyncpg

from lrs.store.credentials import PgCredentialRepository
from projections import reference, runner
from projections.facts import EMPLOYMENT, PERSON_LINKED, REQUIREMENT
from projections.models import ALL
from tests.conftest import ROOT
from tests.integration.test_projection_properties import HOME, dump
from tests.integration.test_projection_runner import _post, voiding
from tests.statements import statement


def _worker(db_url: str, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SPOR_DATABASE_URL": db_url}
    return subprocess.Popen([sys.executable, "-m", "projections.cli", "projections", "run", "--lease-seconds", "2",
                             "--poll-seconds", "0.2", *extra], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _in_transaction(conn: asyncpg.Connection, pid: int | None = None) -> int:
    """Sessions paused inside a batch's transaction (by --apply-delay) for 0.1 s already; a
    short pause between the statements of other work does not count."""
    return int(await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND state = 'idle in transaction' AND pid <> pg_backend_pid() "
        "AND clock_timestamp() - state_change > interval '100 milliseconds'"))


async def test_killed_worker_mid_batch_ends_identical_to_a_rebuild(db_url: str, conn: asyncpg.Connection) -> None:
    sid = await PgCredentialRepository(conn).create_store("kill", None)
    rc = await runner.connect(db_url)
    try:
        await reference.append(rc, sid, [
            reference.RefEvent(PERSON_LINKED, f"account:{HOME}|emp-p{i}",
                               {"ifi": f"account:{HOME}|emp-p{i}", "person_id": f"P{i % 40}"}) for i in range(80)])
        await reference.append(rc, sid, [
            reference.RefEvent(EMPLOYMENT, f"P{i}\x1fe1", {
                "person_id": f"P{i}", "employment_id": "e1", "unit_id": "4001", "role": "nurse",
                "profession": "sykepleier", "valid_from": "2020-01-01", "valid_to": None}) for i in range(40)])
        await reference.append(rc, sid, [reference.RefEvent(REQUIREMENT, "hygiene", {
            "requirement_id": "hygiene", "name": "Hand hygiene", "units": [], "roles": [], "professions": [],
            "activity_ids": ["https://courses.example.org/hand-hygiene"], "validity_days": 365})])
    finally:
        await rc.close()
    ids: list[str] = []
    for chunk in range(10):
        ids += await _post(db_url, sid, [statement(actor=f"p{(chunk * 100 + i) % 80}") for i in range(100)])
    await _post(db_url, sid, [voiding(i) for i in ids[::7]])
    head = await conn.fetchval("SELECT last_position FROM stores WHERE id = $1", sid)

    slow = _worker(db_url, "--batch-size", "150", "--apply-delay", "0.4")
    try:
        deadline = time.monotonic() + 30
        # wait until it has committed something and is inside a batch's transaction
        while time.monotonic() < deadline:
            done = await conn.fetchval("SELECT coalesce(max(position), 0) FROM rm_transcript.checkpoint")
            if done > 0 and await _in_transaction(conn):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the worker made no progress")
        slow.send_signal(signal.SIGKILL)
        slow.wait(10)
    finally:
        if slow.poll() is None:
            slow.kill()
    await asyncio.sleep(0.2)
    positions = [r[0] for r in await conn.fetch(
        "SELECT position FROM rm_transcript.checkpoint UNION ALL SELECT position FROM rm_compliance.checkpoint "
        "UNION ALL SELECT position FROM rm_course_status.checkpoint")]
    assert min(positions, default=0) < head, "the kill came too late to be mid-way"
    assert all(p % 150 == 0 or p == head for p in positions), positions  # only whole batches were kept

    fresh = _worker(db_url, "--batch-size", "500")
    try:
        pc = await runner.connect(db_url)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                st = await runner.status(pc, list(ALL.values()))
                if all(s.state == "current" for s in st):
                    break
                await asyncio.sleep(0.1)
            assert all(s.state == "current" for s in st), st
        finally:
            await pc.close()
    finally:
        fresh.send_signal(signal.SIGTERM)
        fresh.wait(15)
    assert fresh.returncode == 0
    incremental = await dump(conn)
    pc = await runner.connect(db_url)
    try:
        for p in ALL.values():
            await runner.rebuild(pc, p)
    finally:
        await pc.close()
    assert await dump(conn) == incremental
    assert len(incremental["rm_transcript.completions"]) == 1000 - len(ids[::7])
