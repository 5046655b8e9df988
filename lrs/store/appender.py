"""Group commit: concurrent appends to one store share one transaction.

Appends to a store are serialised (the per-store lock, lrs/store/log.py), so each append pays
its round trips and its commit flush while every other writer of the store waits. Under many
small requests (single-statement POSTs from e-learning content) that caps a store at a few
hundred statements per second. Here each process keeps one writer task per store: requests
queue up while a transaction is in flight, and the next transaction takes all of them at once,
one lock, one flush. Each request keeps its own all-or-nothing outcome: a request that is
refused (409) contributes nothing to the group, and a group that fails for an unexpected
reason is retried request by request so one bad request cannot fail its neighbours.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


@dataclass
class Pending(Generic[Item, Outcome]):
    """One request waiting for its group: its items and the future its caller awaits."""

    item: Item
    size: int
    future: asyncio.Future[Outcome] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


# Writes one group; returns per request either an outcome or an exception for that request.
GroupWriter = Callable[[int, list[Item]], Awaitable[list[Outcome | BaseException]]]


class GroupAppender(Generic[Item, Outcome]):
    """Queues requests per store and writes them in groups of up to ``max_group`` items."""

    def __init__(self, write_group: GroupWriter[Item, Outcome], max_group: int = 5000) -> None:
        self.write_group = write_group
        self.max_group = max_group
        self._queues: dict[int, list[Pending[Item, Outcome]]] = {}
        self._writers: dict[int, asyncio.Task[None]] = {}
        self.groups_written = 0

    async def submit(self, store_id: int, item: Item, size: int) -> Outcome:
        """Queue ``item`` (``size`` statements) for ``store_id`` and wait for its outcome."""
        pending: Pending[Item, Outcome] = Pending(item, size)
        self._queues.setdefault(store_id, []).append(pending)
        if store_id not in self._writers:
            self._writers[store_id] = asyncio.create_task(self._drain(store_id))
        # Shielded: a client that disconnects must not cancel a write other requests share.
        return await asyncio.shield(pending.future)

    async def _drain(self, store_id: int) -> None:
        try:
            while self._queues.get(store_id):
                queue = self._queues[store_id]
                group: list[Pending[Item, Outcome]] = []
                total = 0
                while queue and (not group or total + queue[0].size <= self.max_group):
                    total += queue[0].size
                    group.append(queue.pop(0))
                await self._write(store_id, group)
        finally:
            # No await between the last emptiness check and this line, so no request can be
            # queued without a writer (asyncio runs one task at a time).
            del self._writers[store_id]
            if not self._queues.get(store_id):
                self._queues.pop(store_id, None)

    async def _write(self, store_id: int, group: list[Pending[Item, Outcome]]) -> None:
        try:
            outcomes = await self.write_group(store_id, [p.item for p in group])
        except BaseException as exc:
            if len(group) > 1 and isinstance(exc, Exception):
                for p in group:  # isolate the request that broke the group
                    await self._write(store_id, [p])
                return
            for p in group:
                if not p.future.done():
                    p.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        self.groups_written += 1
        for p, outcome in zip(group, outcomes, strict=True):
            if p.future.done():
                continue
            if isinstance(outcome, BaseException):
                p.future.set_exception(outcome)
            else:
                p.future.set_result(outcome)

