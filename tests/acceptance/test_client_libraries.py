"""Interoperability: an unmodified third-party xAPI client library against a real ``spor serve``.

The library is ADL/Rustici's TinCanPython (PyPI ``tincan`` 1.0.0), the Python member of the
TinCan*/xAPI client family. It is used exactly as an application would use it: a ``RemoteLRS``
pointed at ``<server>/xapi/`` with Basic credentials, and assertions on the ``LRSResponse``
objects it returns (``success``, ``content``, the ``http.client`` response it keeps). If Spor
stops answering the way xAPI clients expect, these tests fail.

No shim is needed: tincan 1.0.0 imports and runs unchanged on Python 3.11.

TinCanPython only speaks 1.0.x: ``RemoteLRS(version=...)`` accepts 1.0.0, 1.0.1, 1.0.2 and 1.0.3
and raises ``Exception("Unsupported Version")`` for 2.0.0. Every test therefore runs once per
version the library can send, which also shows that Spor serves 1.0.0-1.0.2 as 1.0.3.

Calls left out, because the *library* is broken for them (not Spor):

- ``about()``: ``tincan.About``'s version setter accepts only a hard-coded list ('1.0.3' ...
  '0.9') and raises ``ValueError: ... invalid value: '2.0.0' in ['1.0.3', '2.0.0']`` while
  parsing the response. The About resource must list every version the LRS supports
  (Communication 2.8), so the call fails against any LRS that also offers 2.0.0. The HTTP
  exchange itself is fine (200, ``{"version": ["1.0.3", "2.0.0"], "extensions": {}}``, see
  ``test_about.py``).
- Retrieving the Activity (``GET /activities``): tincan 1.0.0's ``RemoteLRS`` has no method for
  the Activities or Agents resources at all.
- Creating a *new* Activity/Agent Profile with ``save_activity_profile``/``save_agent_profile``:
  the library sends ``If-Match`` only when the document has an ETag and can never send
  ``If-None-Match``, so a new profile goes out with neither header. xAPI 1.0.3 requires the
  client to send one (Communication 3.1) and ADL's 1.0.3 conformance suite requires the LRS to
  answer 400 (XAPI-00273, XAPI-00287), which Spor does. The tests create the profile with a
  plain HTTP ``PUT`` + ``If-None-Match: *`` instead, then update, read, list and delete it
  through the library.

- A conditional ``save_state`` (a StateDocument with an ETag, sent as If-Match): the method sends
  its PUT twice (``self._send_request(request)``, then ``return self._send_request(request)``),
  so the second PUT carries an ETag the first one just made stale and gets 412, which is the
  response the library returns. Unconditional State PUTs survive the double send (1.0.3 State
  needs no precondition header), so the test overwrites State without If-Match and checks
  If-Match on DELETE instead.

Library defect worked around without patching: ``retrieve_state``/``retrieve_*_profile`` look
for ``"etag"`` in ``response.getheaders()``, which is a list of (name, value) tuples, so the
returned document never gets its ETag. The tests copy it from the library's own response object
(``r.response.getheader("ETag")``) onto the document before a conditional update or delete.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from tincan import (
    Activity,
    ActivityProfileDocument,
    Agent,
    AgentAccount,
    AgentProfileDocument,
    LanguageMap,
    RemoteLRS,
    StateDocument,
    Statement,
    StatementRef,
    Verb,
    Version,
)

from tests.conftest import Server, Tenant

# every version TinCanPython can send ('1.0.3', '1.0.2', '1.0.1', '1.0.0')
versions = pytest.mark.parametrize("version", list(Version.supported))

EXPERIENCED = "http://adlnet.gov/expapi/verbs/experienced"
COMPLETED = "http://adlnet.gov/expapi/verbs/completed"
VOIDED = "http://adlnet.gov/expapi/verbs/voided"


def remote(server: Server, tenant: Tenant, version: str) -> RemoteLRS:
    return RemoteLRS(endpoint=server.base_url + "/xapi/", username=tenant.key, password=tenant.secret,
                     version=version)


def learner() -> Agent:
    """A made-up learner, fresh for each test."""
    return Agent(name="Kari Nordmann", mbox=f"mailto:kari.{uuid.uuid4().hex[:8]}@example.org")


def verb(iri: str, word: str) -> Verb:
    return Verb(id=iri, display=LanguageMap({"en-US": word}))


def course() -> Activity:
    return Activity(id=f"https://courses.example.org/hand-hygiene/{uuid.uuid4().hex[:8]}")


def served_version(r: Any) -> str:
    return r.response.getheader("X-Experience-API-Version")


@versions
def test_save_and_retrieve_statements(server: Server, tenant: Tenant, version: str) -> None:
    lrs = remote(server, tenant, version)
    kari, hygiene = learner(), course()

    # POST: no id, Spor assigns one and the library copies it onto the statement
    s = Statement(actor=kari, verb=verb(EXPERIENCED, "experienced"), object=hygiene)
    r = lrs.save_statement(s)
    assert r.success, (r.response.status, r.data)
    assert r.response.status == 200
    assert served_version(r) == "1.0.3"  # 1.0.0-1.0.2 are served as 1.0.3
    assert isinstance(s.id, uuid.UUID)  # tincan keeps ids as uuid.UUID

    # PUT: the library uses PUT ?statementId= when the statement has an id
    chosen = str(uuid.uuid4())
    r = lrs.save_statement(Statement(id=chosen, actor=kari, verb=verb(COMPLETED, "completed"), object=hygiene))
    assert r.success and r.response.status == 204, (r.response.status, r.data)

    # batch
    batch = [Statement(actor=kari, verb=verb(EXPERIENCED, "experienced"), object=course()) for _ in range(3)]
    r = lrs.save_statements(batch)
    assert r.success, (r.response.status, r.data)
    ids = [str(st.id) for st in r.content]
    assert len(ids) == 3 and len(set(ids)) == 3

    # GET ?statementId=: parsed into a tincan Statement
    r = lrs.retrieve_statement(s.id)
    assert r.success, (r.response.status, r.data)
    got = r.content
    assert isinstance(got, Statement)
    assert got.id == s.id
    assert got.actor.mbox == kari.mbox and got.actor.name == "Kari Nordmann"
    assert got.verb.id == EXPERIENCED and got.verb.display["en-US"] == "experienced"
    assert got.object.id == hygiene.id
    assert got.stored is not None and got.timestamp is not None
    assert got.authority is not None and got.authority.account.name == tenant.key
    assert got.version == "1.0.3"  # tincan writes its latest version into every statement; kept as sent
    assert r.response.getheader("Last-Modified")

    r = lrs.retrieve_statement(chosen)
    assert r.success and str(r.content.id) == chosen and r.content.verb.id == COMPLETED

    r = lrs.retrieve_statement(ids[1])
    assert r.success and r.content.object.id == batch[1].object.id

    # an unknown id is a plain failure (404), not an exception
    r = lrs.retrieve_statement(str(uuid.uuid4()))
    assert not r.success and r.response.status == 404


@versions
def test_query_statements_with_filters_and_paging(server: Server, tenant: Tenant, version: str) -> None:
    lrs = remote(server, tenant, version)
    kari = learner()
    ola = Agent(name="Ola Nordmann", account=AgentAccount(home_page="https://id.example.org", name="emp-2002"))
    completed, experienced = verb(COMPLETED, "completed"), verb(EXPERIENCED, "experienced")

    mine = [Statement(actor=kari, verb=completed, object=course()) for _ in range(5)]
    noise = [Statement(actor=kari, verb=experienced, object=course()),
             Statement(actor=ola, verb=completed, object=course())]
    r = lrs.save_statements(mine + noise)
    assert r.success, (r.response.status, r.data)
    expected = {str(s.id) for s in mine}

    # agent + verb filter, two per page, followed through `more`
    r = lrs.query_statements({"agent": kari, "verb": completed, "limit": 2})
    assert r.success, (r.response.status, r.data)
    seen: list[str] = []
    pages = 0
    while True:
        pages += 1
        result = r.content
        assert len(result.statements) <= 2
        for st in result.statements:
            assert st.actor.mbox == kari.mbox and st.verb.id == COMPLETED
        seen.extend(str(st.id) for st in result.statements)
        if not result.more:
            break
        assert pages < 10, "more links never end"
        r = lrs.more_statements(result)
        assert r.success, (r.response.status, r.data)
    assert pages == 3
    assert len(seen) == len(set(seen)) == 5
    assert set(seen) == expected
    assert seen == [str(s.id) for s in reversed(mine)]  # newest first

    # ascending, and an account-identified agent
    r = lrs.query_statements({"agent": kari, "verb": completed, "ascending": "true"})
    assert r.success and [st.id for st in r.content.statements] == [s.id for s in mine]
    r = lrs.query_statements({"agent": ola})
    assert r.success and [st.id for st in r.content.statements] == [noise[1].id]
    assert r.content.statements[0].actor.account.name == "emp-2002"

    # activity filter
    r = lrs.query_statements({"activity": mine[2].object})
    assert r.success and [st.id for st in r.content.statements] == [mine[2].id]


@versions
def test_void_and_retrieve_voided_statement(server: Server, tenant: Tenant, version: str) -> None:
    lrs = remote(server, tenant, version)
    kari = learner()
    target = Statement(actor=kari, verb=verb(COMPLETED, "completed"), object=course())
    assert lrs.save_statement(target).success

    voiding = Statement(actor=kari, verb=verb(VOIDED, "voided"), object=StatementRef(id=target.id))
    r = lrs.save_statement(voiding)
    assert r.success, (r.response.status, r.data)

    r = lrs.retrieve_statement(target.id)
    assert not r.success and r.response.status == 404

    r = lrs.retrieve_voided_statement(target.id)
    assert r.success, (r.response.status, r.data)
    assert r.content.id == target.id and r.content.verb.id == COMPLETED

    r = lrs.retrieve_statement(voiding.id)
    assert r.success
    assert r.content.verb.id == VOIDED
    assert r.content.object.object_type == "StatementRef" and r.content.object.id == target.id

    # queries leave the voided statement out but return the voiding one
    r = lrs.query_statements({"agent": kari})
    assert r.success and [st.id for st in r.content.statements] == [voiding.id]


@versions
def test_state_document(server: Server, tenant: Tenant, version: str) -> None:
    lrs = remote(server, tenant, version)
    kari, hygiene = learner(), course()
    doc = StateDocument(id="bookmark", activity=hygiene, agent=kari, content_type="application/json",
                        content=json.dumps({"page": 3}))

    # (the library sends this PUT twice; 1.0.3 State accepts a PUT without precondition headers)
    r = lrs.save_state(doc)
    assert r.success, (r.response.status, r.data)
    assert r.response.status == 204

    r = lrs.retrieve_state(hygiene, kari, "bookmark")
    assert r.success and r.response.status == 200, (r.response.status, r.data)
    assert json.loads(bytes(r.content.content)) == {"page": 3}
    assert r.response.getheader("Content-Type").startswith("application/json")
    etag = r.response.getheader("ETag")
    assert etag and etag.startswith('"') and etag.endswith('"')
    assert r.response.getheader("Last-Modified")

    r = lrs.retrieve_state_ids(hygiene, kari)
    assert r.success and r.content == ["bookmark"]

    # Overwrite. Left out: a *conditional* overwrite (document with an etag, so If-Match). save_state
    # sends its PUT twice (`self._send_request(request)` and then `return self._send_request(request)`),
    # so the first PUT succeeds and the second, with the same now-stale ETag, gets 412; the library
    # returns that second response. An unconditional overwrite survives the double send.
    update = StateDocument(id="bookmark", activity=hygiene, agent=kari, content_type="application/json",
                           content=json.dumps({"page": 4}))
    r = lrs.save_state(update)
    assert r.success and r.response.status == 204, (r.response.status, r.data)
    r = lrs.retrieve_state(hygiene, kari, "bookmark")
    assert json.loads(bytes(r.content.content)) == {"page": 4}
    new_etag = r.response.getheader("ETag")
    assert new_etag != etag

    # a conditional delete with a stale ETag is refused, with the current one it succeeds
    r = lrs.delete_state(StateDocument(id="bookmark", activity=hygiene, agent=kari, etag=etag))
    assert not r.success and r.response.status == 412

    r = lrs.delete_state(StateDocument(id="bookmark", activity=hygiene, agent=kari, etag=new_etag))
    assert r.success and r.response.status == 204, (r.response.status, r.data)
    r = lrs.retrieve_state(hygiene, kari, "bookmark")
    assert r.success and r.response.status == 404  # the library treats 404 as "no document"
    assert lrs.retrieve_state_ids(hygiene, kari).content == []

    # clear_state: DELETE of every State document of activity + agent
    for sid in ("a", "b"):
        assert lrs.save_state(StateDocument(id=sid, activity=hygiene, agent=kari, content_type="text/plain",
                                            content=sid)).success
    assert sorted(lrs.retrieve_state_ids(hygiene, kari).content) == ["a", "b"]
    r = lrs.clear_state(hygiene, kari)
    assert r.success and r.response.status == 204
    assert lrs.retrieve_state_ids(hygiene, kari).content == []


def create_document(server: Server, tenant: Tenant, version: str, path: str, params: dict[str, str],
                    body: bytes, content_type: str) -> None:
    """What the library cannot do: PUT a new profile document with If-None-Match (see module docstring)."""
    r = httpx.put(f"{server.base_url}/xapi/{path}", params=params, content=body, auth=(tenant.key, tenant.secret),
                  headers={"X-Experience-API-Version": version, "Content-Type": content_type, "If-None-Match": "*"})
    assert r.status_code == 204, r.text


@versions
def test_activity_profile_document(server: Server, tenant: Tenant, version: str) -> None:
    lrs = remote(server, tenant, version)
    hygiene = course()
    create_document(server, tenant, version, "activities/profile", {"activityId": hygiene.id, "profileId": "notes"},
                    json.dumps({"passmark": 0.8}).encode(), "application/json")

    r = lrs.retrieve_activity_profile(hygiene, "notes")
    assert r.success and r.response.status == 200, (r.response.status, r.data)
    doc = r.content
    assert isinstance(doc, ActivityProfileDocument)
    assert json.loads(bytes(doc.content)) == {"passmark": 0.8}
    etag = r.response.getheader("ETag")
    assert etag and etag.startswith('"') and etag.endswith('"')

    r = lrs.retrieve_activity_profile_ids(hygiene)
    assert r.success and r.content == ["notes"]

    # update with If-Match
    doc.etag = etag
    doc.content_type = "application/json"
    doc.content = json.dumps({"passmark": 0.9})
    r = lrs.save_activity_profile(doc)
    assert r.success and r.response.status == 204, (r.response.status, r.data)
    r = lrs.retrieve_activity_profile(hygiene, "notes")
    assert json.loads(bytes(r.content.content)) == {"passmark": 0.9}
    new_etag = r.response.getheader("ETag")
    assert new_etag != etag

    # a stale ETag is refused, and so is an overwrite without any (1.0.3: 409)
    r = lrs.save_activity_profile(ActivityProfileDocument(id="notes", activity=hygiene, content="x", etag=etag))
    assert not r.success and r.response.status == 412
    r = lrs.save_activity_profile(ActivityProfileDocument(id="notes", activity=hygiene, content="x"))
    assert not r.success and r.response.status == 409

    r = lrs.delete_activity_profile(ActivityProfileDocument(id="notes", activity=hygiene, etag=new_etag))
    assert r.success and r.response.status == 204, (r.response.status, r.data)
    r = lrs.retrieve_activity_profile(hygiene, "notes")
    assert r.success and r.response.status == 404
    assert lrs.retrieve_activity_profile_ids(hygiene).content == []


@versions
def test_agent_profile_document(server: Server, tenant: Tenant, version: str) -> None:
    lrs = remote(server, tenant, version)
    kari = learner()
    create_document(server, tenant, version, "agents/profile", {"agent": kari.to_json(version),
                                                                 "profileId": "preferences"},
                    json.dumps({"language": "nb-NO"}).encode(), "application/json")

    r = lrs.retrieve_agent_profile(kari, "preferences")
    assert r.success and r.response.status == 200, (r.response.status, r.data)
    doc = r.content
    assert isinstance(doc, AgentProfileDocument)
    assert json.loads(bytes(doc.content)) == {"language": "nb-NO"}
    etag = r.response.getheader("ETag")

    r = lrs.retrieve_agent_profile_ids(kari)
    assert r.success and r.content == ["preferences"]

    doc.etag = etag
    doc.content_type = "application/json"
    doc.content = json.dumps({"language": "nn-NO"})
    r = lrs.save_agent_profile(doc)
    assert r.success and r.response.status == 204, (r.response.status, r.data)
    r = lrs.retrieve_agent_profile(kari, "preferences")
    assert json.loads(bytes(r.content.content)) == {"language": "nn-NO"}
    new_etag = r.response.getheader("ETag")

    r = lrs.save_agent_profile(AgentProfileDocument(id="preferences", agent=kari, content="x", etag=etag))
    assert not r.success and r.response.status == 412

    r = lrs.delete_agent_profile(AgentProfileDocument(id="preferences", agent=kari, etag=new_etag))
    assert r.success and r.response.status == 204, (r.response.status, r.data)
    r = lrs.retrieve_agent_profile(kari, "preferences")
    assert r.success and r.response.status == 404
    assert lrs.retrieve_agent_profile_ids(kari).content == []
