"""First start: make sure a default store and one credential exist."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lrs.ops.principal import ALL_SCOPES
from lrs.ops.secrets import hash_secret, new_key, new_secret
from lrs.store.credentials import PgCredentialRepository

DEFAULT_STORE = "default"


@dataclass(frozen=True)
class NewCredential:
    """A credential just created: the only moment its secret is known."""

    store: str
    key: str
    secret: str
    scopes: list[str]


def credential_authority(key: str, label: str, public_url: str) -> dict[str, Any]:
    """The Agent the LRS writes into ``authority`` for statements sent with this credential."""
    return {
        "objectType": "Agent",
        "name": label or key,
        "account": {"homePage": public_url.rstrip("/") + "/credentials", "name": key},
    }


async def create_credential(
    repo: PgCredentialRepository, store_name: str, *, label: str = "", scopes: list[str] | None = None,
    public_url: str, expires_at: datetime | None = None, region: str | None = None, rotated_from: int | None = None,
    authority: dict[str, Any] | None = None,
) -> NewCredential:
    """Create a credential for an existing store; the secret is returned once and stored hashed.

    A regional credential (``region``) may read every store of that region, never write to them
    other than its own store. ``authority``: the Agent its statements carry, when not a new one
    of its own (a rotated credential keeps the one it replaces: it is the same source, with a
    new secret, and still voids and, with statements/read/mine, reads what it stored before).
    """
    store = await repo.store_by_name(store_name)
    if store is None:
        raise LookupError(f"no store named {store_name!r}")
    if region is not None and region != store["region"]:
        # a regional credential reads the stores of its own store's region: one naming another
        # region gave an organisation another region's personal records, and a misspelt one
        # quietly read nothing but its own store
        raise ValueError(f"store {store_name!r} is in region {store['region']!r}, not {region!r}: a regional "
                         "credential reads the stores of its own store's region")
    scopes = scopes or ["all"]
    unknown = set(scopes) - ALL_SCOPES
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(sorted(unknown))}; use {', '.join(sorted(ALL_SCOPES))}")
    key, secret = new_key(), new_secret()
    await repo.create_credential(
        store["id"], key, hash_secret(secret), label, scopes, authority or credential_authority(key, label, public_url),
        expires_at, region, rotated_from,
    )
    return NewCredential(store_name, key, secret, scopes)


async def ensure_default(repo: PgCredentialRepository, public_url: str, *,
                         credential: Callable[[], bool]) -> tuple[bool, NewCredential | None]:
    """On a first start (the database has no credential): the default store, and a first
    credential when ``credential()`` says so (asked on a first start only). Returns (first
    start, the credential made)."""
    if await repo.count() > 0:
        return False, None
    if await repo.store_by_name(DEFAULT_STORE) is None:
        await repo.create_store(DEFAULT_STORE, None)
    if not credential():
        return True, None
    return True, await create_credential(repo, DEFAULT_STORE, label="first credential", public_url=public_url)
