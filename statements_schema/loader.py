"""Loading the schema files.

The schemas are one parametrised set: ``schemas/common.json`` holds every definition the two
xAPI versions share, and ``schemas/<version>/overlay.json`` adds or replaces the few that
differ (context, timestamp, version, and 2.0.0's contextAgent/contextGroup). The loader
merges them into a single self-contained draft-07 document per entry point, so every
``$ref`` is local (``#/definitions/...``) and both validators see exactly the same schema.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from importlib import resources
from typing import Any, Final

#: The xAPI versions with their own schema overlay.
SCHEMA_VERSIONS: Final = ("1.0.3", "2.0.0")

#: Definitions that may be used as the root of a validation.
ENTRY_POINTS: Final = (
    "statement",
    "agent",
    "group",
    "identifiedGroup",
    "actor",
    "activity",
    "activityDefinition",
    "agentParameter",
)

DRAFT7: Final = "http://json-schema.org/draft-07/schema#"


def schema_version(version: str) -> str:
    """Map an xAPI version string to the schema set that validates it.

    Any ``1.0.x`` uses the 1.0.3 rules (1.0.3 only clarified 1.0.0-1.0.2, Data 2.4.10), any
    ``2.0.x`` the 2.0.0 rules. Anything else is a programming error, not bad input.
    """
    if version in SCHEMA_VERSIONS:
        return version
    if version == "1.0" or version.startswith("1.0."):
        return "1.0.3"
    if version == "2.0" or version.startswith("2.0."):
        return "2.0.0"
    raise ValueError(f"unsupported xAPI version {version!r}")


def _read(*parts: str) -> dict[str, Any]:
    text = resources.files(__package__).joinpath("schemas", *parts).read_text(encoding="utf-8")
    data = json.loads(text)
    if not isinstance(data, dict):
        raise TypeError(f"schema file {'/'.join(parts)} is not a JSON object")
    return data


@functools.cache
def definitions(version: str) -> dict[str, Any]:
    """All definitions for ``version`` (common ones overlaid by the version's own)."""
    version = schema_version(version)
    merged: dict[str, Any] = dict(_read("common.json")["definitions"])
    merged.update(_read(version, "overlay.json")["definitions"])
    # The Agents resource's `agent` parameter: 1.0.3 takes an Agent; 2.0.0 also an identified
    # Group (xAPI 2.0 Communication 2.4 / IEEE 9274.1.1 4.1.6.3).
    if version == "1.0.3":
        merged["agentParameter"] = {"$ref": "#/definitions/agent"}
    else:
        merged["agentParameter"] = {
            "type": "object",
            "if": {"required": ["objectType"], "properties": {"objectType": {"const": "Group"}}},
            "then": {"$ref": "#/definitions/identifiedGroup"},
            "else": {"$ref": "#/definitions/agent"},
        }
    return merged


@functools.cache
def _root_schema(version: str, entry: str) -> dict[str, Any]:
    if entry not in ENTRY_POINTS:
        raise ValueError(f"unknown schema entry point {entry!r}")
    return {
        "$schema": DRAFT7,
        "$comment": f"xAPI {version} {entry}",
        "allOf": [{"$ref": f"#/definitions/{entry}"}],
        "definitions": definitions(version),
    }


def root_schema(version: str, entry: str = "statement") -> dict[str, Any]:
    """A self-contained draft-07 schema validating ``entry`` under ``version`` (a deep copy,
    safe for callers to modify)."""
    return copy.deepcopy(_root_schema(schema_version(version), entry))


def shared_root_schema(version: str, entry: str) -> dict[str, Any]:
    """Like :func:`root_schema` but the cached object itself; callers must not modify it."""
    return _root_schema(schema_version(version), entry)


@functools.cache
def _iri_pattern() -> re.Pattern[str]:
    return re.compile(str(_read("common.json")["definitions"]["iri"]["pattern"]))


def is_iri(value: object) -> bool:
    """Whether ``value`` is an absolute IRI by the same rule the statement schema applies
    (Data 2.2.s4.b1.b8), for parameters such as ``verb``, ``activity`` and ``activityId``."""
    return isinstance(value, str) and _iri_pattern().match(value) is not None


@functools.cache
def _timestamp_pattern(version: str) -> re.Pattern[str]:
    return re.compile(str(definitions(version)["timestamp"]["pattern"]), re.ASCII)


def is_timestamp(value: object, version: str) -> bool:
    """Whether ``value`` is written as a statement's ``timestamp`` may be under ``version`` (the
    schema's pattern; the calendar date is the parser's to check), for the parameters ``since``
    and ``until`` (Data 2.2: parameters are validated as values of the same type in statements)."""
    return isinstance(value, str) and _timestamp_pattern(schema_version(version)).match(value) is not None


def timestamp_rule(version: str) -> str:
    """What the schema's message says a timestamp under ``version`` must be."""
    return str(definitions(schema_version(version))["timestamp"]["x-messages"]["pattern"])
