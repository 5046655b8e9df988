"""The count of JSON values that bounds what one request body may become in memory
(lrs.http.common.MAX_JSON_VALUES): 60 MB of "[],[],..." parsed into 20 million Python objects,
1.8 GB, with the event loop held for seconds."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrs.errors import BadRequest, PayloadTooLarge
from lrs.http.common import MAX_JSON_VALUES, json_values, json_values_at_most, parse_json

# strings full of what the count looks for outside them
TRICKY = st.text(alphabet=st.sampled_from(list(',[]{}:"\\\\ aø\n')), max_size=12)
SCALAR = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
JSON = st.recursive(
    SCALAR | TRICKY,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TRICKY, inner, max_size=5),
    max_leaves=40,
)


def values_and_empty_containers(v: Any) -> int:
    if isinstance(v, list):
        return 1 + (0 if v else 1) + sum(values_and_empty_containers(x) for x in v)
    if isinstance(v, dict):
        return 1 + (0 if v else 1) + sum(values_and_empty_containers(x) for x in v.values())
    return 1


@given(JSON)
def test_the_count_is_exact_whatever_the_strings_hold(value: Any) -> None:
    body = orjson.dumps(value)
    assert json_values(body) == values_and_empty_containers(value)
    assert json_values_at_most(body) >= values_and_empty_containers(value)


def test_a_body_of_many_values_is_413_and_one_of_long_strings_is_not() -> None:
    many = b"[" + b"[]," * MAX_JSON_VALUES + b"1]"
    with pytest.raises(PayloadTooLarge, match=r"about 2,000,002 JSON values, more than the 1,000,000"):
        parse_json(many)
    keys = b"{" + b",".join(b'"k%d":%d' % (i, i) for i in range(MAX_JSON_VALUES + 1)) + b"}"
    with pytest.raises(PayloadTooLarge, match="JSON values"):
        parse_json(keys)
    # strings of commas and brackets: a few values, however many of those they hold
    text = ',[{"\\' * 1_000_000
    assert parse_json(orjson.dumps({"csv": text, "more": [text, {"k": text}]})) == {
        "csv": text, "more": [text, {"k": text}]}
    # just at the limit is taken
    exact = b"[" + b"1," * (MAX_JSON_VALUES - 2) + b"1]"
    assert len(parse_json(exact)) == MAX_JSON_VALUES - 1


def test_a_string_never_closed_is_counted_at_once() -> None:
    """A body whose string never ends: the string takes the rest of it, once. Matched with
    backtracking, 3 MB of `"\\",\\",...` took hours (every quote a fresh scan to the end); orjson
    refuses it at once."""
    attack = b'"' + b'\\",' * (MAX_JSON_VALUES + 1)
    assert json_values(attack) == 1
    assert json_values_at_most(attack) == 1
    with pytest.raises(BadRequest, match="not valid JSON"):
        parse_json(attack)
    # a valid prefix of many values before the unclosed string is still counted
    assert json_values(b"[" + b"[]," * 10 + b'"open') == 22  # 12 values, 10 of them empty arrays
