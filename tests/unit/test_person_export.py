"""The parts of an access-request export that need no database: how a statement is about the
person, the sha1 form of an address, and how bytes are written into the JSON file."""

from __future__ import annotations

import base64
import io

import orjson

from lrs.person_export import ACTOR_OR_OBJECT, REFERS, RELATED, _JsonWriter, content_member, relation
from tests.statements import agent, statement

OLA = "account:https://id.example.org|emp-ola"


def test_a_statement_is_about_the_person_by_actor_object_member_or_elsewhere() -> None:
    keys = {OLA}
    assert relation(statement("ola"), keys) == ACTOR_OR_OBJECT
    assert relation({**statement("kari"), "object": agent("ola")}, keys) == ACTOR_OR_OBJECT
    group = {"objectType": "Group", "member": [agent("per"), agent("ola")]}
    assert relation({**statement("kari"), "actor": group}, keys) == ACTOR_OR_OBJECT
    assert relation(statement("kari", context={"instructor": agent("ola")}), keys) == RELATED
    assert relation({**statement("kari"), "authority": agent("ola")}, keys) == RELATED
    sub = {"objectType": "SubStatement", "actor": agent("ola"), "verb": {"id": "http://example.org/v"},
           "object": {"id": "http://example.org/a"}}
    assert relation({**statement("kari"), "object": sub}, keys) == RELATED
    # found only through the statement it refers to
    ref = {"actor": agent("per"), "verb": {"id": "http://example.org/liked"},
           "object": {"objectType": "StatementRef", "id": "5d5f1c1e-0000-4000-8000-000000000001"}}
    assert relation(ref, keys) == REFERS


def test_bytes_are_text_when_text_or_json_and_base64_otherwise() -> None:
    # JSON as the text stored: parsed and written again, a repeated member would be lost
    assert content_member("application/json; charset=utf-8", b'{"a": 1, "a": 2}') == {"contentText": '{"a": 1, "a": 2}'}
    assert content_member("application/json", b"not json") == {"contentText": "not json"}
    assert content_member("text/plain", "blåbær".encode()) == {"contentText": "blåbær"}
    assert content_member("text/plain", b"\xff\xfe") == {"contentBase64": base64.b64encode(b"\xff\xfe").decode()}
    assert content_member("application/pdf", b"%PDF") == {"contentBase64": base64.b64encode(b"%PDF").decode()}
    assert content_member("application/octet-stream", None) == {"content": None}


def test_the_writer_makes_one_json_object_with_empty_and_full_arrays() -> None:
    out = io.BytesIO()
    w = _JsonWriter(out)
    w.member("a", {"b": 1})
    w.open_array("empty")
    w.close_array()
    w.open_array("full")
    w.item(1)
    w.item_raw(b'{"about": "x", "statement": ', '{"id": "s"}', b"}")
    w.close_array()
    w.close()
    assert orjson.loads(out.getvalue()) == {"a": {"b": 1}, "empty": [], "full": [1, {"about": "x",
                                                                                  "statement": {"id": "s"}}]}

