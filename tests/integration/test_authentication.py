"""HTTP Basic authentication against real credentials: the scrypt check runs once per credential,
however many requests arrive with it at the same moment, and wrong secrets are still refused."""

from __future__ import annotations

import asyncio
import base64
import threading
from typing import Any

import asyncpg
import pytest

from lrs.errors import Unauthorized
from lrs.ops import auth as auth_module
from lrs.ops.auth import Authenticator
from lrs.store.credentials import PgCredentialRepository
from tests.conftest import Tenant, make_tenant


def basic(key: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()


class CountingCheck:
    """The real scrypt check, counted, and how many ran at the same time."""

    def __init__(self) -> None:
        self.calls = 0
        self.running = 0
        self.most_at_once = 0
        self.started = threading.Event()
        self._lock = threading.Lock()
        self._real = auth_module.verify_secret

    def __call__(self, secret: str, stored: str) -> bool:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        self.started.set()
        try:
            return self._real(secret, stored)
        finally:
            with self._lock:
                self.running -= 1


@pytest.fixture
def repo(pool: asyncpg.Pool) -> PgCredentialRepository:
    return PgCredentialRepository(pool)


@pytest.fixture
def check(monkeypatch: pytest.MonkeyPatch) -> CountingCheck:
    counting = CountingCheck()
    monkeypatch.setattr(auth_module, "verify_secret", counting)
    return counting


async def tenants(db_url: str, n: int) -> list[Tenant]:
    return [await make_tenant(db_url, "http://spor.test") for _ in range(n)]


async def test_concurrent_requests_with_one_credential_share_one_check(
        db_url: str, repo: PgCredentialRepository, check: CountingCheck) -> None:
    (t,) = await tenants(db_url, 1)
    authn = Authenticator(repo)
    principals = await asyncio.gather(*(authn.authenticate(basic(t.key, t.secret)) for _ in range(32)))
    assert {p.credential_id for p in principals} == {principals[0].credential_id}
    assert check.calls == 1
    await authn.authenticate(basic(t.key, t.secret))
    assert check.calls == 1  # remembered


async def test_checks_of_different_credentials_are_bounded(
        db_url: str, repo: PgCredentialRepository, check: CountingCheck) -> None:
    ts = await tenants(db_url, auth_module.SCRYPT_THREADS + 3)
    authn = Authenticator(repo)
    principals = await asyncio.gather(*(authn.authenticate(basic(t.key, t.secret)) for t in ts for _ in range(3)))
    assert len({p.credential_id for p in principals}) == len(ts)
    assert check.calls == len(ts)
    assert check.most_at_once <= auth_module.SCRYPT_THREADS


async def test_wrong_secret_beside_right_one_is_refused(
        db_url: str, repo: PgCredentialRepository, check: CountingCheck) -> None:
    (t,) = await tenants(db_url, 1)
    authn = Authenticator(repo)
    calls: list[Any] = [authn.authenticate(basic(t.key, t.secret + "x")) for _ in range(4)]
    calls += [authn.authenticate(basic(t.key, t.secret)) for _ in range(4)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, Unauthorized) for r in results[:4])
    assert not any(isinstance(r, BaseException) for r in results[4:])
    assert check.calls == 2  # one for the wrong secret, one for the right
    with pytest.raises(Unauthorized, match="wrong secret"):
        await authn.authenticate(basic(t.key, t.secret + "x"))
    assert check.calls == 3  # a wrong secret is never remembered


async def test_a_client_that_leaves_does_not_cancel_the_check_others_wait_for(
        db_url: str, repo: PgCredentialRepository, check: CountingCheck) -> None:
    (t,) = await tenants(db_url, 1)
    authn = Authenticator(repo)
    leaving = asyncio.create_task(authn.authenticate(basic(t.key, t.secret)))
    staying = asyncio.create_task(authn.authenticate(basic(t.key, t.secret)))
    assert await asyncio.to_thread(check.started.wait, 10)
    leaving.cancel()
    principal = await staying
    assert principal.store_id > 0
    assert leaving.cancelled()
    assert check.calls == 1
