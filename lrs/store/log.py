"""Appending to the event log: the per-store append lock and position counter.

Documents, reference data and an erasure append through ``reserve``; the general statement path
(lrs/store/statements.py) takes the same lock in ``append_lock_scoped`` and reads the counter in
``append_check``. Either way: the store's exclusive advisory lock is held for the rest of the
transaction, taken by ``spor_lock_store``, which first waits for the common appends in flight
(their tickets, migration 0039); the counter is read in a fresh statement after it. The
common statement append holds the lock only to reserve its positions and a ticket, and commits
in ticket order. Either way positions become visible in commit order, so a reader that has seen
position N never later finds a committed event below N. See docs/architecture.md."""

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


async def reserve(conn: asyncpg.Connection, store_id: int, count: int) -> Reservation:
    """Lock the store's log for this transaction and reserve ``count`` positions.

    Must run inside a transaction; the caller writes its events at ``positions`` and then
    calls ``commit_positions`` (or includes the counter update in its own statement).
    """
    await conn.execute(sql("lock_store_for_append"), store_id)
    row = await conn.fetchrow(sql("append_position_and_stored"), store_id)
    if row is None:
        raise LookupError(f"store {store_id} does not exist")
    return Reservation(row["last_position"] + 1, count, row["stored"])


async def commit_positions(conn: asyncpg.Connection, store_id: int, reservation: Reservation) -> None:
    """Advance the store's counter past a reservation (same transaction as the events)."""
    await conn.execute(sql("advance_store_counter"), store_id, reservation.last, reservation.stored)
