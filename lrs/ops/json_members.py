"""A JSON object's top-level members, each value kept as its exact JSON text.

A document merge (xAPI Communication 2.2: set the posted top-level properties on the stored
object) must leave the members it does not set as they were. Parsing to Python values and
serialising again does not: an integer beyond 64 bits came back from orjson as a float
(123456789012345678901234567890 -> 1.2345678901234568e+29), and 1e400, valid JSON, was refused.
Here only the top level is split; every value is checked by the standard library's C scanner and
kept byte for byte.
"""

from __future__ import annotations

import json
import re

_SPACE = re.compile(r"[ \t\n\r]*")


class NotAnObject(ValueError):
    """The text is not one JSON object (the message says where)."""


def _no_constant(name: str) -> None:
    # Python's json would take NaN and Infinity, which JSON does not have
    raise NotAnObject(f"{name} is not JSON")


# numbers are only checked, never used: kept as text (int() of over 4,300 digits raises ValueError)
_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_int=str, parse_float=str)


def members(text: str) -> dict[str, str]:
    """The object's members in order, by name: each member's own text, from the opening quote of
    its name to the end of its value (a repeated name: the last wins)."""

    def skip(i: int) -> int:
        m = _SPACE.match(text, i)
        return m.end() if m else i

    def expect(char: str, i: int, what: str) -> int:
        if not text.startswith(char, i):
            raise NotAnObject(f"expected {what} at character {i}")
        return skip(i + 1)

    out: dict[str, str] = {}
    i = expect("{", skip(0), "a JSON object")
    if text.startswith("}", i):
        i = skip(i + 1)
    else:
        while True:
            if not text.startswith('"', i):
                raise NotAnObject(f"expected a property name at character {i}")
            start = i
            try:
                name, i = _DECODER.raw_decode(text, i)
                i = expect(":", skip(i), "':'")
                _, end = _DECODER.raw_decode(text, i)
            except json.JSONDecodeError as exc:
                # (some of json's messages end in "at": "Invalid control character at")
                raise NotAnObject(f"{exc.msg.removesuffix(' at')} at character {exc.pos}") from None
            except RecursionError:
                raise NotAnObject(f"nested too deeply at character {i}") from None
            out[name] = text[start:end]
            i = skip(end)
            if text.startswith(",", i):
                i = skip(i + 1)
                continue
            i = expect("}", i, "',' or '}'")
            break
    if i != len(text):
        raise NotAnObject(f"unexpected text after the object at character {i}")
    return out


def serialise(obj: dict[str, str]) -> bytes:
    """The object of ``members`` (member texts by name) as UTF-8 JSON."""
    return ("{" + ",".join(obj.values()) + "}").encode()
