"""Operations: /health, /metrics, structured logs with request ids, clean shutdown on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import orjson

from lrs.app import create_app
from lrs.settings import Settings
from lrs.store.embedded import EmbeddedPostgres
from tests.conftest import ROOT, Server, Tenant, make_tenant, new_database, start_server, stop_server, xapi_client
from tests.statements import statement


async def test_health_reports_the_database(server: Server) -> None:
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.get(server.base_url + "/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "database": "ok"}


async def test_health_answers_ok_while_every_pooled_connection_is_busy(db_url: str) -> None:
    """A server busy with requests is not down: /health asks the database on a connection of its
    own (through the pool it waited for a free connection and answered 503), and a flood of
    checks shares one round trip. When the database does not answer, it is 503."""
    app = create_app(Settings.from_env().with_(database_url=db_url, pool_min_size=1, pool_max_size=2))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        app.state.database_probe.timeout = 10  # (its own connection is made on the first check)
        pool = app.state.pool
        held = [await pool.acquire() for _ in range(2)]  # every pooled connection in use
        try:
            answers = await asyncio.gather(*(client.get("/health") for _ in range(50)))
        finally:
            for conn in held:
                await pool.release(conn)
        assert {(r.status_code, r.json()["database"]) for r in answers} == {(200, "ok")}
        app.state.database_probe.url = db_url.rsplit("/", 1)[0] + "/no_such_database"
        await app.state.database_probe.close()
        down = await client.get("/health")
        assert down.status_code == 503
        assert down.json() == {"status": "degraded", "database": "unavailable: InvalidCatalogNameError"}


async def test_metrics_are_prometheus_text_with_requests_statements_and_pool(server: Server, tenant: Tenant) -> None:
    async with xapi_client(server, tenant) as c:
        assert (await c.post("/statements", json=[statement(), statement(actor="ola")])).status_code == 200
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.get(server.base_url + "/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert "# TYPE spor_http_requests_total counter" in text
    assert 'spor_http_requests_total{method="POST",path="/xapi/statements",status="200"}' in text
    assert 'spor_http_request_seconds_bucket{method="POST",path="/xapi/statements",le="+Inf"}' in text
    received = [line for line in text.splitlines() if line.startswith("spor_statements_received_total ")]
    assert received and float(received[0].split()[1]) >= 2
    assert any(line.startswith("spor_db_pool_size ") for line in text.splitlines())


async def test_every_log_line_is_json_and_request_lines_carry_the_request_id(server: Server, tenant: Tenant) -> None:
    async with xapi_client(server, tenant) as c:
        r = await c.get("/statements", params={"limit": "1"}, headers={"X-Request-Id": "req-test-4711"})
    assert r.headers["X-Request-Id"] == "req-test-4711"
    for _ in range(200):  # the request's line is written once the response has gone (10 s)
        lines = [orjson.loads(ln) for ln in server.logs().splitlines() if "req-test-4711" in ln]
        if any(e.get("event") == "request" for e in lines):
            break
        await asyncio.sleep(0.05)
    # every log line is one JSON object with an event name (uvicorn's own lines included); the
    # only other lines are the start-up banner `spor serve` prints for a person on stdout
    banner = ("Spor is starting", "  ")
    lines = [line for line in server.logs().splitlines() if line.strip() and not line.startswith(banner)]
    events = [orjson.loads(line) for line in lines]
    assert all("event" in e for e in events)
    mine = [e for e in events if e.get("request_id") == "req-test-4711"]
    assert mine and mine[-1]["event"] == "request" and mine[-1]["status"] == 200
    assert tenant.secret not in server.logs()


async def test_sigterm_finishes_in_flight_requests_and_exits_cleanly(pg: EmbeddedPostgres) -> None:
    url = await new_database(pg)
    s = await asyncio.to_thread(start_server, url)
    tenant = await make_tenant(url, s.base_url)
    body = orjson.dumps([statement(actor=f"p{i}") for i in range(500)])
    sent_first, go_on = asyncio.Event(), asyncio.Event()

    async def parts() -> AsyncIterator[bytes]:
        yield body[:1000]
        sent_first.set()
        await go_on.wait()
        yield body[1000:]

    async with xapi_client(s, tenant) as c:
        in_flight = asyncio.create_task(
            c.post("/statements", content=parts(), headers={"Content-Type": "application/json"}))
        await asyncio.wait_for(sent_first.wait(), 30)
        await asyncio.sleep(0.5)  # the server is reading the request's body...
        s.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)  # ...when it is told to stop, and gets the rest after
        go_on.set()
        r = await in_flight
    code = await asyncio.to_thread(s.process.wait, 30)
    assert r.status_code == 200 and len(r.json()) == 500
    assert code == 0
    stop_server(s)  # (its log and its data folder, which held the first credential, left in /tmp)


def _sample(text: str, prefix: str) -> float:
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln.startswith(prefix + " "))


def _received_per_process(folder: Path) -> list[float]:
    """spor_statements_received_total in each process's file of the shared folder."""
    return [sum(c[2] for c in orjson.loads(p.read_bytes())["counters"] if c[0] == "spor_statements_received_total")
            for p in folder.glob("*.json")]


def _written_since(folder: Path, since: float) -> bool:
    """Every process's file written after ``since`` (they are rewritten every second)."""
    return all(orjson.loads(p.read_bytes())["at"] > since for p in folder.glob("*.json"))


async def _files_written_since(folder: Path, since: float) -> None:
    for _ in range(200):
        if _written_since(folder, since):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the processes stopped writing their figures")


def _metrics_folders(tmp: Path) -> list[Path]:
    return list(tmp.glob("spor-metrics-*"))


async def test_with_two_processes_every_scrape_answers_for_both(pg: EmbeddedPostgres, tmp_path: Path) -> None:
    """`spor serve --workers 2`: a scrape reaches one process, and it answers for both
    (lrs/metrics_shared.py), so the statement count is the same whichever process answers; the
    shared folder is a temporary one, removed when the server stops."""
    url = await new_database(pg)
    # one a server killed with kill -9 left (its process gone): removed by the next (a crash audit)
    left = tmp_path / "spor-metrics-4194399-x1y2"
    left.mkdir()
    (left / "4194399.json").write_text("{}")
    s = await asyncio.to_thread(start_server, url, {"SPOR_WORKERS": "2", "TMPDIR": str(tmp_path)})
    try:
        [folder] = _metrics_folders(tmp_path)
        assert folder != left
        tenant = await make_tenant(url, s.base_url)
        posted = 0
        # each POST on a connection of its own, until both processes have taken some
        for _ in range(400):
            async with xapi_client(s, tenant) as c:
                assert (await c.post("/statements", json=[statement(actor=f"p{posted}")])).status_code == 200
            posted += 1
            if posted % 10 == 0:
                await _files_written_since(folder, time.time())
                counted = _received_per_process(folder)
                if len(counted) == 2 and all(counted):
                    break
        else:
            raise AssertionError(f"one process took every connection: {counted}")
        await _files_written_since(folder, time.time())
        for _ in range(8):
            async with httpx.AsyncClient(timeout=30) as c:  # a new connection: either process may answer
                text = (await c.get(s.base_url + "/metrics")).text
            assert _sample(text, "spor_statements_received_total") == posted
            assert _sample(text, "spor_server_processes") == 2
            assert _sample(text, 'spor_http_requests_total{method="POST",path="/xapi/statements",status="200"}') \
                == posted
    finally:
        stop_server(s)
    assert _metrics_folders(tmp_path) == []


def test_serve_refuses_a_metrics_folder_it_cannot_make(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    env = {**os.environ, "SPOR_METRICS_DIR": str(tmp_path / "a-file" / "metrics"), "SPOR_WORKERS": "2",
           "SPOR_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    done = subprocess.run([sys.executable, "-m", "lrs.cli", "serve"], env=env, capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.returncode != 0
    assert "spor serve: SPOR_METRICS_DIR" in done.stderr and "a-file" in done.stderr
    assert "Traceback" not in done.stderr


async def test_a_database_command_that_hangs_is_a_503_after_the_command_timeout(pg: EmbeddedPostgres) -> None:
    """A crash audit: with the database hanging (a stopped process, a stalled disk) a request
    waited as long as it did, 100 s and more, since TCP keepalive sees nothing wrong with a host
    that still acknowledges. One command may take SPOR_DB_COMMAND_TIMEOUT seconds: here a
    POST waits on the store's append lock, held elsewhere (as by a long import), and gets 503;
    nothing of it is kept, and sent again once the lock is free it is stored once."""
    server = start_server(await new_database(pg), {"SPOR_DB_COMMAND_TIMEOUT": "2"})
    holder = await asyncpg.connect(server.database_url)
    try:
        tenant = await make_tenant(server.database_url, server.base_url)
        store_id = await holder.fetchval("SELECT id FROM stores WHERE name = $1", tenant.store)
        s = {**statement(), "id": str(uuid.uuid4())}
        await holder.execute("SELECT pg_advisory_lock(1397772114, $1::int)", store_id)
        async with xapi_client(server, tenant, "2.0.0") as c:
            started = time.monotonic()
            r = await c.post("/statements", json=s)
            assert r.status_code == 503, r.text
            assert r.json()["error"]["message"] == "the database did not answer in time; send the request again shortly"
            assert r.headers["retry-after"] == "5" and time.monotonic() - started < 20
            await holder.execute("SELECT pg_advisory_unlock(1397772114, $1::int)", store_id)
            assert await holder.fetchval("SELECT count(*) FROM statements WHERE statement_id = $1", s["id"]) == 0
            assert (await c.post("/statements", json=s)).status_code == 200
            assert (await c.post("/statements", json=s)).status_code == 200
        assert await holder.fetchval("SELECT count(*) FROM statements WHERE statement_id = $1", s["id"]) == 1
    finally:
        await holder.close()
        stop_server(server)
