"""A database not encoded in UTF-8 is refused when Spor starts on it, by name and encoding, before
anything is written to it: it would store some names and refuse others, each refusal a 500."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from lrs.store.embedded import EmbeddedPostgres
from lrs.store.migrate import UnsuitableDatabase, migrate

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["LATIN1", "SQL_ASCII"])
async def encoded_url(request: pytest.FixtureRequest, pg: EmbeddedPostgres) -> AsyncIterator[str]:
    name = f"enc_{request.param.lower()}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg.url())
    try:
        await admin.execute(f"CREATE DATABASE {name} ENCODING '{request.param}' TEMPLATE template0 "
                            "LC_COLLATE 'C' LC_CTYPE 'C'")
        yield pg.url(name)
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def test_a_database_not_in_utf8_is_refused_before_any_migration(encoded_url: str) -> None:
    conn = await asyncpg.connect(encoded_url)
    try:
        encoding = await conn.fetchval("SHOW server_encoding")
        with pytest.raises(UnsuitableDatabase) as refused:
            await migrate(conn)
        assert f"is encoded in {encoding}; Spor keeps statements in UTF8" in str(refused.value)
        assert encoded_url.rsplit("/", 1)[1] in str(refused.value)
        assert await conn.fetchval("SELECT to_regclass('schema_migrations')") is None  # nothing written
    finally:
        await conn.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_on_a_database_not_in_utf8_exits_with_the_reason(encoded_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "SPOR_DATABASE_URL": encoded_url, "SPOR_PORT": str(_free_port()),
           "SPOR_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, "-m", "lrs.cli", "serve"], env=env, capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.returncode != 0
    assert "spor serve: the database" in done.stderr and "Spor keeps statements in UTF8" in done.stderr
    assert "Traceback" not in done.stderr and "Point your xAPI client" not in done.stdout
