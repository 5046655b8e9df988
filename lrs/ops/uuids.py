"""UUIDs in request parameters and statement ids: the one place their form is checked."""

from __future__ import annotations

import re

from lrs.errors import BadRequest

_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")


def canonical_uuid(value: str, what: str) -> str:
    """A UUID in the standard string form (Data 4.4; the statement schema's pattern), lower-cased;
    400 otherwise. Python's uuid.UUID alone would also take bare hex, braces and urn:uuid:."""
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        raise BadRequest(f"{what}: must be a UUID in standard string form, got {value!r}")
    return value.lower()
