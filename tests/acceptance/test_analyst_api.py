"""The analyst API, mounted at /api in the real application: authentication, transcripts with
linked identifiers and voiding, compliance rows and roll-ups with small-group suppression,
paging, CSV export and the OpenAPI description."""

from __future__ import annotations

import contextlib
import csv
import io
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
from starlette.routing import Mount

from lrs.app import create_app
from lrs.settings import Settings
from projections import api, reference, runner
from projections.models import ALL
from tests.conftest import ROOT, make_tenant

EXAMPLES = ROOT / "docs" / "examples"
HEADERS = {"X-Experience-API-Version": "1.0.3"}


@contextlib.asynccontextmanager
async def _app(db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings.from_env().with_(database_url=db_url))
    app.router.routes.append(Mount("/api", routes=api.routes()))  # the line lrs/app.py gets
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield client


def _completion(account: dict, activity: str, ts: str, sid: str | None = None, **result: object) -> dict:
    s = {"id": sid or str(uuid.uuid4()), "actor": {"objectType": "Agent", **account},
         "verb": {"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"en-US": "completed"}},
         "object": {"objectType": "Activity", "id": activity}, "timestamp": ts}
    if result:
        s["result"] = result
    return s


async def test_analyst_api_end_to_end(db_url: str, conn: asyncpg.Connection) -> None:
    tenant = await make_tenant(db_url, "http://testserver")
    sid = await conn.fetchval("SELECT id FROM stores WHERE name = $1", tenant.store)
    pc = await runner.connect(db_url)
    try:
        for kind, file in (("org", "org.csv"), ("people", "people.csv"), ("requirements", "requirements.csv")):
            await reference.import_file(pc, sid, kind, EXAMPLES / file)
    finally:
        await pc.close()
    auth = (tenant.key, tenant.secret)
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
        pc = await runner.connect(db_url)
        try:
            for p in ALL.values():
                await runner.catch_up(pc, p)
        finally:
            await pc.close()

        t = (await client.get("/api/v1/transcripts/P-0001", auth=auth)).json()
        # both identifiers count for the person; the voided completion is gone
        assert [(i["activity_id"], i["completed_at"][:10]) for i in t["items"]] == [
            ("https://courses.example.org/hlr", "2023-01-15"), ("https://courses.example.org/infosec", "2024-11-02")]
        assert t["items"][1]["valid_until"].startswith("2025-11-02")
        assert t["items"][1]["duration_s"] == 1200 and t["items"][1]["score"] == 0.8

        rows = (await client.get("/api/v1/compliance", auth=auth,
                          params={"as_of": "2025-01-01", "person": "P-0001"})).json()["items"]
        status = {r["requirement_id"]: r["status"] for r in rows}
        # infosec done 2024-11-02 (valid a year); HLR 2023-01-15, valid 730 days: expiring in the
        # 30-day window; medication never done; fire never done
        assert status == {"infosec": "valid", "cpr-hlr": "expiring", "medication": "missing", "fire": "missing"}

        page = (await client.get("/api/v1/compliance", auth=auth, params={"as_of": "2025-01-01", "limit": 3})).json()
        assert len(page["items"]) == 3 and page["next"] and "offset=3" in page["next"]
        rest = (await client.get(page["next"], auth=auth)).json()
        assert rest["offset"] == 3

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


async def test_rollup_shows_groups_at_or_above_the_threshold(db_url: str, conn: asyncpg.Connection) -> None:
    tenant = await make_tenant(db_url, "http://testserver")
    sid = await conn.fetchval("SELECT id FROM stores WHERE name = $1", tenant.store)
    pc = await runner.connect(db_url)
    try:
        await reference.import_file(pc, sid, "org", EXAMPLES / "org.csv")
        await reference.import_file(pc, sid, "requirements", EXAMPLES / "requirements.json")
        await reference.append(pc, sid, [reference.RefEvent("person.employment", f"Q{i}\x1fE1", {
            "person_id": f"Q{i}", "employment_id": "E1", "unit_id": "900111", "role": "nurse",
            "profession": "sykepleier", "valid_from": "2020-01-01", "valid_to": None}) for i in range(6)])
        await reference.append(pc, sid, [reference.RefEvent("person.employment", "Z1\x1fE1", {
            "person_id": "Z1", "employment_id": "E1", "unit_id": "900110", "role": "nurse",
            "profession": "sykepleier", "valid_from": "2020-01-01", "valid_to": None})])
        for p in ALL.values():
            await runner.catch_up(pc, p)
    finally:
        await pc.close()
    async with _app(db_url) as client:
        auth = (tenant.key, tenant.secret)
        units = {r["group_id"]: r for r in (await client.get("/api/v1/compliance/rollup", auth=auth,
                                                      params={"as_of": "2025-01-01"})).json()["items"]}
        assert units["900111"]["total"] == 6 and units["900111"]["missing"] == 6
        assert units["900111"]["percent_compliant"] == 0.0 and not units["900111"]["suppressed"]
        assert units["900110"]["suppressed"] and units["900110"]["total"] is None
        trust = (await client.get("/api/v1/compliance/rollup", auth=auth,
                           params={"as_of": "2025-01-01", "level": "trust"})).json()["items"]
        assert [(r["group_id"], r["total"]) for r in trust] == [("900010", 7)]
