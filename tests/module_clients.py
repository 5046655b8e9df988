"""One store and one client per xAPI version for a whole test module.

Creating an httpx client and a credential (scrypt) costs time, so modules with many tests
share them; each test isolates itself with unique actor and activity names (``unique``).
Import the fixtures into a module to use them:
``from tests.module_clients import clients, shared_tenant, xapi  # noqa: F401``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from tests.conftest import Server, Tenant, make_tenant, xapi_client
from tests.statements import agent


@pytest.fixture(scope="module")
async def shared_tenant(server: Server) -> Tenant:
    return await make_tenant(server.database_url, server.base_url)


@pytest.fixture(scope="module")
async def clients(server: Server, shared_tenant: Tenant) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """One client per xAPI version for the whole module."""
    made = {v: xapi_client(server, shared_tenant, v) for v in ("1.0.3", "2.0.0")}
    yield made
    for c in made.values():
        await c.aclose()


@pytest.fixture(params=["1.0.3", "2.0.0"])
def xapi(request: pytest.FixtureRequest, clients: dict[str, httpx.AsyncClient]) -> httpx.AsyncClient:
    return clients[request.param]


def unique(prefix: str) -> str:
    """A name no other test uses (tests share a store within a module)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def agent_param(name: str) -> str:
    """The ``agent`` query parameter for a made-up person."""
    return orjson.dumps(agent(name)).decode()
