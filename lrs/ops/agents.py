"""The rules of the Agents Resource (xAPI Communication 2.4): the Person object."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from lrs.ops import terms as T
from lrs.ops.audit import AuditTrail, refusals_recorded
from lrs.ops.documents import agent_param
from lrs.ops.principal import Principal

Names = Callable[[int, str], Awaitable[list[str]]]

IFIS = ("mbox", "mbox_sha1sum", "openid", "account")


async def get_person(names: Names, principal: Principal, version: str, raw_agent: str | None, *,
                     audit: AuditTrail | None = None) -> dict[str, Any]:
    """The Person object for the ``agent`` parameter.

    Communication 2.4.s3.b3: without more knowledge, the Person holds only what the request's
    Agent says, each property as an array (2.4.s5); names seen in statements for the same IFI
    are added. Spor does not link different IFIs to one person (no cross-identifier lookup),
    so each array holds at most one identifier.
    """
    # the names Spor holds for a person are the person's records too (audited as a read)
    async with refusals_recorded(audit, principal, "agents.get", lambda: {"agent": _probed(raw_agent)}):
        principal.require("all/read", "statements/read", "profile", "state")
    key, agent = agent_param(raw_agent, version)
    person: dict[str, Any] = {"objectType": "Person"}
    seen = await names(principal.store_id, key)
    all_names = ([agent["name"]] if isinstance(agent.get("name"), str) else []) + seen
    if all_names:
        person["name"] = list(dict.fromkeys(all_names))
    for ifi in IFIS:
        if ifi in agent:
            person[ifi] = [agent[ifi]]
    if audit is not None:
        await audit.record(principal, "agents.get", {"agent": key}, len(seen))
    return person


def _probed(raw_agent: str | None) -> str | None:
    """Whom a refused request's agent parameter names, valid or not (the key ``agent_param``
    gives a valid one)."""
    try:
        data = orjson.loads(raw_agent or "")
    except orjson.JSONDecodeError:
        return None
    return T.agent_key(data) if isinstance(data, dict) else None
