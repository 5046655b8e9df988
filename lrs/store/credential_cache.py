"""Credentials cached per process, dropped the moment the database says one changed.

Authentication used to read the credential row on every request: a pool checkout and two
round trips, on every xAPI call. Now rows stay in memory, and a LISTEN connection receives
``spor_credentials`` notifications (migration 0006) whenever a credential is updated (revoked,
rotated, expiry changed) and evicts it, so revocation still takes effect on the next request.
If the listening connection drops, the whole cache is cleared and every row is read again
until it is back; entries also expire after ``ttl`` seconds as a backstop. Expiry times are
checked on every request against the clock, not against a cached "active" flag.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import asyncpg

from lrs.logs import log
from lrs.store.credentials import CredentialRow, PgCredentialRepository
from lrs.store.db import connect_direct

CHANNEL = "spor_credentials"


class CachedCredentials:
    """by_key/store_by_name with an in-memory cache invalidated by LISTEN/NOTIFY."""

    def __init__(self, repo: PgCredentialRepository, listen_url: str, ttl: float = 300.0) -> None:
        self.repo = repo
        self.listen_url = listen_url
        self.ttl = ttl
        self._rows: dict[str, tuple[float, CredentialRow]] = {}
        self._listening = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self) -> None:
        pause = 1.0  # between attempts: doubling while they fail (a wrong password, say), up to 30 s
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await connect_direct(self.listen_url)  # an idle listener notices a host gone silent
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._on_notify)
                self._rows.clear()  # anything cached while not listening may be stale
                self._listening = True
                pause = 1.0
                await lost.wait()
            except Exception as exc:  # whatever cut it (InternalClientError, a timeout too): listen again
                log.warning("credential_listener_lost", error=type(exc).__name__, detail=str(exc)[:200])
            finally:
                self._listening = False
                self._rows.clear()
                if conn is not None and not conn.is_closed():
                    conn.terminate()  # close() could wait on a connection that no longer answers
            await asyncio.sleep(pause)
            pause = min(pause * 2, 30.0)

    def _on_notify(self, conn: Any, pid: int, channel: str, key: str) -> None:
        self._rows.pop(key, None)

    async def by_key(self, key: str) -> CredentialRow | None:
        now = time.monotonic()
        hit = self._rows.get(key)
        if hit is not None and self._listening and now - hit[0] < self.ttl:
            row = hit[1]
        else:
            fetched = await self.repo.by_key(key)
            if fetched is None:
                return None
            row = fetched
            if self._listening:
                self._rows[key] = (now, row)
        active = row.revoked_at is None and (row.expires_at is None or row.expires_at > datetime.now(UTC))
        return row if row.active == active else replace(row, active=active)

    async def store_by_name(self, name: str) -> dict[str, Any] | None:
        return await self.repo.store_by_name(name)
