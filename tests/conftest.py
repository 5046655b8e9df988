"""Test infrastructure: one real PostgreSQL per test session, started by the tests themselves.

- ``pg``: the cluster (EmbeddedPostgres in a temp folder, fsync off: throwaway data).
- ``db_url``: a fresh database per test, cloned from a migrated template (~20 ms).
- ``server``: one real ``spor serve`` process per session on a free port (acceptance tests).
- ``xapi``: an httpx client for the server, bound to a fresh store and credential per test,
  so tests are isolated by Spor's own tenancy.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest

from lrs.ops import bootstrap
from lrs.store.credentials import PgCredentialRepository
from lrs.store.db import create_pool
from lrs.store.embedded import EmbeddedPostgres, free_port
from lrs.store.migrate import migrate

TEMPLATE = "spor_template"
ROOT = Path(__file__).resolve().parents[1]


async def _jsonb(conn: asyncpg.Connection) -> None:
    for kind in ("jsonb", "json"):
        await conn.set_type_codec(kind, encoder=lambda v: v if isinstance(v, str) else orjson.dumps(v).decode(),
                                  decoder=orjson.loads, schema="pg_catalog")


@pytest.fixture(scope="session")
def pg() -> Iterator[EmbeddedPostgres]:
    base = Path(tempfile.mkdtemp(prefix="spor-test-pg-"))
    base.chmod(0o755)
    cluster = EmbeddedPostgres(base, durable=False, pg_bin=os.environ.get("SPOR_PG_BIN"))
    admin = cluster.start()

    async def make_template() -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f"CREATE DATABASE {TEMPLATE}")
        finally:
            await conn.close()
        conn = await asyncpg.connect(cluster.url(TEMPLATE))
        try:
            await migrate(conn)
        finally:
            await conn.close()

    try:
        # inside: a migration that fails (one being written) stopped the session with the cluster
        # left running and its folder in /tmp
        asyncio.run(make_template())
        yield cluster
    finally:
        cluster.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


async def new_database(pg: EmbeddedPostgres, template: str | None = TEMPLATE) -> str:
    """A new database cloned from the migrated template; ``template=None``: an empty one."""
    name = "t_" + uuid.uuid4().hex[:16]
    conn = await asyncpg.connect(pg.url())
    try:
        await conn.execute(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
    finally:
        await conn.close()
    return pg.url(name)


@pytest.fixture
async def db_url(pg: EmbeddedPostgres) -> AsyncIterator[str]:
    url = await new_database(pg)
    yield url
    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(pg.url())
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    """The service's connection pool (as the server opens it, without its role) on the test's database."""
    p = await create_pool(db_url, min_size=1, max_size=10)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    c = await asyncpg.connect(db_url)
    await _jsonb(c)
    yield c
    await c.close()


@dataclass
class Server:
    """A running ``spor serve`` process."""

    base_url: str
    database_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(database_url: str, env: dict[str, str] | None = None) -> Server:
    port = free_port()
    log_path = Path(tempfile.mkstemp(prefix="spor-server-", suffix=".log")[1])
    # a data folder of its own: a first start not on a terminal writes the first credential's
    # secret there, never into the machine's own (/var/lib/spor as root)
    data_dir = log_path.with_suffix(".data")
    full_env = {**os.environ, "SPOR_DATABASE_URL": database_url, "SPOR_PORT": str(port), "SPOR_HOST": "127.0.0.1",
                "SPOR_LOG_FORMAT": "json", "SPOR_DATA_DIR": str(data_dir), **(env or {})}
    with log_path.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "lrs.cli", "serve"], env=full_env, cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"spor serve exited early:\n{log_path.read_text()}")
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return Server(base, database_url, proc, log_path)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"spor serve did not become healthy:\n{log_path.read_text()}")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=30)
    server.log_path.unlink(missing_ok=True)  # a test that needed it has read it by now
    shutil.rmtree(server.log_path.with_suffix(".data"), ignore_errors=True)


@contextlib.contextmanager
def server_of_its_own(pg: EmbeddedPostgres, env: dict[str, str] | None = None) -> Iterator[Server]:
    """A ``spor serve`` on a fresh database with extra ``SPOR_*`` settings, stopped afterwards."""
    s = start_server(asyncio.run(new_database(pg)), env)
    try:
        yield s
    finally:
        stop_server(s)


@pytest.fixture(scope="session")
def server(pg: EmbeddedPostgres) -> Iterator[Server]:
    with server_of_its_own(pg) as s:
        yield s


@dataclass
class Tenant:
    """A fresh store with one credential (key/secret) on the session server."""

    store: str
    key: str
    secret: str


async def make_tenant(database_url: str, public_url: str, scopes: list[str] | None = None,
                      store: str | None = None) -> Tenant:
    conn = await asyncpg.connect(database_url)
    await _jsonb(conn)
    try:
        repo = PgCredentialRepository(conn)
        name = store or "store-" + uuid.uuid4().hex[:10]
        if await repo.store_by_name(name) is None:
            await repo.create_store(name, "Testsykehuset HF")
        c = await bootstrap.create_credential(repo, name, label="test", scopes=scopes, public_url=public_url)
        return Tenant(name, c.key, c.secret)
    finally:
        await conn.close()


async def audit_trail(database_url: str, store: str) -> list[asyncpg.Record]:
    """A store's audit-trail rows (action, request as a dict, records), oldest first."""
    conn = await asyncpg.connect(database_url)
    try:
        await _jsonb(conn)
        return await conn.fetch("SELECT a.action, a.request, a.records FROM audit_log a JOIN stores s "
                                "ON s.id = a.store_id WHERE s.name = $1 ORDER BY a.id", store)
    finally:
        await conn.close()


@pytest.fixture
async def tenant(server: Server) -> Tenant:
    return await make_tenant(server.database_url, server.base_url)


def xapi_client(server: Server, tenant: Tenant, version: str = "1.0.3") -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.base_url + "/xapi", auth=(tenant.key, tenant.secret),
        headers={"X-Experience-API-Version": version}, timeout=30,
    )


@pytest.fixture(params=["1.0.3", "2.0.0"])
async def xapi(request: pytest.FixtureRequest, server: Server, tenant: Tenant) -> AsyncIterator[httpx.AsyncClient]:
    """A client for each supported xAPI version, on its own fresh store."""
    async with xapi_client(server, tenant, request.param) as c:
        yield c
