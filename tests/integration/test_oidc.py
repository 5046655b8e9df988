"""OpenID Connect bearer tokens: real keys, real signatures, a real JWKS endpoint on loopback.

The test plays the identity provider: it generates RSA and EC key pairs, serves their JWKS
(and a discovery document) from an http.server on 127.0.0.1 in a thread, counts how often the
verifier fetches them, and signs tokens with PyJWT. People are made up.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from jwt.warnings import InsecureKeyLengthWarning

from lrs.errors import ServiceUnavailable, Unauthorized
from lrs.ops import terms as T
from lrs.ops.oidc import OidcConfig, OidcVerifier, VerifiedToken, is_norwegian_national_id, principal_for

AUDIENCE = "spor-xapi"
HELSEID_PID = "helseid://claims/identity/pid_pseudonym"
# Made-up people: pseudonymous ids as an identity provider would issue them.
KARI = "pZ3k9QmT0xVbN7cL2aRw8sYe4uHj6fDg"
OLA = "u8Hq2WnK5tRz1mPc7bXv3yLs9dFg0aJe"


# -- the identity provider ------------------------------------------------------------------


@dataclass
class Idp:
    """The test's identity provider: mutable JWKS, request counters, the loopback base URL."""

    base_url: str = ""
    jwks: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    hits: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    down: bool = False

    @property
    def issuer(self) -> str:
        return self.base_url

    @property
    def jwks_url(self) -> str:
        return self.base_url + "/jwks.json"

    def count(self, path: str) -> int:
        with self.lock:
            return self.hits.get(path, 0)

    def publish(self, *keys: dict[str, Any]) -> None:
        with self.lock:
            self.jwks = {"keys": list(keys)}


def _handler(idp: Idp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with idp.lock:
                idp.hits[self.path] = idp.hits.get(self.path, 0) + 1
                jwks = json.dumps(idp.jwks).encode()
            if idp.down:
                self.send_response(503)
                self.end_headers()
                return
            if self.path == "/.well-known/openid-configuration":
                body = json.dumps({"issuer": idp.issuer, "jwks_uri": idp.jwks_url}).encode()
            elif self.path == "/jwks.json":
                body = jwks
            else:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def idp() -> Iterator[Idp]:
    state = Idp()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@dataclass(frozen=True)
class KeyPair:
    kid: str
    private: Any
    jwk: dict[str, Any]


def rsa_pair(kid: str, alg: str | None = "RS256") -> KeyPair:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    jwk.update({"kid": kid, "use": "sig"})
    if alg:
        jwk["alg"] = alg
    return KeyPair(kid, private, jwk)


def ec_pair(kid: str) -> KeyPair:
    private = ec.generate_private_key(ec.SECP256R1())
    jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    jwk.update({"kid": kid, "use": "sig", "alg": "ES256"})
    return KeyPair(kid, private, jwk)


@pytest.fixture(scope="module")
def keys() -> dict[str, KeyPair]:
    return {
        "rsa": rsa_pair("rsa-2025-1"),
        "ps": rsa_pair("rsa-ps-2025-1", alg="PS256"),
        "ec": ec_pair("ec-2025-1"),
        # An attacker's key that claims the same kid as the real RSA key.
        "forger": rsa_pair("rsa-2025-1"),
        # The key the provider rotates to later.
        "next": rsa_pair("rsa-2025-2"),
    }


@pytest.fixture
def published(idp: Idp, keys: dict[str, KeyPair]) -> Idp:
    idp.publish(keys["rsa"].jwk, keys["ps"].jwk, keys["ec"].jwk)
    idp.down = False
    return idp


class Clock:
    """A monotonic clock the test moves by hand (for the JWKS refresh interval)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def config(idp: Idp, **kw: Any) -> OidcConfig:
    base: dict[str, Any] = {"issuer": idp.issuer, "audiences": (AUDIENCE,), "jwks_url": idp.jwks_url,
                            "store": "testsykehuset-hf"}
    return OidcConfig(**{**base, **kw})


def claims(idp: Idp, **kw: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": idp.issuer, "aud": AUDIENCE, "sub": KARI, "iat": now, "nbf": now, "exp": now + 600}
    base.update(kw)
    return {k: v for k, v in base.items() if v is not None}


def sign(key: KeyPair, payload: dict[str, Any], alg: str = "RS256", **headers: Any) -> str:
    hdr = {"kid": key.kid, **headers}
    return jwt.encode(payload, key.private, algorithm=alg, headers={k: v for k, v in hdr.items() if v is not None})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(payload).encode())
    return signing_input + "." + b64(signature)


async def refused(verifier: OidcVerifier, token: str, message: str) -> None:
    with pytest.raises(Unauthorized) as info:
        await verifier.verify(token)
    assert info.value.message == message
    challenge = info.value.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="Spor xAPI", error="invalid_token"')
    assert f'error_description="{message}"' in challenge


@pytest.fixture
async def verifier(published: Idp) -> Any:
    v = OidcVerifier(config(published))
    yield v
    await v.aclose()


# -- valid tokens -----------------------------------------------------------------------------


async def test_valid_rs256_token_maps_to_an_account_agent_that_reads_only_its_own(
        verifier: OidcVerifier, published: Idp, keys: dict[str, KeyPair]) -> None:
    token = await verifier.verify(sign(keys["rsa"], claims(published)))
    assert token.person_id == KARI
    assert token.alg == "RS256" and token.kid == "rsa-2025-1" and token.store == "testsykehuset-hf"
    assert token.agent == {"objectType": "Agent", "account": {"homePage": published.issuer, "name": KARI}}
    p = principal_for(token, store_id=7)
    assert p.store_id == 7 and p.credential_id is None
    assert p.scopes == frozenset({"statements/read/mine"})
    assert p.authority == token.agent
    assert p.authority_key == T.agent_key(token.agent) == f"account:{published.issuer}|{KARI}"


async def test_valid_ec_and_pss_tokens_are_accepted(
        verifier: OidcVerifier, published: Idp, keys: dict[str, KeyPair]) -> None:
    assert (await verifier.verify(sign(keys["ec"], claims(published), alg="ES256"))).alg == "ES256"
    assert (await verifier.verify(sign(keys["ps"], claims(published), alg="PS256"))).alg == "PS256"


async def test_audience_may_be_a_list_containing_ours(
        verifier: OidcVerifier, published: Idp, keys: dict[str, KeyPair]) -> None:
    token = await verifier.verify(sign(keys["rsa"], claims(published, aud=["other-api", AUDIENCE])))
    assert token.person_id == KARI


async def test_keys_are_fetched_once_and_cached(published: Idp, keys: dict[str, KeyPair]) -> None:
    before = published.count("/jwks.json")
    v = OidcVerifier(config(published))
    try:
        for _ in range(20):
            await v.verify(sign(keys["rsa"], claims(published)))
    finally:
        await v.aclose()
    assert published.count("/jwks.json") - before == 1


async def test_helseid_style_mapping_with_discovery_name_roles_and_store(
        published: Idp, keys: dict[str, KeyPair]) -> None:
    cfg = OidcConfig.from_settings_dict({
        "oidc_issuer": published.issuer,  # no jwks_url: discovered
        "oidc_audience": f"{AUDIENCE}, other-api",
        "oidc_person_claim": HELSEID_PID,
        "oidc_account_homepage": "https://helseid.no",
        "oidc_name_claim": "name",
        "oidc_role_claim": "spor_roles",
        "oidc_role_scopes": "kursansvarlig=statements/read; larer=statements/read/mine",
        "oidc_store_claim": "spor_store",
        "oidc_clock_skew_seconds": "30",
    })
    assert cfg is not None and cfg.clock_skew_seconds == 30 and cfg.audiences == (AUDIENCE, "other-api")
    before = published.count("/.well-known/openid-configuration")
    v = OidcVerifier(cfg)
    try:
        payload = claims(published, sub="opaque-subject-1", name="Kari Testdatter",
                         spor_roles=["kursansvarlig", "ukjent-rolle"], spor_store="testsykehuset-hf",
                         **{HELSEID_PID: KARI})
        token = await v.verify(sign(keys["rsa"], payload))
        assert token.agent == {"objectType": "Agent", "name": "Kari Testdatter",
                               "account": {"homePage": "https://helseid.no", "name": KARI}}
        assert token.roles == {"kursansvarlig", "ukjent-rolle"}
        assert token.scopes == {"statements/read/mine", "statements/read"}
        assert token.store == "testsykehuset-hf"
        assert principal_for(token, 3).authority_key == f"account:https://helseid.no|{KARI}"
        await refused(v, sign(keys["rsa"], claims(published, spor_store="x")), f"missing claim '{HELSEID_PID}'")
        await refused(v, sign(keys["rsa"], {**payload, "spor_store": None}), "missing claim 'spor_store'")
        await refused(v, sign(keys["rsa"], {**payload, "spor_store": ["a", "b"]}),
                      "claim 'spor_store' names several stores")
    finally:
        await v.aclose()
    assert published.count("/.well-known/openid-configuration") - before == 1


async def test_token_without_kid_is_accepted_when_the_issuer_has_one_key(
        idp: Idp, keys: dict[str, KeyPair]) -> None:
    idp.publish(keys["rsa"].jwk)
    v = OidcVerifier(config(idp))
    try:
        token = await v.verify(sign(keys["rsa"], claims(idp), kid=None))
        assert token.kid is None and token.person_id == KARI
    finally:
        await v.aclose()


# -- refused tokens ---------------------------------------------------------------------------


async def test_expired_token_is_refused(verifier: OidcVerifier, published: Idp, keys: dict[str, KeyPair]) -> None:
    now = int(time.time())
    await refused(verifier, sign(keys["rsa"], claims(published, iat=now - 4000, nbf=now - 4000, exp=now - 3600)),
                  "token expired")


async def test_token_not_yet_valid_is_refused(
        verifier: OidcVerifier, published: Idp, keys: dict[str, KeyPair]) -> None:
    now = int(time.time())
    await refused(verifier, sign(keys["rsa"], claims(published, nbf=now + 3600, exp=now + 4000)),
                  "token not yet valid")


async def test_token_issued_in_the_future_is_refused(
        verifier: OidcVerifier, published: Idp, keys: dict[str, KeyPair]) -> None:
    now = int(time.time())
    await refused(verifier, sign(keys["rsa"], claims(published, iat=now + 3600, nbf=None, exp=now + 4000)),
                  "token issued in the future")


async def test_wrong_audience_is_refused(verifier: OidcVerifier, published: Idp, keys: dict[str, KeyPair]) -> None:
    await refused(verifier, sign(keys["rsa"], claims(published, aud="another-api")), "wrong audience")
    await refused(verifier, sign(keys["rsa"], claims(published, aud=["a", "b"])), "wrong audience")
    await refused(verifier, sign(keys["rsa"], claims(published, aud=None)), "missing claim 'aud'")


async def test_wrong_issuer_is_refused(verifier: OidcVerifier, published: Idp, keys: dict[str, KeyPair]) -> None:
    await refused(verifier, sign(keys["rsa"], claims(published, iss="https://idp.example.org")), "wrong issuer")
    # A prefix of the issuer is not the issuer.
    await refused(verifier, sign(keys["rsa"], claims(published, iss=published.issuer + "x")), "wrong issuer")


async def test_token_signed_by_another_key_with_the_same_kid_is_refused(
        verifier: OidcVerifier, published: Idp, keys: dict[str, KeyPair]) -> None:
    assert keys["forger"].kid == keys["rsa"].kid
    await refused(verifier, sign(keys["forger"], claims(published)), "bad signature")


async def test_tampered_payload_is_refused(verifier: OidcVerifier, published: Idp, keys: dict[str, KeyPair]) -> None:
    header, _, signature = sign(keys["rsa"], claims(published)).split(".")
    forged_payload = b64(json.dumps(claims(published, sub=OLA)).encode())
    await refused(verifier, f"{header}.{forged_payload}.{signature}", "bad signature")


async def test_alg_none_is_refused(verifier: OidcVerifier, published: Idp, keys: dict[str, KeyPair]) -> None:
    await refused(verifier, handmade({"alg": "none", "kid": keys["rsa"].kid}, claims(published)),
                  "unsigned tokens (alg none) are not accepted")
    await refused(verifier, handmade({"alg": "None"}, claims(published)),
                  "unsigned tokens (alg none) are not accepted")
    await refused(verifier, handmade({"kid": keys["rsa"].kid}, claims(published)),
                  "unsigned tokens (alg none) are not accepted")


async def test_hs256_signed_with_the_public_key_as_secret_is_refused(
        verifier: OidcVerifier, published: Idp, keys: dict[str, KeyPair]) -> None:
    # The algorithm-confusion forgery (RFC 8725 2.1): anyone can download the public key.
    pem = keys["rsa"].private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "typ": "JWT", "kid": keys["rsa"].kid}
    unsigned = handmade(header, claims(published)).rsplit(".", 1)[0]
    token = unsigned + "." + b64(hmac.new(pem, unsigned.encode(), hashlib.sha256).digest())
    await refused(verifier, token, "symmetric algorithm HS256 is not accepted")


async def test_algorithm_outside_the_allow_list_or_unfit_for_the_key_is_refused(
        published: Idp, keys: dict[str, KeyPair]) -> None:
    v = OidcVerifier(config(published, algorithms=("ES256",)))
    try:
        await refused(v, sign(keys["rsa"], claims(published)), "algorithm RS256 is not accepted")
    finally:
        await v.aclose()
    v = OidcVerifier(config(published))
    try:
        # ES256 named in the header, but the kid is an RSA key.
        await refused(v, sign(keys["ec"], claims(published), alg="ES256", kid=keys["rsa"].kid),
                      "algorithm ES256 does not fit the signing key")
        # The JWK pins PS256; an RS256 signature by the same key is not accepted for it.
        await refused(v, sign(keys["ps"], claims(published), alg="RS256"),
                      "algorithm RS256 does not fit the signing key")
    finally:
        await v.aclose()


async def test_missing_person_claim_is_refused(
        verifier: OidcVerifier, published: Idp, keys: dict[str, KeyPair]) -> None:
    await refused(verifier, sign(keys["rsa"], claims(published, sub=None)), "missing claim 'sub'")
    await refused(verifier, sign(keys["rsa"], claims(published, sub="  ")), "missing claim 'sub'")


async def test_missing_or_malformed_time_claims_are_refused(
        verifier: OidcVerifier, published: Idp, keys: dict[str, KeyPair]) -> None:
    await refused(verifier, sign(keys["rsa"], claims(published, exp=None)), "missing claim 'exp'")
    await refused(verifier, sign(keys["rsa"], claims(published, iat=None)), "missing claim 'iat'")
    now = int(time.time())
    # PyJWT's encoder insists on numbers, so the string date is signed by hand.
    header = {"alg": "RS256", "kid": keys["rsa"].kid}
    unsigned = handmade(header, claims(published, exp=str(now + 600))).rsplit(".", 1)[0]
    signature = RSAAlgorithm(RSAAlgorithm.SHA256).sign(unsigned.encode(), keys["rsa"].private)
    await refused(verifier, unsigned + "." + b64(signature), "claim 'exp' is not a NumericDate")
    await refused(verifier, sign(keys["rsa"], claims(published, iat=now - 3 * 86400)), "token lifetime too long")


async def test_malformed_tokens_are_refused(verifier: OidcVerifier) -> None:
    await refused(verifier, "not-a-jwt", "malformed token")
    await refused(verifier, "a.b.c", "malformed token")
    await refused(verifier, "x" * 20000, "malformed token")


async def test_person_id_that_is_a_national_identity_number_is_refused(
        verifier: OidcVerifier, published: Idp, keys: dict[str, KeyPair]) -> None:
    # A synthetic number (month + 80, as the tax authority's test numbers use): no real person.
    body = "018190123"
    for k1 in range(10):
        for k2 in range(10):
            if is_norwegian_national_id(candidate := f"{body}{k1}{k2}"):
                synthetic = candidate
    assert is_norwegian_national_id(synthetic) and not is_norwegian_national_id("12345678901")
    await refused(verifier, sign(keys["rsa"], claims(published, sub=synthetic)),
                  "claim 'sub' holds a national identity number; map a pseudonymous claim")


async def test_required_token_type(published: Idp, keys: dict[str, KeyPair]) -> None:
    v = OidcVerifier(config(published, token_types=("at+jwt",)))
    try:
        assert (await v.verify(sign(keys["rsa"], claims(published), typ="at+jwt"))).person_id == KARI
        await refused(v, sign(keys["rsa"], claims(published), typ="JWT"), "wrong token type")
    finally:
        await v.aclose()


# -- clock skew -------------------------------------------------------------------------------


@pytest.mark.parametrize(("claim", "offset", "message"), [
    ("exp", -59, None), ("exp", -60, "token expired"), ("exp", -61, "token expired"),
    ("nbf", +59, None), ("nbf", +61, "token not yet valid"),
    ("iat", +59, None), ("iat", +61, "token issued in the future"),
])
async def test_clock_skew_is_tolerated_up_to_the_bound(
        published: Idp, keys: dict[str, KeyPair], claim: str, offset: int, message: str | None) -> None:
    t0 = 1_900_000_000.0
    v = OidcVerifier(config(published, clock_skew_seconds=60), now=lambda: t0)
    payload = claims(published, iat=int(t0) - 10, nbf=int(t0) - 10, exp=int(t0) + 300)
    payload[claim] = int(t0) + offset
    if claim == "iat":
        del payload["nbf"]  # so that the iat check, not nbf, is what decides
    token = sign(keys["rsa"], payload)
    try:
        if message is None:
            assert (await v.verify(token)).person_id == KARI
        else:
            await refused(v, token, message)
    finally:
        await v.aclose()


# -- key rotation and unknown keys ------------------------------------------------------------


async def test_unknown_kid_that_appears_after_rotation_is_accepted_after_a_refresh(
        idp: Idp, keys: dict[str, KeyPair]) -> None:
    idp.publish(keys["rsa"].jwk)
    clock = Clock()
    v = OidcVerifier(config(idp, jwks_min_refresh_seconds=30), monotonic=clock)
    before = idp.count("/jwks.json")
    try:
        await v.verify(sign(keys["rsa"], claims(idp)))
        assert idp.count("/jwks.json") - before == 1
        idp.publish(keys["rsa"].jwk, keys["next"].jwk)  # the provider rotates
        clock.t += 30
        token = await v.verify(sign(keys["next"], claims(idp, sub=OLA)))
        assert token.kid == "rsa-2025-2" and token.person_id == OLA
        assert idp.count("/jwks.json") - before == 2
        # The old key still works until the provider withdraws it, without another fetch.
        await v.verify(sign(keys["rsa"], claims(idp)))
        assert idp.count("/jwks.json") - before == 2
    finally:
        await v.aclose()


async def test_rotated_key_within_the_minimum_interval_waits_for_the_interval(
        idp: Idp, keys: dict[str, KeyPair]) -> None:
    idp.publish(keys["rsa"].jwk)
    clock = Clock()
    v = OidcVerifier(config(idp, jwks_min_refresh_seconds=30), monotonic=clock)
    try:
        await v.verify(sign(keys["rsa"], claims(idp)))
        idp.publish(keys["rsa"].jwk, keys["next"].jwk)
        clock.t += 10
        await refused(v, sign(keys["next"], claims(idp)), "unknown signing key")
        clock.t += 20
        assert (await v.verify(sign(keys["next"], claims(idp)))).kid == "rsa-2025-2"
    finally:
        await v.aclose()


async def test_flood_of_unknown_kids_is_refused_and_fetches_at_most_once_per_interval(
        published: Idp, keys: dict[str, KeyPair]) -> None:
    clock = Clock()
    v = OidcVerifier(config(published, jwks_min_refresh_seconds=30), monotonic=clock)
    before = published.count("/jwks.json")

    async def attempt() -> None:
        await refused(v, sign(keys["forger"], claims(published), kid=uuid.uuid4().hex), "unknown signing key")

    try:
        await asyncio.gather(*(attempt() for _ in range(100)))
        assert published.count("/jwks.json") - before == 1  # the first fetch only
        clock.t += 29
        await asyncio.gather(*(attempt() for _ in range(50)))
        assert published.count("/jwks.json") - before == 1
        clock.t += 1
        await asyncio.gather(*(attempt() for _ in range(50)))
        assert published.count("/jwks.json") - before == 2
        # Known keys keep working throughout.
        assert (await v.verify(sign(keys["rsa"], claims(published)))).person_id == KARI
        assert published.count("/jwks.json") - before == 2
        assert v.fetch_count == 2
    finally:
        await v.aclose()


async def test_unreachable_jwks_is_a_service_error_not_a_forged_token(
        idp: Idp, keys: dict[str, KeyPair]) -> None:
    idp.publish(keys["rsa"].jwk)
    idp.down = True
    clock = Clock()
    v = OidcVerifier(config(idp), monotonic=clock)
    try:
        with pytest.raises(ServiceUnavailable) as info:
            await v.verify(sign(keys["rsa"], claims(idp)))
        assert info.value.headers["Retry-After"] == "30"
        idp.down = False
        clock.t += 30
        assert (await v.verify(sign(keys["rsa"], claims(idp)))).person_id == KARI
        # Once keys are known, an outage at cache expiry keeps the keys we have.
        idp.down = True
        clock.t += 3600
        assert (await v.verify(sign(keys["rsa"], claims(idp)))).person_id == KARI
    finally:
        idp.down = False
        await v.aclose()


async def test_jwks_keys_that_must_not_be_used_are_ignored(idp: Idp, keys: dict[str, KeyPair]) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    weak_jwk = {**RSAAlgorithm.to_jwk(weak.public_key(), as_dict=True), "kid": "weak", "use": "sig"}
    enc_jwk = {**keys["next"].jwk, "use": "enc"}
    oct_jwk = {"kty": "oct", "kid": "shared", "k": b64(b"not-a-secret-at-all"), "alg": "HS256"}
    idp.publish(weak_jwk, enc_jwk, oct_jwk, keys["rsa"].jwk)
    v = OidcVerifier(config(idp))
    try:
        assert (await v.verify(sign(keys["rsa"], claims(idp)))).person_id == KARI
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InsecureKeyLengthWarning)  # that weakness is the point here
            weak_token = jwt.encode(claims(idp), weak, algorithm="RS256", headers={"kid": "weak"})
        await refused(v, weak_token, "unknown signing key")
        await refused(v, sign(keys["next"], claims(idp)), "unknown signing key")
    finally:
        await v.aclose()


# -- configuration ----------------------------------------------------------------------------


def test_configuration_refuses_unsafe_choices() -> None:
    ok: dict[str, Any] = {"issuer": "https://helseid-sts.test.nhn.no", "audiences": (AUDIENCE,), "store": "s"}
    with pytest.raises(ValueError, match="HS256"):
        OidcConfig(**ok, algorithms=("RS256", "HS256"))
    with pytest.raises(ValueError, match="none"):
        OidcConfig(**ok, algorithms=("none",))
    with pytest.raises(ValueError, match="clock skew"):
        OidcConfig(**ok, clock_skew_seconds=3600)
    with pytest.raises(ValueError, match="audience"):
        OidcConfig(issuer=ok["issuer"], audiences=(), store="s")
    with pytest.raises(ValueError, match="https"):
        OidcConfig(issuer="http://idp.example.org", audiences=(AUDIENCE,), store="s")
    with pytest.raises(ValueError, match="store"):
        OidcConfig(issuer=ok["issuer"], audiences=(AUDIENCE,))
    with pytest.raises(ValueError, match="national identity number"):
        OidcConfig(**ok, person_claim="helseid://claims/identity/pid")
    with pytest.raises(ValueError, match="unknown scopes"):
        OidcConfig(**ok, role_scopes={"admin": frozenset({"everything"})})
    with pytest.raises(ValueError, match="either"):
        OidcConfig(**{**ok, "store": "a"}, store_claim="b")


def test_settings_dict_without_issuer_means_sso_is_off_and_env_names_work() -> None:
    assert OidcConfig.from_settings_dict({"oidc_audience": AUDIENCE, "oidc_issuer": ""}) is None
    cfg = OidcConfig.from_settings_dict({
        "SPOR_OIDC_ISSUER": "https://helseid-sts.test.nhn.no", "SPOR_OIDC_AUDIENCE": AUDIENCE,
        "SPOR_OIDC_ALGORITHMS": "RS256 PS256", "SPOR_OIDC_STORE": "testsykehuset-hf",
        "SPOR_OIDC_ROLE_SCOPES": "admin=all", "SPOR_OIDC_REFUSE_NATIONAL_ID": "false",
    })
    assert cfg is not None
    assert cfg.algorithms == ("RS256", "PS256") and cfg.store == "testsykehuset-hf"
    assert cfg.role_scopes == {"admin": frozenset({"all"})} and cfg.refuse_national_id is False
    assert cfg.homepage == "https://helseid-sts.test.nhn.no"


def test_principal_for_copies_the_agent() -> None:
    agent = {"objectType": "Agent", "account": {"homePage": "https://helseid.no", "name": KARI}}
    token = VerifiedToken(issuer="https://helseid.no", person_id=KARI, agent=agent,
                          scopes=frozenset({"statements/read/mine"}), roles=frozenset(), store="s",
                          expires_at=0.0, kid=None, alg="RS256", claims={})
    p = principal_for(token, 1)
    p.authority["account"]["name"] = "changed"
    assert token.agent["account"]["name"] == KARI
