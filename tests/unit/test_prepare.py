"""What ``lrs.ops.statements.prepare`` hands the append: the body it fills in, written once as
the JSON the one-call append sends, and the statement's filter terms."""

from __future__ import annotations

import uuid

import orjson
import pytest

from lrs.errors import BadRequest
from lrs.ops import terms as T
from lrs.ops.principal import Principal
from lrs.ops.statements import prepare
from lrs.store.statements import body_column
from tests.statements import agent, statement

AUTHORITY = {"objectType": "Agent", "account": {"homePage": "https://spor.example.org", "name": "app"}}
WHO = Principal(1, None, frozenset({"statements/write"}), AUTHORITY, "account:https://spor.example.org|app")
KARI = T.AGENT + "account:https://id.example.org|emp-kari"
OLA = T.AGENT + "account:https://id.example.org|emp-ola"
COMPLETED = T.VERB + "http://adlnet.gov/expapi/verbs/completed"
APP = T.AGENT + "account:https://spor.example.org|app"


def test_the_authority_is_the_credentials_and_a_sent_stored_time_is_left_out() -> None:
    sent = {**statement(), "stored": "2020-01-01T00:00:00Z", "authority": agent("someone-else")}
    p = prepare(sent, WHO, "2.0.0")
    assert "stored" not in p.body
    assert p.body["authority"] == AUTHORITY
    assert b"2020-01-01" not in body_column([p])


def test_the_text_sent_for_the_append_is_the_filled_in_body() -> None:
    """prepare writes the body once and the one-call append sends that text: it must be the
    body prepare filled in (id, authority, version, a 2.0.0 timestamp in UTC, a single
    context activity as a list), not the statement as sent."""
    sent = statement(timestamp="2026-11-29T06:00:00+01:00",
                     context={"contextActivities": {"parent": {"id": "https://example.org/course"}}})
    sent.pop("id", None)
    sent.pop("version", None)
    p = prepare(sent, WHO, "2.0.0")
    assert orjson.loads(p.text) == p.body
    assert p.body["timestamp"] == "2026-11-29T05:00:00.000Z" and p.body["version"] == "2.0.0"
    assert p.body["context"]["contextActivities"]["parent"] == [{"id": "https://example.org/course"}]
    assert body_column([p, p]) == b"\x1e".join([orjson.dumps(p.body)[1:]] * 2)


def test_a_sent_authority_is_replaced_before_the_body_is_checked() -> None:
    """Data 2.4.9: the LRS sets the authority; what was sent in its place is not stored, so a
    character Spor cannot store there is no reason to refuse the statement."""
    sent = {**statement(), "authority": {"mbox": "mailto:app@example.org", "name": "a\x00b"}}
    assert prepare(sent, WHO, "1.0.3").body["authority"] == AUTHORITY


def test_prepare_names_where_a_statement_cannot_be_stored() -> None:
    deep: object = 1
    for _ in range(260):
        deep = [deep]
    s = statement(result={"extensions": {"https://example.org/ext/deep": deep}})
    with pytest.raises(BadRequest, match=r'^\[3\]\.result\.extensions\["https://example\.org/ext/deep"\]\[…\]: '
                                         r"nested more than 254 levels"):
        prepare(s, WHO, "1.0.3", "[3]")
    s = statement(actor="kari", result={"response": "a\x00b"})
    with pytest.raises(BadRequest, match=r"^\[0\]\.result\.response: contains the character U\+0000"):
        prepare(s, WHO, "1.0.3", "[0]")


def test_filter_terms_direct_where_the_plain_filter_matches() -> None:
    """Communication 2.1.3: the actor, verb, object and registration match the plain filters;
    context agents and activities, the authority and a SubStatement's parts only the related
    ones. A term seen both ways is direct."""
    registration = str(uuid.uuid4()).upper()
    group = {"objectType": "Group", "mbox": "mailto:team@Example.ORG",
             "member": [agent("ola"), {"mbox": "mailto:kari@example.org"}]}
    s = statement(actor="kari", context={
        "registration": registration,
        "instructor": agent("kari"),
        "team": group,
        "contextActivities": {"parent": [{"id": "https://courses.example.org/programme"}],
                              "grouping": {"id": "https://courses.example.org/hand-hygiene"}},
    })
    terms = prepare(s, WHO, "1.0.3").terms
    assert terms == {
        KARI: True, COMPLETED: True, T.ACTIVITY + "https://courses.example.org/hand-hygiene": True,
        T.AGENT + "mbox:mailto:team@example.org": False, OLA: False, T.AGENT + "mbox:mailto:kari@example.org": False,
        T.ACTIVITY + "https://courses.example.org/programme": False, T.REGISTRATION + registration.lower(): True,
        APP: False,
    }
    sub = {"objectType": "SubStatement", "actor": agent("ola"), "verb": {"id": "http://example.org/verbs/plan"},
           "object": {"id": "https://courses.example.org/cpr"},
           "context": {"registration": registration, "contextActivities": {"other": [{"id": "https://x.example.org/o"}]}}}
    terms = prepare(statement(actor="kari", object=sub), WHO, "1.0.3").terms
    assert terms == {KARI: True, COMPLETED: True, OLA: False, T.ACTIVITY + "https://courses.example.org/cpr": False,
                     T.ACTIVITY + "https://x.example.org/o": False, APP: False}
