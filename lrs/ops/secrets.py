"""Credential secrets: generated, hashed with scrypt (memory-hard, standard library), checked in
constant time. A secret is shown once, at creation, and never stored or logged in clear text."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# scrypt cost: n=2**14, r=8 -> 16 MiB and ~50 ms per check; verified secrets are remembered
# (as a SHA-256 of key+secret+hash) so only the first request of a credential pays it.
_N, _R, _P = 2**14, 8, 1


def new_key() -> str:
    """A public credential key (the Basic auth user name)."""
    return "spor_" + secrets.token_urlsafe(12)


def new_secret() -> str:
    """A credential secret: 256 bits of randomness."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """``scrypt$n$r$p$salt$hash`` for storage."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, maxmem=64 * 1024 * 1024, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_secret(secret: str, stored: str) -> bool:
    """Check a secret against its stored hash, in constant time."""
    try:
        algo, n, r, p, salt, digest = stored.split("$")
        if algo != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            secret.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
            maxmem=64 * 1024 * 1024, dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)
