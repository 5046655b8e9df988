"""Stores and credentials in PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from lrs.store.db import translated
from lrs.store.queries import sql


@dataclass(frozen=True)
class CredentialRow:
    """A credential as stored (the secret only as its hash)."""

    id: int
    store_id: int
    key: str
    secret_hash: str
    label: str
    scopes: list[str]
    authority: dict[str, Any]
    expires_at: datetime | None
    revoked_at: datetime | None
    active: bool
    region: str | None = None
    read_stores: list[int] | None = None


class PgCredentialRepository:
    """Stores and credentials (used by the CLI and by authentication)."""

    def __init__(self, pool: asyncpg.Pool | asyncpg.Connection) -> None:
        self.db = pool

    async def create_store(self, name: str, organisation: str | None = None, region: str | None = None) -> int:
        async with translated():
            return int(await self.db.fetchval(sql("store_create"), name, organisation, region))

    async def store_by_name(self, name: str) -> dict[str, Any] | None:
        async with translated():
            r = await self.db.fetchrow(sql("store_by_name"), name)
        return dict(r) if r else None

    async def list_stores(self) -> list[dict[str, Any]]:
        async with translated():
            return [dict(r) for r in await self.db.fetch(sql("store_list"))]

    async def create_credential(
        self, store_id: int, key: str, secret_hash: str, label: str, scopes: list[str],
        authority: dict[str, Any], expires_at: datetime | None = None, region: str | None = None,
        rotated_from: int | None = None,
    ) -> int:
        async with translated():
            return int(await self.db.fetchval(
                sql("credential_create"), store_id, key, secret_hash, label, scopes, authority, expires_at,
                region, rotated_from,
            ))

    async def by_key(self, key: str) -> CredentialRow | None:
        async with translated():
            r = await self.db.fetchrow(sql("credential_by_key"), key)
        return CredentialRow(**dict(r)) if r else None

    async def list_credentials(self) -> list[dict[str, Any]]:
        async with translated():
            return [dict(r) for r in await self.db.fetch(sql("credential_list"))]

    async def revoke(self, key: str) -> bool:
        async with translated():
            return await self.db.fetchval(sql("credential_revoke"), key) is not None

    async def expire(self, key: str, at: datetime) -> bool:
        async with translated():
            return await self.db.fetchval(sql("credential_expire"), key, at) is not None

    async def count(self) -> int:
        async with translated():
            return int(await self.db.fetchval(sql("credential_count")))
