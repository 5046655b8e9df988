"""The rules of the Activities Resource (xAPI Communication 2.5): the canonical Activity.

The canonical definition of an Activity is folded from the statements that carry it: the
language maps ``name`` and ``description`` are merged (so two statements with different
languages give both, XAPI-00254); every other definition property is taken from the latest
statement that has it. The fold is kept as an inline projection (lrs.store.activities).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from lrs.ops.documents import activity_id as parse_activity_id
from lrs.ops.principal import Principal

LANGUAGE_MAPS = ("name", "description")
# What describes an interaction Activity (Data 2.4.4.1): replaced as a whole by a definition naming
# its interactionType (migration 0030).
INTERACTION_PROPERTIES = frozenset({"interactionType", "correctResponsesPattern", "choices", "scale", "source",
                                    "target", "steps"})

Definitions = Callable[[int, list[str]], Awaitable[dict[str, dict[str, Any]]]]

# What bounds a canonical definition (migration 0032). Merging only ever grows the language
# maps (every other property is replaced), so without a bound a client sending new language tags
# grew one activity's definition without end, and each later statement that changed it rewrote
# all of it under the store's append lock. Both bounds keep merging associative, so the canonical
# definition still does not depend on how appends are grouped:
#   * a language map keeps its LANGUAGE_TAGS_MAX smallest tags (in code point order): the
#     smallest N of a union are the smallest N of the smallest N of its parts;
#   * what one statement offers is filtered before any merge (canonical_offer): a language map
#     value over LANGUAGE_VALUE_CHARS_MAX characters, or a whole definition over
#     DEFINITION_BYTES_MAX once its maps are filtered, is left out of the canonical definition.
# So a canonical definition holds at most about DEFINITION_BYTES_MAX plus two maps of
# LANGUAGE_TAGS_MAX values of LANGUAGE_VALUE_CHARS_MAX characters. The statement itself is kept
# and returned exactly as sent; only the canonical copy is bounded.
LANGUAGE_TAGS_MAX = 100
LANGUAGE_VALUE_CHARS_MAX = 4096
DEFINITION_BYTES_MAX = 256 * 1024


def _first_tags(language_map: dict[str, Any]) -> dict[str, Any]:
    """The map with only its LANGUAGE_TAGS_MAX smallest tags (code point order, which is the
    SQL's ``COLLATE "C"`` order of UTF-8 text)."""
    if len(language_map) <= LANGUAGE_TAGS_MAX:
        return language_map
    return {tag: language_map[tag] for tag in sorted(language_map)[:LANGUAGE_TAGS_MAX]}


def canonical_offer(definition: dict[str, Any]) -> dict[str, Any] | None:
    """What one statement's definition offers the canonical definition: its language maps without
    values over LANGUAGE_VALUE_CHARS_MAX characters (a map left empty by that is dropped) and
    with at most LANGUAGE_TAGS_MAX tags; None when what is left is over DEFINITION_BYTES_MAX."""
    out = definition
    for prop in LANGUAGE_MAPS:
        value = definition.get(prop)
        if not isinstance(value, dict) or not value:
            continue
        kept = {tag: text for tag, text in value.items()
                if not (isinstance(text, str) and len(text) > LANGUAGE_VALUE_CHARS_MAX)}
        kept = _first_tags(kept)
        if len(kept) == len(value):
            continue
        out = dict(out)
        if kept:
            out[prop] = kept
        else:
            del out[prop]
    if len(orjson.dumps(out)) > DEFINITION_BYTES_MAX:
        return None
    return out


def merge_definition(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """``new`` over ``old``: language maps merged key by key (keeping LANGUAGE_TAGS_MAX tags),
    other properties replaced; when ``new`` names an interactionType, ``old``'s interaction
    properties are dropped first.

    The same rule as the SQL function ``spor_merge_definition`` (migrations 0016, 0030, 0032),
    which merges into the stored definition; tests/integration/test_append_paths.py compares the
    two. ``new`` is a statement's ``canonical_offer`` (or a fold of them).
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
            out[prop] = _first_tags({**old[prop], **new[prop]})
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
