"""A server whose write buffer (SPOR_WRITE_BUFFER_BYTES) is smaller than a single batch: every
concurrent write still succeeds and is stored, one after another, and /metrics shows the waits."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import orjson
import pytest

from lrs.store.embedded import EmbeddedPostgres
from tests.acceptance.test_statements_paging import walk
from tests.conftest import Server, make_tenant, server_of_its_own, xapi_client
from tests.statements import statement, with_id

BUFFER = 2048


@pytest.fixture(scope="module")
def tight_server(pg: EmbeddedPostgres) -> Iterator[Server]:
    with server_of_its_own(pg, {"SPOR_WRITE_BUFFER_BYTES": str(BUFFER)}) as s:
        yield s


async def test_concurrent_batches_larger_than_the_buffer_all_succeed(tight_server: Server) -> None:
    tenant = await make_tenant(tight_server.database_url, tight_server.base_url)
    batches = [[with_id(statement(actor=f"p{b}-{i}")) for i in range(10)] for b in range(8)]
    assert all(len(orjson.dumps(b)) > BUFFER for b in batches)
    single = with_id(statement(actor="solo"))
    async with xapi_client(tight_server, tenant) as xapi:
        posts = [xapi.post("/statements", json=b) for b in batches]
        put = xapi.put("/statements", params={"statementId": single["id"]}, json=single)
        answers = await asyncio.gather(*posts, put)
        assert [r.status_code for r in answers] == [200] * len(batches) + [204]
        for r, b in zip(answers, batches, strict=False):
            assert r.json() == [s["id"] for s in b]
        got = await xapi.get("/statements", params={"limit": 0, "agent": orjson.dumps(
            {"account": {"homePage": "https://id.example.org", "name": "emp-solo"}}).decode()})
        assert [s["id"] for s in got.json()["statements"]] == [single["id"]]
        pages = await walk(xapi, tight_server, {"limit": "100"})
        assert {sid for page in pages for sid in page} == {s["id"] for b in batches for s in b} | {single["id"]}
    async with httpx.AsyncClient(timeout=30) as plain:
        metrics = (await plain.get(tight_server.base_url + "/metrics")).text
    waits = next(float(line.split()[1]) for line in metrics.splitlines()
                 if line.startswith("spor_write_buffer_waits_total "))
    assert waits >= 1
    assert "spor_write_buffer_bytes 0" in metrics


async def test_document_writes_share_the_write_buffer(tight_server: Server) -> None:
    """A JSON merge holds a document split into members, many times its size (four 15 MB state
    documents at once: +560 MB, a memory audit): document PUTs and POSTs wait for room in the
    write buffer as statements do, and every one is stored."""
    tenant = await make_tenant(tight_server.database_url, tight_server.base_url)

    async def waits() -> float:
        async with httpx.AsyncClient(timeout=30) as plain:
            metrics = (await plain.get(tight_server.base_url + "/metrics")).text
        return next(float(line.split()[1]) for line in metrics.splitlines()
                    if line.startswith("spor_write_buffer_waits_total "))

    before = await waits()
    agent = orjson.dumps({"mbox": "mailto:ola@example.org"}).decode()
    where = {"activityId": "https://courses.example.org/budget", "agent": agent}
    documents = [{f"k{d}-{i}": "v" * 50 for i in range(40)} for d in range(6)]
    assert all(len(orjson.dumps(d)) > BUFFER for d in documents)
    async with xapi_client(tight_server, tenant) as xapi:
        writes = [xapi.post("/activities/state", params={**where, "stateId": "merged"}, json=d) for d in documents]
        writes += [xapi.put("/activities/state", params={**where, "stateId": f"put-{i}"}, json=d)
                   for i, d in enumerate(documents)]
        answers = await asyncio.gather(*writes)
        assert [r.status_code for r in answers] == [204] * len(writes)
        merged = await xapi.get("/activities/state", params={**where, "stateId": "merged"})
        assert merged.json() == {k: v for d in documents for k, v in d.items()}
    assert await waits() >= before + 1


async def test_a_merge_holds_room_for_the_stored_document_too(tight_server: Server) -> None:
    """What a merge holds in memory is mostly the stored document split into members: a 20-byte
    POST into a 16 MiB document is ~290 MB (a review). A merge takes room in the write buffer
    for the posted and the stored document together, so tiny merges into large documents wait
    for each other."""
    tenant = await make_tenant(tight_server.database_url, tight_server.base_url)
    agent = orjson.dumps({"mbox": "mailto:kari@example.org"}).decode()
    where = {"activityId": "https://courses.example.org/large-merges", "agent": agent}
    large = {f"member-{i}": i for i in range(40_000)}  # ~600 KB, split before the lock
    async with xapi_client(tight_server, tenant) as xapi:
        for n in range(4):
            r = await xapi.put("/activities/state", params={**where, "stateId": f"large-{n}"}, json=large)
            assert r.status_code == 204, r.text
        async with httpx.AsyncClient(timeout=30) as plain:
            metrics = (await plain.get(tight_server.base_url + "/metrics")).text
        before = next(float(line.split()[1]) for line in metrics.splitlines()
                      if line.startswith("spor_write_buffer_waits_total "))
        answers = await asyncio.gather(*[
            xapi.post("/activities/state", params={**where, "stateId": f"large-{n}"}, json={"tiny": n})
            for n in range(4)])
        assert [r.status_code for r in answers] == [204] * 4
        for n in range(4):
            got = await xapi.get("/activities/state", params={**where, "stateId": f"large-{n}"})
            assert got.json() == {**large, "tiny": n}
    async with httpx.AsyncClient(timeout=30) as plain:
        metrics = (await plain.get(tight_server.base_url + "/metrics")).text
    after = next(float(line.split()[1]) for line in metrics.splitlines()
                 if line.startswith("spor_write_buffer_waits_total "))
    assert after >= before + 2  # four merges of the whole buffer each: in turn
    assert "spor_write_buffer_bytes 0" in metrics
