"""GET /agents: the Person object (Communication 2.4)."""

from __future__ import annotations

import httpx
import orjson

from lrs.store.activities import AGENT_NAMES_MAX
from tests.statements import statement


async def test_person_for_an_unknown_agent_holds_only_what_was_asked(xapi: httpx.AsyncClient) -> None:
    agent = {"objectType": "Agent", "mbox": "mailto:nobody@example.org"}
    r = await xapi.get("/agents", params={"agent": orjson.dumps(agent).decode()})
    assert r.status_code == 200
    assert r.json() == {"objectType": "Person", "mbox": ["mailto:nobody@example.org"]}


async def test_person_carries_names_seen_in_statements(xapi: httpx.AsyncClient) -> None:
    s = statement(actor="kari")
    assert (await xapi.post("/statements", json=s)).status_code == 200
    agent = {"account": s["actor"]["account"], "name": "Kari N."}
    r = await xapi.get("/agents", params={"agent": orjson.dumps(agent).decode()})
    assert r.status_code == 200
    person = r.json()
    assert person["objectType"] == "Person"
    assert person["account"] == [s["actor"]["account"]]
    assert person["name"] == ["Kari N.", "Kari"]


async def test_person_gives_at_most_a_bounded_number_of_the_names_seen(xapi: httpx.AsyncClient) -> None:
    """Every statement may name its actor differently: the Person object gives the first
    AGENT_NAMES_MAX of the names seen (in the database's order), not all of them."""
    batch = []
    for i in range(AGENT_NAMES_MAX + 30):
        s = statement(actor="ingrid")
        s["actor"]["name"] = f"Ingrid {i:03d}"
        batch.append(s)
    assert (await xapi.post("/statements", json=batch)).status_code == 200
    agent = {"account": batch[0]["actor"]["account"]}
    r = await xapi.get("/agents", params={"agent": orjson.dumps(agent).decode()})
    assert r.status_code == 200
    assert r.json()["name"] == [f"Ingrid {i:03d}" for i in range(AGENT_NAMES_MAX)]


async def test_bad_agent_parameter_is_400(xapi: httpx.AsyncClient) -> None:
    for p in ({}, {"agent": "nope"}, {"agent": '{"name": "no ifi"}'},
              {"agent": '{"mbox": "mailto:a@example.org"}', "x": "1"}):
        r = await xapi.get("/agents", params=p)
        assert r.status_code == 400, p
        assert r.json()["error"]["status"] == 400
