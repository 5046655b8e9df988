"""The analyst API, mounted at /api in the real application: authentication, transcripts with
linked identifiers and voiding, compliance rows and roll-ups with small-group suppression,
paging, CSV export and the OpenAPI description."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import csv
import hashlib
import io
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest

from lrs.app import create_app
from lrs.ops import bootstrap
from lrs.settings import Settings
from lrs.store.credentials import PgCredentialRepository
from lrs.store.queries import sql
from projections import api, reference, runner
from projections.facts import PERSON_LINKED
from projections.models import ALL
from projections.reference import identifier_key
from tests.conftest import ROOT, Server, make_tenant

EXAMPLES = ROOT / "docs" / "examples"
HEADERS = {"X-Experience-API-Version": "1.0.3"}


@contextlib.asynccontextmanager
async def _app(db_url: str, settings: Settings | None = None) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app((settings or Settings.from_env()).with_(database_url=db_url))
    app.router.routes.append(api.mount())  # the line lrs/app.py gets
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield client


async def _import_examples(db_url: str, store_ids: list[int]) -> None:
    """The example org, people and requirements files (docs/examples) into each store."""
    pc = await runner.connect(db_url)
    try:
        for sid in store_ids:
            for kind, file in (("org", "org.csv"), ("people", "people.csv"), ("requirements", "requirements.csv")):
                await reference.import_file(pc, sid, kind, EXAMPLES / file)
    finally:
        await pc.close()


async def _store_with_examples(db_url: str, conn: asyncpg.Connection) -> tuple[str, str]:
    """A new store holding the example reference data; its credential's (key, secret)."""
    tenant = await make_tenant(db_url, "http://testserver")
    sid = await conn.fetchval("SELECT id FROM stores WHERE name = $1", tenant.store)
    await _import_examples(db_url, [sid])
    return tenant.key, tenant.secret


async def _catch_up(db_url: str) -> None:
    """Every read model up to the end of the log."""
    pc = await runner.connect(db_url)
    try:
        for p in ALL.values():
            await runner.catch_up(pc, p)
    finally:
        await pc.close()


def _completion(account: dict, activity: str, ts: str, sid: str | None = None, **result: object) -> dict:
    s = {"id": sid or str(uuid.uuid4()), "actor": {"objectType": "Agent", **account},
         "verb": {"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"en-US": "completed"}},
         "object": {"objectType": "Activity", "id": activity}, "timestamp": ts}
    if result:
        s["result"] = result
    return s


async def test_analyst_api_end_to_end(db_url: str, conn: asyncpg.Connection) -> None:
    auth = await _store_with_examples(db_url, conn)
    kari_emp = {"account": {"homePage": "https://id.example.org", "name": "emp-1001"}}
    kari_mail = {"mbox": "mailto:kari.nordmann@example.org"}
    voided_id = str(uuid.uuid4())
    async with _app(db_url) as client:
        assert (await client.get("/api/v1/compliance")).status_code == 401
        spec = (await client.get("/api/openapi.json")).json()
        assert spec["openapi"].startswith("3.1") and "/v1/compliance/rollup" in spec["paths"]
        posted = await client.post("/xapi/statements", auth=auth, headers=HEADERS, json=[
            _completion(kari_emp, "https://courses.example.org/infosec", "2024-11-02T10:00:00Z",
                        duration="PT20M", success=True, score={"scaled": 0.8}),
            _completion(kari_mail, "https://courses.example.org/hlr", "2024-02-01T08:00:00Z", voided_id),
            _completion(kari_mail, "https://courses.example.org/hlr", "2023-01-15T08:00:00Z"),
        ])
        assert posted.status_code == 200, posted.text
        void = await client.post("/xapi/statements", auth=auth, headers=HEADERS, json={
            "actor": {"objectType": "Agent", "account": {"homePage": "https://id.example.org", "name": "admin"}},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/voided", "display": {"en-US": "voided"}},
            "object": {"objectType": "StatementRef", "id": voided_id}})
        assert void.status_code == 200, void.text
        await _catch_up(db_url)

        t = (await client.get("/api/v1/transcripts/P-0001", auth=auth)).json()
        # both identifiers count for the person; the voided completion is gone
        assert [(i["activity_id"], i["completed_at"][:10]) for i in t["items"]] == [
            ("https://courses.example.org/hlr", "2023-01-15"), ("https://courses.example.org/infosec", "2024-11-02")]
        assert t["items"][1]["expires_on"] == "2025-11-02"
        assert t["items"][1]["duration_s"] == 1200 and t["items"][1]["score"] == 0.8

        rows = (await client.get("/api/v1/compliance", auth=auth,
                          params={"as_of": "2025-01-01", "person": "P-0001"})).json()["items"]
        status = {r["requirement_id"]: r["status"] for r in rows}
        # infosec done 2024-11-02 (valid a year); HLR 2023-01-15, valid 730 days: expiring in the
        # 30-day window; medication never done; fire never done
        assert status == {"infosec": "valid", "cpr-hlr": "expiring", "medication": "missing", "fire": "missing"}

        page = (await client.get("/api/v1/compliance", auth=auth, params={"as_of": "2025-01-01", "limit": 3})).json()
        assert len(page["items"]) == 3 and page["next"] and "after=" in page["next"]
        rest = (await client.get(page["next"], auth=auth)).json()
        skipped = (await client.get("/api/v1/compliance", auth=auth, params={"as_of": "2025-01-01",
                                                                              "offset": 3, "limit": 3})).json()
        assert rest["items"] == skipped["items"] and rest["items"]

        exported = await client.get("/api/v1/compliance", auth=auth, params={"as_of": "2025-01-01", "format": "csv"})
        assert exported.headers["content-type"].startswith("text/csv")
        table = list(csv.DictReader(io.StringIO(exported.text)))
        assert {"person_id", "requirement_id", "status"} <= set(table[0])

        roll = (await client.get("/api/v1/compliance/rollup", auth=auth,
                          params={"as_of": "2025-01-01", "level": "trust"})).json()["items"]
        assert roll and all(r["suppressed"] and r["total"] is None for r in roll)  # groups of 1-2 people

        assert (await client.get("/api/v1/compliance", auth=auth, params={"status": "bogus"})).status_code == 400
        status_rows = (await client.get("/api/v1/projections", auth=auth)).json()["items"]
        assert {r["projection"] for r in status_rows} == set(ALL) and all(r["lag_events"] == 0 for r in status_rows)

        # another store's credential sees none of it (scoped connection + row-level security)
        other = await make_tenant(db_url, "http://testserver")
        assert (await client.get("/api/v1/transcripts/P-0001", auth=(other.key, other.secret))).json()["items"] == []
    audited = await conn.fetch("SELECT action, records FROM audit_log WHERE action = 'analyst.transcript'")
    assert [r["records"] for r in audited] == [2, 0]


def _employed(people: dict[str, int]) -> list[reference.RefEvent]:
    """``n`` people employed in each unit (ids U<unit>-<i>)."""
    return [reference.RefEvent("person.employment", f"U{unit}-{i}\x1fE1", {
        "person_id": f"U{unit}-{i}", "employment_id": "E1", "unit_id": unit, "role": "nurse",
        "profession": "sykepleier", "valid_from": "2020-01-01", "valid_to": None})
        for unit, n in people.items() for i in range(n)]


async def _fire_for_everyone(db_url: str, conn: asyncpg.Connection, tmp_path: Path,
                             people: dict[str, int], catch_up: bool = True) -> tuple[int, tuple[str, str]]:
    """A store with the example org tree, fire safety required of everyone in the region, and
    ``people`` employed per unit (``_employed``), every projection caught up unless not
    ``catch_up``; the store id and a credential of it."""
    tenant = await make_tenant(db_url, "http://testserver")
    sid = await conn.fetchval("SELECT id FROM stores WHERE name = $1", tenant.store)
    pc = await runner.connect(db_url)
    try:
        await reference.import_file(pc, sid, "org", EXAMPLES / "org.csv")
        (tmp_path / "fire.json").write_text(json.dumps([{
            "requirement_id": "fire", "name": "Brannvern", "activity_ids": ["https://courses.example.org/fire"],
            "units": ["900001"], "roles": [], "professions": [], "validity_days": 365}]))
        await reference.import_file(pc, sid, "requirements", tmp_path / "fire.json")
        await reference.append(pc, sid, _employed(people))
        for p in ALL.values() if catch_up else ():
            await runner.catch_up(pc, p)
    finally:
        await pc.close()
    return sid, (tenant.key, tenant.secret)


async def _rollups(client: httpx.AsyncClient, auth: tuple[str, str]) -> list[dict[str | None, dict]]:
    """The fire safety roll-up per unit, trust and region, by group."""
    out = []
    for level in ("unit", "trust", "region"):
        r = await client.get("/api/v1/compliance/rollup", auth=auth,
                             params={"as_of": "2025-01-01", "level": level, "requirement": "fire"})
        out.append({row["group_id"]: row for row in r.json()["items"]})
    return out


async def test_no_small_group_can_be_found_by_subtracting_shown_groups_from_their_total(
        db_url: str, conn: asyncpg.Connection, tmp_path: Path) -> None:
    """Small-group suppression with its complement: a group below the threshold shows no counts,
    and neither does the smallest sibling it needs, so that a total shown one level up minus the
    groups shown below never gives a small group (trust 900010 = 900100 + 900110 + 900111)."""
    people = {"900100": 7, "900111": 6, "900110": 1, "900210": 3}
    _, auth = await _fire_for_everyone(db_url, conn, tmp_path, people)
    async with _app(db_url) as client:
        units, trusts, region = await _rollups(client, auth)
        shown = {g: r["total"] for g, r in units.items() if not r["suppressed"]}
        # 900110 (1 person) is hidden, and with it 900111 (6), the smallest other unit of its trust
        assert shown == {"900100": 7} and units["900100"]["missing"] == 7
        assert all(units[g]["total"] is None for g in ("900110", "900111", "900210"))
        # the trust's total minus what is shown below it is 7 people, not 1
        hidden_in_900010 = sum(people[u] for u in ("900100", "900110", "900111")) - sum(shown.values())
        assert hidden_in_900010 == 7
        # trust 900011 (3 people) is hidden, so its only sibling 900010 is hidden too
        assert trusts["900011"]["suppressed"] and trusts["900010"]["suppressed"]
        assert region["900001"]["total"] == 17 and not region["900001"]["suppressed"]

    # SPOR_SUPPRESSION_THRESHOLD: at 8, the 7 people of 900100 are hidden too
    async with _app(db_url, Settings.from_env({"SPOR_SUPPRESSION_THRESHOLD": "8"})) as client:
        r = await client.get("/api/v1/compliance/rollup", auth=auth,
                             params={"as_of": "2025-01-01", "requirement": "fire"})
        assert all(row["suppressed"] for row in r.json()["items"])


async def test_people_in_no_trust_cannot_be_found_by_subtracting_the_trusts_from_the_region(
        db_url: str, conn: asyncpg.Connection, tmp_path: Path) -> None:
    """Two people employed at the region unit itself belong to no trust. The region's total
    minus the trusts shown, or minus the units shown, must not give their number."""
    people = {"900001": 2, "900100": 7, "900111": 7, "900210": 8}
    _, auth = await _fire_for_everyone(db_url, conn, tmp_path, people)
    async with _app(db_url) as client:
        units, trusts, region = await _rollups(client, auth)
    assert region["900001"]["total"] == 24 and not region["900001"]["suppressed"]
    assert trusts[None]["suppressed"]  # the 2 people in no trust
    shown_trusts = sum(r["total"] for r in trusts.values() if not r["suppressed"])
    shown_units = sum(r["total"] for r in units.values() if not r["suppressed"])
    for revealed in (24 - shown_trusts, 24 - shown_units):
        assert revealed == 0 or revealed >= 5, (trusts, units)
    # the smaller trust is hidden for them, and so is its one unit, which would add up to it
    assert trusts["900011"]["suppressed"] and units["900210"]["suppressed"]
    assert trusts["900010"]["total"] == 14 and units["900100"]["total"] == 7


async def test_a_hidden_trust_cannot_be_found_through_the_row_of_people_in_no_trust(
        db_url: str, conn: asyncpg.Connection, tmp_path: Path) -> None:
    """Seven people at the region unit are shown as the trust level's row without a trust;
    trust 900011 has 3. The region minus the trusts shown minus that row must not give the 3
    (found by a review: the part the region hid for them was given exactly by that row)."""
    people = {"900001": 7, "900100": 20, "900210": 3}
    _, auth = await _fire_for_everyone(db_url, conn, tmp_path, people)
    async with _app(db_url) as client:
        units, trusts, region = await _rollups(client, auth)

    def shown(rows: dict[str | None, dict]) -> int:
        return sum(r["total"] for r in rows.values() if not r["suppressed"])

    assert trusts["900011"]["suppressed"] and units["900210"]["suppressed"]
    if not region["900001"]["suppressed"]:
        for revealed in (region["900001"]["total"] - shown(trusts), region["900001"]["total"] - shown(units)):
            assert revealed == 0 or revealed >= 5, (region, trusts, units)
    # the row of people in no trust is hidden with it: alone it gave them exactly
    assert trusts[None]["suppressed"] and not trusts["900010"]["suppressed"]


FIRE = "https://courses.example.org/fire"


def _mbox(person: str) -> dict:
    return {"mbox": f"mailto:{person.lower()}@example.org"}


async def _linked(db_url: str, sid: int, learners: list[str]) -> None:
    """Each learner's mailbox linked to their person id."""
    pc = await runner.connect(db_url)
    try:
        await reference.append(pc, sid, [reference.RefEvent(
            PERSON_LINKED, identifier_key(_mbox(p)), {"ifi": identifier_key(_mbox(p)), "person_id": p})
            for p in learners])
    finally:
        await pc.close()


async def _post_and_catch_up(client: httpx.AsyncClient, auth: tuple[str, str], statements: list[dict],
                             db_url: str, projection: str) -> None:
    """Post the statements and catch one read model up (only it)."""
    posted = await client.post("/xapi/statements", auth=auth, headers=HEADERS, json=statements)
    assert posted.status_code == 200, posted.text
    pc = await runner.connect(db_url)
    try:
        await runner.catch_up(pc, ALL[projection])
    finally:
        await pc.close()


async def _course_views(client: httpx.AsyncClient, auth: tuple[str, str], statements: list[dict],
                        db_url: str) -> list[dict[str | None, dict]]:
    """Post the statements, catch the course status read model up (only it), and read the fire
    course's status per course, trust and unit, by group."""
    await _post_and_catch_up(client, auth, statements, db_url, "course_status")
    out = []
    for group_by in (None, "trust", "unit"):
        params = {"as_of": "2025-01-01", "course": FIRE, **({"group_by": group_by} if group_by else {})}
        r = await client.get("/api/v1/course-status", auth=auth, params=params)
        assert r.status_code == 200, r.text
        out.append({row["group_id"]: row for row in r.json()["items"]})
    return out


async def test_a_trust_s_own_view_and_the_region_s_cannot_be_played_against_each_other(
        db_url: str, conn: asyncpg.Connection, tmp_path: Path) -> None:
    """Two stores of a region: A with trusts 900010 (10 people) and 900011 (3), B with trust
    900020 (8). The regional view hides 900011 and, to protect it, 900020. B's own view decided
    over B alone and showed 900020, so the region's 21 minus 900010's 10 minus B's 8 gave the 3
    of 900011 exactly (a privacy audit). Now every credential of the region decides over all of
    it: a trust credential's view shows a group only as the regional view shows it."""
    region = "region-" + uuid.uuid4().hex[:6]
    repo = PgCredentialRepository(conn)
    names = [f"{region}-{n}" for n in ("a", "b")]
    ids = [await repo.create_store(n, "Testsykehuset HF", region) for n in names]
    creds = {who: await bootstrap.create_credential(repo, store, label=who, public_url="http://testserver",
                                                    scopes=["analytics/aggregates"], region=reg)
             for who, store, reg in (("regional", names[0], region), ("a", names[0], None), ("b", names[1], None))}
    await _two_trusts(db_url, tmp_path, ids, "900300,resh,Akuttklinikken,900020,division,2020-01-01,\n",
                      ({"900100": 10, "900210": 3}, {"900300": 8}))
    views: dict[str, list[dict]] = {}
    async with _app(db_url) as client:
        for who, c in creds.items():
            views[who] = await _rollups(client, (c.key, c.secret))
    regional = views["regional"]
    assert regional[2]["900001"]["total"] == 21 and regional[1]["900010"]["total"] == 10
    assert regional[1]["900011"]["suppressed"] and regional[1]["900020"]["suppressed"]
    # B's own view no longer shows 900020: 21 - 10 - 8 would be the 3 of 900011
    assert views["b"][1]["900020"]["suppressed"]
    # every group a trust's view shows, the regional view shows with the same figures; the
    # region's row, which holds other stores' people, is suppressed in a trust's view
    for who in ("a", "b"):
        for level, rows in enumerate(views[who]):
            for group, row in rows.items():
                if not row["suppressed"]:
                    assert row == regional[level][group], (who, level, group)
        assert views[who][2]["900001"]["suppressed"]
    assert not views["a"][1]["900010"]["suppressed"] and views["a"][1]["900010"]["total"] == 10


async def test_a_unit_id_two_stores_of_a_region_give_to_different_units_is_a_409_per_unit(
        db_url: str, conn: asyncpg.Connection, tmp_path: Path) -> None:
    """A roll-up groups a unit's rows by its id: store B's unit 900100 (2 people, in its trust
    900020) and store A's (5, in trust 900010) were taken as one unit of 7 under one trust, and
    with the sums wrong, B's own unit view showed its other unit and its trust, whose difference
    was B's 900100 (a privacy audit). A roll-up is refused naming the id, also where B's tree
    has the unit only from a later date and B's employments name it (a review: the check read
    the trees alone), and per trust (the trees are walked by id)."""
    region = "region-" + uuid.uuid4().hex[:6]
    repo = PgCredentialRepository(conn)
    names = [f"{region}-{n}" for n in ("a", "b")]
    ids = [await repo.create_store(n, "Testsykehuset HF", region) for n in names]
    b = await bootstrap.create_credential(repo, names[1], label="b", public_url="http://testserver",
                                          scopes=["analytics/aggregates"])
    await _two_trusts(db_url, tmp_path, ids, "900100,resh,Akuttklinikken,900020,division,2026-01-01,\n"
                                             "900301,resh,Medisinsk klinikk,900020,division,2020-01-01,\n",
                      ({"900100": 5}, {"900100": 2, "900301": 11}))
    async with _app(db_url) as client:
        for as_of in ("2025-01-01", "2026-06-01"):
            for level in ("unit", "trust", "region"):
                r = await client.get("/api/v1/compliance/rollup", auth=(b.key, b.secret),
                                     params={"as_of": as_of, "level": level, "requirement": "fire"})
                assert r.status_code == 409, (as_of, level, r.text)
                assert f"900100 (stores {ids[0]}, {ids[1]})" in r.json()["error"]["message"]
        # before B's people were employed there, B's tree and employments use no id of A's
        r = await client.get("/api/v1/compliance/rollup", auth=(b.key, b.secret),
                             params={"as_of": "2019-06-01", "level": "unit", "requirement": "fire"})
        assert r.status_code == 200, r.text


async def test_course_status_per_unit_and_trust_hides_what_subtraction_would_reveal(
        db_url: str, conn: asyncpg.Connection, tmp_path: Path) -> None:
    """Course status per unit and per trust, with its own org tree: the compliance read model is
    not caught up here (its tree must not be needed). 22 learners: 14 in trust 900010 (one unit
    of 2), 7 in trust 900011 (one unit), one employed nowhere."""
    people = {"900100": 6, "900111": 6, "900110": 2, "900210": 7}
    sid, auth = await _fire_for_everyone(db_url, conn, tmp_path, people, catch_up=False)
    learners = [f"U{unit}-{i}" for unit, n in people.items() for i in range(n)] + ["nobody-1"]
    await _linked(db_url, sid, learners)
    async with _app(db_url) as client:
        course, trusts, units = await _course_views(
            client, auth, [_completion(_mbox(p), FIRE, "2024-11-02T10:00:00Z") for p in learners], db_url)
        paged = await client.get("/api/v1/course-status", auth=auth, params={
            "as_of": "2025-01-01", "course": FIRE, "group_by": "unit", "offset": 0, "limit": 2})
        beyond = await client.get("/api/v1/course-status", auth=auth, params={
            "as_of": "2025-01-01", "course": FIRE, "group_by": "unit", "offset": 1, "limit": 2})
    assert course[None]["learners"] == 22
    # a hidden group is left out (a row of it, even without counts, says it has a learner: a
    # privacy audit); every row listed is shown
    assert not any(r["suppressed"] for view in (course, trusts, units) for r in view.values())
    # the one learner employed nowhere is hidden, and with them the smaller trust (7), so the
    # course total minus the trusts shown is 8, not 1
    assert list(trusts) == ["900010"] and trusts["900010"]["learners"] == 14
    # per unit: 900110 (2) hides the smaller of its siblings (6 people); 900210 is hidden with
    # its trust (it alone would add up to it); the learner employed nowhere is hidden
    shown_units = [r["learners"] for r in units.values()]
    assert shown_units == [6] and not {"900110", "900210", None} & set(units)
    assert trusts["900010"]["learners"] - sum(shown_units) == 8
    assert course[None]["learners"] - sum(r["learners"] for r in trusts.values()) == 8
    # a page of the unit rows is of the rows listed
    assert [r["group_id"] for r in paged.json()["items"]] == list(units)[:2]
    assert beyond.json()["items"] == []


async def test_where_learners_stop_cannot_be_found_by_subtraction_either(
        db_url: str, conn: asyncpg.Connection, tmp_path: Path) -> None:
    """Drop-off points are counts too (found by a review): the course shows 7 learners stopped at
    module X; trust 900010 has 5 of them, trust 900011 the other 2 (among 18 who completed). The
    2 must not be found as the course's 7 minus the 5 shown, nor as a bucket of their own."""
    people = {"900100": 15, "900210": 20}
    sid, auth = await _fire_for_everyone(db_url, conn, tmp_path, people, catch_up=False)
    learners = [f"U{unit}-{i}" for unit, n in people.items() for i in range(n)]
    await _linked(db_url, sid, learners)

    def attempted(person: str, module: str) -> dict:
        s = _completion(_mbox(person), f"{FIRE}/{module}", "2024-11-02T10:00:00Z")
        s["verb"] = {"id": "http://adlnet.gov/expapi/verbs/attempted", "display": {"en-US": "attempted"}}
        s["context"] = {"contextActivities": {"grouping": [{"id": FIRE}]}}
        return s

    statements = ([attempted(f"U900100-{i}", "x") for i in range(5)]
                  + [attempted(f"U900100-{i}", "y") for i in range(5, 15)]
                  + [attempted(f"U900210-{i}", "x") for i in range(2)]
                  + [_completion(_mbox(f"U900210-{i}"), FIRE, "2024-11-02T10:00:00Z") for i in range(2, 20)])
    async with _app(db_url) as client:
        course, trusts, _ = await _course_views(client, auth, statements, db_url)
    assert course[None]["stopped_at"] == {f"{FIRE}/x": 7, f"{FIRE}/y": 10}
    assert not trusts["900010"]["suppressed"] and not trusts["900011"]["suppressed"]
    # 900011's 2 at X are hidden, and with them 900010's 5 at X (else 7 - 5 = 2); and then its
    # 10 at Y, since its 15 learners none of whom finished, minus 10, would give the 5
    assert trusts["900010"]["stopped_at"] == {}
    assert trusts["900010"]["learners"] == 15 and trusts["900010"]["completed"] == 0
    assert trusts["900011"]["stopped_at"] == {}


async def test_a_module_completed_does_not_complete_its_course(
        db_url: str, conn: asyncpg.Connection, tmp_path: Path) -> None:
    """Course status counts the course's own completed/passed/failed (found by a domain audit):
    six learners completed module 1 of the course (the course their statements' grouping) and
    stopped in module 2; the course is completed by nobody, and they stopped at module 2. Five
    others completed the course itself, with a score that is the course's average alone (an
    average over fewer is not shown: it would be someone's score)."""
    people = {"900100": 11}
    sid, auth = await _fire_for_everyone(db_url, conn, tmp_path, people, catch_up=False)
    learners = [f"U900100-{i}" for i in range(11)]
    await _linked(db_url, sid, learners)

    def in_module(person: str, module: str, verb: str, at: str, score: float) -> dict:
        s = _completion(_mbox(person), f"{FIRE}/{module}", at)
        s["verb"] = {"id": f"http://adlnet.gov/expapi/verbs/{verb}", "display": {"en-US": verb}}
        s["context"] = {"contextActivities": {"grouping": [{"id": FIRE}]}}
        s["result"] = {"score": {"scaled": score}}
        return s

    def course_passed(person: str) -> dict:
        s = _completion(_mbox(person), FIRE, "2024-11-03T10:00:00Z")
        s["result"] = {"score": {"scaled": 0.8}}
        return s

    statements = ([in_module(p, "m1", "completed", "2024-11-02T09:00:00Z", 0.1) for p in learners[:6]]
                  + [in_module(p, "m2", "attempted", "2024-11-02T10:00:00Z", 0.1) for p in learners[:6]]
                  + [course_passed(p) for p in learners[6:]])
    async with _app(db_url) as client:
        course, _, _ = await _course_views(client, auth, statements, db_url)
    row = course[None]
    assert (row["learners"], row["started"], row["completed"]) == (11, 11, 5), row
    assert row["stopped_at"] == {f"{FIRE}/m2": 6}, row
    assert row["avg_score"] == 0.8, row


async def test_a_course_average_is_over_learners_not_attempts(db_url: str, conn: asyncpg.Connection,
                                                              tmp_path: Path) -> None:
    """One learner's forty failed attempts made a group's average score theirs (a privacy
    re-audit: 0.15 for four learners of 0.5 and one who failed at 0.1 forty times, then passed at
    0.95). The average is of each learner's latest result of the course."""
    people = {"900100": 5}
    sid, auth = await _fire_for_everyone(db_url, conn, tmp_path, people, catch_up=False)
    learners = [f"U900100-{i}" for i in range(5)]
    await _linked(db_url, sid, learners)

    def result(person: str, verb: str, score: float, minute: int) -> dict:
        s = _completion(_mbox(person), FIRE, f"2024-11-02T10:{minute:02d}:00Z")
        s["verb"] = {"id": f"http://adlnet.gov/expapi/verbs/{verb}", "display": {"en-US": verb}}
        s["result"] = {"score": {"scaled": score}, "duration": "PT10M"}
        return s

    statements = [result(p, "passed", 0.5, 0) for p in learners[:4]]
    statements += [result(learners[4], "failed", 0.1, m) for m in range(40)] + [result(learners[4], "passed", 0.95, 59)]
    async with _app(db_url) as client:
        course, _, _ = await _course_views(client, auth, statements, db_url)
    assert course[None]["avg_score"] == 0.59 and course[None]["avg_duration_s"] == 600, course[None]


async def test_course_status_pages_are_cut_from_the_courses_shown(db_url: str, conn: asyncpg.Connection,
                                                                  tmp_path: Path) -> None:
    """Per course, the page was cut in SQL before the hidden courses were left out: a hidden
    course on a page ended the pages there, and offsets counted rows not shown (a review)."""
    people = {"900100": 8}
    sid, auth = await _fire_for_everyone(db_url, conn, tmp_path, people, catch_up=False)
    learners = [f"U900100-{i}" for i in range(8)]
    await _linked(db_url, sid, learners)
    courses = {"https://courses.example.org/a-first": 6, "https://courses.example.org/b-few": 2,
               "https://courses.example.org/c-last": 5}
    statements = [_completion(_mbox(p), course, "2024-11-02T10:00:00Z")
                  for course, n in courses.items() for p in learners[:n]]
    async with _app(db_url) as client:
        await _post_and_catch_up(client, auth, statements, db_url, "course_status")
        pages = []
        for offset in range(3):
            r = await client.get("/api/v1/course-status", auth=auth,
                                 params={"as_of": "2025-01-01", "limit": 1, "offset": offset})
            assert r.status_code == 200, r.text
            pages.append(([i["course_id"] for i in r.json()["items"]], r.json()["next"] is not None))
    assert pages == [(["https://courses.example.org/a-first"], True), (["https://courses.example.org/c-last"], False),
                     ([], False)]


async def test_an_average_over_few_learners_is_not_shown(db_url: str, conn: asyncpg.Connection,
                                                          tmp_path: Path) -> None:
    """A group of seven learners of whom one passed showed that one's score and time as the
    group's averages (a privacy audit): an average is shown only over at least the threshold of
    learners, and rounded."""
    people = {"900100": 7}
    sid, auth = await _fire_for_everyone(db_url, conn, tmp_path, people, catch_up=False)
    learners = [f"U900100-{i}" for i in range(7)]
    await _linked(db_url, sid, learners)

    def attempted(person: str) -> dict:
        s = _completion(_mbox(person), FIRE, "2024-11-02T10:00:00Z")
        s["verb"] = {"id": "http://adlnet.gov/expapi/verbs/attempted", "display": {"en-US": "attempted"}}
        return s

    passed = _completion(_mbox(learners[0]), FIRE, "2024-11-03T10:00:00Z")
    passed["verb"] = {"id": "http://adlnet.gov/expapi/verbs/passed", "display": {"en-US": "passed"}}
    passed["result"] = {"score": {"scaled": 0.42}, "duration": "PT1H7M"}
    async with _app(db_url) as client:
        course, trusts, units = await _course_views(client, auth, [attempted(p) for p in learners] + [passed],
                                                    db_url)
    for view in (course, trusts, units):
        for row in view.values():
            assert row["learners"] == 7 and row["passed"] == 1, row
            assert row["avg_score"] is None and row["avg_duration_s"] is None, row


async def _two_trusts(db_url: str, tmp_path: Path, ids: list[int], units_b: str,
                      people: tuple[dict[str, int], dict[str, int]]) -> None:
    """Store a gets the example org tree, store b a tree of its own (the region unit, trust 900020
    and the CSV rows ``units_b`` under it); each the fire requirement and people employed by unit
    (``people``: a's, b's); then the read models catch up."""
    (tmp_path / "fire.json").write_text(json.dumps([{
        "requirement_id": "fire", "name": "Brannvern", "activity_ids": ["https://courses.example.org/fire"],
        "units": ["900001"], "roles": [], "professions": [], "validity_days": 365}]))
    (tmp_path / "org-b.csv").write_text("unit_id,id_kind,name,parent_id,level,valid_from,closed\n"
                                        "900001,resh,Helse Eksempel RHF,,region,2020-01-01,\n"
                                        "900020,resh,Nordby sykehus HF,900001,trust,2020-01-01,\n" + units_b)
    pc = await runner.connect(db_url)
    try:
        for sid, org, employed in ((ids[0], EXAMPLES / "org.csv", people[0]),
                                   (ids[1], tmp_path / "org-b.csv", people[1])):
            await reference.import_file(pc, sid, "org", org)
            await reference.import_file(pc, sid, "requirements", tmp_path / "fire.json")
            await reference.append(pc, sid, _employed(employed))
        for p in ALL.values():
            await runner.catch_up(pc, p)
    finally:
        await pc.close()


async def _region(db_url: str, region: str) -> tuple[list[int], tuple[str, str]]:
    """Two stores of one region, each with a P-0001 of its own (the example people file), and a
    regional credential of the first."""
    conn = await asyncpg.connect(db_url)
    try:
        await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
        repo = PgCredentialRepository(conn)
        names = [f"{region}-{n}-{uuid.uuid4().hex[:6]}" for n in ("ahus", "ous")]
        ids = [await repo.create_store(n, "Testsykehuset HF", region) for n in names]
        c = await bootstrap.create_credential(repo, names[0], label="dashboard", region=region,
                                              public_url="http://testserver")
    finally:
        await conn.close()
    await _import_examples(db_url, ids)
    return ids, (c.key, c.secret)


async def test_exports_and_bad_input_and_what_the_audit_trail_can_answer(db_url: str, conn: asyncpg.Connection) -> None:
    ids, auth = await _region(db_url, "region-" + uuid.uuid4().hex[:6])
    pc = await runner.connect(db_url)
    try:
        # a person id from an HR file that a spreadsheet would run as a formula
        await reference.append(pc, ids[0], [reference.RefEvent("person.employment", "=1+2\x1fE1", {
            "person_id": "=1+2", "employment_id": "E1", "unit_id": "900111", "role": "nurse",
            "profession": "sykepleier", "valid_from": "2020-01-01", "valid_to": None})])
        for p in ALL.values():
            await runner.catch_up(pc, p)
    finally:
        await pc.close()
    async with _app(db_url) as client:
        # one id in two stores is two people: not merged into one transcript
        r = await client.get("/api/v1/transcripts/P-0001", auth=auth)
        assert r.status_code == 400 and "store=" in r.json()["error"]["message"]
        store_name = await conn.fetchval("SELECT name FROM stores WHERE id = $1", ids[1])
        named = await client.get("/api/v1/transcripts/P-0001", auth=auth, params={"store": store_name})
        assert named.status_code == 200

        csv_page = await client.get("/api/v1/compliance", auth=auth, params={
            "as_of": "2025-01-01", "format": "csv", "person": "=1+2"})
        assert csv_page.content.startswith("\ufeff".encode()) and b"\r\n" in csv_page.content
        rows = list(csv.DictReader(io.StringIO(csv_page.content.decode("utf-8-sig"))))
        assert rows and {r["person_id"] for r in rows} == {"'=1+2"}  # text in a spreadsheet, not a formula
        empty = await client.get("/api/v1/compliance", auth=auth, params={"person": "nobody", "format": "csv"})
        assert empty.content.decode("utf-8-sig").splitlines()[0].startswith("store_id,person_id,unit_id")
        more = await client.get("/api/v1/compliance", auth=auth, params={"as_of": "2025-01-01", "format": "csv",
                                                                          "limit": 2})
        assert 'rel="next"' in more.headers["Link"]
        # both stores imported the example tree: one id for two units of two stores, which a
        # roll-up would take as one (and keep small groups hidden by sums that are not): a 409
        # naming them (a privacy audit), per trust and per unit
        for level, named in (("region", "900010 (stores"), ("unit", "900100 (stores")):
            roll = await client.get("/api/v1/compliance/rollup", auth=auth, params={"format": "csv", "level": level})
            assert roll.status_code == 409 and named in roll.json()["error"]["message"], roll.text
        euro = await client.get("/api/v1/transcripts/€ø", auth=auth, params={"format": "csv"})
        assert euro.status_code == 200
        assert "filename*=UTF-8''transcript-%E2%82%AC%C3%B8.csv" in euro.headers["content-disposition"]

        for params in ({"person": "a\x00b"}, {"unit": "\x00"}, {"format": "xml"},
                       # numbers in digits 0-9 and days as YYYY-MM-DD only (a privacy audit: int()
                       # took these, and the first and last days were read as -infinity and
                       # infinity, so a requirement that never expires showed as expired)
                       {"limit": "\u0663"}, {"limit": "1_0"}, {"limit": " 5"}, {"limit": "+5"},
                       {"limit": "1" * 5000}, {"offset": "0" * 4000 + "1" * 19},
                       {"as_of": "20250101"}, {"as_of": "2025-W01-1"}, {"as_of": "9999-12-31"},
                       {"as_of": "0001-01-01"}, {"as_of": "\uff12025-01-01"}):
            bad = await client.get("/api/v1/compliance", auth=auth, params=params)
            assert bad.status_code == 400, (params, bad.text)
            assert next(iter(params)) in bad.json()["error"]["message"], (params, bad.text)
        for params in ({"level": "region", "window_days": "\uff15"}, {"level": "region", "as_of": "9999-12-31"}):
            bad = await client.get("/api/v1/compliance/rollup", auth=auth, params=params)
            assert bad.status_code == 400, (params, bad.text)
        assert (await client.get("/api/v1/transcripts/a%00b", auth=auth)).status_code == 400
        assert (await client.get("/api/v1/compliance?x%00=1", auth=auth)).status_code == 400
        as_json = await client.get("/api/v1/compliance", auth=auth, params={"format": "json", "limit": 1},
                                   headers={"Accept": "text/csv"})
        assert as_json.headers["content-type"].startswith("application/json") and len(as_json.json()["items"]) == 1
    # the audit trail counts the rows returned (not the one fetched to know there are more), and
    # finds the reads about a person by the person's id
    last = await conn.fetchrow("SELECT records, request FROM audit_log WHERE action = 'analyst.compliance' "
                               "AND request ->> 'limit' = '1' ORDER BY id DESC LIMIT 1")
    assert last["records"] == 1
    about = await conn.fetch(sql("audit_by_person"), "=1+2", 100, None)
    assert {r["action"] for r in about} == {"analyst.compliance"}
    about_p1 = await conn.fetch(sql("audit_by_person"), "P-0001", 100, None)
    [transcript_read] = [r for r in about_p1 if "refused" not in r["request"]]
    assert transcript_read["action"] == "analyst.transcript" and transcript_read["request"]["store"] == store_name
    # the 400 naming the stores that know the person tells something of their records: in the
    # trail as an attempt (a privacy audit: it left no trace)
    [ambiguous] = [r for r in about_p1 if "refused" in r["request"]]
    assert ambiguous["action"] == "analyst.transcript" and ambiguous["records"] == 0
    assert ambiguous["request"]["refused"]["status"] == 400
    assert "several stores" in ambiguous["request"]["refused"]["reason"]


async def test_a_dashboard_credential_reads_the_aggregated_views_and_no_persons_rows(db_url: str,
                                                                                   conn: asyncpg.Connection) -> None:
    dashboard = await make_tenant(db_url, "http://testserver", scopes=["analytics/aggregates"])
    writer = await make_tenant(db_url, "http://testserver", scopes=["statements/write"])
    async with _app(db_url) as client:
        for path in ("/api/v1/compliance/rollup", "/api/v1/course-status", "/api/v1/projections"):
            assert (await client.get(path, auth=(dashboard.key, dashboard.secret))).status_code == 200, path
            assert (await client.get(path, auth=(writer.key, writer.secret))).status_code == 403, path
        for path in ("/api/v1/compliance", "/api/v1/transcripts/P-0001"):
            r = await client.get(path, auth=(dashboard.key, dashboard.secret))
            assert r.status_code == 403 and "statements/read" in r.json()["error"]["message"], path
        # and no xAPI read either
        r = await client.get("/xapi/statements", auth=(dashboard.key, dashboard.secret), headers=HEADERS)
        assert r.status_code == 403

        # a failed projection's error may quote the event's values: only a read scope sees it
        sid = await conn.fetchval("SELECT id FROM stores WHERE name = $1", dashboard.store)
        pc = await runner.connect(db_url)
        try:
            await runner.catch_up(pc, ALL["transcript"])
            await runner._record_failure(pc, ALL["transcript"].schema, sid, ValueError(
                'DETAIL: Key (person_id)=(P-0042) already exists.'))
        finally:
            await pc.close()
        reader = await make_tenant(db_url, "http://testserver", scopes=["all/read"], store=dashboard.store)
        for who, error in ((dashboard, api.ERROR_REDACTED), (reader, "ValueError: DETAIL: Key (person_id)=(P-0042) "
                                                                      "already exists.")):
            items = (await client.get("/api/v1/projections", auth=(who.key, who.secret))).json()["items"]
            failed = [r for r in items if r["projection"] == "transcript" and r["store_id"] == sid]
            assert failed and failed[0]["state"] == "failed" and failed[0]["error"] == error


async def test_a_csv_export_without_limit_is_the_whole_view_streamed_and_audited(
        server: Server, tmp_path: Path) -> None:
    """A spreadsheet follows no Link header: format=csv without limit or offset is every row
    (here 1,200, more than a page), streamed by the real server over a socket. The audit trail
    records the read before the first row leaves, and when it ends: how many rows, about whom."""
    db = await asyncpg.connect(server.database_url)
    try:
        await db.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
        sid, auth = await _fire_for_everyone(server.database_url, db, tmp_path, {"900100": 700, "900210": 500})
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            whole = await client.get("/api/v1/compliance", auth=auth, params={"as_of": "2025-01-01", "format": "csv"})
            assert whole.status_code == 200 and whole.headers.get("transfer-encoding") == "chunked"
            assert "link" not in whole.headers
            rows = list(csv.DictReader(io.StringIO(whole.content.decode("utf-8-sig"))))
            assert len(rows) == 1200 and {r["status"] for r in rows} == {"missing"}
            assert len({r["person_id"] for r in rows}) == 1200
            # a page is still a page
            page = await client.get("/api/v1/compliance", auth=auth,
                                    params={"as_of": "2025-01-01", "format": "csv", "limit": 1000})
            assert len(page.content.decode("utf-8-sig").splitlines()) == 1001 and 'rel="next"' in page.headers["link"]
            # a bad filter is still a 400, not a cut-off file
            bad = await client.get("/api/v1/compliance", auth=auth, params={"format": "csv", "status": "bogus"})
            assert bad.status_code == 400 and "status" in bad.json()["error"]["message"]
        audited = await db.fetch("SELECT records, request FROM audit_log WHERE store_id = $1 "
                                 "AND action = 'analyst.compliance' AND request ->> 'limit' IS NULL ORDER BY id", sid)
        assert [(a["records"], a["request"]["export"]) for a in audited] == [(0, "started"), (1200, "finished")]
        assert "persons" not in audited[0]["request"] and len(audited[1]["request"]["persons"]) == 1200
        about = await db.fetch(sql("audit_by_person"), "U900210-7", 100, None)
        assert [a["request"].get("export") for a in about] == ["finished"]
    finally:
        await db.close()


def _export_scope(key: str, secret: str) -> dict:
    """The ASGI scope of a whole compliance export, as uvicorn gives it (spec 2.3: Starlette
    listens for the hang-up and cancels the stream)."""
    token = base64.b64encode(f"{key}:{secret}".encode()).decode()
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": "/api/v1/compliance", "raw_path": b"/api/v1/compliance",
            "root_path": "", "query_string": b"as_of=2025-01-01&format=csv",
            "headers": [(b"host", b"testserver"), (b"authorization", f"Basic {token}".encode())],
            "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}


async def test_an_export_whose_client_stops_reading_ends_and_frees_its_place(
        db_url: str, conn: asyncpg.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client that stops reading (a send waits past EXPORT_SEND_TIMEOUT) ends the export as
    interrupted, not as an application error; its connection and its place among the exports
    are given back."""
    monkeypatch.setattr(api, "EXPORT_BATCH", 100)
    monkeypatch.setattr(api, "EXPORT_SEND_TIMEOUT", 0.2)
    sid, (key, secret) = await _fire_for_everyone(db_url, conn, tmp_path, {"900100": 250})
    app = create_app(Settings.from_env().with_(database_url=db_url))
    bodies: list[bytes] = []

    async def receive() -> dict:
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.body":
            bodies.append(message["body"])
            if len(bodies) == 2:
                await asyncio.sleep(3600)  # the client's window is full and stays full

    async with app.router.lifespan_context(app):
        await asyncio.wait_for(app(_export_scope(key, secret), receive, send), 10)  # returns, no error
        pool = app.state.pool
        assert app.state.exports.running == 0 and pool.get_idle_size() == pool.get_size()
    ended = await conn.fetchrow("SELECT records, request FROM audit_log WHERE store_id = $1 "
                                "AND request ->> 'export' NOT IN ('started')", sid)
    assert ended["request"]["export"] == "interrupted" and ended["records"] == 200


async def test_an_export_the_client_leaves_half_way_is_audited_with_what_went_out(
        db_url: str, conn: asyncpg.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The client hangs up while the second batch of rows is being sent: the read is in the
    audit trail as interrupted, with the rows and people handed to the connection (the batch in
    flight counts: part of it may have gone out), and the database connection is back in the
    pool."""
    monkeypatch.setattr(api, "EXPORT_BATCH", 100)
    sid, (key, secret) = await _fire_for_everyone(db_url, conn, tmp_path, {"900100": 250})
    app = create_app(Settings.from_env().with_(database_url=db_url))
    scope = _export_scope(key, secret)
    bodies: list[bytes] = []
    hung_up = asyncio.Event()

    async def receive() -> dict:
        await hung_up.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.body":
            bodies.append(message["body"])
            if len(bodies) == 2:
                hung_up.set()
                await asyncio.sleep(3600)  # a stuck socket: only noticing the hang-up ends it

    async with app.router.lifespan_context(app):
        await asyncio.wait_for(app(scope, receive, send), 30)
        pool = app.state.pool
        for _ in range(400):
            ended = await conn.fetchrow("SELECT records, request FROM audit_log WHERE store_id = $1 "
                                        "AND request ->> 'export' = 'interrupted'", sid)
            if ended is not None and pool.get_idle_size() == pool.get_size():
                break
            await asyncio.sleep(0.05)
        assert ended is not None and ended["records"] == 200 and len(ended["request"]["persons"]) == 200
        assert len(bodies) == 2 and len(bodies[0].decode("utf-8-sig").splitlines()) == 101
        assert pool.get_idle_size() == pool.get_size()  # the export's connection was given back
        assert not await conn.fetchval("SELECT count(*) FROM audit_log WHERE store_id = $1 "
                                       "AND request ->> 'export' = 'finished'", sid)


async def test_pages_after_a_cursor_do_not_shift_when_earlier_rows_leave_the_filter(
        db_url: str, conn: asyncpg.Connection, tmp_path: Path) -> None:
    """A manager pages through the people missing fire safety while some complete it. With
    offset, a row that leaves page 1 shifts page 2 and a person is never listed; the next link
    goes on after the last row shown instead. Bad cursors are 400."""
    people = {"900100": 6}
    sid, auth = await _fire_for_everyone(db_url, conn, tmp_path, people)
    learners = [f"U900100-{i}" for i in range(6)]
    await _linked(db_url, sid, learners)
    params = {"as_of": "2025-01-01", "status": "missing", "requirement": "fire", "limit": 2}
    async with _app(db_url) as client:
        first = (await client.get("/api/v1/compliance", auth=auth, params=params)).json()
        assert [r["person_id"] for r in first["items"]] == learners[:2]
        await _post_and_catch_up(client, auth, [_completion(_mbox(learners[0]), FIRE, "2024-11-02T10:00:00Z")],
                                 db_url, "compliance")
        second = (await client.get(first["next"], auth=auth)).json()
        assert [r["person_id"] for r in second["items"]] == learners[2:4]
        by_offset = (await client.get("/api/v1/compliance", auth=auth, params={**params, "offset": 2})).json()
        assert [r["person_id"] for r in by_offset["items"]] == learners[3:5]  # what offset would skip
        # the CSV pages follow the same cursor
        csv_page = await client.get("/api/v1/compliance", auth=auth, params={**params, "format": "csv"})
        assert "after=" in csv_page.headers["link"] and "offset" not in csv_page.headers["link"]
        for bad in ({"after": "nonsense!"}, {"after": "WzEsMl0"}, {"after": first["next"].split("after=")[1]
                                                                  .split("&")[0], "offset": "2"}):
            r = await client.get("/api/v1/compliance", auth=auth, params={**params, **bad})
            assert r.status_code == 400 and ("after" in r.json()["error"]["message"]), (bad, r.text)



async def test_an_export_of_many_chunks_has_one_header_and_every_row(
        db_url: str, conn: asyncpg.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "EXPORT_BATCH", 100)
    sid, auth = await _fire_for_everyone(db_url, conn, tmp_path, {"900100": 250})
    async with _app(db_url) as client:
        r = await client.get("/api/v1/compliance", auth=auth, params={"as_of": "2025-01-01", "format": "csv"})
    text = r.content.decode("utf-8")
    assert text.count("\ufeff") == 1 and text.count("store_id,person_id") == 1
    rows = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
    assert len(rows) == 250 and len({x["person_id"] for x in rows}) == 250
    ended = await conn.fetchrow("SELECT records, request FROM audit_log WHERE store_id = $1 "
                                "AND request ->> 'export' = 'finished'", sid)
    assert ended["records"] == 250 and len(ended["request"]["persons"]) == 250


async def test_exports_beyond_the_limit_wait_and_an_unaudited_export_reads_nothing(
        db_url: str, conn: asyncpg.Connection, tmp_path: Path) -> None:
    """Each export holds a pooled connection while its client reads: past a quarter of the pool
    a process answers 503 with Retry-After. The export is in the audit trail before any row is
    read: when that write fails, no row is read and no end record claims rows went out. HEAD
    reads no rows either."""
    sid, auth = await _fire_for_everyone(db_url, conn, tmp_path, {"900100": 3})
    params = {"as_of": "2025-01-01", "format": "csv"}
    async with _app(db_url) as client:
        app = client._transport.app  # type: ignore[attr-defined]
        gate = app.state.exports
        assert gate.limit == 5  # SPOR_POOL_MAX_SIZE 20 / 4
        gate.running = gate.limit
        busy = await client.get("/api/v1/compliance", auth=auth, params=params)
        assert busy.status_code == 503 and busy.headers["retry-after"] == "10"
        gate.running = 0

        record = app.state.audit.record
        reads: list[str] = []

        async def failing(who, action, request, records):  # type: ignore[no-untyped-def]
            reads.append(request.get("export", ""))
            if request.get("export") == "started":
                raise OSError("the audit trail cannot be written")
            await record(who, action, request, records)

        app.state.audit.record = failing
        failed = await client.get("/api/v1/compliance", auth=auth, params=params)
        assert failed.status_code == 500 and not failed.content.startswith("\ufeff".encode())
        app.state.audit.record = record
        assert reads == ["started"] and gate.running == 0

        head = await client.head("/api/v1/compliance", auth=auth, params=params)
        assert head.status_code == 200 and head.content == b""
        # the headers of the GET, a streamed CSV file (it had the first page's Content-Length and Link)
        assert head.headers["content-type"] == "text/csv; charset=utf-8"
        assert head.headers["content-disposition"].startswith('attachment; filename="compliance.csv"')
        assert "content-length" not in head.headers and "link" not in head.headers
    assert not await conn.fetchval("SELECT count(*) FROM audit_log WHERE store_id = $1 AND request ? 'export'", sid)


async def test_a_completion_dated_in_the_future_counts_from_when_it_was_stored(
        db_url: str, conn: asyncpg.Connection) -> None:
    """A completion dated after it was stored (9999-12-31 is valid xAPI) counts from its stored
    time (migration 0035). Before, it was fresh until the year 9899 (0020 kept it in the
    calendar), and it raised the store's latest completion date past every day compliance is
    asked for, which switched the fast path of the compliance answers off for the whole store
    (a voiding did not lower it). The answers for days at the calendar's end still work."""
    auth = await _store_with_examples(db_url, conn)
    sid = await conn.fetchval("SELECT s.id FROM stores s JOIN credentials c ON c.store_id = s.id WHERE c.key = $1",
                              auth[0])
    kari = {"account": {"homePage": "https://id.example.org", "name": "emp-1001"}}
    async with _app(db_url) as client:
        posted = await client.post("/xapi/statements", auth=auth, headers=HEADERS, json=[
            _completion(kari, "https://courses.example.org/infosec", "9999-12-31T23:59:59Z"),
            _completion(kari, "https://courses.example.org/hlr", "2999-12-31T23:59:59-05:00")])
        assert posted.status_code == 200, posted.text
        stored = await conn.fetchval("SELECT max(recorded_at) FROM events WHERE store_id = $1", sid)
        await _catch_up(db_url)
        t = await client.get("/api/v1/transcripts/P-0001", auth=auth)
        assert t.status_code == 200, t.text
        items = {i["activity_id"].rsplit("/", 1)[1]: i for i in t.json()["items"]}
        assert {k: datetime.fromisoformat(i["completed_at"]) for k, i in items.items()} == {
            "infosec": stored, "hlr": stored}
        stored_day = stored.astimezone(ZoneInfo("Europe/Oslo")).date()
        assert items["infosec"]["expires_on"] == (stored_day + timedelta(days=365)).isoformat()
        # the latest completion the status rows count is today's, so today's answers are the fast ones
        latest = await conn.fetchval("SELECT max_completed FROM rm_compliance.status_meta WHERE store_id = $1", sid)
        assert latest == stored_day
        rows = (await client.get("/api/v1/compliance", auth=auth, params={"person": "P-0001"})).json()["items"]
        assert {r["requirement_id"]: r["status"] for r in rows}["infosec"] == "valid"
        late = stored_day + timedelta(days=400)
        rows = (await client.get("/api/v1/compliance", auth=auth,
                                 params={"as_of": late.isoformat(), "person": "P-0001"})).json()["items"]
        assert {r["requirement_id"]: r["status"] for r in rows}["infosec"] == "expired"
        # (9999-12-31 itself is a 400: the driver sends the last day a date holds as infinity)
        for params in ({"as_of": "9999-12-30", "person": "P-0001"}, {"as_of": "9999-12-30", "format": "csv"},
                       {"as_of": "9900-06-01", "person": "P-0001"}):
            r = await client.get("/api/v1/compliance", auth=auth, params=params)
            assert r.status_code == 200, (params, r.text)


async def test_a_client_gone_mid_export_leaves_no_transaction_for_the_pool_to_reset(
        server: Server, tmp_path: Path) -> None:
    """A client that hangs up while an export reads its next chunk cancels the response's task;
    the read and its rollback finish anyway, so the connection goes back to the pool clean
    (asyncpg reset it and logged "Resetting connection with an active transaction" as an error)."""
    conn = await asyncpg.connect(server.database_url)
    try:
        _, (key, secret) = await _fire_for_everyone(server.database_url, conn, tmp_path, {"900100": 9000})
    finally:
        await conn.close()
    host, port = server.base_url.removeprefix("http://").split(":")
    token = base64.b64encode(f"{key}:{secret}".encode()).decode()
    request = (f"GET /api/v1/compliance?as_of=2025-01-01&format=csv HTTP/1.1\r\nHost: x\r\n"
               f"Authorization: Basic {token}\r\n\r\n").encode()
    for _ in range(12):
        reader, writer = await asyncio.open_connection(host, int(port), limit=2 ** 16)
        writer.write(request)
        await writer.drain()
        await asyncio.wait_for(reader.readexactly(50_000), 10)  # the first chunks, then hang up
        writer.transport.abort()
    for _ in range(600):  # each hang-up noticed, its read closed and its end recorded (30 s)
        if server.logs().count('"ended":"interrupted"') >= 12:
            break
        await asyncio.sleep(0.05)
    logs = server.logs()
    assert logs.count('"ended":"interrupted"') >= 12
    assert "Resetting connection with an active transaction" not in logs


async def test_a_parameter_an_endpoint_does_not_take_is_400_naming_it(db_url: str) -> None:
    """A misspelt or wrongly cased filter (persn=, Person=) was ignored, and the answer was the
    whole store's rows as if unfiltered; a repeated one silently took the last value (a probe).
    Each endpoint takes the query parameters its OpenAPI description declares, once."""
    tenant = await make_tenant(db_url, "http://testserver")
    auth = (tenant.key, tenant.secret)
    async with _app(db_url) as client:
        for path, params in [("/api/v1/compliance", {"persn": "P-0001"}), ("/api/v1/compliance", {"Person": "P-1"}),
                             ("/api/v1/compliance/rollup", {"requirment": "infosec"}),
                             ("/api/v1/transcripts/P-0001", {"activty": "x"}),
                             ("/api/v1/course-status", {"as-of": "2026-01-01"}),
                             ("/api/v1/projections", {"limit": "5"})]:
            r = await client.get(path, params=params, auth=auth)
            assert r.status_code == 400, (path, r.text)
            assert next(iter(params)) in r.json()["error"]["message"], (path, r.text)
        r = await client.get("/api/v1/compliance", params=[("person", "P-1"), ("person", "P-2")], auth=auth)
        assert r.status_code == 400 and "more than once: person" in r.text, r.text
        assert (await client.get("/api/v1/compliance", params={"person": "P-0001"}, auth=auth)).status_code == 200


async def test_a_transcript_is_found_by_an_identifier_holding_a_line_break_and_only_by_it(
        db_url: str, conn: asyncpg.Connection) -> None:
    """Starlette's path convertor stopped at a line break: the transcript of an account whose name
    holds one (a person of its own until linked) was a 404, and a final %0A was dropped, so
    ``P-0001%0A`` was answered with P-0001's transcript."""
    auth = await _store_with_examples(db_url, conn)
    two_lines = {"account": {"homePage": "https://id.example.org", "name": "emp\n2002"}}
    kari = {"account": {"homePage": "https://id.example.org", "name": "emp-1001"}}
    async with _app(db_url) as client:
        posted = await client.post("/xapi/statements", auth=auth, headers=HEADERS, json=[
            _completion(two_lines, "https://courses.example.org/hlr", "2025-03-01T08:00:00Z"),
            _completion(kari, "https://courses.example.org/infosec", "2025-03-02T08:00:00Z")])
        assert posted.status_code == 200, posted.text
        await _catch_up(db_url)
        key = quote("account:https://id.example.org|emp\n2002", safe="")
        t = await client.get(f"/api/v1/transcripts/{key}", auth=auth)
        assert t.status_code == 200, t.text
        assert [i["activity_id"] for i in t.json()["items"]] == ["https://courses.example.org/hlr"]
        own = await client.get("/api/v1/transcripts/P-0001", auth=auth)
        assert [i["activity_id"] for i in own.json()["items"]] == ["https://courses.example.org/infosec"]
        for other in ("P-0001%0A", "P-0001%0A%0A", "%0AP-0001"):
            r = await client.get(f"/api/v1/transcripts/{other}", auth=auth)
            assert r.status_code == 200 and r.json()["items"] == [], (other, r.text)


CMI5_VERBS = "https://w3id.org/xapi/adl/verbs/"
CMI5_CATEGORY = {"id": "https://w3id.org/xapi/cmi5/context/categories/cmi5"}


def _cmi5(account: dict, verb: str, activity: str, registration: str, **result: object) -> dict:
    """A cmi5-defined statement (verbs of ADL's and cmi5's namespaces, the cmi5 category)."""
    namespace = CMI5_VERBS if verb in ("satisfied", "waived") else "http://adlnet.gov/expapi/verbs/"
    s: dict = {"actor": {"objectType": "Agent", **account}, "verb": {"id": namespace + verb},
               "object": {"objectType": "Activity", "id": activity},
               "context": {"registration": registration, "contextActivities": {"category": [CMI5_CATEGORY]}}}
    if result:
        s["result"] = result
    return s


async def test_cmi5_courses_count_when_the_lms_says_they_are_satisfied(db_url: str, conn: asyncpg.Connection) -> None:
    """cmi5 (section 9.3): an AU's statements name the AU, and the LMS says a course is done with
    satisfied (its moveOn criteria met) and an AU with waived. The read models counted neither,
    so a requirement naming a cmi5 course could never be met, and course status showed those
    who finished as stopped. An AU completed and then failed (moveOn "Passed") does not meet a
    requirement naming the course; a learner who failed and then passed counts as passed only."""
    auth = await _store_with_examples(db_url, conn)
    kari = {"account": {"homePage": "https://id.example.org", "name": "emp-1001"}}  # P-0001
    per = {"account": {"homePage": "https://id.example.org", "name": "emp-1002"}}  # P-0002
    ada = {"account": {"homePage": "https://helseid.example.org", "name": "pseud-7f3a"}}  # P-0003
    course, exam = "https://courses.example.org/infosec", "https://lms.example.org/infosec/au/exam"
    reg = str(uuid.uuid4())
    settings = Settings.from_env().with_(suppression_threshold=1)
    today = datetime.now(ZoneInfo("Europe/Oslo")).date().isoformat()

    async def status(person: str) -> dict[str, str]:
        rows = (await client.get("/api/v1/compliance", auth=auth, params={"person": person})).json()["items"]
        return {r["requirement_id"]: r["status"] for r in rows}

    async def course_status(activity: str) -> dict:
        r = await client.get("/api/v1/course-status", auth=auth, params={"as_of": today, "course": activity})
        assert r.status_code == 200, r.text
        (row,) = r.json()["items"]
        return row

    async with _app(db_url, settings) as client:
        posted = await client.post("/xapi/statements", auth=auth, headers=HEADERS, json=[
            _cmi5(kari, "launched", exam, reg), _cmi5(kari, "initialized", exam, reg),
            _cmi5(kari, "completed", exam, reg, completion=True),
            _cmi5(kari, "failed", exam, reg, success=False, score={"scaled": 0.4}),
            _cmi5(kari, "terminated", exam, reg),
            # the course itself: a registration the LMS made, one who failed and then passed
            _cmi5(kari, "registered", course, reg),
            _cmi5(ada, "failed", course, str(uuid.uuid4()), success=False),
            _cmi5(ada, "passed", course, str(uuid.uuid4()), success=True)])
        assert posted.status_code == 200, posted.text
        await _catch_up(db_url)
        assert (await status("P-0001"))["infosec"] == "missing"
        before = await course_status(course)
        assert (before["learners"], before["completed"], before["passed"], before["failed"]) == (2, 0, 1, 0)
        assert before["stopped_at"] == {course: 1}

        # the LMS: Kari meets the course's moveOn criteria (a retake passed); Per's fire AU is waived
        posted = await client.post("/xapi/statements", auth=auth, headers=HEADERS, json=[
            _cmi5(kari, "passed", exam, reg, success=True, score={"scaled": 0.9}),
            _cmi5(kari, "satisfied", course, reg),
            _cmi5(per, "waived", "https://courses.example.org/fire", str(uuid.uuid4()), success=True,
                  completion=True)])
        assert posted.status_code == 200, posted.text
        await _catch_up(db_url)
        assert (await status("P-0001"))["infosec"] == "valid"
        assert (await status("P-0002"))["fire"] == "valid"
        after = await course_status(course)
        assert (after["learners"], after["completed"], after["passed"], after["failed"]) == (2, 1, 1, 0)
        assert after["stopped_at"] == {}
        fire = await course_status("https://courses.example.org/fire")
        assert (fire["learners"], fire["completed"], fire["stopped_at"]) == (1, 0, {})
        t = (await client.get("/api/v1/transcripts/P-0001", auth=auth)).json()["items"]
        assert {(i["activity_id"], i["verb"].rsplit("/", 1)[1]) for i in t} == {
            (exam, "completed"), (exam, "passed"), (course, "satisfied")}


async def test_a_completion_under_the_sha1_form_of_a_linked_address_is_the_person_s(
        db_url: str, conn: asyncpg.Connection) -> None:
    """xAPI names a mailbox by mbox or by mbox_sha1sum, the SHA-1 of its mailto IRI. The people
    import links P-0001's address; a completion sent under the address's sha1 form was a person
    of its own (migration 0036)."""
    auth = await _store_with_examples(db_url, conn)
    hidden = {"mbox_sha1sum": hashlib.sha1(b"mailto:kari.nordmann@example.org").hexdigest()}
    async with _app(db_url) as client:
        posted = await client.post("/xapi/statements", auth=auth, headers=HEADERS, json=[
            _completion(hidden, "https://courses.example.org/hlr", "2025-03-01T08:00:00Z")])
        assert posted.status_code == 200, posted.text
        await _catch_up(db_url)
        own = await client.get("/api/v1/transcripts/P-0001", auth=auth)
        assert [i["activity_id"] for i in own.json()["items"]] == ["https://courses.example.org/hlr"], own.text
