"""The bounds of a canonical Activity definition (lrs.ops.activities, migration 0032): what one
statement offers it, and how many language tags a merged map keeps."""

from __future__ import annotations

import orjson

from lrs.ops.activities import (
    DEFINITION_BYTES_MAX,
    LANGUAGE_TAGS_MAX,
    LANGUAGE_VALUE_CHARS_MAX,
    canonical_offer,
    merge_definition,
)
from lrs.store.activities import fold_definitions

AID = "https://courses.example.org/infection-control"


def tags(numbers: range, text: str = "v") -> dict[str, str]:
    return {f"en-x-t{i:03d}": f"{text}{i}" for i in numbers}


def test_an_ordinary_definition_is_offered_as_it_is() -> None:
    definition = {"name": {"en-US": "Infection control", "nb-NO": "Smittevern"},
                  "description": {"en-US": "x" * LANGUAGE_VALUE_CHARS_MAX},
                  "type": "http://adlnet.gov/expapi/activities/module",
                  "extensions": {"https://example.org/minutes": 20}}
    assert canonical_offer(definition) is definition


def test_a_language_value_over_the_bound_is_left_out_and_a_map_it_empties_is_dropped() -> None:
    long = "y" * (LANGUAGE_VALUE_CHARS_MAX + 1)
    offer = canonical_offer({"name": {"en-US": "Hand hygiene", "nb-NO": long},
                             "description": {"en-US": long}, "type": "https://t/1"})
    assert offer == {"name": {"en-US": "Hand hygiene"}, "type": "https://t/1"}
    # an empty map sent as such is kept as sent
    assert canonical_offer({"name": {}}) == {"name": {}}


def test_a_map_offers_its_first_tags_in_the_order_sent() -> None:
    many = {**tags(range(LANGUAGE_TAGS_MAX + 20)), "EN-ZZ": "sent last"}
    offer = canonical_offer({"name": many})
    assert offer is not None
    assert list(offer["name"]) == list(many)[:LANGUAGE_TAGS_MAX]
    assert "EN-ZZ" not in offer["name"] and "en-x-t099" in offer["name"]


def test_a_definition_left_with_nothing_offers_nothing() -> None:
    """(a review: it offered {}, and format=canonical then showed an empty definition in place of
    the one the statement carried)"""
    long = "y" * (LANGUAGE_VALUE_CHARS_MAX + 1)
    assert canonical_offer({"name": {"en-US": long}, "description": {"en-US": long}}) is None


def test_a_definition_over_the_byte_bound_offers_nothing() -> None:
    large = {"extensions": {"https://example.org/blob": "z" * DEFINITION_BYTES_MAX}}
    assert len(orjson.dumps(large)) > DEFINITION_BYTES_MAX
    assert canonical_offer(large) is None
    # its long language values are left out first: then it may fit
    fits = {"name": {"en-US": "n" * (DEFINITION_BYTES_MAX // 2)},
            "description": {"en-US": "d" * (DEFINITION_BYTES_MAX // 2)}, "type": "https://t/2"}
    assert canonical_offer(fits) == {"type": "https://t/2"}


def test_a_full_map_keeps_its_tags_and_takes_their_new_values() -> None:
    """Made-up tags sent later cannot push out the names an activity has (a review: with the
    smallest tags kept, 100 tags sorting before en-US removed it for good)."""
    old = {"name": {"en-US": "Hand hygiene", "nb-NO": "Håndhygiene"}}
    junk = {"name": {f"aa-x-{i:04d}": "junk" for i in range(LANGUAGE_TAGS_MAX)}}
    merged = merge_definition(old, junk)["name"]
    assert len(merged) == LANGUAGE_TAGS_MAX and merged["en-US"] == "Hand hygiene"
    assert "aa-x-0097" in merged and "aa-x-0098" not in merged
    again = merge_definition({"name": merged}, {"name": {"en-US": "Hand hygiene 2026", "aa-x-0099": "x"}})["name"]
    assert again == {**merged, "en-US": "Hand hygiene 2026"}


def test_the_fold_of_one_append_keeps_to_the_bounds_whatever_a_statement_sends() -> None:
    def statement(definition: dict) -> dict:
        return {"object": {"id": AID, "definition": definition}}

    bodies = [statement({"name": tags(range(i * 40, i * 40 + 40))}) for i in range(10)]
    bodies.append(statement({"type": "https://t/3", "extensions": {"https://e/x": "z" * DEFINITION_BYTES_MAX}}))
    bodies.append(statement({"description": {"en-US": "w" * (LANGUAGE_VALUE_CHARS_MAX + 1)}}))
    bodies.append(statement({"name": {"en-x-t005": "later", "en-x-t399": "later"}}))
    folded = fold_definitions(bodies)[AID]
    # the fold keeps every tag (one the store holds may come after many new ones) ...
    assert len(folded["name"]) == 400 and folded["name"]["en-x-t005"] == "later"
    assert "type" not in folded and "description" not in folded
    # ... and merged into a store, it ends as the statements merged one at a time
    stored = {"name": {"en-x-t399": "stored", "en-US": "Hand hygiene"}}
    one_by_one = stored
    for body in bodies:
        offer = canonical_offer(body["object"]["definition"])
        if offer is not None:
            one_by_one = merge_definition(one_by_one, offer)
    assert merge_definition(stored, folded) == one_by_one
    assert list(one_by_one["name"]) == ["en-x-t399", "en-US", *tags(range(98))]
    assert one_by_one["name"]["en-x-t399"] == "later" and one_by_one["name"]["en-x-t005"] == "later"
    assert len(orjson.dumps(one_by_one)) < 4096
