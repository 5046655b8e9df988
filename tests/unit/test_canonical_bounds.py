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


def test_a_map_offers_its_smallest_tags_in_code_point_order() -> None:
    many = {**tags(range(LANGUAGE_TAGS_MAX + 20)), "EN-ZZ": "upper case sorts first"}
    offer = canonical_offer({"name": many})
    assert offer is not None
    assert sorted(offer["name"]) == sorted(many)[:LANGUAGE_TAGS_MAX]
    assert "EN-ZZ" in offer["name"] and "en-x-t119" not in offer["name"]


def test_a_definition_over_the_byte_bound_offers_nothing() -> None:
    large = {"extensions": {"https://example.org/blob": "z" * DEFINITION_BYTES_MAX}}
    assert len(orjson.dumps(large)) > DEFINITION_BYTES_MAX
    assert canonical_offer(large) is None
    # its long language values are left out first: then it may fit
    fits = {"name": {"en-US": "n" * (DEFINITION_BYTES_MAX // 2)},
            "description": {"en-US": "d" * (DEFINITION_BYTES_MAX // 2)}, "type": "https://t/2"}
    assert canonical_offer(fits) == {"type": "https://t/2"}


def test_a_merged_map_keeps_its_smallest_tags_later_values_winning() -> None:
    old = {"name": tags(range(0, 150, 2), "old")}
    new = {"name": tags(range(1, 150, 2), "new") | tags(range(10, 20), "new")}
    merged = merge_definition(old, new)["name"]
    assert len(merged) == LANGUAGE_TAGS_MAX
    assert sorted(merged) == [f"en-x-t{i:03d}" for i in range(LANGUAGE_TAGS_MAX)]
    assert merged["en-x-t012"] == "new12" and merged["en-x-t020"] == "old20"


def test_the_fold_of_one_append_keeps_to_the_bounds_whatever_a_statement_sends() -> None:
    def statement(definition: dict) -> dict:
        return {"object": {"id": AID, "definition": definition}}

    bodies = [statement({"name": tags(range(i * 40, i * 40 + 40))}) for i in range(10)]
    bodies.append(statement({"type": "https://t/3", "extensions": {"https://e/x": "z" * DEFINITION_BYTES_MAX}}))
    bodies.append(statement({"description": {"en-US": "w" * (LANGUAGE_VALUE_CHARS_MAX + 1)}}))
    folded = fold_definitions(bodies)[AID]
    assert folded == {"name": tags(range(LANGUAGE_TAGS_MAX))}
    assert len(orjson.dumps(folded)) < 4096
    # every grouping of the same statements ends alike: one at a time equals the fold
    one_by_one: dict | None = None
    for body in bodies:
        offer = canonical_offer(body["object"]["definition"])
        if offer is not None:
            one_by_one = merge_definition(one_by_one, offer)
    assert one_by_one == folded
