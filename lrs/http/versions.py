"""xAPI version negotiation (Communication 3.3).

1.0.3 serves requests saying 1.0, 1.0.0 ... 1.0.3 (older clients still send them, and 1.0.3
requires accepting them as 1.0.3); 2.0.0 is IEEE 9274.1.1. Anything else is 400.
"""

from __future__ import annotations

from lrs.errors import BadRequest

LATEST = "2.0.0"
SUPPORTED = ("1.0.3", "2.0.0")
_ALIASES = {"1.0": "1.0.3", "1.0.0": "1.0.3", "1.0.1": "1.0.3", "1.0.2": "1.0.3", "1.0.3": "1.0.3", "2.0.0": "2.0.0"}


def negotiate(header: str | None) -> str | None:
    """The version a request is served as, or None when missing or unsupported."""
    if header is None:
        return None
    return _ALIASES.get(header.strip())


def require(header: str | None) -> str:
    """The version to serve, or a 400 naming what was wrong."""
    version = negotiate(header)
    if version is not None:
        return version
    if header is None:
        raise BadRequest("X-Experience-API-Version header is required")
    raise BadRequest(f"X-Experience-API-Version {header!r} is not supported; use one of {', '.join(SUPPORTED)}")
