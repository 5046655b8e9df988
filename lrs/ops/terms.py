"""Identity keys of Agents and the filter terms a statement is indexed under.

An Agent or identified Group is identified by its inverse functional identifier (IFI); its key
is a short string such as ``mbox:mailto:kari@example.org``. The statement index stores one row
per term (agent, verb, activity, registration) with ``direct`` telling whether the plain filter
matches, or only the ``related_agents`` / ``related_activities`` one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

VOIDED_VERB = "http://adlnet.gov/expapi/verbs/voided"

AGENT = "a:"
VERB = "v:"
ACTIVITY = "o:"
REGISTRATION = "r:"


def _mbox(value: str) -> str:
    # The domain part of an e-mail address is case-insensitive (xAPI Data 2.3.1, case
    # sensitivity), so it is lowered; the local part is kept as sent.
    local, at, domain = value.partition("@")
    return f"{local}{at}{domain.lower()}"


def agent_key(obj: dict[str, Any]) -> str | None:
    """The IFI key of an Agent or identified Group, or None for an anonymous Group."""
    if "mbox" in obj:
        return "mbox:" + _mbox(str(obj["mbox"]))
    if "mbox_sha1sum" in obj:
        return "sha1:" + str(obj["mbox_sha1sum"]).lower()
    if "openid" in obj:
        return "openid:" + str(obj["openid"])
    account = obj.get("account")
    if isinstance(account, dict):
        return f"account:{account.get('homePage')}|{account.get('name')}"
    return None


def mbox_sha1_keys(key: str) -> list[str]:
    """The ``sha1:`` keys naming the same mailbox as an ``mbox:`` key (xAPI Data 2.4.2.3:
    ``mbox_sha1sum`` is the hex SHA-1 of the mailto IRI): of the IRI as the key has it (its
    domain lowered) and, when that differs, of the IRI in lower case, as many clients hash it.
    None for any other key. (A client that hashes other capitals is not found: SHA-1 cannot be
    undone.)"""
    if not key.startswith("mbox:"):
        return []
    iri = key[len("mbox:"):]
    forms = dict.fromkeys((iri, iri.lower()))
    return ["sha1:" + hashlib.sha1(f.encode(), usedforsecurity=False).hexdigest() for f in forms]


def ifi_only(obj: dict[str, Any]) -> dict[str, Any]:
    """An Agent/Group reduced to objectType and its IFI (format=ids)."""
    out: dict[str, Any] = {"objectType": obj.get("objectType", "Agent")}
    for prop in ("mbox", "mbox_sha1sum", "openid", "account"):
        if prop in obj:
            out[prop] = obj[prop]
            return out
    # Anonymous Group: the minimum needed to identify each member.
    out["member"] = [ifi_only(m) for m in obj.get("member", [])]
    return out


def _add(rows: dict[str, bool], term: str, direct: bool) -> None:
    """A term seen both directly and indirectly is direct."""
    if direct:
        rows[term] = True
    elif term not in rows:
        rows[term] = False


def _agent_terms(rows: dict[str, bool], obj: Any, direct: bool) -> None:
    if not isinstance(obj, dict):
        return
    key = agent_key(obj)
    if key is not None:
        _add(rows, AGENT + key, direct)
    # Groups whose members match the Agent match the agent filter (xAPI Communication 2.1.3,
    # agent parameter).
    members = obj.get("member")
    if members:
        for member in members:
            if isinstance(member, dict) and (mkey := agent_key(member)) is not None:
                _add(rows, AGENT + mkey, direct)


def _context_terms(rows: dict[str, bool], ctx: Any, top: bool) -> None:
    """A context's agents and activities (related filters); its registration only at the top
    (the registration filter reads the statement's own context)."""
    if not isinstance(ctx, dict):
        return
    _agent_terms(rows, ctx.get("instructor"), False)
    _agent_terms(rows, ctx.get("team"), False)
    for ca in ctx.get("contextAgents") or ():
        if isinstance(ca, dict):
            _agent_terms(rows, ca.get("agent"), False)
    for cg in ctx.get("contextGroups") or ():
        if isinstance(cg, dict):
            _agent_terms(rows, cg.get("group"), False)
    activities = ctx.get("contextActivities")
    if isinstance(activities, dict):
        for value in activities.values():
            for act in value if isinstance(value, list) else (value,):
                if isinstance(act, dict) and "id" in act:
                    _add(rows, ACTIVITY + str(act["id"]), False)
    registration = ctx.get("registration")
    if registration and top:
        _add(rows, REGISTRATION + str(registration).lower(), True)


def _body_terms(rows: dict[str, bool], stmt: dict[str, Any], top: bool) -> None:
    """Actor, verb, object and context of a statement or SubStatement."""
    _agent_terms(rows, stmt.get("actor"), top)
    verb = stmt.get("verb")
    if top and isinstance(verb, dict):
        _add(rows, VERB + str(verb.get("id")), True)
    obj = stmt.get("object")
    if isinstance(obj, dict):
        kind = obj.get("objectType", "Activity")
        if kind == "Activity":
            _add(rows, ACTIVITY + str(obj.get("id")), top)
        elif kind in ("Agent", "Group"):
            _agent_terms(rows, obj, top)
        elif kind == "SubStatement":
            _body_terms(rows, obj, False)
    # Inside a SubStatement only the related filters look, at every agent property its context
    # has, contextAgents and contextGroups (2.0.0) included (Communication 2.1.3).
    _context_terms(rows, stmt.get("context"), top)


def statement_terms(stmt: dict[str, Any]) -> dict[str, bool]:
    """All filter terms of a statement: term -> direct."""
    rows: dict[str, bool] = {}
    _body_terms(rows, stmt, True)
    _agent_terms(rows, stmt.get("authority"), False)
    return rows


def direct_agent_keys(*agents: Any) -> list[str]:
    """The agent keys the agent filter finds a statement by without related_agents: of its actor
    and of its object when that is an Agent or Group (the caller passes only such), and of their
    members, in order, once."""
    rows: dict[str, bool] = {}
    for obj in agents:
        _agent_terms(rows, obj, True)
    return [term.removeprefix(AGENT) for term in rows]


def merge_terms(own: dict[str, bool], inherited: Iterable[tuple[str, bool]]) -> dict[str, bool]:
    """Add the terms of a StatementRef target to the targeting statement's own terms."""
    out = dict(own)
    for term, direct in inherited:
        out[term] = out.get(term, False) or direct
    return out
