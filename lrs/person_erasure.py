"""Erasing a person from a store (GDPR article 17; DOMAIN.md, Privacy): ``spor person erase``.

What goes: the statements whose actor or object is the person (their own learning records,
voided or not, with their filter terms and the attachments no other statement holds), their
State and Agent Profile documents with every event of their history and the contents no one
else's document names, the names statements gave them, and the reference data naming their
person ids (identifier links, employments). The person's agent terms come off the statements
that stay, so the filters no longer find those by the person.

What stays, and is counted: other people's statements that name the person elsewhere (as
instructor, team or context agent, authority, a member of a Group, inside a SubStatement), or
that refer to one of theirs (a StatementRef, a voiding): those are the other people's records,
and they still hold the person's identifier in their content. The audit trail stays whole: who
read the person's records, and this erasure (``person.erase``), are kept under its own
retention. Backups keep what they hold until they age out.

All of it happens in one transaction under the store's append lock (no write to the store runs
meanwhile), which appends a ``person.erased`` event holding counts alone and records the erasure
in the audit trail. Without ``apply`` the same transaction is rolled back: a dry run with exact
counts. The read models still hold the person's rows until they are rebuilt from the log, which
the command does next (``spor projections rebuild all``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

from lrs.ops.audit import recordable
from lrs.ops.terms import AGENT, agent_key
from lrs.person_export import PAGE, Identity, relation
from lrs.store.log import commit_positions, reserve
from lrs.store.queries import sql


@dataclass
class Erased:
    """What an erasure took away (or, in a dry run, would), and what it left naming the person."""

    statements: int = 0
    attachments: int = 0
    documents: int = 0
    document_events: int = 0
    document_contents: int = 0
    names: int = 0
    reference_events: int = 0
    kept_naming_them: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, Any]:
        return dict(vars(self))


class _DryRun(Exception):
    """Rolls a dry run's transaction back."""


def owned(stmt: dict[str, Any], keys: set[str]) -> bool:
    """Whether a statement is the person's own record: its actor, or its object when that is an
    Agent or a Group, is identified by one of their identifiers (not by a Group holding them)."""
    actor = stmt.get("actor")
    if isinstance(actor, dict) and agent_key(actor) in keys:
        return True
    obj = stmt.get("object")
    return (isinstance(obj, dict) and obj.get("objectType") in ("Agent", "Group")
            and agent_key(obj) in keys)


async def erase_person(conn: asyncpg.Connection, store_id: int, identity: Identity, *, apply: bool,
                       by: str) -> Erased:
    """Erase ``identity`` from store ``store_id`` in one transaction, or (``apply`` false) do
    it and roll it back; what was (would be) erased."""
    erased = Erased()
    try:
        async with conn.transaction():
            await _erase(conn, store_id, identity, erased, by)
            if not apply:
                raise _DryRun
    except _DryRun:
        pass
    return erased


async def _erase(conn: asyncpg.Connection, store_id: int, identity: Identity, erased: Erased, by: str) -> None:
    await conn.execute(sql("person_erasure_begin"))
    reservation = await reserve(conn, store_id, 1)  # the store's append lock, to commit
    keys = set(identity.keys)
    terms = [AGENT + k for k in identity.keys]
    mine: list[int] = []
    every = [r["position"] for r in await conn.fetch(sql("person_statement_positions"), store_id, terms)]
    for start in range(0, len(every), PAGE):
        for r in await conn.fetch(sql("person_statements_at"), store_id, every[start:start + PAGE]):
            stmt = orjson.loads(r["payload"])
            if owned(stmt, keys):
                mine.append(r["position"])
            else:
                how = relation(stmt, keys)
                erased.kept_naming_them[how] = erased.kept_naming_them.get(how, 0) + 1
    sha2s: set[str] = set()
    for start in range(0, len(mine), PAGE):
        chunk = mine[start:start + PAGE]
        await conn.execute(sql("person_erase_statement_terms"), store_id, chunk)
        row = await conn.fetchrow(sql("person_erase_statements"), store_id, chunk)
        erased.statements += row["events"]
        sha2s.update(row["sha2s"])
    await conn.execute(sql("person_erase_terms_elsewhere"), store_id, terms)
    if sha2s:
        erased.attachments = _count(await conn.execute(sql("person_erase_attachments"), store_id, sorted(sha2s)))
    docs = await conn.fetchrow(sql("person_erase_documents"), store_id, identity.keys)
    erased.documents, erased.document_events = docs["documents"], docs["events"]
    if docs["contents"]:
        erased.document_contents = _count(
            await conn.execute(sql("person_erase_document_contents"), store_id, list(docs["contents"])))
    erased.names = _count(await conn.execute(sql("person_erase_names"), store_id, identity.keys))
    if identity.person_ids:
        erased.reference_events = await conn.fetchval(sql("person_erase_reference"), store_id, identity.person_ids)
    # the erasure's own event (counts, no identifier) and its record in the audit trail
    await conn.execute(sql("person_erasure_event"), store_id, reservation.first, reservation.stored,
                       orjson.dumps({**erased.counts(), "by": by}).decode())
    await commit_positions(conn, store_id, reservation)
    request = recordable({"persons": [*identity.keys, *identity.person_ids], "by": by, "counts": erased.counts()})
    await conn.execute(sql("person_record_erasure"), store_id, orjson.dumps(request).decode(), erased.statements)


def _count(status: str) -> int:
    """The row count of a command's status ("DELETE 3")."""
    return int(status.rsplit(" ", 1)[-1])
