"""Single sign-on for people: OpenID Connect bearer tokens (JWT) from one configured issuer.

A person signed in at the issuer (HelseID, the health sector's OpenID Connect provider, or
any other) sends ``Authorization: Bearer <JWT>``. ``OidcVerifier.verify`` checks the token and
``principal_for`` turns it into the person's ``Principal``: the authority is an xAPI Agent
with an ``account`` (the issuer's homePage + a pseudonymous person id), the scopes are
``statements/read/mine`` unless a role claim grants more.

Division of labour: PyJWT (``pyjwt[crypto]``, on ``cryptography``) parses the compact JWS,
turns JWKs into public keys and checks the signature for an algorithm we name; Spor decides
which key and which algorithms are acceptable and checks the claims itself, so that every
refusal carries a precise message and the clock can be injected in tests.

Rules (RFC 7519, RFC 8725 "JWT best current practices", OpenID Connect Core 3.1.3.7):

- ``alg`` must be on the configured allow-list of asymmetric algorithms; ``none`` and HS*
  are refused before any key is looked at (a public key used as an HMAC secret is the classic
  algorithm-confusion forgery, RFC 8725 2.1), and the algorithm must fit the key's type.
- The signing key comes from the issuer's JWKS, fetched with httpx, cached, refreshed when its
  cache time has passed or a token names an unknown ``kid``, but never more often than a
  minimum interval, so a flood of tokens with random kids costs at most one fetch per interval.
- ``iss`` must equal the issuer; ``aud`` (a string or a list) must contain an accepted
  audience; ``exp`` and ``iat`` are required, ``nbf`` is checked when present, all with a
  bounded clock skew; a token may not claim a lifetime longer than configured.

PyJWT, cryptography and httpx are imported by the verifier, made only when single sign-on is
configured: a server process without it does not hold them (with cryptography ~9 MB on top of
the app; bench/ingest (e)).
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson

from lrs.errors import ServiceUnavailable, Unauthorized
from lrs.logs import log
from lrs.ops import terms as T
from lrs.ops.principal import ALL_SCOPES, Principal

if TYPE_CHECKING:
    import httpx

# The asymmetric algorithms Spor accepts at all (RFC 7518 3.1); a configuration may narrow them.
SUPPORTED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
DEFAULT_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "ES256")
_EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
MIN_RSA_BITS = 2048  # RFC 7518 3.3: a key of size 2048 bits or larger MUST be used
MAX_CLOCK_SKEW_SECONDS = 300
MAX_TOKEN_CHARS = 16 * 1024
MAX_JWKS_BYTES = 512 * 1024
# The claim in which HelseID carries the national identity number: never an xAPI identifier.
HELSEID_NATIONAL_ID_CLAIM = "helseid://claims/identity/pid"
REALM = "Spor xAPI"


def bearer_challenge(error: str | None = None, description: str | None = None) -> dict[str, str]:
    """The ``WWW-Authenticate`` header of a Bearer refusal (RFC 6750 3).

    Without ``error`` it is a bare challenge (the request carried no token at all).
    """
    value = f'Bearer realm="{REALM}"'
    if error:
        value += f', error="{error}"'
    if description:
        # RFC 6750 3: error_description is %x20-21 / %x23-5B / %x5D-7E (no quote, no backslash).
        clean = "".join(c for c in description if 0x20 <= ord(c) <= 0x7E and c not in '"\\')
        value += f', error_description="{clean}"'
    return {"WWW-Authenticate": value}


def _refuse(message: str) -> Unauthorized:
    return Unauthorized(message, headers=bearer_challenge("invalid_token", message))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(url: str, what: str) -> str:
    """Keys must come over TLS; plain http is allowed only to this machine (tests, a local proxy)."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(parts.hostname or "")):
        return url
    raise ValueError(f"{what} must be an https URL (http only on loopback), got {url!r}")


def _split(value: str) -> tuple[str, ...]:
    return tuple(p for p in (s.strip() for s in value.replace(",", " ").split()) if p)


def parse_role_scopes(text: str) -> dict[str, frozenset[str]]:
    """Parse ``role=scope scope; role2=scope`` (the settings form of ``OidcConfig.role_scopes``)."""
    out: dict[str, frozenset[str]] = {}
    for entry in text.split(";"):
        if not entry.strip():
            continue
        role, sep, scopes = entry.partition("=")
        if not sep or not role.strip():
            raise ValueError(f"role scope mapping must look like 'role=scope scope; role2=scope', got {entry!r}")
        out[role.strip()] = frozenset(_split(scopes))
    return out


@dataclass(frozen=True)
class OidcConfig:
    """How to trust one OpenID Connect issuer and map its tokens to xAPI Agents and scopes."""

    issuer: str
    # Accepted audiences: a token's ``aud`` must contain at least one of them.
    audiences: tuple[str, ...]
    # Where the signing keys are; None: discovered from issuer/.well-known/openid-configuration.
    jwks_url: str | None = None
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    clock_skew_seconds: int = 60
    # A token whose exp - iat exceeds this is refused (a stolen long-lived token is worth more).
    max_token_lifetime_seconds: int = 24 * 3600
    # If not empty, the JOSE ``typ`` header must be one of these (e.g. "at+jwt", RFC 9068).
    token_types: tuple[str, ...] = ()
    # Claim-to-agent mapping.
    person_claim: str = "sub"
    account_homepage: str | None = None  # None: the issuer
    name_claim: str | None = None
    # Roles: values of role_claim (a string of space-separated values, or a list) -> extra scopes.
    role_claim: str | None = None
    role_scopes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # The store the person belongs to: the store name in a claim, or one fixed store name.
    store_claim: str | None = None
    store: str | None = None
    # Refuse a person id that is a valid Norwegian national identity number (DOMAIN.md: never
    # put one into a statement); catches a mapping pointed at the wrong claim.
    refuse_national_id: bool = True
    # JWKS cache: refetched after jwks_cache_seconds, and on an unknown kid, but never more than
    # once per jwks_min_refresh_seconds.
    jwks_cache_seconds: int = 3600
    jwks_min_refresh_seconds: int = 30
    http_timeout_seconds: float = 5.0

    def __post_init__(self) -> None:
        if not self.issuer:
            raise ValueError("oidc issuer is required")
        _check_url(self.issuer, "oidc issuer")
        if not self.audiences or not all(self.audiences):
            raise ValueError("at least one oidc audience is required (the API name the issuer puts in aud)")
        if self.jwks_url is not None:
            _check_url(self.jwks_url, "oidc jwks_url")
        if not self.algorithms:
            raise ValueError("at least one oidc algorithm is required")
        for alg in self.algorithms:
            if alg not in SUPPORTED_ALGORITHMS:
                raise ValueError(
                    f"oidc algorithm {alg!r} is not allowed; choose from {', '.join(SUPPORTED_ALGORITHMS)} "
                    "(none and HS* are never accepted)"
                )
        if not 0 <= self.clock_skew_seconds <= MAX_CLOCK_SKEW_SECONDS:
            raise ValueError(f"oidc clock skew must be between 0 and {MAX_CLOCK_SKEW_SECONDS} seconds")
        if self.max_token_lifetime_seconds <= 0:
            raise ValueError("oidc max token lifetime must be positive")
        if not self.person_claim:
            raise ValueError("oidc person claim is required")
        if self.person_claim == HELSEID_NATIONAL_ID_CLAIM:
            raise ValueError(
                f"{HELSEID_NATIONAL_ID_CLAIM} is the national identity number and must not identify people in "
                "statements; use helseid://claims/identity/pid_pseudonym"
            )
        if self.store_claim and self.store:
            raise ValueError("configure either an oidc store claim or a fixed oidc store, not both")
        if not (self.store_claim or self.store):
            raise ValueError("configure an oidc store claim or a fixed oidc store: the store a signed-in person is in")
        for role, scopes in self.role_scopes.items():
            unknown = set(scopes) - ALL_SCOPES
            if unknown:
                raise ValueError(f"oidc role {role!r} maps to unknown scopes: {', '.join(sorted(unknown))}")
        if self.jwks_min_refresh_seconds < 0 or self.jwks_cache_seconds < self.jwks_min_refresh_seconds:
            raise ValueError("oidc jwks cache time must be at least the minimum refresh interval (both >= 0)")

    @property
    def homepage(self) -> str:
        """The ``account.homePage`` of the agents this issuer's people get."""
        return self.account_homepage or self.issuer

    @classmethod
    def from_settings_dict(cls, d: Mapping[str, Any]) -> OidcConfig | None:
        """Build from settings values keyed ``oidc_<name>`` (``SPOR_OIDC_<NAME>`` also accepted).

        Returns None when no issuer is configured (single sign-on is off). Lists are comma- or
        space-separated; ``oidc_role_scopes`` is ``role=scope scope; role2=scope``.
        """
        v: dict[str, Any] = {}
        for key, value in d.items():
            k = key.lower()
            k = k.removeprefix("spor_")
            if k.startswith("oidc_") and value is not None and value != "":
                v[k.removeprefix("oidc_")] = value
        if "issuer" not in v:
            return None

        def integer(name: str) -> int | None:
            if name not in v:
                return None
            try:
                return int(v[name])
            except (TypeError, ValueError):
                raise ValueError(f"oidc_{name} must be an integer, got {v[name]!r}") from None

        def flag(name: str) -> bool | None:
            if name not in v:
                return None
            raw = v[name]
            return raw if isinstance(raw, bool) else str(raw).strip().lower() in ("1", "true", "yes", "on")

        kwargs: dict[str, Any] = {
            "issuer": str(v["issuer"]),
            "audiences": _split(str(v.get("audience", ""))),
            "jwks_url": v.get("jwks_url"),
            "person_claim": v.get("person_claim"),
            "account_homepage": v.get("account_homepage"),
            "name_claim": v.get("name_claim"),
            "role_claim": v.get("role_claim"),
            "store_claim": v.get("store_claim"),
            "store": v.get("store"),
            "clock_skew_seconds": integer("clock_skew_seconds"),
            "max_token_lifetime_seconds": integer("max_token_lifetime_seconds"),
            "jwks_cache_seconds": integer("jwks_cache_seconds"),
            "jwks_min_refresh_seconds": integer("jwks_min_refresh_seconds"),
            "refuse_national_id": flag("refuse_national_id"),
        }
        if "algorithms" in v:
            kwargs["algorithms"] = _split(str(v["algorithms"]))
        if "token_types" in v:
            kwargs["token_types"] = _split(str(v["token_types"]))
        if "role_scopes" in v:
            kwargs["role_scopes"] = parse_role_scopes(str(v["role_scopes"]))
        return cls(**{k: val for k, val in kwargs.items() if val is not None})


@dataclass(frozen=True)
class VerifiedToken:
    """A token whose signature and claims checked out, already mapped to Spor's terms."""

    issuer: str
    person_id: str
    # The person as an xAPI Agent: {"objectType": "Agent", "account": {...}} (+ "name").
    agent: dict[str, Any]
    scopes: frozenset[str]
    roles: frozenset[str]
    # The name of the store the person belongs to (from the store claim, or the fixed store).
    store: str
    expires_at: float
    kid: str | None
    alg: str
    claims: Mapping[str, Any]


def principal_for(token: VerifiedToken, store_id: int) -> Principal:
    """The Principal of the person a verified token stands for, bound to ``store_id``.

    The caller resolves ``token.store`` to the store id (and refuses when it does not exist).
    """
    agent = {**token.agent, "account": dict(token.agent["account"])}
    key = T.agent_key(agent)
    assert key is not None  # an account agent always has an IFI key
    return Principal(store_id=store_id, credential_id=None, scopes=token.scopes, authority=agent, authority_key=key,
                     person_key=key)


def is_norwegian_national_id(value: str) -> bool:
    """True if ``value`` is an 11-digit fødselsnummer/D-number with valid check digits."""
    if len(value) != 11 or not value.isascii() or not value.isdigit():
        return False
    d = [int(c) for c in value]
    w1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
    w2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
    k1 = 11 - sum(a * b for a, b in zip(w1, d[:9], strict=True)) % 11
    k1 = 0 if k1 == 11 else k1
    k2 = 11 - sum(a * b for a, b in zip(w2, [*d[:9], k1], strict=True)) % 11
    k2 = 0 if k2 == 11 else k2
    return k1 != 10 and k2 != 10 and (k1, k2) == (d[9], d[10])


@dataclass(frozen=True)
class _Key:
    kid: str | None
    kty: str
    crv: str | None
    alg: str | None  # the JWK's own "alg", if it names one
    public_key: Any

    def fits(self, alg: str) -> bool:
        if self.alg is not None and self.alg != alg:
            return False
        if alg[:2] in ("RS", "PS"):
            return self.kty == "RSA"
        curve = _EC_CURVES.get(alg)
        return curve is not None and self.kty == "EC" and self.crv == curve


def _parse_jwks(doc: Any) -> list[_Key]:
    """The usable signature keys of a JWKS; keys Spor cannot or must not use are skipped."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from jwt.algorithms import ECAlgorithm, RSAAlgorithm

    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise ValueError("JWKS is not a JSON object with a 'keys' list")
    keys: list[_Key] = []
    for jwk in doc["keys"]:
        if not isinstance(jwk, dict):
            continue
        if jwk.get("use", "sig") != "sig":
            continue
        ops = jwk.get("key_ops")
        if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
            continue
        kty = jwk.get("kty")
        kid = jwk.get("kid")
        alg = jwk.get("alg")
        if (kid is not None and not isinstance(kid, str)) or (alg is not None and alg not in SUPPORTED_ALGORITHMS):
            continue  # e.g. an "oct" or HS* key: never used with a public-key algorithm
        try:
            if kty == "RSA":
                # Only the public half: a JWKS that leaks "d" must not make us hold a private key.
                key: Any = RSAAlgorithm.from_jwk({k: jwk[k] for k in ("kty", "n", "e") if k in jwk})
                if not isinstance(key, rsa.RSAPublicKey) or key.key_size < MIN_RSA_BITS:
                    continue
            elif kty == "EC":
                key = ECAlgorithm.from_jwk({k: jwk[k] for k in ("kty", "crv", "x", "y") if k in jwk})
                if not isinstance(key, ec.EllipticCurvePublicKey):
                    continue
            else:
                continue
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            continue
        keys.append(_Key(kid=kid, kty=kty, crv=jwk.get("crv") if kty == "EC" else None, alg=alg, public_key=key))
    return keys


def _numeric_date(claims: Mapping[str, Any], name: str, required: bool) -> float | None:
    """A NumericDate claim (RFC 7519 2): a JSON number, not a string and not a boolean."""
    value = claims.get(name)
    if value is None:
        if required:
            raise _refuse(f"missing claim '{name}'")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _refuse(f"claim '{name}' is not a NumericDate")
    return float(value)


def _values(value: Any) -> list[str]:
    """A claim holding one or more strings: "a b" (like OAuth ``scope``) or ["a", "b"]."""
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


class OidcVerifier:
    """Verifies bearer JWTs of one issuer; keeps that issuer's JWKS cached.

    ``now`` (wall clock, for exp/nbf/iat) and ``monotonic`` (for the JWKS cache) can be
    replaced in tests. Pass ``client`` to share an httpx.AsyncClient; otherwise the verifier
    makes its own and ``aclose()`` closes it.
    """

    def __init__(
        self,
        config: OidcConfig,
        *,
        client: httpx.AsyncClient | None = None,
        now: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._client = client
        self._own_client = client is None
        self._now = now
        self._monotonic = monotonic
        import jwt

        self._jws = jwt.PyJWS()
        self._keys: list[_Key] = []
        self._jwks_url: str | None = config.jwks_url
        self._fetched_at: float | None = None  # monotonic time of the last successful fetch
        self._attempted_at: float | None = None  # monotonic time of the last attempt
        self._lock = asyncio.Lock()
        self.fetch_count = 0  # JWKS fetches attempted (for metrics and tests)

    async def aclose(self) -> None:
        """Close the HTTP client if the verifier made it."""
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- keys ---------------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        import httpx

        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.config.http_timeout_seconds, follow_redirects=False)
        return self._client

    async def _get_json(self, url: str) -> Any:
        async with self._http().stream("GET", url, headers={"Accept": "application/json"}) as resp:
            if resp.status_code != 200:
                raise ValueError(f"HTTP {resp.status_code} from {url}")
            body = bytearray()
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise ValueError(f"response from {url} is larger than {MAX_JWKS_BYTES} bytes")
        return orjson.loads(bytes(body))

    async def _discover(self) -> str:
        # OpenID Connect Discovery 1.0, 4: the configuration lives under the issuer, and its
        # "issuer" must be exactly the issuer we trust (4.3).
        url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        doc = await self._get_json(url)
        if not isinstance(doc, dict) or doc.get("issuer") != self.config.issuer:
            raise ValueError(f"discovery document at {url} names another issuer")
        jwks_uri = doc.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise ValueError(f"discovery document at {url} has no jwks_uri")
        return _check_url(jwks_uri, "jwks_uri from discovery")

    async def _refresh(self) -> None:
        """Fetch the JWKS once; on failure keep the keys we had (the issuer may be briefly down)."""
        import httpx

        self._attempted_at = self._monotonic()
        self.fetch_count += 1
        try:
            if self._jwks_url is None:
                self._jwks_url = await self._discover()
            keys = _parse_jwks(await self._get_json(self._jwks_url))
        except (httpx.HTTPError, ValueError, orjson.JSONDecodeError) as exc:
            log.warning("oidc_jwks_fetch_failed", issuer=self.config.issuer, error=str(exc))
            return
        self._keys = keys
        self._fetched_at = self._attempted_at
        log.info("oidc_jwks_fetched", issuer=self.config.issuer, keys=len(keys), kids=[k.kid for k in keys])

    def _may_refetch(self) -> bool:
        return (self._attempted_at is None
                or self._monotonic() - self._attempted_at >= self.config.jwks_min_refresh_seconds)

    def _stale(self) -> bool:
        return self._fetched_at is None or self._monotonic() - self._fetched_at >= self.config.jwks_cache_seconds

    def _find(self, kid: str | None, alg: str) -> _Key | None:
        if kid is None:
            # OpenID Connect Core 10.1: kid may be left out when the issuer has one signing key.
            fitting = [k for k in self._keys if k.fits(alg)]
            return fitting[0] if len(fitting) == 1 else None
        same_kid = [k for k in self._keys if k.kid == kid]
        # A JWKS may hold an RSA and an EC key under one kid: take the one the algorithm fits.
        return next((k for k in same_kid if k.fits(alg)), same_kid[0] if same_kid else None)

    async def _key_for(self, kid: str | None, alg: str) -> _Key:
        key = None if self._stale() else self._find(kid, alg)
        if key is not None:
            return key
        async with self._lock:
            # Another request may have refreshed while this one waited for the lock.
            key = None if self._stale() else self._find(kid, alg)
            if key is None and self._may_refetch():
                await self._refresh()
                key = self._find(kid, alg)
            elif key is None and self._fetched_at is not None:
                # Too soon to refetch: decide on the keys we have, stale or not.
                key = self._find(kid, alg)
        if key is not None:
            return key
        if self._fetched_at is None:
            raise ServiceUnavailable(
                "the identity provider's signing keys cannot be fetched right now",
                headers={"Retry-After": str(max(1, self.config.jwks_min_refresh_seconds))},
            )
        raise _refuse("unknown signing key")

    # -- tokens -------------------------------------------------------------------------

    async def verify(self, token: str) -> VerifiedToken:
        """Check a bearer JWT and map it; raise ``Unauthorized`` (with a Bearer challenge) if not good.

        Raises ``ServiceUnavailable`` only when the issuer's keys have never been obtainable.
        """
        import jwt

        cfg = self.config
        token = token.strip()
        if not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
            raise _refuse("malformed token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _refuse("malformed token") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or not alg or alg.lower() == "none":
            raise _refuse("unsigned tokens (alg none) are not accepted")
        if alg.upper().startswith("HS"):
            raise _refuse(f"symmetric algorithm {alg} is not accepted")
        if alg not in cfg.algorithms:
            raise _refuse(f"algorithm {alg} is not accepted")
        if cfg.token_types:
            typ = str(header.get("typ", "")).lower().removeprefix("application/")
            if typ not in {t.lower().removeprefix("application/") for t in cfg.token_types}:
                raise _refuse("wrong token type")
        kid = header.get("kid")
        key = await self._key_for(kid, alg)
        if not key.fits(alg):
            raise _refuse(f"algorithm {alg} does not fit the signing key")
        try:
            decoded = self._jws.decode_complete(token, key=key.public_key, algorithms=[alg])
        except jwt.InvalidSignatureError:
            raise _refuse("bad signature") from None
        except jwt.PyJWTError:
            raise _refuse("malformed token") from None
        try:
            claims = orjson.loads(decoded["payload"])
        except orjson.JSONDecodeError:
            raise _refuse("malformed token: payload is not JSON") from None
        if not isinstance(claims, dict):
            raise _refuse("malformed token: payload is not a JSON object")
        return self._check_claims(claims, kid, alg)

    def _check_claims(self, claims: dict[str, Any], kid: str | None, alg: str) -> VerifiedToken:
        cfg = self.config
        skew = cfg.clock_skew_seconds
        now = self._now()
        if claims.get("iss") != cfg.issuer:
            raise _refuse("wrong issuer" if "iss" in claims else "missing claim 'iss'")
        if "aud" not in claims:
            raise _refuse("missing claim 'aud'")
        aud = claims["aud"]
        auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else None
        if auds is None or not all(isinstance(a, str) for a in auds):
            raise _refuse("claim 'aud' is not a string or a list of strings")
        if not set(auds) & set(cfg.audiences):
            raise _refuse("wrong audience")
        exp = _numeric_date(claims, "exp", required=True)
        iat = _numeric_date(claims, "iat", required=True)
        nbf = _numeric_date(claims, "nbf", required=False)
        assert exp is not None and iat is not None
        # RFC 7519 4.1.4: the current time must be before exp; skew widens the window both ways.
        if now >= exp + skew:
            raise _refuse("token expired")
        if nbf is not None and now + skew < nbf:
            raise _refuse("token not yet valid")
        if iat > now + skew:
            raise _refuse("token issued in the future")
        if exp - iat > cfg.max_token_lifetime_seconds:
            raise _refuse("token lifetime too long")

        raw_person = claims.get(cfg.person_claim)
        if isinstance(raw_person, int) and not isinstance(raw_person, bool):
            raw_person = str(raw_person)
        if not isinstance(raw_person, str) or not raw_person.strip():
            raise _refuse(f"missing claim '{cfg.person_claim}'")
        person = raw_person.strip()
        if cfg.refuse_national_id and is_norwegian_national_id(person):
            raise _refuse(f"claim '{cfg.person_claim}' holds a national identity number; map a pseudonymous claim")

        agent: dict[str, Any] = {"objectType": "Agent", "account": {"homePage": cfg.homepage, "name": person}}
        if cfg.name_claim:
            name = claims.get(cfg.name_claim)
            if isinstance(name, str) and name.strip():
                agent["name"] = name.strip()

        roles = frozenset(_values(claims.get(cfg.role_claim))) if cfg.role_claim else frozenset()
        scopes = {"statements/read/mine"}
        for role in roles:
            scopes |= cfg.role_scopes.get(role, frozenset())

        store = cfg.store or ""
        if cfg.store_claim:
            value = claims.get(cfg.store_claim)
            if isinstance(value, list) and len(value) == 1:
                value = value[0]
            if isinstance(value, list):
                raise _refuse(f"claim '{cfg.store_claim}' names several stores")
            if not isinstance(value, str) or not value.strip():
                raise _refuse(f"missing claim '{cfg.store_claim}'")
            store = value.strip()

        return VerifiedToken(
            issuer=cfg.issuer, person_id=person, agent=agent, scopes=frozenset(scopes), roles=roles, store=store,
            expires_at=exp, kid=kid, alg=alg, claims=claims,
        )

