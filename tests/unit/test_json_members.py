"""lrs/ops/json_members.py: a JSON object's members kept as their exact text, for merges."""

from __future__ import annotations

import json

import pytest

from lrs.ops.json_members import NotAnObject, members, serialise


def test_members_keep_their_text_and_order() -> None:
    text = '{"a":1, "b" : [1,2,{"c":3}] ,"big":123456789012345678901234567890,"f":1e400,"ø":"å"}'
    m = members(text)
    assert list(m) == ["a", "b", "big", "f", "ø"]
    assert m["b"] == '"b" : [1,2,{"c":3}]'
    assert m["big"] == '"big":123456789012345678901234567890'
    assert serialise(m).decode() == '{"a":1,"b" : [1,2,{"c":3}],"big":123456789012345678901234567890,"f":1e400,"ø":"å"}'


def test_a_merge_replaces_set_members_in_place_and_appends_new_ones() -> None:
    stored = members('{"x": "foo", "y": 0.1000000000000000000001, "o": {"a": 1}}')
    stored.update(members('{"x": "bash", "o": {"c": 3}, "z": null}'))
    out = serialise(stored)
    assert out == b'{"x": "bash","y": 0.1000000000000000000001,"o": {"c": 3},"z": null}'
    assert json.loads(out) == {"x": "bash", "y": 0.1, "o": {"c": 3}, "z": None}


@pytest.mark.parametrize("text", ["{}", " {\\n} ", '{"\\ud800x": 1}', '{"a": 1, "a": 2}'])
def test_edge_objects_round_trip_to_valid_json(text: str) -> None:
    text = text.replace("\\n", "\n")
    assert json.loads(serialise(members(text))) == json.loads(text)


@pytest.mark.parametrize("text", [
    "[]", '"x"', "", "{", '{"a"}', '{"a":}', '{"a":1,}', "{a:1}", '{"a":1} x', '{"a":1}{}',
    '{"a":NaN}', '{"a":-Infinity}', '{"a":"\u0001"}', '{"a":' + "[" * 100_000 + "]" * 100_000 + "}",
])
def test_anything_but_one_json_object_is_refused(text: str) -> None:
    with pytest.raises(NotAnObject):
        members(text)


def test_a_valid_integer_of_any_length_is_kept() -> None:
    big = "1" * 5000  # past Python's int() digit limit
    assert serialise(members('{"a": ' + big + "}")) == ('{"a": ' + big + "}").encode()
