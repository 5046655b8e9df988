"""JSON Schemas for xAPI 1.0.3 and 2.0.0 objects, and the validator built on them.

Usage::

    from statements_schema import ValidationFailure, validate_statement

    try:
        validate_statement(orjson.loads(body), "2.0.0")
    except ValidationFailure as e:
        ...  # 400 Bad Request, str(e) like "actor.mbox: must be a mailto: IRI ..."

The schema files live in ``schemas/`` (``common.json`` plus a per-version ``overlay.json``);
the rules a schema cannot express are in :mod:`statements_schema.semantic`.
"""

from .errors import ValidationFailure
from .loader import SCHEMA_VERSIONS, is_iri, is_timestamp, root_schema, timestamp_rule
from .validator import (
    validate_activity,
    validate_activity_definition,
    validate_actor,
    validate_agent,
    validate_group,
    validate_statement,
)

__all__ = [
    "SCHEMA_VERSIONS",
    "ValidationFailure",
    "is_iri",
    "is_timestamp",
    "root_schema",
    "timestamp_rule",
    "validate_activity",
    "validate_activity_definition",
    "validate_actor",
    "validate_agent",
    "validate_group",
    "validate_statement",
]
