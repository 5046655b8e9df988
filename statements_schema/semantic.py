"""The few xAPI rules a JSON Schema cannot express, checked after the schema has passed.

Everything here may assume the schema already holds: types are right, required keys are
present and unknown keys are absent. Only the places that can carry these rules are visited,
so a typical statement costs a handful of dict lookups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from .errors import PathSegment, failure

_COMPONENT_LISTS = ("choices", "scale", "source", "target", "steps")
_CONTEXT_ACTIVITY_KEYS = ("parent", "grouping", "category", "other")


def check_statement(stmt: Mapping[str, Any]) -> None:
    """Semantic checks for a Statement that already passed the schema."""
    _check_statement_body(stmt, [])
    for key in ("timestamp", "stored"):
        if key in stmt:
            _check_calendar_date(stmt[key], [key])
    obj = stmt["object"]
    if obj.get("objectType") == "SubStatement":
        # Data 2.4.4.3.s8.b2: a SubStatement is validated as a Statement as well.
        _check_statement_body(obj, ["object"])
        if "timestamp" in obj:
            _check_calendar_date(obj["timestamp"], ["object", "timestamp"])


def _check_statement_body(stmt: Mapping[str, Any], base: list[PathSegment]) -> None:
    obj = stmt["object"]
    if obj.get("objectType", "Activity") == "Activity" and "definition" in obj:
        check_activity_definition(obj["definition"], [*base, "object", "definition"])
    result = stmt.get("result")
    if result is not None and "score" in result:
        check_score(result["score"], [*base, "result", "score"])
    context = stmt.get("context")
    if context is not None and "contextActivities" in context:
        activities = context["contextActivities"]
        for key in _CONTEXT_ACTIVITY_KEYS:
            value = activities.get(key)
            if value is None:
                continue
            path = [*base, "context", "contextActivities", key]
            if isinstance(value, list):
                for i, activity in enumerate(value):
                    if "definition" in activity:
                        check_activity_definition(activity["definition"], [*path, i, "definition"])
            elif "definition" in value:
                check_activity_definition(value["definition"], [*path, "definition"])


def check_score(score: Mapping[str, Any], path: Sequence[PathSegment]) -> None:
    """Data 2.4.5.1: raw lies between min and max (inclusive); min is less than max (the table:
    "Decimal number less than max")."""
    lo = score.get("min")
    hi = score.get("max")
    raw = score.get("raw")
    if lo is not None and hi is not None and lo >= hi:
        raise failure([*path, "min"], "must be less than max")
    if raw is not None:
        if lo is not None and raw < lo:
            raise failure([*path, "raw"], "must not be less than min")
        if hi is not None and raw > hi:
            raise failure([*path, "raw"], "must not be greater than max")


def check_activity_definition(definition: Mapping[str, Any], path: Sequence[PathSegment]) -> None:
    """Data 2.4.4.1.s16.b1: within one interaction component list all ids are distinct."""
    for key in _COMPONENT_LISTS:
        components = definition.get(key)
        if not components:
            continue
        seen: set[str] = set()
        for i, component in enumerate(components):
            ident = component["id"]
            if ident in seen:
                raise failure([*path, key, i, "id"], f"duplicate interaction component id {ident!r}")
            seen.add(ident)


def _check_calendar_date(value: str, path: Sequence[PathSegment]) -> None:
    """The schema pattern bounds month and day (01-12, 01-31); this rejects days that do not
    exist in their month (2023-02-30), which a regular expression cannot do sanely."""
    if value[4] == "-":
        year, month, day = int(value[0:4]), int(value[5:7]), int(value[8:10])
    else:  # ISO 8601 basic format (1.0.3 only): YYYYMMDD
        year, month, day = int(value[0:4]), int(value[4:6]), int(value[6:8])
    try:
        date(year, month, day)
    except ValueError:
        raise failure(path, "is not a valid calendar date") from None
