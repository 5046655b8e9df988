"""Accept-Language for format=canonical (lrs/ops/languages.py): RFC 2616 14.4 matching."""

from __future__ import annotations

import pytest

from lrs.ops.languages import parse_accept_language, pick

MAP = {"en-GB": "read (GB)", "fr": "lu", "de": "gelesen"}


def test_parse_keeps_order_and_qualities() -> None:
    assert parse_accept_language("nb-NO, en;q=0.5 , *;Q=0.1, fr;q=oops, de;q=7") == [
        ("nb-no", 1.0), ("en", 0.5), ("*", 0.1), ("fr", 0.0), ("de", 1.0)]
    assert parse_accept_language("") == []


@pytest.mark.parametrize(("header", "chosen"), [
    ("en-US, fr;q=0.8", "fr"),            # en-US does not match en-GB; fr does
    ("en, fr;q=0.8", "en-GB"),            # a range matches the longer tag it is a prefix of
    ("EN-gb;q=0.4, de;q=0.5", "de"),      # case-insensitive; the higher quality wins
    ("de;q=0.5, fr;q=0.5", "de"),         # equal quality: the range named first
    ("fr;q=0, *", "en-GB"),               # * matches what no other range names; fr is refused
    ("*;q=0.5, de;q=0.1", "en-GB"),       # the longest matching range gives a tag its quality
    ("e", "en-GB"),                       # 'e' is no prefix of 'en-GB' (not followed by '-'): no match,
                                          # and no entry shares its primary language: the first one
    ("", "en-GB"),
])
def test_the_best_acceptable_entry(header: str, chosen: str) -> None:
    assert pick(MAP, parse_accept_language(header)) == {chosen: MAP[chosen]}


def test_with_none_acceptable_still_one_entry_and_not_a_refused_one() -> None:
    assert pick({"fr": "lu", "de": "gelesen"}, parse_accept_language("fr;q=0, nb")) == {"de": "gelesen"}
    # the same primary language as the best range, when no range matches
    assert pick({"fr": "lu", "en-GB": "read"}, parse_accept_language("en-US")) == {"en-GB": "read"}
    # everything refused: the spec still asks for one language
    assert pick({"fr": "lu"}, parse_accept_language("fr;q=0")) == {"fr": "lu"}
    assert pick({}, parse_accept_language("fr")) == {}
