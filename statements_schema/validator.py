"""Compiled (fast path) and reference validation against the xAPI schemas.

Fast path: ``jsonschema-rs`` (a Rust JSON Schema validator). ``is_valid`` answers the common
case, valid input, without building any error objects; only when it says no are the errors
collected and mapped to a friendly :class:`ValidationFailure`.

Reference: the pure-Python ``jsonschema`` package with the very same schema document. It is
slow (a few hundred statements/s) and exists so tests can show both agree.

Validators are compiled lazily on first use and cached; nothing happens at import time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

import jsonschema_rs

from . import semantic
from .errors import CASE_HINT, PathSegment, ValidationFailure, describe, pick
from .loader import schema_version, shared_root_schema

if TYPE_CHECKING:  # the reference validator is imported when first used (~2 MB on top of the app)
    import jsonschema

# Tie-breaks between errors at the same depth: combinator errors (oneOf/anyOf) are the least
# specific, an unknown property is usually a symptom of a wrong objectType or a typo, anything
# else (a wrong value, a missing key) is the most direct explanation.
_RANK = {"oneOf": 0, "anyOf": 0, "additionalProperties": 1}
_KEYED = frozenset({"additionalProperties", "required"})


def _rank(keyword: str, path: list[PathSegment]) -> tuple[int, int]:
    depth = len(path) + (1 if keyword in _KEYED else 0)
    return depth, _RANK.get(keyword, 2)


def _ranked(keyword: str, path: list[PathSegment], found: ValidationFailure) -> tuple[int, int, ValidationFailure]:
    """``found`` with its rank; an unknown property that is a known one in another case outranks
    the missing property it stands for."""
    depth, rank = _rank(keyword, path)
    if keyword == "additionalProperties" and found.message.startswith(CASE_HINT):
        rank = 3
    return depth, rank, found


# --------------------------------------------------------------------------------------------
# Fast path (jsonschema-rs)


@functools.cache
def _compiled(version: str, entry: str) -> Any:
    return jsonschema_rs.Draft7Validator(shared_root_schema(version, entry))


def _subschema(root: Mapping[str, Any], pointer: list[Any]) -> Any:
    node: Any = root
    for part in pointer:
        if isinstance(node, list):
            node = node[int(part)]
        elif isinstance(node, Mapping):
            node = node.get(part)
        else:
            return None
    return node


def _map_rs_error(root: Mapping[str, Any], error: Any) -> tuple[int, int, ValidationFailure]:
    kind = error.kind
    path: list[PathSegment] = list(error.instance_path)
    instance = error.instance
    schema_path = list(error.schema_path)
    if kind.name == "propertyNames":
        # The wrapped error is about the key itself; report it at map.key.
        inner = kind.error
        path.append(inner.instance)
        instance = inner.instance
        schema_path = list(inner.schema_path)
    keyword = str(schema_path[-1]) if schema_path else kind.name
    schema = _subschema(root, schema_path[:-1])
    return _ranked(keyword, path, _describe(keyword, schema, path, instance))


def schema_errors_fast(obj: object, version: str, entry: str) -> ValidationFailure | None:
    """Schema verdict from the fast path: ``None`` when valid, else the best error."""
    version = schema_version(version)
    validator = _compiled(version, entry)
    if validator.is_valid(obj):
        return None
    root = shared_root_schema(version, entry)
    try:
        candidates = [_map_rs_error(root, e) for e in validator.iter_errors(obj)]
    except ValueError as exc:  # jsonschema-rs: "Recursion limit reached" (~256 levels)
        return ValidationFailure("", f"nested too deeply to check ({exc})")
    return pick(candidates)


# --------------------------------------------------------------------------------------------
# Reference (pure-Python jsonschema)


@functools.cache
def _reference(version: str, entry: str) -> jsonschema.Draft7Validator:
    import jsonschema

    schema = shared_root_schema(version, entry)
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _map_py_error(error: jsonschema.ValidationError) -> tuple[int, int, ValidationFailure]:
    path: list[PathSegment] = list(error.absolute_path)
    keyword = str(error.validator)
    instance = error.instance
    if "propertyNames" in error.relative_schema_path:
        # jsonschema reports a bad key at the map's path with the key as the instance.
        path.append(instance)
    return _ranked(keyword, path, _describe(keyword, error.schema, path, instance))


def schema_errors_reference(obj: object, version: str, entry: str) -> ValidationFailure | None:
    """Schema verdict from the reference validator: ``None`` when valid, else the best error."""
    validator = _reference(schema_version(version), entry)
    candidates = [_map_py_error(e) for e in validator.iter_errors(obj)]
    return pick(candidates) if candidates else None


# --------------------------------------------------------------------------------------------
# Shared error description


def _describe(keyword: str, schema: Any, path: list[PathSegment], instance: Any) -> ValidationFailure:
    """Derive the keyword's detail from the subschema and instance, so both validators
    produce identical messages for the same failure."""
    detail: Any = None
    if isinstance(schema, Mapping):
        if keyword == "additionalProperties" and isinstance(instance, Mapping):
            known = schema.get("properties", {})
            detail = sorted(k for k in instance if k not in known) or ["?"]
        elif keyword == "required" and isinstance(instance, Mapping):
            detail = next((k for k in schema.get("required", []) if k not in instance), "?")
        elif keyword == "dependencies" and isinstance(instance, Mapping):
            detail = next(
                (
                    need
                    for key, needs in schema.get("dependencies", {}).items()
                    if key in instance
                    for need in needs
                    if need not in instance
                ),
                "?",
            )
        else:
            detail = schema.get(keyword)
    return describe(keyword, schema, path, instance, detail)


# --------------------------------------------------------------------------------------------
# Public entry points (re-exported by the package)

SchemaCheck = Callable[[object, str, str], "ValidationFailure | None"]


def _run(obj: object, version: str, entry: str, check: SchemaCheck) -> None:
    error = check(obj, version, entry)
    if error is not None:
        raise error


def validate_statement(obj: object, version: str, *, reference: bool = False) -> None:
    """Validate one parsed Statement under xAPI ``version`` ("1.0.3" or "2.0.0").

    Raises :class:`ValidationFailure` naming the offending JSON path. Rules that need server
    state (voiding targets, id uniqueness, authority set by the LRS) are not checked here.
    ``reference=True`` uses the slow pure-Python validator (for tests and diagnostics).
    """
    version = schema_version(version)
    if reference:
        _run(obj, version, "statement", schema_errors_reference)
    else:
        # Inlined fast path: one call into Rust for the common valid case.
        validator = _compiled(version, "statement")
        if not validator.is_valid(obj):
            _run(obj, version, "statement", schema_errors_fast)
    # The schema guarantees a JSON object here.
    semantic.check_statement(cast(dict[str, Any], obj))


def validate_agent(obj: object, version: str) -> None:
    """Validate the Agents/State/Agent Profile resources' ``agent`` parameter.

    1.0.3: an Agent. 2.0.0: an Agent or an identified Group. Raises :class:`ValidationFailure`.
    """
    _run(obj, version, "agentParameter", schema_errors_fast)


def validate_group(obj: object, version: str) -> None:
    """Validate a Group (identified, or anonymous with ``member``)."""
    _run(obj, version, "group", schema_errors_fast)


def validate_actor(obj: object, version: str) -> None:
    """Validate an Actor: an Agent, or a Group when ``objectType`` is ``Group``."""
    _run(obj, version, "actor", schema_errors_fast)


def validate_activity(obj: object, version: str) -> None:
    """Validate an Activity object (``id`` plus optional ``definition``)."""
    _run(obj, version, "activity", schema_errors_fast)
    activity = cast(dict[str, Any], obj)
    if "definition" in activity:
        semantic.check_activity_definition(activity["definition"], ["definition"])


def validate_activity_definition(obj: object, version: str) -> None:
    """Validate an Activity Definition, including interaction component rules."""
    _run(obj, version, "activityDefinition", schema_errors_fast)
    semantic.check_activity_definition(cast(dict[str, Any], obj), [])
