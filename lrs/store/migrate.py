"""Numbered migrations: ``sql/migrations/NNNN_name.sql`` applied in order, each once.

The schema is what the migrations produce; ``sql/schema.sql`` is its committed dump (like
Rails' structure.sql), and a test checks that the migrations reproduce it exactly.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg

MIGRATIONS_DIR = Path(__file__).parent / "sql" / "migrations"
# Any fixed 64-bit number: serialises concurrent `spor serve` starts migrating one database.
_MIGRATION_LOCK = 0x5370_6F72_4D69_67


def migrations() -> list[tuple[int, str, Path]]:
    """(number, name, path) of every migration file, in order."""
    out = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        number, _, name = path.stem.partition("_")
        out.append((int(number), name, path))
    numbers = [n for n, _, _ in out]
    if numbers != list(range(1, len(numbers) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..n without gaps, found {numbers}")
    return out


class UnsuitableDatabase(RuntimeError):
    """A database Spor cannot keep learning records in as they were sent."""


async def check_suitable(conn: asyncpg.Connection) -> None:
    """Refuse a database not encoded in UTF-8 (one an operator made for SPOR_DATABASE_URL): a
    LATIN1 database refuses a name with ŋ or č (Northern Sami) as an error on each statement
    holding one, a SQL_ASCII one every JSON escape of a non-ASCII letter; each a 500 per
    request, long after the server started without a word."""
    name, encoding = await conn.fetchrow("SELECT current_database(), current_setting('server_encoding')")
    if encoding != "UTF8":
        raise UnsuitableDatabase(
            f"the database {name!r} is encoded in {encoding}; Spor keeps statements in UTF8, which holds "
            f"every letter a learning record may carry: make it with CREATE DATABASE ... ENCODING 'UTF8' "
            f"TEMPLATE template0, or let Spor start its embedded database (leave SPOR_DATABASE_URL unset)")


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply the migrations not yet applied; return the numbers applied now. A database Spor
    cannot use is refused first (UnsuitableDatabase)."""
    await check_suitable(conn)
    applied_now: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " number int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["number"] for r in await conn.fetch("SELECT number FROM schema_migrations")}
        for number, name, path in migrations():
            if number in done:
                continue
            await conn.execute(path.read_text())
            await conn.execute("INSERT INTO schema_migrations (number, name) VALUES ($1, $2)", number, name)
            applied_now.append(number)
    return applied_now
