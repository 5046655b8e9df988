"""`spor person erase`: a person's own records leave the store on request, from a running
server's database; others' records stay whole and readable; a dry run changes nothing."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from tests.acceptance.test_admin_cli import spor, spor_refused
from tests.acceptance.test_person_export import (
    MAIL,
    import_people,
    post,
    post_certificate,
    put_document,
    store_with_person,
)
from tests.conftest import Server
from tests.statements import HOMEPAGE, agent, statement

V = {"X-Experience-API-Version": "2.0.0"}
OLA_KEY = f"account:{HOMEPAGE}|emp-ola"


def get(server: Server, auth: tuple[str, str], **params: str) -> httpx.Response:
    return httpx.get(server.base_url + "/xapi/statements", params=params, auth=auth, headers=V, timeout=30)


def all_ids(server: Server, auth: tuple[str, str], **params: str) -> list[str]:
    """Every statement a query finds, a page of one at a time (paging across erased positions)."""
    ids: list[str] = []
    r = get(server, auth, limit="1", **params)
    while True:
        assert r.status_code == 200, r.text
        body = r.json()
        ids += [s["id"] for s in body["statements"]]
        if not body.get("more"):
            return ids
        r = httpx.get(server.base_url + body["more"], auth=auth, headers=V, timeout=30)


def db(server: Server, query: str, *args: Any) -> Any:
    async def run() -> Any:
        conn = await asyncpg.connect(server.database_url)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()
    return asyncio.run(run())


def test_erasing_a_person_takes_their_records_and_leaves_everyone_else_s(server: Server, tmp_path: Path) -> None:
    store, auth = store_with_person(server, tmp_path, f"P-90,{OLA_KEY};{MAIL}")
    ola, per = agent("ola"), agent("per")
    certificate = b"%PDF-1.4 made-up certificate of ola"
    attached = post_certificate(server, auth, certificate)
    own = [attached, *post(server, auth, [statement("ola"), {**statement("kari"), "actor": {"mbox": MAIL}}])]
    instructed, group = post(server, auth, [
        statement("per", context={"instructor": ola}),
        {**statement("per"), "actor": {"objectType": "Group", "name": "Team", "member": [per, ola]}}])
    [liked] = post(server, auth, [{"actor": per, "verb": {"id": "http://example.org/verbs/liked"},
                                   "object": {"objectType": "StatementRef", "id": own[1]}}])
    [unrelated] = post(server, auth, [statement("per")])
    activity = "https://courses.example.org/hand-hygiene"
    state = {"activityId": activity, "agent": orjson.dumps(ola).decode(), "stateId": "bookmark"}
    put_document(server, auth, "activities/state", state, b'{"page": 1}', "application/json")
    r = httpx.post(server.base_url + "/xapi/activities/state", params=state, content=b'{"page": 2}', auth=auth,
                   headers={**V, "Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 204, r.text
    # the colleague's state holds the same bytes as ola's first version: content is shared by hash
    put_document(server, auth, "activities/state", {**state, "agent": orjson.dumps(per).decode()},
                 b'{"page": 1}', "application/json")
    spor(server, "projections", "rebuild", "all")

    # a dry run: exact counts, nothing changed
    dry = spor(server, "person", "erase", "--store", store, "--person-id", "P-90", "--json")[0]
    assert dry["would_erase"]["statements"] == 3 and dry["person_ids"] == ["P-90"]
    assert get(server, auth, statementId=own[0]).status_code == 200
    assert set(all_ids(server, auth, agent=orjson.dumps(ola).decode())) == {*own[:2], liked, group}

    done = spor(server, "person", "erase", "--store", store, "--person-id", "P-90", "--yes", "--json")[0]
    erased = done["erased"]
    assert erased == {**dry["would_erase"], "statements": 3, "attachments": 1, "activities": 1, "documents": 1,
                      "document_events": 2, "document_contents": 1, "reference_events": 3, "kept_naming_them": {
                          "a Group's statement, the person a member": 1,
                          "context, authority or inside a SubStatement": 1,
                          "refers to a statement about the person": 1}}, erased
    assert erased["names"] == 1  # "Ola", which the account's statements gave
    # their own statements are gone, by id and by every filter
    for sid in own:
        assert get(server, auth, statementId=sid).status_code == 404
    for who in (ola, {"mbox": MAIL}):
        assert all_ids(server, auth, agent=orjson.dumps(who).decode(), related_agents="true") == []
    # everyone else's stay whole, and paging runs across the gaps
    assert set(all_ids(server, auth, agent=orjson.dumps(per).decode(), related_agents="true")) == {
        instructed, group, liked, unrelated}
    kept = get(server, auth, statementId=instructed).json()
    assert kept["context"]["instructor"]["account"]["name"] == "emp-ola"  # their content is theirs
    assert not db(server, "SELECT 1 FROM attachments WHERE sha2 = $1", hashlib.sha256(certificate).hexdigest())
    r = httpx.get(server.base_url + "/xapi/activities/state", params=state, auth=auth, headers=V, timeout=30)
    assert r.status_code == 404
    # the definition of an activity only their statements named is gone; one others name stays
    # (the Activities resource answers an unknown activity with its id alone)
    for course, defined in (("fire-safety", False), ("hand-hygiene", True)):
        r = httpx.get(server.base_url + "/xapi/activities", params={"activityId": f"https://courses.example.org/{course}"},
                      auth=auth, headers=V, timeout=30)
        assert r.status_code == 200 and ("definition" in r.json()) == defined, (course, r.text)
    r = httpx.get(server.base_url + "/xapi/activities/state", params={**state, "agent": orjson.dumps(per).decode()},
                  auth=auth, headers=V, timeout=30)
    assert r.status_code == 200 and r.json() == {"page": 1}
    # the log holds the erasure's event, with counts and no identifier
    [event] = db(server, "SELECT e.payload::text AS payload FROM events e JOIN stores s ON s.id = e.store_id "
                         "WHERE s.name = $1 AND e.kind = 'person.erased'", store)
    assert orjson.loads(event["payload"])["statements"] == 3
    assert not any(who in event["payload"] for who in ("emp-ola", "P-90", "example.org"))
    # the read models were rebuilt without them; the audit trail keeps the erasure
    out = tmp_path / "after.json"
    spor(server, "person", "export", "--store", store, "--agent", OLA_KEY, "--out", str(out))
    after = orjson.loads(out.read_bytes())
    assert after["readModels"]["transcript"] == [] and after["documents"] == [] and after["referenceData"] == []
    assert {s["statement"]["id"] for s in after["statements"]} == set()
    trail = spor(server, "audit", "--person", OLA_KEY, "--json")
    assert any(r["action"] == "person.erase" and r["records"] == 3 for r in trail)
    # the person may come back: a new statement of theirs is stored and found
    [again] = post(server, auth, [statement("ola")])
    assert all_ids(server, auth, agent=orjson.dumps(ola).decode()) == [again]


def test_an_erasure_needs_someone_to_erase(server: Server) -> None:
    """Named nobody: refused before any database work (the usage line)."""
    err = spor_refused(server, "person", "erase", "--store", "default", "--yes")
    assert "usage: spor person erase" in err


def test_an_erasure_leaves_others_records_as_they_were(server: Server, tmp_path: Path) -> None:
    """Found by two reviews of the erasure: the person's voiding of a colleague's statement, a
    colleague's statement about the person, and a colleague's statements and documents under an
    address someone else also held stay, findable by it; an address whose newest link or unlink
    is the person's is nobody's afterwards, not the colleague's again; an identifier named with
    --agent stands for itself, never for the person who holds it now; a colleague's reference
    to an erased statement keeps only its own terms, and the private activity it named goes."""
    old_address, taken, gone = "mailto:old.box@example.org", "mailto:taken.box@example.org", "mailto:gone@example.org"
    store, auth = store_with_person(server, tmp_path, f"P-91,{OLA_KEY};{old_address}")
    per, ola = agent("per"), agent("ola")
    import_people(server, tmp_path, store, "per",
                  f"person_id,identifiers\nP-92,account:{HOMEPAGE}|emp-per;{taken};{gone}\n")
    [per_done, per_taken] = post(server, auth, [statement("per"), {**statement("per"), "actor": {"mbox": taken}}])
    # addresses move: Per's two to Ola (no unlink between), Ola's old one to Per; then Ola's
    # second is unlinked from her
    import_people(server, tmp_path, store, "moves", f"person_id,identifiers\nP-91,{taken};{gone}\nP-92,{old_address}\n")
    import_people(server, tmp_path, store, "unlink", f"person_id,unlink\nP-91,{gone}\n")
    portfolio = {"objectType": "Activity", "id": "https://portfolio.example.org/ola",
                 "definition": {"name": {"nb-NO": "Olas refleksjonslogg"}}}
    [voiding, assessed, ola_own, reflection, per_old] = post(server, auth, [
        {"actor": ola, "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
         "object": {"objectType": "StatementRef", "id": per_done}},
        {"actor": per, "verb": {"id": "http://example.org/verbs/assessed"}, "object": ola},
        statement("ola"),
        {"actor": ola, "verb": {"id": "http://example.org/verbs/wrote"}, "object": portfolio},
        {**statement("per"), "actor": {"mbox": old_address}}])
    [liked] = post(server, auth, [{"actor": per, "verb": {"id": "http://example.org/verbs/liked"},
                                   "object": {"objectType": "StatementRef", "id": reflection}}])
    per_state = {"activityId": "https://courses.example.org/hand-hygiene",
                 "agent": orjson.dumps({"mbox": old_address}).decode(), "stateId": "bookmark"}
    put_document(server, auth, "activities/state", per_state, b'{"page": 3}', "application/json")

    # the former address, named: it stands for itself; Per, who holds it now, is not erased
    dry = spor(server, "person", "erase", "--store", store, "--person-id", "P-91", "--agent", old_address,
               "--json")[0]
    assert dry["person_ids"] == ["P-91"] and f"account:{HOMEPAGE}|emp-per" not in dry["identifiers"]
    done = spor(server, "person", "erase", "--store", store, "--person-id", "P-91", "--agent", old_address,
                "--yes", "--json")[0]
    assert done["erased"]["statements"] == 2, done  # ola_own and the reflection
    assert done["erased"]["activities"] == 1 and done["erased"]["documents"] == 0
    assert done["erased"]["kept_naming_them"] == {
        "the person's voiding of another's statement": 1, "another's statement about them (as object)": 1,
        "under an identifier someone else has also held": 2, "refers to a statement about the person": 1}
    assert set(done["identifiers_someone_else_also_held"]) >= {"mbox:" + taken, "mbox:" + old_address}
    for erased_id in (ola_own, reflection):
        assert get(server, auth, statementId=erased_id).status_code == 404
    # Per's statement stays voided, by a voiding that stays; Per's others stay as they were
    assert get(server, auth, statementId=per_done).status_code == 404
    assert get(server, auth, voidedStatementId=per_done).status_code == 200
    for kept in (voiding, assessed, per_taken, per_old, liked):
        assert get(server, auth, statementId=kept).status_code == 200, kept
    # kept under an address someone else also held: still found by it, its document too
    assert all_ids(server, auth, agent=orjson.dumps({"mbox": taken}).decode()) == [per_taken]
    assert all_ids(server, auth, agent=orjson.dumps({"mbox": old_address}).decode()) == [per_old]
    r = httpx.get(server.base_url + "/xapi/activities/state", params=per_state, auth=auth, headers=V, timeout=30)
    assert r.status_code == 200 and r.json() == {"page": 3}
    # the reference to the erased reflection keeps its own terms: not found by the private
    # activity, whose definition is gone
    assert all_ids(server, auth, activity=portfolio["id"], related_activities="true") == []
    assert liked in all_ids(server, auth, agent=orjson.dumps(per).decode())
    r = httpx.get(server.base_url + "/xapi/activities", params={"activityId": portfolio["id"]}, auth=auth,
                  headers=V, timeout=30)
    assert "definition" not in r.json()
    # the taken and the unlinked address are nobody's now: not given back to Per, in the log or
    # the read models
    for address in (taken, gone):
        assert not db(server, "SELECT 1 FROM rm_transcript.links WHERE ifi = $1", "mbox:" + address), address
        assert not db(server, "SELECT 1 FROM projections.reference_keys WHERE key = $1", "mbox:" + address)
    per_links = db(server, "SELECT ifi FROM rm_transcript.links WHERE person_id = 'P-92'")
    assert {r["ifi"] for r in per_links} >= {f"account:{HOMEPAGE}|emp-per", "mbox:" + old_address}


def test_an_identifier_only_the_person_held_is_erased_by_itself(server: Server, tmp_path: Path) -> None:
    """Named with --agent alone, an address once linked to one person only (since unlinked) is
    erased: no one else could have sent its statements."""
    only = "mailto:only.mine@example.org"
    store, auth = store_with_person(server, tmp_path, f"P-93,account:{HOMEPAGE}|emp-una;{only}")
    import_people(server, tmp_path, store, "unlink", f"person_id,unlink\nP-93,{only}\n")
    [under_it, kept] = post(server, auth, [{**statement("una"), "actor": {"mbox": only}}, statement("una")])
    done = spor(server, "person", "erase", "--store", store, "--agent", only, "--yes", "--no-rebuild", "--json")[0]
    assert done["erased"]["statements"] == 1 and done["identifiers_someone_else_also_held"] == []
    assert get(server, auth, statementId=under_it).status_code == 404
    assert get(server, auth, statementId=kept).status_code == 200


def test_a_second_erasure_does_not_bring_back_the_first(server: Server, tmp_path: Path) -> None:
    """A review: Ola voided Per's statement; Ola was erased (her voiding stays, without her
    terms); then Per was erased, and the voiding, refreshed as a statement referring to Per's,
    got Ola's agent term back from its body: the filters found it by Ola again."""
    store, auth = store_with_person(server, tmp_path, f"P-94,{OLA_KEY}")
    import_people(server, tmp_path, store, "per", f"person_id,identifiers\nP-95,account:{HOMEPAGE}|emp-per\n")
    ola = agent("ola")
    [pers] = post(server, auth, [statement("per")])
    [voiding] = post(server, auth, [{"actor": ola, "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
                                     "object": {"objectType": "StatementRef", "id": pers}}])
    by_ola = orjson.dumps(ola).decode()
    assert all_ids(server, auth, agent=by_ola) == [voiding]
    spor(server, "person", "erase", "--store", store, "--person-id", "P-94", "--yes", "--no-rebuild", "--json")
    assert all_ids(server, auth, agent=by_ola) == []
    done = spor(server, "person", "erase", "--store", store, "--person-id", "P-95", "--yes", "--no-rebuild",
                "--json")[0]
    assert done["erased"]["statements"] == 1
    assert all_ids(server, auth, agent=by_ola, related_agents="true") == []
    assert get(server, auth, statementId=voiding).status_code == 200
    [row] = db(server, "SELECT s.terms::text AS terms FROM statements s JOIN stores t ON t.id = s.store_id "
                       "WHERE t.name = $1 AND s.statement_id = $2::uuid", store, voiding)
    assert "emp-ola" not in row["terms"]
