"""Group commit: concurrent appends to one store share one transaction.

Each append pays its round trips and its commit flush, and the commits of one store happen one
after another (in position order, lrs/store/log.py). Under many small requests (single-statement
POSTs from e-learning content) a transaction per request caps a store at a few hundred
statements per second. Here each process keeps one writer task per store: requests queue up
while transactions are in flight, and the next transaction takes all of them at once, one
reservation, one flush. Up to ``in_flight`` groups of a store are written at once, so the
database writes one group's rows while the one before commits. Each request keeps its own
all-or-nothing outcome: a request that is refused (409) contributes nothing to the group, and
a group that fails for an unexpected reason is retried request by request so one bad request
cannot fail its neighbours."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

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
    """Queues requests per store and writes them in groups of up to ``max_group`` items, with up
    to ``in_flight`` groups of a store being written at once (the database writes a store's
    appends side by side and commits them in order, migration 0039; with one group at a time a
    process would wait for each commit before it sent the next group)."""

    def __init__(self, write_group: GroupWriter[Item, Outcome], max_group: int = 5000, in_flight: int = 1) -> None:
        if in_flight < 1:
            raise ValueError("in_flight must be at least 1")
        self.write_group = write_group
        self.max_group = max_group
        self.in_flight = in_flight
        self._queues: dict[int, list[Pending[Item, Outcome]]] = {}
        self._writers: dict[int, asyncio.Task[None]] = {}
        self._arrived: dict[int, asyncio.Event] = {}
        self.groups_written = 0

    async def submit(self, store_id: int, item: Item, size: int) -> Outcome:
        """Queue ``item`` (``size`` statements) for ``store_id`` and wait for its outcome."""
        pending: Pending[Item, Outcome] = Pending(item, size)
        self._queues.setdefault(store_id, []).append(pending)
        if store_id not in self._writers:
            self._arrived[store_id] = asyncio.Event()
            self._writers[store_id] = asyncio.create_task(self._drain(store_id))
        else:
            self._arrived[store_id].set()
        # Shielded: a client that disconnects must not cancel a write other requests share.
        return await asyncio.shield(pending.future)

    def _take_group(self, queue: list[Pending[Item, Outcome]]) -> list[Pending[Item, Outcome]]:
        group: list[Pending[Item, Outcome]] = []
        total = 0
        while queue and (not group or total + queue[0].size <= self.max_group):
            total += queue[0].size
            group.append(queue.pop(0))
        return group

    async def _drain(self, store_id: int) -> None:
        running: set[asyncio.Task[None]] = set()
        arrived = self._arrived[store_id]
        waiting: asyncio.Future[Any] | None = None
        try:
            while True:
                queue = self._queues.get(store_id)
                if queue and len(running) < self.in_flight:
                    running.add(asyncio.create_task(self._write(store_id, self._take_group(queue))))
                    continue
                if not running:
                    break  # nothing queued, nothing being written
                # a group done, or (with room for another) a request queued
                arrived.clear()
                waits: set[asyncio.Future[Any]] = set(running)
                if len(running) < self.in_flight:
                    waiting = asyncio.ensure_future(arrived.wait())
                    waits.add(waiting)
                done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                if waiting is not None:
                    waiting.cancel()
                    waiting = None
                for task in done & running:
                    running.discard(task)
                    task.result()  # a BaseException that _write passed on (not an Exception)
        finally:
            if waiting is not None:
                waiting.cancel()
            for task in running:  # cancelled: the groups being written go on (their requests wait)
                task.add_done_callback(lambda t: t.cancelled() or t.exception())
            # No await between the last emptiness check and this line, so no request can be
            # queued without a writer (asyncio runs one task at a time).
            del self._writers[store_id]
            del self._arrived[store_id]
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

