"""Appending to the event log: the per-store append lock and position counter.

Every writer of events (statements, documents, reference data) appends through ``reserve``:
it takes the store's exclusive advisory lock for the rest of the transaction, then reads the
counter in a fresh statement. Appends to one store are therefore serialised and their positions
become visible in commit order (the lock is released only after commit is visible), so a reader
that has seen position N never later finds a committed event below N. See docs/architecture.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from lrs.store.queries import sql


@dataclass(frozen=True)
class Reservation:
    """Positions ``first .. first+count-1`` and the stored/recorded time of one append."""

    first: int
    count: int
    stored: datetime

    @property
    def last(self) -> int:
        return self.first + self.count - 1

    @property
    def positions(self) -> list[int]:
        return list(range(self.first, self.first + self.count))


async def lock(conn: asyncpg.Connection, store_id: int) -> None:
    """Take the store's append lock for the rest of the transaction (before reading state that
    the append depends on, such as which statement ids exist)."""
    await conn.execute(sql("lock_store_for_append"), store_id)


async def reserve(conn: asyncpg.Connection, store_id: int, count: int, *, locked: bool = False) -> Reservation:
    """Lock the store's log for this transaction and reserve ``count`` positions.

    Must run inside a transaction; the caller writes its events at ``positions`` and then
    calls ``commit_positions`` (or includes the counter update in its own statement).
    """
    if not locked:
        await lock(conn, store_id)
    row = await conn.fetchrow(sql("append_position_and_stored"), store_id)
    if row is None:
        raise LookupError(f"store {store_id} does not exist")
    return Reservation(row["last_position"] + 1, count, row["stored"])


async def commit_positions(conn: asyncpg.Connection, store_id: int, reservation: Reservation) -> None:
    """Advance the store's counter past a reservation (same transaction as the events)."""
    await conn.execute(sql("advance_store_counter"), store_id, reservation.last, reservation.stored)
