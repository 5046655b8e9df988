"""Admission of statement and document writes by size: a process holds at most so many bytes of
request bodies at once (``SPOR_WRITE_BUFFER_BYTES``).

A body is a few kilobytes of JSON per statement, but parsed, validated and turned into rows it
takes ten to twenty times that; a few clients posting batches of a thousand statements at once
would otherwise decide how much memory the server needs. A request that would take the total
over the limit waits (first come, first served) until earlier ones are done; one body larger
than the limit is admitted alone. Bodies are read before they queue (their size is known
then; ``SPOR_MAX_BODY_BYTES`` bounds each), so waiting holds only the raw bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator


class WriteBudget:
    """A first-come-first-served budget of bytes held by statement writes in one process."""

    def __init__(self, limit_bytes: int) -> None:
        if limit_bytes <= 0:
            raise ValueError("the write buffer must be a positive number of bytes")
        self.limit = limit_bytes
        self.used = 0
        self.waits = 0  # requests that had to wait (a metric)
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    @contextlib.asynccontextmanager
    async def hold(self, size: int) -> AsyncIterator[None]:
        """Hold ``size`` bytes (at most the whole budget) for the duration of the block."""
        n = min(max(size, 0), self.limit)
        await self._acquire(n)
        try:
            yield
        finally:
            self._release(n)

    async def _acquire(self, n: int) -> None:
        if not self._waiting and self.used + n <= self.limit:
            self.used += n
            return
        self.waits += 1
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (n, fut)
        self._waiting.append(entry)
        try:
            await fut
        except asyncio.CancelledError:
            # the client went away while waiting: give back what was granted, or leave the queue
            if fut.done() and not fut.cancelled():
                self._release(n)
            else:
                with contextlib.suppress(ValueError):
                    self._waiting.remove(entry)
                self._wake()
            raise

    def _release(self, n: int) -> None:
        self.used -= n
        self._wake()

    def _wake(self) -> None:
        while self._waiting and self.used + self._waiting[0][0] <= self.limit:
            n, fut = self._waiting.popleft()
            if fut.done():
                continue
            self.used += n
            fut.set_result(None)
