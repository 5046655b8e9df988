"""Unit tests for lrs.http.form_text: query strings and form bodies read strictly as UTF-8."""

from __future__ import annotations

import random
from urllib.parse import parse_qsl, urlencode

import pytest

from lrs.http.form_text import TextError, _utf8_once_decoded, form_pairs

VALUES = ["plain", "Tromsø og Ærø", "a+b c", "100%", "{\"k\": [1, 2]}", "", "€ and \U0001f600", "\\x41 \\\\"]


@pytest.mark.parametrize("raw_utf8", [False, True])
def test_reads_what_urlencode_writes_as_parse_qsl_does(raw_utf8: bool) -> None:
    pairs = [(f"k{i}", v) for i, v in enumerate(VALUES)] + [("ø", "x"), ("empty", "")]
    raw = urlencode(pairs).encode("ascii")
    assert form_pairs(raw, "form parameter", raw_utf8=raw_utf8) == pairs
    assert form_pairs(raw, "form parameter", raw_utf8=raw_utf8) == parse_qsl(raw.decode(), keep_blank_values=True)


def test_fields_without_value_or_empty_are_as_parse_qsl_reads_them() -> None:
    raw = b"a&b=&&c=1=2&+d+=%20"
    assert form_pairs(raw, "query parameter", raw_utf8=False) == [("a", ""), ("b", ""), ("c", "1=2"), (" d ", " ")]
    assert form_pairs(raw, "query parameter", raw_utf8=False) == parse_qsl(raw.decode(), keep_blank_values=True)


@pytest.mark.parametrize("raw_utf8", [False, True])
@pytest.mark.parametrize(("raw", "message"), [
    (b"stateId=%FF", "parameter 'stateId' is not UTF-8 once percent-decoded (byte 0xFF at octet 0)"),
    (b"agent=Bj%F8rn", "parameter 'agent' is not UTF-8 once percent-decoded (byte 0xF8 at octet 2)"),
    (b"a=1&%E6=2", "a {what} name is not UTF-8 once percent-decoded (byte 0xE6 at octet 0)"),
    (b"x=%ED%A0%80", "parameter 'x' is not UTF-8 once percent-decoded (byte 0xED at octet 0)"),  # a surrogate
    (b"x=%C0%AF", "parameter 'x' is not UTF-8 once percent-decoded (byte 0xC0 at octet 0)"),  # overlong
])
def test_an_escape_that_is_not_utf_8_is_refused_naming_the_parameter(raw: bytes, message: str, raw_utf8: bool) -> None:
    what = "form parameter" if raw_utf8 else "query parameter"
    with pytest.raises(TextError) as caught:
        form_pairs(raw, what, raw_utf8=raw_utf8)
    assert message.format(what=what) in str(caught.value)


def test_raw_non_ascii_is_refused_in_a_query_and_read_as_utf_8_in_a_form() -> None:
    raw = "agent=Bjørn&x=%C3%A6".encode()
    with pytest.raises(TextError, match="a query parameter holds a byte that is not ASCII; percent-encode"):
        form_pairs(raw, "query parameter", raw_utf8=False)
    assert form_pairs(raw, "form parameter", raw_utf8=True) == [("agent", "Bjørn"), ("x", "æ")]
    with pytest.raises(TextError, match="form parameter 'agent' is not UTF-8"):
        form_pairs("agent=Bjørn".encode("latin-1"), "form parameter", raw_utf8=True)


def test_a_stray_percent_is_kept_in_a_query_and_refused_in_a_form() -> None:
    assert form_pairs(b"id=100%&b=%zz", "query parameter", raw_utf8=False) == [("id", "100%"), ("b", "%zz")]
    with pytest.raises(TextError, match="'id' has a '%' not followed by two hex digits \\(at octet 3\\)"):
        form_pairs(b"id=100%", "form parameter", raw_utf8=True)


def test_more_fields_than_allowed_are_refused_before_any_is_decoded() -> None:
    assert len(form_pairs(b"a=1&" * 64, "form parameter", raw_utf8=True, max_fields=64)) == 64
    with pytest.raises(TextError, match="the form has more than 64 form parameters; at most 64 are accepted"):
        form_pairs(b"a=1&" * 65, "form parameter", raw_utf8=True, max_fields=64)
    with pytest.raises(TextError, match="more than 64"):
        form_pairs(b"x=&" * 4_000_000, "form parameter", raw_utf8=True, max_fields=64)
    # empty fields are no fields, and cost no list of them (a review: 64 MiB of "&" was split
    # into a list of 64 million before the form was found to hold one field)
    assert form_pairs(b"&" * 1_000_000 + b"a=1" + b"&" * 1_000_000, "form parameter", raw_utf8=True,
                      max_fields=64) == [("a", "1")]


def test_a_form_of_escapes_decodes_to_the_same_bytes_as_unquote() -> None:
    data = bytes(range(256)) * 64
    raw = b"content=" + "".join(f"%{b:02x}" for b in data.decode("latin-1").encode("utf-8")).encode()
    assert form_pairs(raw, "form parameter", raw_utf8=True) == [("content", data.decode("latin-1"))]
    assert form_pairs(b"x=%5C%5c\\x41\\\\", "form parameter", raw_utf8=True) == [("x", "\\\\\\x41\\\\")]


def test_the_one_pass_check_of_a_query_agrees_with_reading_it_field_by_field() -> None:
    """QueryTextMiddleware decodes a whole query once (and not at all when every escape is an
    ASCII octet); it must refuse exactly what reading each name and value refuses."""
    rng = random.Random(4711)
    pieces = [b"a", b"=", b"&", b"+", b"%20", b"%7B", b"%C3%A6", b"%E2%82%AC", b"%F0%9F%98%80", b"%FF", b"%C3",
              b"%A6", b"%ED%A0%80", b"%C0%AF", b"%", b"%z", b"%e6", b"%c3%a6"]
    for _ in range(5000):
        raw = b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 8)))
        try:
            form_pairs(raw, "query parameter", raw_utf8=False)
            ok = True
        except TextError:
            ok = False
        assert _utf8_once_decoded(raw) == ok, raw


def test_a_large_value_is_decoded_in_pieces_that_never_cut_an_escape() -> None:
    """A value over a MiB is decoded a MiB at a time (the event loop gets its turns between the
    pieces); an escape lying across a piece's end must come out whole."""
    from urllib.parse import quote_from_bytes, unquote_to_bytes

    from lrs.http import form_text

    rng = random.Random(7)
    for shift in range(4):  # escapes at every offset from the cut
        data = b"x" * shift + bytes(rng.randrange(256) for _ in range(3 * form_text._UNESCAPE_CHUNK // 2))
        raw = quote_from_bytes(data).encode()
        assert len(raw) > form_text._UNESCAPE_CHUNK
        assert form_text._unescape(raw) == unquote_to_bytes(raw) == data


def test_a_stray_percent_beside_a_piece_boundary_is_found_where_it_is() -> None:
    from lrs.http import form_text

    n = form_text._UNESCAPE_CHUNK
    for at in range(n - 3, n + 2):
        raw = b"a=" + b"x" * at + b"%z" + b"%41" * 10
        with pytest.raises(TextError, match=f"has a '%' not followed by two hex digits \\(at octet {at}\\)"):
            form_pairs(raw, "form parameter", raw_utf8=True)
