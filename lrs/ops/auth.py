"""Authentication: HTTP Basic credentials to a Principal.

Each request looks its credential up again (one indexed read), so a revoked or expired
credential is refused on the very next request. The slow scrypt check runs once per
(key, secret, hash) in a worker thread; later requests compare a SHA-256 in constant time.

Concurrent requests with the same unverified credential share one check: a client that opens
32 connections at once would otherwise start 32 checks of ~50 ms CPU and 16 MiB each before
the first one finished (measured: 11% of a worker's CPU in a 15 s benchmark, and most of its
peak memory). At most ``SCRYPT_THREADS`` checks run at once per process, so a burst of wrong
secrets queues instead of multiplying the memory.

Wrong secrets are limited per credential key and client address. A check costs ~50 ms of CPU,
and a request that has not proved anything yet must not be able to buy that at will: anyone who
knows a key (keys travel in e-learning packages) could keep a 2-core server busy with ~40 wrong
secrets a second, and a new client's first check would wait behind them. Each check started for
a (key, client address) takes a token from its bucket (``unverified``: a burst, refilled at a
rate), and a check that finds the secret right gives it back. An empty bucket answers 429 with
Retry-After at once, without a check. The bucket is per client address too, so a flood from one
address does not lock the key's clients elsewhere out of their first check (after a restart,
say); clients whose secret this process has verified already are not checked at all.

A key of the shape Spor's keys have that no credential holds is answered as a wrong secret
would be: after a pause as long as a check takes here (no check is made: a random key must not
buy scrypt work), and with the same 429 once its bucket is spent. Its 401 came at once and never
a 429, which told whether a leaked key (from an old e-learning package) still exists before any
secret was guessed (a security audit).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

import structlog

from lrs.errors import TooManyRequests, Unauthorized
from lrs.ops import terms as T
from lrs.ops.oidc import OidcVerifier, bearer_challenge, principal_for
from lrs.ops.principal import Principal
from lrs.ops.ratelimit import RateLimiter
from lrs.ops.secrets import verify_secret
from lrs.store.credentials import CredentialRow

CHALLENGE = {"WWW-Authenticate": 'Basic realm="Spor xAPI"'}
# What lrs.ops.secrets.new_key makes: "spor_" and 16 characters of URL-safe base64
_KEY_SHAPE = re.compile(r"spor_[A-Za-z0-9_-]{16}")
_pause = asyncio.sleep  # (a test counts the pauses)
# What an authentication scheme looks like (RFC 9110 11.1: a token), short
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]{0,19}")
log = structlog.get_logger("lrs.auth")

E = TypeVar("E", bound=Exception)


def _because(reason: str, exc: E, key: str | None = None) -> E:
    """``exc``, marked with why authentication was refused and, once the database has shown it
    to be one, the credential key tried (for the log line)."""
    exc.reason = reason  # type: ignore[attr-defined]
    exc.known_key = key  # type: ignore[attr-defined]
    return exc


def _too_many(key: str, wait: int, *, known: bool) -> TooManyRequests:
    """The 429 of a key whose wrong secrets have used up its bucket (the same whether a credential
    holds the key or not; the log names the key only when one does)."""
    return _because("too_many_wrong_secrets", TooManyRequests(
        f"too many wrong secrets for credential key {key!r}: secrets not verified before are "
        f"checked again in {wait} s", headers={"Retry-After": str(wait)}), key if known else None)


def _decode_basic(value: str) -> str:
    """``key:secret`` of a Basic header's value (ValueError also for characters outside ASCII,
    which base64 cannot hold)."""
    return base64.b64decode(value.strip(), validate=True).decode()


SCRYPT_THREADS = 2


class CredentialLookup(Protocol):
    async def by_key(self, key: str) -> CredentialRow | None: ...
    async def store_by_name(self, name: str) -> dict[str, Any] | None: ...


class Authenticator:
    """Turns an Authorization header into a Principal, or raises Unauthorized (401).

    HTTP Basic for credentials (systems); Bearer tokens from the configured OpenID Connect
    issuer for people, when single sign-on is on (``oidc``).
    """

    def __init__(self, credentials: CredentialLookup, oidc: OidcVerifier | None = None,
                 unverified: RateLimiter | None = None) -> None:
        self.credentials = credentials
        self.oidc = oidc
        # checks per key that did not find the secret right (None: no limit; the server passes
        # SPOR_WRONG_SECRETS_BURST and SPOR_WRONG_SECRETS_PER_MINUTE)
        self.unverified = unverified or RateLimiter(0, 1)
        self._verified: dict[str, bytes] = {}
        self._checking: dict[bytes, asyncio.Future[bool]] = {}
        self._scrypt = ThreadPoolExecutor(SCRYPT_THREADS, thread_name_prefix="scrypt")
        self._store_ids: dict[str, int] = {}
        # how long a check of a wrong secret takes here (a moving average; ~50 ms at first)
        self.check_seconds = 0.05
        self.challenge = CHALLENGE if oidc is None else {
            "WWW-Authenticate": CHALLENGE["WWW-Authenticate"] + ", " + bearer_challenge()["WWW-Authenticate"]
        }

    async def _bearer(self, token: str) -> Principal:
        assert self.oidc is not None
        verified = await self.oidc.verify(token)
        store_id = self._store_ids.get(verified.store)
        if store_id is None:
            store = await self.credentials.store_by_name(verified.store)
            if store is None:
                raise Unauthorized(f"the token's store {verified.store!r} does not exist here",
                                   headers=bearer_challenge("invalid_token", "unknown store"))
            store_id = self._store_ids[verified.store] = int(store["id"])
        return principal_for(verified, store_id)

    @staticmethod
    def _fingerprint(key: str, secret: str, secret_hash: str) -> bytes:
        return hashlib.sha256(f"{key}\0{secret}\0{secret_hash}".encode()).digest()

    async def _check(self, key: str, client: str | None, fingerprint: bytes, secret: str, secret_hash: str) -> bool:
        """The scrypt check of one (key, secret, hash), shared by the requests that wait for it;
        429 when the key has had too many checks from this client that found the secret wrong."""
        running = self._checking.get(fingerprint)
        if running is None:
            bucket = (key, client)
            wait = self.unverified.take(bucket)
            if wait:
                raise _too_many(key, wait, known=True)
            loop = asyncio.get_running_loop()
            began = loop.time()
            running = self._checking[fingerprint] = loop.run_in_executor(
                self._scrypt, verify_secret, secret, secret_hash)

            def done(f: asyncio.Future[bool]) -> None:
                self._checking.pop(fingerprint, None)
                if not f.cancelled() and f.exception() is None:
                    if f.result():
                        self.unverified.give_back(bucket)
                    else:
                        self.check_seconds += (loop.time() - began - self.check_seconds) / 8

            running.add_done_callback(done)
        # shield: a client that hangs up does not cancel the check the others wait for
        return await asyncio.shield(running)

    async def _as_if_checked(self, key: str, client: str | None) -> None:
        """For a key no credential holds: the wait and the limit of a wrong secret's check, with no
        check (its bucket is kept by a digest of the key, whose length a client chooses)."""
        wait = self.unverified.take((hashlib.sha256(key.encode()).digest(), client))
        if wait:
            raise _too_many(key, wait, known=False)
        await _pause(self.check_seconds)

    async def authenticate(self, authorization: str | None, client: str | None = None) -> Principal:
        """The principal of an Authorization header; ``client``: the caller's address (the
        wrong-secret limit is kept per key and address).

        A refusal is logged as ``authentication_refused``: why, the credential key tried (never
        the secret) and the client's address, so guessing, a leaked key used from elsewhere or a
        revoked credential still in use shows in the logs (the audit trail records readers,
        and a refused request has none). A request without credentials, as clients send before
        they are challenged, is logged at info level; the rest as warnings."""
        try:
            return await self._authenticate(authorization, client)
        except (Unauthorized, TooManyRequests) as exc:
            reason = getattr(exc, "reason", "refused")
            if reason == "no_credentials":  # every client's first request: no address kept
                log.info("authentication_refused", reason=reason, status=exc.status)
            else:
                # the key only when the database knows it: what a client sent as a key may be a
                # secret (swapped, or a token alone); a bearer token's refusal says why, not it
                log.warning("authentication_refused", reason=reason, status=exc.status, client=client,
                            key=getattr(exc, "known_key", None),
                            **({"detail": exc.message[:200]} if reason == "bearer_token" else {}))
            raise

    async def _authenticate(self, authorization: str | None, client: str | None) -> Principal:
        if not authorization:
            raise _because("no_credentials", Unauthorized(
                "authentication required: send HTTP Basic credentials"
                + (" or a Bearer token" if self.oidc else ""), headers=self.challenge))
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and self.oidc is not None:
            try:
                return await self._bearer(value.strip())
            except Unauthorized as exc:
                raise _because("bearer_token", exc) from None
        if scheme.lower() != "basic":
            # the scheme is named only when it looks like one: a header sent without its
            # scheme (or with a tab for the space) is the credential itself, not to be echoed
            named = f" {scheme!r}" if _SCHEME.fullmatch(scheme) else ""
            raise _because("scheme", Unauthorized(f"unsupported authorization scheme{named}; use Basic",
                                                  headers=CHALLENGE))
        try:
            decoded = _decode_basic(value)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise _because("malformed", Unauthorized("malformed Basic credentials", headers=CHALLENGE)) from None
        key, sep, secret = decoded.partition(":")
        if not sep:
            raise _because("malformed", Unauthorized("malformed Basic credentials: expected key:secret",
                                                     headers=CHALLENGE))
        # no key holds a NUL (nor can the database compare one)
        row = None if "\x00" in key else await self.credentials.by_key(key)
        if row is None:
            if _KEY_SHAPE.fullmatch(key):
                await self._as_if_checked(key, client)
            raise _because("unknown_key", Unauthorized("unknown credential or wrong secret", headers=CHALLENGE))
        fingerprint = self._fingerprint(key, secret, row.secret_hash)
        known = self._verified.get(key)
        if known is None or not hmac.compare_digest(known, fingerprint):
            ok = await self._check(key, client, fingerprint, secret, row.secret_hash)
            if not ok:
                raise _because("wrong_secret", Unauthorized("unknown credential or wrong secret", headers=CHALLENGE),
                              key)
            self._verified[key] = fingerprint
        if not row.active:
            raise _because("revoked_or_expired", Unauthorized("this credential is revoked or expired",
                                                              headers=CHALLENGE), key)
        return Principal(
            store_id=row.store_id,
            credential_id=row.id,
            scopes=frozenset(row.scopes),
            authority=row.authority,
            authority_key=T.agent_key(row.authority) or row.key,
            read_stores=tuple(row.read_stores or (row.store_id,)),
        )
