"""The document repository: document writes as events in the log, with an inline projection.

Connections are ``scoped`` to the caller's store, so row-level security (migration 0004) backs
the store filter that every query also names.

Every write takes the store's append lock (``lrs.store.log.reserve``, held to commit) before it
reads the current document, so the rules in ``lrs.ops.documents`` decide on the version that
the write replaces: of two writers racing with the same If-Match, the second one to get the
lock sees the first one's new ETag and fails with 412. The same lock is what keeps event
positions in commit order (docs/architecture.md, "Documents").
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from lrs.ops.documents import (
    DELETE,
    SPLIT_IN_THREAD_BYTES,
    Decide,
    DocKey,
    Document,
    Hold,
    Scope,
    Write,
    is_json_type,
)
from lrs.store.db import scoped, translated
from lrs.store.log import reserve
from lrs.store.queries import sql


def _key_args(key: DocKey) -> list[Any]:
    return [key.resource, key.activity_id, key.agent_key, key.registration, key.doc_id]


def _key_payload(key: DocKey) -> dict[str, Any]:
    return {"resource": key.resource, "activityId": key.activity_id, "agentKey": key.agent_key,
            "registration": key.registration, "id": key.doc_id}


def _doc(r: asyncpg.Record | None) -> Document | None:
    if r is None:
        return None
    content = r["content"]
    return Document(r["content_type"], r["etag"], r["updated"], bytes(content) if content is not None else None)


class PgDocumentRepository:
    """DocumentRepository over PostgreSQL (see lrs.ops.documents.DocumentRepository)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def get(self, store_id: int, key: DocKey) -> Document | None:
        """The current document with its bytes, or None."""
        async with translated(), scoped(self.pool, [store_id]) as conn:
            return _doc(await conn.fetchrow(sql("document_get"), store_id, *_key_args(key)))

    async def ids(self, store_id: int, scope: Scope, since: datetime | None) -> tuple[list[str], datetime | None]:
        """Ids of a scope's documents updated after ``since``, and the newest update time."""
        async with translated(), scoped(self.pool, [store_id]) as conn:
            rows = await _scope_ids(conn, store_id, scope, since)
        return [r["doc_id"] for r in rows], max((r["updated"] for r in rows), default=None)

    async def change(self, store_id: int, key: DocKey, agent: dict[str, Any] | None, decide: Decide,
                     *, with_content: bool,
                     prepare: Callable[[Document | None], Awaitable[None]] | None = None,
                     hold: Hold | None = None) -> Write | None:
        """Run ``decide`` on the current document under the store lock and apply its Write.

        ``decide`` may raise (412, 409, 400): the transaction then rolls back and nothing is
        written. Returns the applied Write, or None when there was nothing to do. ``prepare``,
        when given, runs before the lock is taken and with no connection held, given the stored
        document when it is JSON larger than ``SPLIT_IN_THREAD_BYTES`` (None otherwise): the
        work it does ahead is then done neither under the lock every write of the store waits
        for nor on a connection of the pool (finding its size costs one query). ``hold``, given
        the size of that large stored document (0 without one), is room in the write buffer
        taken for the prepare and the write; the document is read only once it is taken, and no
        connection is held while waiting for it (a review: a hundred POSTs waiting for their
        turn each held a 16 MiB document read before it).
        """
        large = 0
        if prepare is not None:
            async with translated(), scoped(self.pool, [store_id], store_id) as conn:
                r = await conn.fetchrow(sql("document_size"), store_id, *_key_args(key))
            if r is not None and (r["size"] or 0) > SPLIT_IN_THREAD_BYTES and is_json_type(r["content_type"]):
                large = r["size"]
        async with hold(large) if hold else contextlib.nullcontext():
            if prepare is not None:
                current = None
                if large:
                    async with translated(), scoped(self.pool, [store_id], store_id) as conn:
                        current = _doc(await conn.fetchrow(sql("document_current_if_larger"), store_id,
                                                           *_key_args(key), SPLIT_IN_THREAD_BYTES))
                await prepare(current if current is not None and current.content is not None else None)
                del current  # (the write reads it again under the lock)
            async with translated(), scoped(self.pool, [store_id], store_id) as conn:
                return await self._change_on(conn, store_id, key, agent, decide, with_content)

    async def _change_on(self, conn: asyncpg.Connection, store_id: int, key: DocKey, agent: dict[str, Any] | None,
                         decide: Decide, with_content: bool) -> Write | None:
        async with conn.transaction():
            reservation = await reserve(conn, store_id, 1)
            current = _doc(await conn.fetchrow(sql("document_current"), store_id, *_key_args(key), with_content))
            decided = decide(current)
            write = await decided if inspect.isawaitable(decided) else decided
            if write is None:
                return None
            position = reservation.first
            updated: datetime = reservation.stored
            payload = _key_payload(key)
            if write.kind == DELETE:
                await conn.execute(sql("document_delete"), store_id, *_key_args(key), position, updated,
                                   orjson.dumps(payload))
                return write
            sha256 = write.sha256
            etag = write.etag
            payload.update({"agent": agent, "contentType": write.content_type, "sha256": sha256.hex(), "etag": etag})
            await conn.execute(sql("document_put"), store_id, *_key_args(key), sha256, write.content,
                               write.content_type, updated, position, write.kind, orjson.dumps(payload), etag)
            return write

    async def delete_scope(self, store_id: int, scope: Scope,
                           decide: Callable[[list[str], datetime | None], None] | None = None) -> int:
        """Delete every document of ``scope``, one event each; the number deleted. ``decide``
        sees the scope's ids under the store lock first and may raise (412): nothing is deleted."""
        async with translated(), scoped(self.pool, [store_id], store_id) as conn, conn.transaction():
            # How many documents go is known only inside the statement, which numbers its
            # events from the reserved first position on and advances the counter itself.
            reservation = await reserve(conn, store_id, 0)
            if decide is not None:
                rows = await _scope_ids(conn, store_id, scope, None)
                decide([r["doc_id"] for r in rows], max((r["updated"] for r in rows), default=None))
            deleted: int = await conn.fetchval(sql("documents_delete_scope"), store_id, scope.resource,
                                               scope.activity_id, scope.agent_key, scope.registration,
                                               reservation.first - 1, reservation.stored)
            return deleted


async def _scope_ids(conn: asyncpg.Connection, store_id: int, scope: Scope,
                     since: datetime | None) -> list[asyncpg.Record]:
    """A scope's document ids updated after ``since`` (all with None), with their update times."""
    return list(await conn.fetch(sql("document_ids"), store_id, scope.resource, scope.activity_id, scope.agent_key,
                                 scope.registration, since))


async def rebuild_documents(conn: asyncpg.Connection, store_id: int) -> None:
    """Rebuild a store's document projection from the log (the log is the truth).

    Takes the store's append lock so no write interleaves with the refold.
    """
    async with translated(), conn.transaction():
        await reserve(conn, store_id, 0)
        await conn.execute(sql("documents_clear_projection"), store_id)
        await conn.execute(sql("documents_rebuild"), store_id)
