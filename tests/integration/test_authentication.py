"""HTTP Basic authentication against real credentials: the scrypt check runs once per credential,
however many requests arrive with it at the same moment, wrong secrets are still refused, and a
flood of wrong secrets for a key is answered without checking them."""

from __future__ import annotations

import asyncio
import base64
import threading
from typing import Any

import asyncpg
import pytest
import structlog

from lrs.errors import TooManyRequests, Unauthorized
from lrs.ops import auth as auth_module
from lrs.ops.auth import Authenticator
from lrs.ops.ratelimit import RateLimiter
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
        self.hold: threading.Event | None = None  # set: each check waits for it (up to 30 s)
        self._lock = threading.Lock()
        self._real = auth_module.verify_secret

    def __call__(self, secret: str, stored: str) -> bool:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        self.started.set()
        try:
            if self.hold is not None:
                self.hold.wait(30)
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
    # the checks wait until all eight requests have read the credential, so they are all
    # there while the first check of each secret runs, however slow the reads are
    looked_up, real_by_key = 0, repo.by_key
    all_read = threading.Event()

    async def by_key(key: str) -> Any:
        nonlocal looked_up
        row = await real_by_key(key)
        looked_up += 1
        if looked_up == 8:
            all_read.set()
        return row

    repo.by_key = by_key  # type: ignore[method-assign]
    check.hold = all_read
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


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_flood_of_wrong_secrets_gets_429_without_checks_and_verified_clients_keep_working(
        db_url: str, repo: PgCredentialRepository, check: CountingCheck) -> None:
    (t, other) = await tenants(db_url, 2)
    clock = Clock()
    authn = Authenticator(repo, unverified=RateLimiter(0.5, 3, clock=clock))
    await authn.authenticate(basic(t.key, t.secret))  # a client in use before the flood
    assert check.calls == 1
    # right secrets give their token back: the key still has its whole burst for wrong ones
    for i in range(3):
        with pytest.raises(Unauthorized, match="wrong secret"):
            await authn.authenticate(basic(t.key, f"guess-{i}"))
    assert check.calls == 4
    flood = await asyncio.gather(*(authn.authenticate(basic(t.key, f"flood-{i}")) for i in range(20)),
                                 return_exceptions=True)
    assert all(isinstance(r, TooManyRequests) for r in flood), flood
    assert all(int(r.headers["Retry-After"]) >= 1 for r in flood if isinstance(r, TooManyRequests))
    assert t.key in str(flood[0])
    assert check.calls == 4  # not one check more
    # the client verified before the flood is not checked again, so it is not refused
    assert (await authn.authenticate(basic(t.key, t.secret))).store_id > 0
    # other keys have buckets of their own, and so has the same key from another address
    assert (await authn.authenticate(basic(other.key, other.secret))).store_id > 0
    with pytest.raises(Unauthorized, match="wrong secret"):
        await authn.authenticate(basic(t.key, "from-elsewhere"), client="192.0.2.7")
    assert check.calls == 6
    # a refill later, the key's secrets are checked again (one token: one check)
    clock.now += 2.0
    with pytest.raises(Unauthorized, match="wrong secret"):
        await authn.authenticate(basic(t.key, "after-the-wait"))
    with pytest.raises(TooManyRequests):
        await authn.authenticate(basic(t.key, "and-one-more"))
    assert check.calls == 7


async def test_concurrent_wrong_secrets_start_no_more_checks_than_the_burst(
        db_url: str, repo: PgCredentialRepository, check: CountingCheck) -> None:
    (t,) = await tenants(db_url, 1)
    authn = Authenticator(repo, unverified=RateLimiter(0.5, 4, clock=Clock()))
    results = await asyncio.gather(*(authn.authenticate(basic(t.key, f"w{i}")) for i in range(16)),
                                   return_exceptions=True)
    assert sum(isinstance(r, Unauthorized) for r in results) == 4
    assert sum(isinstance(r, TooManyRequests) for r in results) == 12
    assert check.calls == 4


async def test_every_refusal_is_logged_with_why_the_key_and_the_client_never_the_secret(
        db_url: str, repo: PgCredentialRepository) -> None:
    (t,) = await tenants(db_url, 1)
    (revoked,) = await tenants(db_url, 1)
    assert await repo.revoke(revoked.key)
    authn = Authenticator(repo, unverified=RateLimiter(1 / 60, 1))
    attempts: list[tuple[str | None, str]] = [
        (None, "no_credentials"),
        ("Digest abc", "scheme"),
        ("Basic %%%", "malformed"),
        ("Basic " + base64.b64encode(b"no-colon").decode(), "malformed"),
        (basic("spor_nobody", "guess-1"), "unknown_key"),
        (basic(t.secret, t.key), "unknown_key"),  # the wrong way round: its "key" is the secret
        ("Basic " + base64.b64encode(b"guess-token-alone").decode(), "malformed"),
        (basic(t.key, "guess-2"), "wrong_secret"),
        (basic(t.key, "guess-3"), "too_many_wrong_secrets"),  # the burst of one is spent
        (basic(revoked.key, revoked.secret), "revoked_or_expired"),
    ]
    with structlog.testing.capture_logs() as logs:
        for header, _ in attempts:
            with pytest.raises((Unauthorized, TooManyRequests)):
                await authn.authenticate(header, client="192.0.2.7")
        await authn.authenticate(basic(t.key, t.secret), client="192.0.2.8")  # accepted: not logged
    refused = [e for e in logs if e["event"] == "authentication_refused"]
    assert [e["reason"] for e in refused] == [reason for _, reason in attempts]
    # a request without credentials (every client's first) keeps no address
    assert [e.get("client") for e in refused] == [None] + ["192.0.2.7"] * 9
    # the key only once the database knows it: what came as a key may be a secret
    assert [e.get("key") for e in refused] == [None] * 7 + [t.key, t.key, revoked.key]
    assert [e["log_level"] for e in refused] == ["info"] + ["warning"] * 9
    assert [e["status"] for e in refused] == [401] * 8 + [429, 401]
    text = repr(logs)
    assert "guess-" not in text and "no-colon" not in text and "spor_nobody" not in text
    assert t.secret not in text and revoked.secret not in text


async def test_a_key_no_credential_holds_is_answered_as_a_wrong_secret_is_without_a_check(
        db_url: str, repo: PgCredentialRepository, check: CountingCheck, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key of Spor's shape that does not exist was refused at once and never got a 429, so a
    leaked key could be tested for life without a secret (a security audit). Now it waits as long
    as a wrong secret's check takes here and runs out of tries as a real key does; it costs no
    scrypt check. A key of another shape (no key Spor makes) is refused at once."""
    (t,) = await tenants(db_url, 1)
    pauses: list[float] = []

    async def pause(seconds: float) -> None:
        pauses.append(seconds)

    monkeypatch.setattr(auth_module, "_pause", pause)
    authn = Authenticator(repo, unverified=RateLimiter(0.5, 3, clock=Clock()))
    real, made_up = [], []
    for key, out in ((t.key, real), ("spor_" + "Q" * 16, made_up)):
        for i in range(5):
            try:
                await authn.authenticate(basic(key, f"guess-{i}"), client="192.0.2.9")
            except (Unauthorized, TooManyRequests) as exc:
                out.append((exc.status, str(exc).replace(key, "KEY"), exc.headers.get("Retry-After")))
    assert real == made_up and [s for s, _, _ in real] == [401, 401, 401, 429, 429]
    assert check.calls == 3  # the real key's three checks; none for the made-up one
    assert len(pauses) == 3 and all(p == pauses[0] > 0 for p in pauses)
    # the pause follows how long checks of wrong secrets take here
    assert pauses[0] != 0.05
    with pytest.raises(Unauthorized):
        await authn.authenticate(basic("not-a-spor-key", "x"), client="192.0.2.9")
    assert len(pauses) == 3
