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

    async def by_person(self, agent_key: str, limit: int = 1000) -> list[dict[str, Any]]:
        async with translated():
            # a key longer than a record keeps was recorded cut (recordable): search for that
            return [dict(r) for r in await self.db.fetch(sql("audit_by_person"), recordable(agent_key), limit)]
