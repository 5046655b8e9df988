"""`spor person export`: an access request answered from a running server's database. Made-up
people only: every statement, document and read about the person is in the file, and nothing
about a colleague who only shares a course."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.acceptance.test_admin_cli import new_store, spor, spor_refused
from tests.acceptance.test_statements_attachments import attachment_object, multipart
from tests.conftest import ROOT, Server
from tests.statements import HOMEPAGE, agent, statement

V = {"X-Experience-API-Version": "2.0.0"}
MAIL = "mailto:Ola.Tester@Example.org"


def post(server: Server, auth: tuple[str, str], stmts: Any) -> list[str]:
    r = httpx.post(server.base_url + "/xapi/statements", json=stmts, auth=auth, headers=V, timeout=30)
    assert r.status_code == 200, r.text
    ids: list[str] = r.json()
    return ids


def post_certificate(server: Server, auth: tuple[str, str], certificate: bytes) -> str:
    """Ola's completion with a PDF attached (multipart/mixed); its id."""
    with_file = {**statement("ola", activity="fire-safety"),
                 "attachments": [attachment_object(certificate, content_type="application/pdf")]}
    body, ctype = multipart(with_file, [(certificate, "application/pdf")])
    r = httpx.post(server.base_url + "/xapi/statements", content=body, auth=auth,
                   headers={**V, "Content-Type": ctype}, timeout=30)
    assert r.status_code == 200, r.text
    [sid] = r.json()
    return str(sid)


def put_document(server: Server, auth: tuple[str, str], path: str, params: dict[str, str], body: bytes,
                 ctype: str) -> None:
    """Create a document (If-None-Match: *, which a profile's PUT must carry)."""
    r = httpx.put(server.base_url + "/xapi/" + path, params=params, content=body, auth=auth,
                  headers={**V, "Content-Type": ctype, "If-None-Match": "*"}, timeout=30)
    assert r.status_code == 204, r.text


def import_people(server: Server, tmp_path: Path, store: str, name: str, text: str) -> None:
    """Import a people file (``text``, CSV) into ``store``."""
    people = tmp_path / f"{name}.csv"
    people.write_text(text)
    spor(server, "import", "people", str(people), "--store", store)


def store_with_person(server: Server, tmp_path: Path, person: str) -> tuple[str, tuple[str, str]]:
    """A new store, a credential of it, the example organisation and one person (``person``: the
    people file's person_id and identifiers columns)."""
    store = new_store(server)
    made = spor(server, "credential", "create", "--store", store, "--json")[0]
    spor(server, "import", "org", str(ROOT / "docs/examples/org.csv"), "--store", store)
    import_people(server, tmp_path, store, "people",
                  "person_id,identifiers,employment_id,unit_id,role,profession,valid_from,valid_to\n"
                  f"{person},E1,900111,nurse,sykepleier,2022-01-01,\n")
    return store, (made["key"], made["secret"])


def test_an_access_request_gets_everything_about_the_person_and_nothing_else(server: Server, tmp_path: Path) -> None:
    # the person: P-77 with an account and an e-mail address (reference data)
    store, auth = store_with_person(server, tmp_path, f"P-77,account:{HOMEPAGE}|emp-ola;{MAIL}")

    ola = agent("ola")
    by_mail = {"objectType": "Agent", "name": "Ola T", "mbox": MAIL}
    sha1 = hashlib.sha1(b"mailto:Ola.Tester@example.org").hexdigest()  # the domain as compared: lowered
    colleague = agent("per")
    own_ids = post(server, auth, [statement("ola", activity="hand-hygiene"),
                                  {**statement("kari"), "actor": by_mail},
                                  {**statement("kari"), "actor": {"objectType": "Agent", "mbox_sha1sum": sha1}},
                                  {**statement("per"), "actor": {"objectType": "Group", "name": "Team",
                                                                 "member": [colleague, ola]}}])
    related = post(server, auth, [statement("per", context={"instructor": ola})])
    refers = post(server, auth, [{"actor": colleague, "verb": {"id": "http://example.org/verbs/liked"},
                                  "object": {"objectType": "StatementRef", "id": own_ids[0]}}])
    unrelated = post(server, auth, [statement("per", activity="hand-hygiene")])
    voiding = post(server, auth, [{"actor": agent("admin"), "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
                                   "object": {"objectType": "StatementRef", "id": own_ids[1]}}])
    # a statement with an attachment
    certificate = b"%PDF-1.4 made-up certificate"
    attached = [post_certificate(server, auth, certificate)]

    # documents: the person's state (written twice), an agent profile by e-mail, a colleague's state
    activity = "https://courses.example.org/hand-hygiene"
    state = {"activityId": activity, "agent": orjson.dumps(ola).decode(), "stateId": "bookmark"}
    put_document(server, auth, "activities/state", state, b'{"page": 1}', "application/json")
    r = httpx.post(server.base_url + "/xapi/activities/state", params=state, content=b'{"page": 2}', auth=auth,
                   headers={**V, "Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 204, r.text  # a merge
    put_document(server, auth, "agents/profile", {"agent": orjson.dumps(by_mail).decode(), "profileId": "prefs"},
                 b"lang=nb", "text/plain")
    put_document(server, auth, "activities/state",
                 {**state, "agent": orjson.dumps(colleague).decode()}, b'{"page": 9}', "application/json")
    # a read of the person's statements, which the audit trail keeps
    r = httpx.get(server.base_url + "/xapi/statements", params={"agent": orjson.dumps(ola).decode()},
                  auth=auth, headers=V, timeout=30)
    assert r.status_code == 200
    # a read of the same person in another organisation's store: that store's to answer for
    elsewhere = new_store(server)
    other = spor(server, "credential", "create", "--store", elsewhere, "--json")[0]
    r = httpx.get(server.base_url + "/xapi/statements", params={"agent": orjson.dumps(ola).decode()},
                  auth=(other["key"], other["secret"]), headers=V, timeout=30)
    assert r.status_code == 200
    spor(server, "projections", "rebuild", "all")

    out = tmp_path / "ola.json"
    summary = spor(server, "person", "export", "--store", store, "--agent", f"account:{HOMEPAGE}|emp-ola",
                   "--out", str(out), "--json")[0]
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    doc = orjson.loads(out.read_bytes())

    # who: the account asked for, the address linked to the same person, its sha1 form
    assert doc["export"]["personIds"] == ["P-77"]
    assert set(doc["export"]["identifiers"]) == {f"account:{HOMEPAGE}|emp-ola", "mbox:mailto:Ola.Tester@example.org",
                                                  f"sha1:{sha1}",
                                                  "sha1:" + hashlib.sha1(b"mailto:ola.tester@example.org").hexdigest()}
    about = {s["statement"]["id"]: s for s in doc["statements"]}
    assert set(about) == {*own_ids, *related, *refers, *voiding, *attached}
    assert not set(unrelated) & set(about)
    for sid in own_ids + attached:
        assert about[sid]["about"] == "actor or object", about[sid]
    assert about[related[0]]["about"] == "context, authority or inside a SubStatement"
    assert about[refers[0]]["about"] == about[voiding[0]]["about"] == "refers to a statement about the person"
    assert about[own_ids[1]]["voided"] is True and about[own_ids[0]]["voided"] is False
    assert about[own_ids[0]]["statement"]["stored"]  # the body as stored
    [att] = doc["attachments"]
    assert att["contentType"] == "application/pdf" and att["length"] == len(certificate)
    assert att["sha2"] == hashlib.sha256(certificate).hexdigest()
    assert base64.b64decode(att["contentBase64"]) == certificate

    docs = {(d["resource"], d["id"]): d for d in doc["documents"]}
    assert set(docs) == {("state", "bookmark"), ("agent_profile", "prefs")}, docs
    bookmark = next(d for d in doc["documents"] if d["id"] == "bookmark")
    assert orjson.loads(bookmark["contentText"]) == {"page": 2}  # JSON as the text stored
    prefs = next(d for d in doc["documents"] if d["id"] == "prefs")
    assert prefs["contentText"] == "lang=nb"
    assert sorted(e["kind"] for e in doc["documentHistory"]) == ["document.merge", "document.put", "document.put"]
    # the earlier version of the state, which Spor still holds
    assert [v["contentText"] for v in doc["documentVersions"]] == ['{"page": 1}']
    assert "Ola T" in {n["name"] for n in doc["names"]}
    assert {e["kind"] for e in doc["referenceData"]} == {"person.linked", "person.employment"}
    # the voided completion is not on the transcript; the one under the address's sha1 form is
    # (found by that identifier, which links to no one)
    assert {t["statement_id"] for t in doc["readModels"]["transcript"]} == {own_ids[0], own_ids[2], attached[0]}
    assert {c["requirement_id"] for c in doc["readModels"]["compliance"]} == set()  # no requirement imported
    assert [(r["action"], r["store"]) for r in doc["reads"]] == [("statements.query", store)]
    facts = doc["readModels"]["courseStatusFacts"]
    assert facts and {f["statement_id"] for f in facts} <= {*own_ids, *attached}
    assert doc["counts"]["statements"] == len(about) == summary["statements"]
    assert doc["counts"]["voided"] == 1
    # nothing of the colleague's own document
    assert b'"page":9' not in out.read_bytes().replace(b" ", b"")

    # the export is in the audit trail, found by any identifier it covered
    trail = spor(server, "audit", "--person", "mbox:mailto:Ola.Tester@example.org", "--json")
    assert any(r["action"] == "person.export" and r["records"] == len(about) for r in trail)
    # the same file again is refused, and leaves it as it was
    before = out.read_bytes()
    err = spor_refused(server, "person", "export", "--store", store, "--person-id", "P-77", "--out", str(out))
    assert "exists already" in err and out.read_bytes() == before


def test_the_person_may_be_named_by_person_id_and_bad_arguments_are_refused(server: Server, tmp_path: Path) -> None:
    store, auth = store_with_person(server, tmp_path, f"P-78,account:{HOMEPAGE}|emp-siri")
    # more than a page (500) of statements, each once and in the order they were stored
    sids = [sid for _ in range(3) for sid in post(server, auth, [statement("siri") for _ in range(400)])]
    out = tmp_path / "siri.json"
    spor(server, "person", "export", "--store", store, "--person-id", "P-78", "--out", str(out))
    doc = orjson.loads(out.read_bytes())
    assert [s["statement"]["id"] for s in doc["statements"]] == sids
    assert doc["export"]["identifiers"] == [f"account:{HOMEPAGE}|emp-siri"]

    missing = tmp_path / "none.json"
    err = spor_refused(server, "person", "export", "--store", store, "--agent", "siri", "--out", str(missing))
    assert "--agent 'siri': not an identifier" in err and not missing.exists()
    err = spor_refused(server, "person", "export", "--store", "no-such-" + uuid.uuid4().hex[:6],
                       "--person-id", "P-78", "--out", str(missing))
    assert "no store named" in err and not missing.exists()  # no half-written file is left
    err = spor_refused(server, "person", "export", "--store", store, "--out", str(missing))
    assert "usage: spor person export" in err


def test_an_address_given_to_someone_else_since_is_listed_not_searched(server: Server, tmp_path: Path) -> None:
    """An address linked to the person once and now to a new colleague: its statements may be
    the colleague's, so the export names the address apart and holds none of them; nor does it
    hold the colleague's link of it."""
    shared = "mailto:vikar@example.org"
    store, auth = store_with_person(server, tmp_path, f"P-80,account:{HOMEPAGE}|emp-liv;{shared}")
    [before] = post(server, auth, [{**statement("liv"), "actor": {"mbox": shared}}])
    import_people(server, tmp_path, store, "moves", f"person_id,unlink\nP-80,{shared}\n")
    import_people(server, tmp_path, store, "newcomer", f"person_id,identifiers\nP-81,{shared}\n")
    [after] = post(server, auth, [{**statement("per"), "actor": {"mbox": shared}}])
    [own] = post(server, auth, [statement("liv")])

    out = tmp_path / "liv.json"
    spor(server, "person", "export", "--store", store, "--person-id", "P-80", "--out", str(out))
    doc = orjson.loads(out.read_bytes())
    assert doc["export"]["identifiers"] == [f"account:{HOMEPAGE}|emp-liv"]
    assert doc["export"]["formerIdentifiers"]["identifiers"] == ["mbox:" + shared]
    assert [s["statement"]["id"] for s in doc["statements"]] == [own]
    assert {e["event"]["person_id"] for e in doc["referenceData"]} == {"P-80"}
    # asked for by the address itself: whoever holds it now, with their statements under it
    by_address = tmp_path / "vikar.json"
    spor(server, "person", "export", "--store", store, "--agent", shared, "--out", str(by_address))
    doc = orjson.loads(by_address.read_bytes())
    assert doc["export"]["personIds"] == ["P-81"]
    assert {s["statement"]["id"] for s in doc["statements"]} == {before, after}


def test_a_relinked_address_a_hashed_one_and_an_unknown_person(server: Server, tmp_path: Path) -> None:
    """An address linked to another person with no unlink between (the newest link wins) is
    the other's now, and takes nobody of theirs into the file (a review found their statements
    and documents in it). An mbox_sha1sum given alone finds the person through the read models'
    links; the hash of the address as the client typed it is looked for too. A person id the
    store never heard of is refused, not answered with an empty file."""
    shared = "mailto:Delt.Adresse@Example.org"
    store, auth = store_with_person(server, tmp_path, f"P-82,account:{HOMEPAGE}|emp-ada;{shared}")
    import_people(server, tmp_path, store, "relink",
                  f"person_id,identifiers\nP-83,account:{HOMEPAGE}|emp-bo;{shared}\n")
    bo = agent("bo")
    [bo_own] = post(server, auth, [statement("bo")])
    put_document(server, auth, "agents/profile", {"agent": orjson.dumps(bo).decode(), "profileId": "notes"},
                 b"bo's own notes", "text/plain")
    typed_hash = hashlib.sha1(shared.encode()).hexdigest()  # capitals as typed
    [ada_own, ada_hashed] = post(server, auth, [statement("ada"),
                                                {**statement("ada"), "actor": {"mbox_sha1sum": typed_hash}}])
    spor(server, "projections", "rebuild", "all")

    out = tmp_path / "ada.json"
    spor(server, "person", "export", "--store", store, "--person-id", "P-82", "--out", str(out))
    doc = orjson.loads(out.read_bytes())
    assert doc["export"]["personIds"] == ["P-82"]
    assert doc["export"]["identifiers"] == [f"account:{HOMEPAGE}|emp-ada"]
    assert doc["export"]["formerIdentifiers"]["identifiers"] == ["mbox:mailto:Delt.Adresse@example.org"]
    assert [s["statement"]["id"] for s in doc["statements"]] == [ada_own]
    assert doc["documents"] == [] and b"bo's own notes" not in out.read_bytes()

    # the address as typed: whoever holds it now (P-83), with the statement hashed from those capitals
    typed = tmp_path / "typed.json"
    spor(server, "person", "export", "--store", store, "--agent", shared, "--out", str(typed))
    doc = orjson.loads(typed.read_bytes())
    assert doc["export"]["personIds"] == ["P-83"]
    assert {s["statement"]["id"] for s in doc["statements"]} == {bo_own, ada_hashed}
    # a hash alone (of the key's form, which the read models link): P-83 and all of theirs
    key_hash = hashlib.sha1(b"mailto:Delt.Adresse@example.org").hexdigest()
    hashed = tmp_path / "hashed.json"
    spor(server, "person", "export", "--store", store, "--agent", orjson.dumps({"mbox_sha1sum": key_hash}).decode(),
         "--out", str(hashed))
    doc = orjson.loads(hashed.read_bytes())
    assert doc["export"]["personIds"] == ["P-83"]
    assert bo_own in {s["statement"]["id"] for s in doc["statements"]}

    # beside the person's id, the former address stands for itself: its statements, not its
    # holder's others (a review: it brought in the whole of P-83)
    beside = tmp_path / "beside.json"
    spor(server, "person", "export", "--store", store, "--person-id", "P-82", "--agent", shared, "--out", str(beside))
    doc = orjson.loads(beside.read_bytes())
    assert doc["export"]["personIds"] == ["P-82"]
    assert {s["statement"]["id"] for s in doc["statements"]} == {ada_own, ada_hashed}
    nobody = tmp_path / "nobody.json"
    err = spor_refused(server, "person", "export", "--store", store, "--person-id", "P-8x", "--out", str(nobody))
    assert "no person 'P-8x' in this store's reference data" in err and not nobody.exists()
