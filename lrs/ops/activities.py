"""The rules of the Activities Resource (xAPI Communication 2.5): the canonical Activity.

The canonical definition of an Activity is folded from the statements that carry it: the
language maps ``name`` and ``description`` are merged (so two statements with different
languages give both, XAPI-00254); every other definition property is taken from the latest
statement that has it. The fold is kept as an inline projection (lrs.store.activities).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from lrs.ops.documents import activity_id as parse_activity_id
from lrs.ops.principal import Principal

LANGUAGE_MAPS = ("name", "description")
# What describes an interaction Activity (Data 2.4.4.1): replaced as a whole by a definition naming
# its interactionType (migration 0030).
INTERACTION_PROPERTIES = frozenset({"interactionType", "correctResponsesPattern", "choices", "scale", "source",
                                    "target", "steps"})

Definitions = Callable[[int, list[str]], Awaitable[dict[str, dict[str, Any]]]]


def merge_definition(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """``new`` over ``old``: language maps merged key by key, other properties replaced; when
    ``new`` names an interactionType, ``old``'s interaction properties are dropped first.

    The same rule as the SQL function ``spor_merge_definition`` (migration 0016), which merges
    into the stored definition; tests/integration/test_append_paths.py compares the two.
    """
    if not old:
        return dict(new)
    if "interactionType" in new:
        # the interaction as a whole (0030): merging stays associative, so a group folded first
        # and merged once ends as its statements merged one by one would
        old = {k: v for k, v in old.items() if k not in INTERACTION_PROPERTIES}
    out = {**old, **new}
    for prop in LANGUAGE_MAPS:
        if isinstance(old.get(prop), dict) and isinstance(new.get(prop), dict):
            out[prop] = {**old[prop], **new[prop]}
    return out


async def get_activity(definitions: Definitions, principal: Principal, raw_id: str | None) -> dict[str, Any]:
    """The Activity object for ``activityId``; one without definition when none is known.

    Communication 2.5.s2.b1: the LRS still returns an Activity Object when it has no
    canonical definition.
    """
    principal.require("all/read", "statements/read", "define", "profile", "state")
    aid = parse_activity_id(raw_id)
    found = await definitions(principal.store_id, [aid])
    activity: dict[str, Any] = {"objectType": "Activity", "id": aid}
    if found.get(aid):
        activity["definition"] = found[aid]
    return activity
