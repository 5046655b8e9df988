"""The schema is what the numbered migrations produce, and schema.sql says so exactly."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from lrs.store import migrate as migrations
from lrs.store.schema_dump import describe

SCHEMA = Path(migrations.__file__).parent / "sql" / "schema.sql"


async def test_migrations_reproduce_the_committed_schema(conn: asyncpg.Connection) -> None:
    # conn's database is cloned from a template that ran every migration
    actual = await describe(conn)
    assert actual == SCHEMA.read_text(), (
        "schema.sql is out of date: regenerate with python -m lrs.store.schema_dump URL > lrs/store/sql/schema.sql"
    )


async def test_migrating_twice_applies_nothing_the_second_time(conn: asyncpg.Connection) -> None:
    assert await migrations.migrate(conn) == []
    applied = [r["number"] for r in await conn.fetch("SELECT number FROM schema_migrations ORDER BY number")]
    assert applied == [n for n, _, _ in migrations.migrations()]
