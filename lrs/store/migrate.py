"""Numbered migrations: ``sql/migrations/NNNN_name.sql`` applied in order, each once.

The schema is what the migrations produce; ``sql/schema.sql`` is its committed dump (like
Rails' structure.sql), and a test checks that the migrations reproduce it exactly.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import asyncpg

MIGRATIONS_DIR = Path(__file__).parent / "sql" / "migrations"
# Any fixed 64-bit number: serialises concurrent `spor serve` starts migrating one database.
_MIGRATION_LOCK = 0x5370_6F72_4D69_67

# Migrations that change what the read models take from a statement: facts folded before one
# keep the old rule until `spor projections rebuild all` (docs/projections.md, "Upgrading
# past ..."). Whoever migrates a database whose log already holds statements is told so.
READ_MODEL_RULES = {
    33: "a mailbox's domain is lowered as Python lowers it",
    35: "cmi5 satisfied and waived count, and a statement's time is at most its stored time",
    36: "a linked e-mail address links its mbox_sha1sum form too",
}


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


async def migrate(conn: asyncpg.Connection, upto: int | None = None) -> list[int]:
    """Apply the migrations not yet applied (``upto``: only those up to that number, as an older
    release would); return the numbers applied now. A database Spor cannot use is refused first
    (UnsuitableDatabase)."""
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
            if number in done or (upto is not None and number > upto):
                continue
            await conn.execute(path.read_text())
            await conn.execute("INSERT INTO schema_migrations (number, name) VALUES ($1, $2)", number, name)
            applied_now.append(number)
    return applied_now


async def rebuild_advised(conn: asyncpg.Connection, applied: list[int]) -> list[int]:
    """The migrations of ``applied`` that changed the read models' rules (READ_MODEL_RULES),
    when the log already held statements, which the read models may have folded under the old
    ones; none for a new database."""
    changed = [n for n in applied if n in READ_MODEL_RULES]
    if not changed or not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM events WHERE kind = 'statement')"):
        return []
    return changed


def rebuild_advice(number: int) -> str:
    """What an operator is told after migration ``number`` of READ_MODEL_RULES."""
    return (f"migration {number:04d} changed what the read models take from a statement "
            f"({READ_MODEL_RULES[number]}): those folded before it keep the old rule until "
            "`spor projections rebuild all` (docs/projections.md)")


async def advise_rebuild(conn: asyncpg.Connection, applied: list[int], tell: Callable[[int, str], None]) -> None:
    """``tell`` (migration number, advice) of each migration of ``applied`` after which the read
    models want a rebuild (``rebuild_advised``): how each command says it."""
    for number in await rebuild_advised(conn, applied):
        tell(number, rebuild_advice(number))


async def migrate_and_advise(conn: asyncpg.Connection) -> list[int]:
    """``migrate``, and tell standard error what a rebuild of the read models would now change
    (commands other than ``spor serve``, which prints it beside its other start lines)."""
    applied = await migrate(conn)
    await advise_rebuild(conn, applied, lambda _, advice: print(f"read models: {advice}", file=sys.stderr, flush=True))
    return applied
