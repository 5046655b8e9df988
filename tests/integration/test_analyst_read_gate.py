"""Analyst reads take at most a quarter of a process's pool (projections/api.py ReadGate): when
that many are computing, the next waits its turn and then gets 503, while statement writes go on."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
import pytest

from lrs.app import create_app
from lrs.errors import ServiceUnavailable
from lrs.settings import Settings
from projections.api import ReadGate
from tests.conftest import make_tenant
from tests.statements import statement


async def test_a_full_gate_makes_the_next_read_wait_then_503() -> None:
    gate = ReadGate(2, wait_seconds=30)
    order: list[str] = []

    async def read(name: str, until: asyncio.Event) -> None:
        async with gate.held():
            order.append(name)
            await until.wait()

    release_ab, free = asyncio.Event(), asyncio.Event()
    free.set()
    first = [asyncio.create_task(read(n, release_ab)) for n in ("a", "b")]
    await asyncio.sleep(0)
    c = asyncio.create_task(read("c", free))  # waits for a slot...
    await asyncio.sleep(0.05)
    assert order == ["a", "b"] and not c.done()
    release_ab.set()
    await asyncio.wait_for(c, 10)  # ...and gets one when a read ends
    await asyncio.gather(*first)
    assert order == ["a", "b", "c"]
    release_de = asyncio.Event()
    held = [asyncio.create_task(read(n, release_de)) for n in ("d", "e")]
    await asyncio.sleep(0)
    gate.wait_seconds = 0.3
    t0 = time.monotonic()
    with pytest.raises(ServiceUnavailable, match="2 analyst reads") as refused:
        await read("f", free)
    assert 0.25 < time.monotonic() - t0 < 10  # waited its time (0.3 s), not for ever
    assert "f" not in order
    assert refused.value.headers["Retry-After"] == "5"
    release_de.set()
    await asyncio.gather(*held)


async def test_while_analyst_reads_are_stuck_statements_are_still_written(db_url: str) -> None:
    """Analyst reads that cannot finish (here: a read model's checkpoint table locked from
    outside, as a slow past-date computation would hold them) each keep a pooled connection.
    Only a quarter of the pool's worth get one; the rest wait their turn and get 503, and a
    statement POST still finds a connection. Without the gate the reads took the whole pool and
    the POST waited for them."""
    app = create_app(Settings.from_env().with_(database_url=db_url, pool_min_size=1, pool_max_size=8))
    writer = await make_tenant(db_url, "http://testserver")
    analyst = await make_tenant(db_url, "http://testserver", scopes=["all/read"], store=writer.store)
    locker = await asyncpg.connect(db_url)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver", timeout=30) as client:
        gate: ReadGate = app.state.analyst_reads
        assert gate.limit == 2  # a quarter of 8
        gate.wait_seconds = 0.5
        tx = locker.transaction()
        await tx.start()
        await locker.execute("LOCK TABLE rm_transcript.checkpoint IN ACCESS EXCLUSIVE MODE")
        try:
            reads = [asyncio.create_task(client.get("/api/v1/projections", auth=(analyst.key, analyst.secret)))
                     for _ in range(10)]
            for _ in range(300):  # two stuck on the lock, eight refused (within 15 s)
                if sum(t.done() for t in reads) >= 8:
                    break
                await asyncio.sleep(0.05)
            wrote = await asyncio.wait_for(
                client.post("/xapi/statements", json=statement(), auth=(writer.key, writer.secret),
                            headers={"X-Experience-API-Version": "2.0.0"}), timeout=5)
            assert wrote.status_code == 200
            assert sum(t.done() for t in reads) == 8
        finally:
            await tx.rollback()  # the stuck reads finish
            await locker.close()
        answers = await asyncio.gather(*reads)
        assert sorted(r.status_code for r in answers) == [200] * 2 + [503] * 8
        assert all(r.headers["Retry-After"] == "5" for r in answers if r.status_code == 503)
