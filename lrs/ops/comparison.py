"""Statement comparison (xAPI Data 2.3.1, "Statement Comparison Requirements").

Differences that the exceptions to immutability could cause MUST be ignored; every other
difference MUST NOT. Both sides are brought into one normal form and then compared as JSON
values with their types. Used for signed statements (payload vs statement) and for idempotent
writes (a re-sent statement id with the same content).
"""

from __future__ import annotations

import json
import re
from typing import Any

from lrs.errors import BadRequest
from lrs.ops.timestamps import utc_timestamp

# xAPI 2.0 (IEEE 9274.1.1, 4.2.7): precision of a Duration beyond 0.01 s is not compared. In 1.0.3
# a Duration "is considered a string for purposes of Statement comparison" (Data 2.3.1.b8).
_SECONDS = re.compile(r"(\d+)(?:[.,](\d*))?S$")


def truncate_duration(value: object) -> object:
    """A duration with its seconds at exactly hundredths, cut not rounded, so that PT1.2S,
    PT1.20S and PT1.201S compare equal ('0.1237S' -> '0.12S', 'PT5S' -> 'PT5.00S')."""
    if not isinstance(value, str):
        return value
    m = _SECONDS.search(value)
    if m is None:
        return value
    fraction = ((m.group(2) or "") + "00")[:2]
    return f"{value[:m.start()]}{m.group(1)}.{fraction}S"


def comparison_form(stmt: dict[str, Any], version: str) -> dict[str, Any]:
    """The normal form of a statement as sent, without the properties the LRS assigns, under
    the comparison rules of xAPI ``version`` (the request's: 1.0.3 or 2.0.0)."""
    out = {k: v for k, v in stmt.items() if k not in ("id", "authority", "stored", "version")}
    if "timestamp" in out:
        out["timestamp"] = instant(out["timestamp"])
    return normalize_body(out, version)


def normalize_body(stmt: dict[str, Any], version: str) -> dict[str, Any]:
    """Normalize the parts shared by statements and SubStatements.

    Case-insensitive values (2.3.1.b7) are lower-cased: e-mail domains, UUIDs, language tags
    (RFC 5646 2.1.1) and the hex digits of hashes."""
    out = dict(stmt)
    if "actor" in out:
        out["actor"] = _normalize_agent(out["actor"])
    verb = out.get("verb")
    if isinstance(verb, dict):
        # 2.3.1.b3: the verb's "display" is not part of the statement.
        out["verb"] = {k: v for k, v in verb.items() if k != "display"}
    if "object" in out:
        out["object"] = _normalize_object(out["object"], version)
    if isinstance(out.get("context"), dict):
        out["context"] = _normalize_context(out["context"])
    result = out.get("result")
    if isinstance(result, dict) and "duration" in result and not version.startswith("1."):
        out["result"] = {**result, "duration": truncate_duration(result["duration"])}
    attachments = out.get("attachments")
    if isinstance(attachments, list):
        out["attachments"] = [_normalize_attachment(a) for a in attachments]
    return out


def _normalize_attachment(attachment: object) -> object:
    if not isinstance(attachment, dict):
        return attachment
    out = dict(attachment)
    if isinstance(out.get("sha2"), str):
        out["sha2"] = out["sha2"].lower()
    for key in ("display", "description"):
        if key in out:
            out[key] = _language_map(out[key])
    return out


def _language_map(value: object) -> object:
    """A language map with its tags lower-cased (RFC 5646 2.1.1: tags are case-insensitive). A
    tag sent twice in two cases keeps both values, in one order: the last one sent won, so the
    same statement with its members in another order was "different content" (a fuzzing audit)."""
    if not isinstance(value, dict):
        return value
    values: dict[object, dict[str, object]] = {}  # tag -> its values, by their JSON text
    for k, v in value.items():
        values.setdefault(k.lower() if isinstance(k, str) else k, {})[canonical_json(v)] = v
    out: dict[object, object] = {}
    for tag, given in values.items():
        distinct = [given[text] for text in sorted(given)]
        out[tag] = distinct[0] if len(distinct) == 1 else distinct
    return out


def _normalize_object(obj: object, version: str) -> object:
    if not isinstance(obj, dict):
        return obj
    object_type = obj.get("objectType", "Activity")  # Data 2.4.4: Activity when absent
    if object_type == "Activity":
        return _normalize_activity(obj)
    if object_type in ("Agent", "Group"):
        return _normalize_agent(obj)
    if object_type == "StatementRef":
        return {**obj, "id": lower_uuid(obj.get("id"))}
    if object_type == "SubStatement":
        sub = normalize_body(dict(obj), version)
        if "timestamp" in sub:
            sub["timestamp"] = instant(sub["timestamp"])
        return sub
    return obj


def _normalize_activity(activity: object) -> object:
    if not isinstance(activity, dict):
        return activity
    # 2.3.1.b2: Activity Definitions are not part of the statement; objectType defaults.
    out = {k: v for k, v in activity.items() if k != "definition"}
    out["objectType"] = out.get("objectType", "Activity")
    return out


def _normalize_agent(agent: object) -> object:
    if not isinstance(agent, dict):
        return agent
    out = dict(agent)
    # Data 2.4.2.1: an actor without objectType is an Agent.
    out["objectType"] = out.get("objectType", "Agent")
    mbox = out.get("mbox")
    if isinstance(mbox, str):
        # 2.3.1.b7: the scheme and the domain of an e-mail address are case-insensitive.
        scheme, _, address = mbox.partition(":")
        local, at, domain = address.rpartition("@")
        out["mbox"] = f"{scheme.lower()}:{local}{at}{domain.lower()}" if at else mbox
    if isinstance(out.get("mbox_sha1sum"), str):
        out["mbox_sha1sum"] = out["mbox_sha1sum"].lower()  # hex digits carry no case
    members = out.get("member")
    if isinstance(members, list):
        # 2.3.1.b5: the members of a Group are not an ordered list.
        normalized = [_normalize_agent(m) for m in members]
        out["member"] = sorted(normalized, key=canonical_json)
    return out


def _normalize_context(context: dict[str, Any]) -> dict[str, Any]:
    out = dict(context)
    if "registration" in out:
        out["registration"] = lower_uuid(out["registration"])
    if isinstance(out.get("language"), str):
        out["language"] = out["language"].lower()  # a language tag (RFC 5646 2.1.1)
    for key in ("instructor", "team"):
        if key in out:
            out[key] = _normalize_agent(out[key])
    statement_ref = out.get("statement")
    if isinstance(statement_ref, dict):
        out["statement"] = {**statement_ref, "id": lower_uuid(statement_ref.get("id"))}
    context_activities = out.get("contextActivities")
    if isinstance(context_activities, dict):
        normalized: dict[str, Any] = {}
        for key, value in context_activities.items():
            # 1.0.x allowed a single Activity where an array is meant; the LRS stores arrays.
            items = value if isinstance(value, list) else [value]
            normalized[key] = [_normalize_activity(a) for a in items]
        out["contextActivities"] = normalized
    # xAPI 2.0 contextAgents / contextGroups wrap an Agent or Group.
    for key, inner in (("contextAgents", "agent"), ("contextGroups", "group")):
        entries = out.get(key)
        if isinstance(entries, list):
            out[key] = [
                {**e, inner: _normalize_agent(e[inner])} if isinstance(e, dict) and inner in e else e for e in entries
            ]
    return out


def lower_uuid(value: object) -> object:
    """UUIDs are compared case-insensitively (their hex digits carry no case)."""
    return value.lower() if isinstance(value, str) else value


def instant(value: object) -> object:
    """A timestamp as a point in time in UTC (2.3.1.b4), as xAPI 2.0 stores it
    (lrs.ops.timestamps.utc_timestamp): a leap second (second 60) is one instant in any notation,
    kept apart from the second after it; one without an offset is in UTC, as ``since`` and
    ``until`` take it. Unparsable values stay as they are."""
    if not isinstance(value, str):
        return value
    try:
        return utc_timestamp(value)
    except BadRequest:
        return value


def canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def first_difference(a: object, b: object, path: str) -> str | None:
    """Path of the first difference between two JSON values, or None when they are equal.

    Types count: ``1`` and ``1.0`` or ``true`` and ``1`` are different serializations, which
    2.3.1.s9.b2 says MUST NOT be ignored ("Differences relating to a different serialization of
    any properties not listed as exceptions"), though JSON holds them one number.
    """
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            sub = f"{path}.{key}" if path else key
            if key not in a or key not in b:
                return sub
            found = first_difference(a[key], b[key], sub)
            if found is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    if type(a) is not type(b) or a != b:
        return path
    return None
