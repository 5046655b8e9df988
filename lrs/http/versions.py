"""xAPI version negotiation (Communication 3.3).

1.0.3 serves requests saying 1.0 or any 1.0.x (1.0.3, Communication 3.3: the LRS "MUST accept
requests with a version header starting with 1.0."; older clients still send 1.0.0-1.0.2, and a
later 1.0 patch is served by the latest one known); 2.0.0 (IEEE 9274.1.1) serves 2.0 and any
2.0.x the same way (conformance requirement XAPI-00331 for 2.0: anything but "2.0" or "2.0.x"
is refused). Anything else is 400.
"""

from __future__ import annotations

import re

from lrs.errors import BadRequest

LATEST = "2.0.0"
SUPPORTED = ("1.0.3", "2.0.0")
_SERVED_AS = {"1": "1.0.3", "2": "2.0.0"}
_VERSION = re.compile(r"([12])\.0(?:\.[0-9]+)?")


def negotiate(header: str | None) -> str | None:
    """The version a request is served as, or None when missing or unsupported."""
    if header is None:
        return None
    match = _VERSION.fullmatch(header.strip())
    return _SERVED_AS[match.group(1)] if match else None


def require(header: str | None) -> str:
    """The version to serve, or a 400 naming what was wrong."""
    version = negotiate(header)
    if version is not None:
        return version
    if header is None:
        raise BadRequest("X-Experience-API-Version header is required")
    raise BadRequest(f"X-Experience-API-Version {header!r} is not supported; use one of {', '.join(SUPPORTED)}")
