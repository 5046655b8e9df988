"""`spor store|credential|audit` against the database of a running server: secrets shown once,
JSON for scripts, and revocation, expiry and rotation effective on the very next request."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from typing import Any

import httpx
import orjson

from tests.conftest import ROOT, Server
from tests.statements import statement

V = {"X-Experience-API-Version": "2.0.0"}


def spor(server: Server, *args: str) -> Any:
    env = {**os.environ, "SPOR_DATABASE_URL": server.database_url, "SPOR_PUBLIC_URL": server.base_url}
    proc = subprocess.run([sys.executable, "-m", "lrs.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return orjson.loads(proc.stdout) if "--json" in args else proc.stdout


def spor_refused(server: Server, *args: str) -> str:
    """Run a `spor` command that must fail; what it printed on stderr."""
    env = {**os.environ, "SPOR_DATABASE_URL": server.database_url, "SPOR_PUBLIC_URL": server.base_url}
    proc = subprocess.run([sys.executable, "-m", "lrs.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0, proc.stdout
    return proc.stderr


def status(server: Server, auth: tuple[str, str], method: str = "GET") -> int:
    if method == "POST":
        r = httpx.post(server.base_url + "/xapi/statements", json=statement(), auth=auth, headers=V, timeout=30)
    else:
        r = httpx.get(server.base_url + "/xapi/statements", params={"limit": "1"}, auth=auth, headers=V, timeout=30)
    return r.status_code


def new_store(server: Server) -> str:
    name = "cli-" + uuid.uuid4().hex[:8]
    out = spor(server, "store", "create", name, "--organisation", "Testsykehuset HF", "--region", "sor-ost", "--json")
    assert out[0]["name"] == name
    return name


def test_store_and_credential_lifecycle(server: Server) -> None:
    store = new_store(server)
    assert store in {s["name"] for s in spor(server, "store", "list", "--json")}
    created = spor(server, "credential", "create", "--store", store, "--label", "kursbyggeren", "--json")[0]
    auth = (created["key"], created["secret"])
    assert status(server, auth) == 200

    listed = spor(server, "credential", "list", "--json")
    mine = [c for c in listed if c["key"] == created["key"]]
    assert mine and "secret" not in mine[0] and "secret_hash" not in mine[0]
    assert created["secret"] not in spor(server, "credential", "list")  # the table view

    spor(server, "credential", "revoke", "--key", created["key"], "--json")
    assert status(server, auth) == 401  # the next request, no restart


def test_a_regional_credential_must_name_its_own_store_s_region(server: Server) -> None:
    """A regional credential reads the stores of its region. One naming another region than its
    store's was created, and read that region's personal records (a probe: a nord store's
    credential read sor-ost's compliance rows); a misspelt region read only its own store. Both
    are refused, naming the store's region; the right one is made."""
    store = new_store(server)  # region sor-ost
    for region in ("nord", "sor-oest"):
        err = spor_refused(server, "credential", "create", "--store", store, "--region", region, "--json")
        assert f"is in region 'sor-ost', not '{region}'" in err, err
    made = spor(server, "credential", "create", "--store", store, "--region", "sor-ost", "--json")[0]
    assert status(server, (made["key"], made["secret"])) == 200


def test_a_credential_that_would_expire_in_the_past_is_refused(server: Server) -> None:
    """--expires 2020-01-01 made a credential that never worked, without a word (a probe)."""
    store = new_store(server)
    err = spor_refused(server, "credential", "create", "--store", store, "--expires", "2020-01-01T00:00:00Z", "--json")
    assert "is in the past" in err, err
    assert spor(server, "credential", "create", "--store", store, "--expires", "90d", "--json")[0]["key"]


def test_scoped_credential_can_only_do_what_its_scope_allows(server: Server) -> None:
    store = new_store(server)
    writer = spor(server, "credential", "create", "--store", store, "--scope", "statements/write", "--json")[0]
    reader = spor(server, "credential", "create", "--store", store, "--scope", "statements/read", "--json")[0]
    assert status(server, (writer["key"], writer["secret"]), "POST") == 200
    assert status(server, (writer["key"], writer["secret"])) == 403
    assert status(server, (reader["key"], reader["secret"])) == 200
    assert status(server, (reader["key"], reader["secret"]), "POST") == 403


def test_an_expired_credential_is_refused(server: Server) -> None:
    store = new_store(server)
    c = spor(server, "credential", "create", "--store", store, "--expires", "2s", "--json")[0]
    for _ in range(150):  # up to 15 s: expired after 2
        if status(server, (c["key"], c["secret"])) == 401:
            break
        time.sleep(0.1)
    assert status(server, (c["key"], c["secret"])) == 401


def test_rotation_gives_a_new_secret_and_retires_the_old_one(server: Server) -> None:
    store = new_store(server)
    old = spor(server, "credential", "create", "--store", store, "--json")[0]
    new = spor(server, "credential", "rotate", "--key", old["key"], "--json")[0]
    assert new["key"] != old["key"] and new["replaces"] == old["key"]
    assert status(server, (new["key"], new["secret"])) == 200
    assert status(server, (old["key"], old["secret"])) == 401


def test_a_rotated_credential_is_the_same_authority_and_voids_and_reads_what_it_stored_before(
        server: Server) -> None:
    """Rotation changes the secret, not the source: its statements keep their authority, so the
    new key may void them without scope all and reads them with statements/read/mine."""
    store = new_store(server)
    old = spor(server, "credential", "create", "--store", store, "--scope", "statements/write",
               "--scope", "statements/read/mine", "--json")[0]
    before = {**statement(), "id": str(uuid.uuid4())}
    r = httpx.post(server.base_url + "/xapi/statements", json=before, auth=(old["key"], old["secret"]), headers=V)
    assert r.status_code == 200
    new = spor(server, "credential", "rotate", "--key", old["key"], "--json")[0]
    auth = (new["key"], new["secret"])
    got = httpx.get(server.base_url + "/xapi/statements", params={"statementId": before["id"]}, auth=auth, headers=V)
    assert got.status_code == 200 and got.json()["authority"]["account"]["name"] == old["key"]
    voiding = {"actor": {"mbox": "mailto:lms@example.org"}, "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
               "object": {"objectType": "StatementRef", "id": before["id"]}}
    r = httpx.post(server.base_url + "/xapi/statements", json=voiding, auth=auth, headers=V)
    assert r.status_code == 200, r.text


def test_rotation_with_a_grace_period_keeps_the_old_key_working_for_now(server: Server) -> None:
    store = new_store(server)
    old = spor(server, "credential", "create", "--store", store, "--json")[0]
    spor(server, "credential", "rotate", "--key", old["key"], "--grace", "1h", "--json")
    assert status(server, (old["key"], old["secret"])) == 200


def test_unknown_scope_is_refused_by_the_cli(server: Server) -> None:
    env = {**os.environ, "SPOR_DATABASE_URL": server.database_url}
    proc = subprocess.run([sys.executable, "-m", "lrs.cli", "credential", "create", "--store", "default",
                           "--scope", "everything"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "unknown scope" in proc.stderr


def test_audit_lists_the_reads_of_a_credential(server: Server) -> None:
    store = new_store(server)
    c = spor(server, "credential", "create", "--store", store, "--json")[0]
    assert status(server, (c["key"], c["secret"])) == 200
    rows = spor(server, "audit", "--credential", c["key"], "--json")
    assert rows and rows[0]["action"] == "statements.query" and rows[0]["store"] == store
    assert "credential" in spor(server, "audit", "--credential", c["key"]).splitlines()[0].lower()


def test_without_the_define_scope_statements_do_not_change_canonical_definitions(server: Server) -> None:
    store = new_store(server)
    writer = spor(server, "credential", "create", "--store", store, "--scope", "statements/write", "--json")[0]
    admin = spor(server, "credential", "create", "--store", store, "--json")[0]
    activity = f"https://courses.example.org/define-{uuid.uuid4().hex[:6]}"
    s = statement()
    s["object"] = {"id": activity, "definition": {"name": {"en": "Defined by writer"}}}
    r = httpx.post(server.base_url + "/xapi/statements", json=s, auth=(writer["key"], writer["secret"]), headers=V,
                   timeout=30)
    assert r.status_code == 200
    got = httpx.get(server.base_url + "/xapi/activities", params={"activityId": activity},
                    auth=(admin["key"], admin["secret"]), headers=V).json()
    assert "Defined by writer" not in orjson.dumps(got).decode()
    s2 = statement()
    s2["object"] = {"id": activity, "definition": {"name": {"en": "Defined by admin"}}}
    assert httpx.post(server.base_url + "/xapi/statements", json=s2, auth=(admin["key"], admin["secret"]),
                      headers=V).status_code == 200
    got = httpx.get(server.base_url + "/xapi/activities", params={"activityId": activity},
                    auth=(admin["key"], admin["secret"]), headers=V).json()
    assert got["definition"]["name"] == {"en": "Defined by admin"}


def test_a_database_that_cannot_be_reached_is_one_line_not_a_traceback() -> None:
    """An interrupted `spor projections rebuild` ended in asyncpg's traceback (an ops audit):
    the administration commands say in one line that the database went away, and fail."""
    env = {**os.environ, "SPOR_DATABASE_URL": "postgresql://spor:none@127.0.0.1:1/spor"}
    for args in (("projections", "rebuild", "all"), ("projections", "status"), ("store", "list")):
        proc = subprocess.run([sys.executable, "-m", "lrs.cli", *args], env=env, cwd=ROOT, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
        assert proc.stderr.strip().endswith("run the command again once it is back"), proc.stderr
        assert "could not be reached or went away (ConnectionRefusedError)" in proc.stderr
