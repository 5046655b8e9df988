"""The audit trail: who read which records (GDPR / Normen), append-only in the database."""

from __future__ import annotations

from typing import Any

import asyncpg

from lrs.ops.audit import recordable
from lrs.ops.principal import Principal
from lrs.store.db import scoped, translated
from lrs.store.queries import sql


class PgAuditRepository:
    """Records reads through the service's pool; lists them through an owner connection."""

    def __init__(self, db: asyncpg.Pool | asyncpg.Connection) -> None:
        self.db = db

    async def record(self, principal: Principal, action: str, request: dict[str, Any], records: int) -> None:
        assert isinstance(self.db, asyncpg.Pool)
        async with translated(), scoped(self.db, [principal.store_id]) as conn:
            await conn.execute(sql("audit_record"), principal.store_id, principal.credential_id,
                               recordable(principal.person_key), action, recordable(request), records)

    async def by_credential(self, key: str, limit: int = 1000) -> list[dict[str, Any]]:
        async with translated():
            return [dict(r) for r in await self.db.fetch(sql("audit_by_credential"), key, limit)]

    async def by_person(self, agent_key: str, limit: int = 1000, store_id: int | None = None) -> list[dict[str, Any]]:
        """The reads by or about a person, newest first (``store_id``: in that store only). A key
        longer than a record keeps was recorded cut (``recordable``); both that form and the key
        as given (say, copied from a record) are searched."""
        keys = list(dict.fromkeys((agent_key, recordable(agent_key))))
        found: list[dict[str, Any]] = []
        async with translated():
            for key in keys:
                found += [dict(r) for r in await self.db.fetch(sql("audit_by_person"), key, limit, store_id)]
        if len(keys) > 1:
            found = sorted({r["id"]: r for r in found}.values(), key=lambda r: r["id"], reverse=True)[:limit]
        return found
