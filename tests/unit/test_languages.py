"""Accept-Language for format=canonical (lrs/ops/languages.py): RFC 2616 14.4 matching."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrs.ops.languages import Ranges, parse_accept_language, pick

MAP = {"en-GB": "read (GB)", "fr": "lu", "de": "gelesen"}


def test_parse_keeps_order_and_qualities() -> None:
    assert parse_accept_language("nb-NO, en;q=0.5 , *;Q=0.1, fr;q=oops, de;q=7").ranges == [
        ("nb-no", 1.0), ("en", 0.5), ("*", 0.1), ("fr", 0.0), ("de", 1.0)]
    assert parse_accept_language("").ranges == []


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


def _reference_pick(langmap: dict[str, str], ranges: list[tuple[str, float]]) -> dict[str, str]:
    """RFC 2616 14.4 as the module first had it, every key against every range: the model the
    look-up tables must agree with."""
    def quality(tag: str) -> tuple[float, int] | None:
        tag = tag.lower()
        best: tuple[int, float, int] | None = None
        star: tuple[float, int] | None = None
        for i, (r, q) in enumerate(ranges):
            if r == "*":
                star = star or (q, i)
            elif (tag == r or tag.startswith(r + "-")) and (best is None or len(r) > best[0]):
                best = (len(r), q, i)
        return (best[1], best[2]) if best is not None else star

    if not langmap:
        return langmap
    keys = list(langmap)
    rated = [(quality(k), n, k) for n, k in enumerate(keys)]
    acceptable = [(q[0], q[1], n, k) for q, n, k in rated if q is not None and q[0] > 0]
    if acceptable:
        k = min(acceptable, key=lambda a: (-a[0], a[1], a[2]))[3]
        return {k: langmap[k]}
    allowed = [k for q, _, k in rated if q is None] or keys
    for primary in [r.split("-")[0] for r, q in sorted(ranges, key=lambda rq: -rq[1]) if q > 0 and r != "*"]:
        for k in allowed:
            if k.lower().split("-")[0] == primary:
                return {k: langmap[k]}
    return {allowed[0]: langmap[allowed[0]]}


TAGS = ["en", "en-GB", "en-US", "nb", "nb-NO", "nn", "se", "se-NO", "de", "de-DE-1996", "fr", "zh-Hant-TW", "zh"]
ranges = st.lists(st.tuples(st.sampled_from([t.lower() for t in TAGS] + ["*", "en-gb-x", "e", "zh-hant"]),
                            st.sampled_from([0.0, 0.1, 0.5, 0.5, 1.0])), max_size=8)


@given(st.lists(st.sampled_from(TAGS), unique=True, max_size=6), ranges)
def test_the_look_up_tables_pick_as_comparing_every_range_did(keys: list[str], rs: list[tuple[str, float]]) -> None:
    header = ", ".join(f"{r};q={q}" for r, q in rs)
    langmap = {k: k.upper() for k in keys}
    assert pick(langmap, parse_accept_language(header)) == _reference_pick(langmap, rs)


def test_a_header_of_thousands_of_ranges_costs_a_look_up_per_subtag() -> None:
    """A 64 KiB header (~4,800 ranges): each key of each map was compared with every range, seconds
    on the event loop for one page of large maps (a query audit). Now a key costs a look-up per
    subtag, however long the header (counted, not timed)."""
    class Counted(dict[str, tuple[float, int]]):
        looked_up = 0

        def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
            Counted.looked_up += 1
            return super().get(key, default)

    parsed = parse_accept_language(", ".join(f"x{i};q=0.5" for i in range(4800)) + ", se;q=0.2")
    counted = Ranges(parsed.ranges, Counted(parsed.first), parsed.primary_rank)
    langmap = {f"{t}-NO-x{n}": "v" for n in range(10) for t in ("en", "nb", "nn", "se", "de")}
    assert pick(langmap, counted) == {"se-NO-x0": "v"}
    assert Counted.looked_up <= len(langmap) * 4  # three subtags and '*' a key
