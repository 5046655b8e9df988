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
#   * a language map holds at most LANGUAGE_TAGS_MAX tags, the first ones to arrive: once it is
#     full, a new tag is left out, while the values of the tags it has are still replaced. A tag
#     is never taken out again, so tags sent later (by a client sending made-up ones, say) cannot
#     push out the names an activity had. It is associative because a group's fold keeps every
#     tag, in the order they arrived, and the store merges the fold's new tags in that order
#     (lrs.store.activities sends the order beside the maps, ``with_tag_order``: a jsonb object
#     keeps none);
#   * what one statement offers is filtered before any merge (canonical_offer): a language map
#     value over LANGUAGE_VALUE_CHARS_MAX characters, or a definition over DEFINITION_BYTES_MAX
#     once its maps are filtered, is left out of the canonical definition.
# So each property but the maps holds at most DEFINITION_BYTES_MAX (they may come from
# different statements), and each map LANGUAGE_TAGS_MAX values of LANGUAGE_VALUE_CHARS_MAX
# characters. The statement itself is kept and returned exactly as sent; only the canonical copy
# is bounded.
LANGUAGE_TAGS_MAX = 100
LANGUAGE_VALUE_CHARS_MAX = 4096
DEFINITION_BYTES_MAX = 256 * 1024


def merge_language_map(old: dict[str, Any], new: dict[str, Any], *, bounded: bool = True) -> dict[str, Any]:
    """``new`` over ``old``: the values of ``old``'s tags replaced by ``new``'s, and ``new``'s
    other tags added in their order, while the map has fewer than LANGUAGE_TAGS_MAX unless not
    ``bounded`` (the SQL function ``spor_merge_language_map`` of migration 0032 is the bounded
    rule). A group's fold is not bounded: a tag the stored map holds may come after many new ones,
    and must still replace its value there."""
    if not bounded:
        return {**old, **new}
    out = dict(old)
    for tag, text in new.items():
        if tag in out or len(out) < LANGUAGE_TAGS_MAX:
            out[tag] = text
    return out


def canonical_offer(definition: dict[str, Any]) -> dict[str, Any] | None:
    """What one statement's definition offers the canonical definition: its language maps without
    values over LANGUAGE_VALUE_CHARS_MAX characters and with their first LANGUAGE_TAGS_MAX tags
    (a map left empty is dropped); None when what is left is over DEFINITION_BYTES_MAX, or when
    nothing is left of a definition that had something."""
    out = definition
    for prop in LANGUAGE_MAPS:
        value = definition.get(prop)
        if not isinstance(value, dict) or not value:
            continue
        kept = merge_language_map({}, {tag: text for tag, text in value.items()
                                       if not (isinstance(text, str) and len(text) > LANGUAGE_VALUE_CHARS_MAX)})
        if len(kept) == len(value):
            continue
        out = dict(out)
        if kept:
            out[prop] = kept
        else:
            del out[prop]
    if (definition and not out) or len(orjson.dumps(out)) > DEFINITION_BYTES_MAX:
        return None
    return out


def merge_definition(old: dict[str, Any] | None, new: dict[str, Any], *, bounded: bool = True) -> dict[str, Any]:
    """``new`` over ``old``: language maps merged tag by tag (``merge_language_map``), other
    properties replaced; when ``new`` names an interactionType, ``old``'s interaction
    properties are dropped first.

    Bounded, the rule of the SQL function ``spor_merge_definition`` (migrations 0016, 0030,
    0032), which merges into the stored definition; tests/integration/test_append_paths.py
    compares the two. Not bounded, the fold of one group's offers (``canonical_offer``), which the
    store then merges in one go. Either way ``new`` is an offer or a fold of offers.
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
            out[prop] = merge_language_map(old[prop], new[prop], bounded=bounded)
    return out


TAG_ORDER = "spor:order"


def with_tag_order(definition: dict[str, Any]) -> dict[str, Any]:
    """The definition as the store takes it (migration 0032): beside its language maps, the order
    of their tags (``TAG_ORDER``: map -> tags in order), which a jsonb object does not keep and a
    merge into a map with little room needs. Only maps of two tags or more need it."""
    order = {prop: list(value) for prop in LANGUAGE_MAPS
             if isinstance(value := definition.get(prop), dict) and len(value) > 1}
    return {**definition, TAG_ORDER: order} if order else definition


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
