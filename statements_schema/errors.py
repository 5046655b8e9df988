"""The validation error type and the mapping of JSON Schema errors to friendly messages.

Both validators (the compiled ``jsonschema-rs`` fast path and the pure-Python ``jsonschema``
reference) report errors in their own shapes; this module turns either into a
:class:`ValidationFailure` whose message names the JSON path, e.g.
``actor.mbox: must be a mailto: IRI with an email address``.

Friendly wording comes from ``x-messages`` annotations in the schema files (a map from the
failing keyword to a message), so the wording lives next to the rule it explains.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

PathSegment = str | int


class ValidationFailure(ValueError):
    """A statement, agent or other xAPI object breaks a MUST of the xAPI data model.

    ``path`` is a dotted/indexed JSON path such as ``context.contextActivities.parent[0].id``
    ("" for the root); ``message`` says what is wrong there. The LRS answers 400 Bad Request.
    """

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.message))


def format_path(segments: Iterable[PathSegment]) -> str:
    """Render path segments as ``a.b[0].c``; keys that are not identifiers (extension IRIs,
    language tags) are rendered as ``["key"]`` so the path stays unambiguous."""
    out: list[str] = []
    for seg in segments:
        if isinstance(seg, int):
            out.append(f"[{seg}]")
        elif _IDENTIFIER.match(seg):
            out.append(f".{seg}" if out else seg)
        else:
            escaped = seg.replace("\\", "\\\\").replace('"', '\\"')
            out.append(f'["{escaped}"]')
    return "".join(out)


def failure(segments: Sequence[PathSegment], message: str) -> ValidationFailure:
    """Build a :class:`ValidationFailure` from path segments."""
    return ValidationFailure(format_path(segments), message)


_TYPE_WORDS = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "a boolean (true or false)",
    "null": "null",
}


def _type_message(types: Sequence[str] | str) -> str:
    if isinstance(types, str):
        types = [types]
    return "must be " + " or ".join(_TYPE_WORDS.get(t, t) for t in types)


def _custom(schema: Any, keyword: str) -> str | None:
    if isinstance(schema, Mapping):
        messages = schema.get("x-messages")
        if isinstance(messages, Mapping):
            text = messages.get(keyword)
            if isinstance(text, str):
                return text
    return None


# Every objectType value, by its lower case (a wrong case is named as such).
_OBJECT_TYPES = {t.lower(): t for t in ("Agent", "Group", "Activity", "StatementRef", "SubStatement",
                                        "contextAgent", "contextGroup")}

# The message of an unknown property that is a known one in another case (ranked above a missing
# one: "Actor: ..." says more than "actor: is required").
CASE_HINT = "unknown property; property names are case-sensitive"


def describe(
    keyword: str,
    schema: Any,
    path: Sequence[PathSegment],
    instance: Any,
    detail: Any,
) -> ValidationFailure:
    """Turn one schema error into a friendly :class:`ValidationFailure`.

    ``schema`` is the (sub)schema that holds the failing ``keyword``; ``detail`` is the
    keyword-specific payload (unexpected keys, missing property, bad property name, ...).
    """
    custom = _custom(schema, keyword)
    path = list(path)
    if keyword == "additionalProperties":
        unknown = [detail] if isinstance(detail, str) else sorted(detail)
        known = schema.get("properties", {}) if isinstance(schema, Mapping) else {}
        # a known property in another case ("Actor"): say so, the likeliest mistake
        typos = [(k, m) for k in unknown for m in sorted(known) if isinstance(k, str) and k.lower() == m.lower()]
        if typos and not custom:
            key, meant = typos[0]
            return failure([*path, key], f"{CASE_HINT} (did you mean {meant}?)")
        return failure([*path, unknown[0]], custom or "unknown property")
    if keyword == "dependencies":
        return failure(path, custom or f"{detail} is required here")
    if keyword == "required":
        return failure([*path, detail], custom or "is required")
    if keyword == "propertyNames":
        return failure([*path, detail], custom or "invalid key")
    if custom:
        return failure(path, custom)
    if keyword == "type":
        return failure(path, _type_message(detail))
    if keyword == "const":
        proper = _OBJECT_TYPES.get(instance.lower()) if isinstance(instance, str) else None
        if path and path[-1] == "objectType" and proper is not None and proper != instance:
            return failure(path, f"must be {detail!r}; objectType values are case-sensitive: "
                                 f"{instance!r} is written {proper!r}")
        return failure(path, f"must be {detail!r}")
    if keyword == "enum":
        return failure(path, "must be one of " + ", ".join(repr(v) for v in detail))
    if keyword in ("minimum", "maximum"):
        word = "at least" if keyword == "minimum" else "at most"
        return failure(path, f"must be {word} {detail}")
    if keyword in ("minItems", "maxItems"):
        word = "at least" if keyword == "minItems" else "at most"
        return failure(path, f"must have {word} {detail} items")
    if keyword == "pattern":
        return failure(path, "has an invalid format")
    if keyword == "not":
        return failure(path, "is not allowed here")
    if keyword in ("oneOf", "anyOf"):
        return failure(path, "does not match any allowed shape")
    return failure(path, f"fails the {keyword} rule")


def pick(candidates: list[tuple[int, int, ValidationFailure]]) -> ValidationFailure:
    """Choose the most useful of several ``(depth, rank, failure)`` candidates: the deepest
    path wins (it is closest to the offending value), then the higher rank. Remaining ties go
    to the alphabetically first path, so the choice does not depend on the order in which a
    validator happens to report errors (the fast path and the reference differ there)."""
    best = max((depth, rank) for depth, rank, _ in candidates)
    return min((f for depth, rank, f in candidates if (depth, rank) == best), key=lambda f: (f.path, f.message))
