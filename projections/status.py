"""The compliance status rows: who is due what, their last completion and its expiry, and the
counts per unit, trust and region that the analyst rollups sum (the ``status`` family of a read
model; migration 0010 says what the tables hold and when they answer a query).

The runner keeps them current inside the transaction that applies a window: the people a window
touched are recomputed and the counts move by the difference; a change to the org tree or to a
requirement recomputes the store. ``settle`` computes a store that has no rows yet (a new store,
the first run after an upgrade, the end of a rebuild) and moves the rows to a new day, which
means recomputing only when an employment or unit version takes effect in between.
"""

from __future__ import annotations

import asyncpg

from lrs.store.queries import sql
from projections.facts import Changes

# The time zone in which completion times become dates for compliance (docs/projections.md).
REPORTING_TIMEZONE = "Europe/Oslo"


async def refresh(conn: asyncpg.Connection, store_id: int, changes: Changes) -> None:
    """Bring the store's status rows in line with a window just applied (on the search_path)."""
    if changes.everything:
        meta = await conn.fetchrow(sql("rm_status_meta"), store_id)
        if meta is not None:
            await conn.execute(sql("rm_status_compute"), store_id, meta["as_of"], meta["tz"])
        return
    if not changes.completions and not changes.persons:
        return
    ifis = [i for i, _ in changes.completions]
    activities = [a for _, a in changes.completions]
    await conn.execute(sql("rm_status_refresh"), store_id, ifis, activities, sorted(changes.persons))


async def settle(conn: asyncpg.Connection, store_id: int, tz: str = REPORTING_TIMEZONE) -> None:
    """Compute the store's rows if it has none (or has them for another time zone), and move
    them to today. Call it under the store's checkpoint lock, with the read model's schema first
    on the search_path."""
    meta = await conn.fetchrow(sql("rm_status_meta"), store_id)
    today = await conn.fetchval(sql("rm_status_today"), tz)
    if meta is None or meta["tz"] != tz:
        await conn.execute(sql("rm_status_compute"), store_id, today, tz)
    elif meta["as_of"] == today:
        return
    elif await conn.fetchval(sql("rm_status_dates_differ"), store_id, meta["as_of"], today):
        await conn.execute(sql("rm_status_compute"), store_id, today, tz)
    else:
        await conn.execute(sql("rm_status_move_to"), store_id, today)
