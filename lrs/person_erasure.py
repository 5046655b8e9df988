"""Erasing a person from a store (GDPR article 17; DOMAIN.md, Privacy): ``spor person erase``.

Whom: the person ids given (``--person-id``) and every identifier linked to them now, and the
identifiers given (``--agent``), each for itself: an identifier never stands for the person it
is linked to, so naming one cannot erase someone else (a review: naming a former identifier of
the person erased its new holder whole).

What goes: the statements whose actor is the person by an identifier no one else has held
(their own learning records, voided or not, with their filter terms and the attachments no other
statement holds), the definitions of activities no statement left names, their State and Agent
Profile documents with every event of their history and the contents no one else's document
names, the names statements gave them, and the reference data naming their person ids
(identifier links, employments). The person's agent terms come off the statements that stay, so
the filters no longer find those by the person, and a statement that stays and refers to an
erased one keeps only its own terms (and those of a target that stays).

What stays, and is counted (``kept_naming_them``): other people's statements that name the person
(as object, instructor, team or context agent, authority, a member of a Group, inside a
SubStatement), or that refer to one of theirs (a StatementRef); the person's voidings of other
people's statements (erasing one would bring a colleague's voided record back); statements under
an identifier someone else has also held, with the documents and names under it (whose each
one is, Spor cannot tell; they stay findable by it); the activity
profiles of activities only the person's statements named. The audit trail stays whole. Backups
keep what they hold until they age out.

An identifier whose newest link or unlink names the person and whose older ones name someone
else loses every link of its history, so it is nobody's afterwards, not given back to the one
before.

All of it happens in one transaction under the store's append lock (no write to the store runs
meanwhile; whom it erases is decided under it too), which appends a ``person.erased`` event
holding counts alone and records the erasure in the audit trail. Without ``apply`` the same
transaction is rolled back: a dry run with exact counts. The read models still hold the person's
rows until they are rebuilt from the log, which the command does next.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

from lrs.ops.statements import MAX_REF_DEPTH
from lrs.ops.terms import ACTIVITY, AGENT, VOIDED_VERB, agent_key, merge_terms, statement_terms
from lrs.person_export import ACTOR_OR_OBJECT, PAGE, Identity, audit_request, identify, relation, statements_naming
from lrs.store.log import commit_positions, reserve
from lrs.store.queries import sql
from lrs.store.statements import recorded_terms


@dataclass
class Erased:
    """What an erasure took away (or, in a dry run, would), and what it left naming the person."""

    statements: int = 0
    attachments: int = 0
    activities: int = 0
    documents: int = 0
    document_events: int = 0
    document_contents: int = 0
    names: int = 0
    reference_events: int = 0
    kept_naming_them: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, Any]:
        return dict(vars(self))

    def keep(self, why: str) -> None:
        self.kept_naming_them[why] = self.kept_naming_them.get(why, 0) + 1


# why a statement naming the person stays
SHARED = "under an identifier someone else has also held"
VOIDS_ANOTHERS = "the person's voiding of another's statement"
ABOUT_THEM = "another's statement about them (as object)"
MEMBER = "a Group's statement, the person a member"


class _DryRun(Exception):
    """Rolls a dry run's transaction back."""


def owned(stmt: dict[str, Any], keys: set[str]) -> bool:
    """Whether a statement is the person's own record: its actor is identified by one of their
    identifiers (not by a Group holding them)."""
    actor = stmt.get("actor")
    return isinstance(actor, dict) and agent_key(actor) in keys


def voids(stmt: dict[str, Any]) -> str | None:
    """The id a voiding statement voids; None for any other statement."""
    verb, obj = stmt.get("verb"), stmt.get("object")
    if isinstance(verb, dict) and verb.get("id") == VOIDED_VERB and isinstance(obj, dict):
        return str(obj.get("id", "")).lower()
    return None


async def erase_person(conn: asyncpg.Connection, store_id: int, keys: list[str], person_ids: list[str], *,
                       apply: bool, by: str) -> tuple[Identity, Erased]:
    """Erase the person in store ``store_id`` in one transaction, or (``apply`` false) do it and
    roll it back; whom it covered, and what was (would be) erased. UnknownPerson (nothing done)
    for a person id the reference data never named."""
    erased = Erased()
    identity = Identity([], [])
    try:
        async with conn.transaction():
            await conn.execute(sql("person_erasure_begin"))
            reservation = await reserve(conn, store_id, 1)  # the store's append lock, to commit
            identity = await identify(conn, store_id, keys, person_ids, widen_from_keys=False)
            await _erase(conn, store_id, identity, erased)
            # the erasure's own event (counts, no identifier) and its record in the audit trail
            await conn.execute(sql("person_erasure_event"), store_id, reservation.first, reservation.stored,
                               orjson.dumps({**erased.counts(), "by": by}).decode())
            await commit_positions(conn, store_id, reservation)
            await conn.execute(sql("person_record_erasure"), store_id, audit_request(identity, by, erased.counts()),
                               erased.statements)
            if not apply:
                raise _DryRun
    except _DryRun:
        pass
    return identity, erased


async def _erase(conn: asyncpg.Connection, store_id: int, identity: Identity, erased: Erased) -> None:
    exclusive = set(identity.keys) - set(identity.shared)
    # what is kept under an identifier someone else has also held stays findable by it: documents,
    # names and terms go for the identifiers only the person has held
    only_theirs = [k for k in identity.keys if k in exclusive]
    keys = set(identity.keys)
    mine: dict[int, str] = {}  # position -> statement id
    voidings: dict[int, str] = {}  # of those, the voidings: position -> the id voided
    async for r in statements_naming(conn, store_id, identity.keys):
        stmt = orjson.loads(r["payload"])
        if owned(stmt, exclusive):
            mine[r["position"]] = str(r["statement_id"])
            if (target := voids(stmt)) is not None:
                voidings[r["position"]] = target
        elif owned(stmt, keys):
            erased.keep(SHARED)
        elif (how := relation(stmt, keys)) != ACTOR_OR_OBJECT:
            erased.keep(how)
        else:
            erased.keep(MEMBER if _member_only(stmt, keys) else ABOUT_THEM)
    # a voiding of a statement that stays stays too: without it the log would no longer say the
    # other's statement is voided, and a rebuild would count it again
    theirs = set(mine.values())
    for position, target in voidings.items():
        if target not in theirs:
            del mine[position]
            erased.keep(VOIDS_ANOTHERS)
    positions = sorted(mine)
    sha2s: set[str] = set()
    activities: set[str] = set()
    for start in range(0, len(positions), PAGE):
        chunk = positions[start:start + PAGE]
        pairs = [(term, r["position"]) for r in await conn.fetch(sql("person_statement_terms_at"), store_id, chunk)
                 for term in recorded_terms(r["terms"], r["payload"])]
        for r in await conn.fetch(sql("person_erase_statement_terms"), store_id,
                                  [t for t, _ in pairs], [p for _, p in pairs]):
            if r["term"].startswith(ACTIVITY):
                activities.add(r["term"][len(ACTIVITY):])
        row = await conn.fetchrow(sql("person_erase_statements"), store_id, chunk)
        erased.statements += row["events"]
        sha2s.update(row["sha2s"])
    await _refresh_referrers(conn, store_id, sorted(set(mine.values())))
    await _erase_terms_elsewhere(conn, store_id, [AGENT + k for k in only_theirs])
    if sha2s:
        erased.attachments = _count(await conn.execute(sql("person_erase_attachments"), store_id, sorted(sha2s)))
    if activities:
        gone = await conn.fetch(sql("person_erase_activities"), store_id, sorted(activities))
        erased.activities = len(gone)
        profiles = await conn.fetchval(sql("person_activity_profiles"), store_id, [r["activity_id"] for r in gone])
        for _ in range(profiles):
            erased.keep("an activity profile of an activity only their statements named")
    docs = await conn.fetchrow(sql("person_erase_documents"), store_id, only_theirs)
    erased.documents, erased.document_events = docs["documents"], docs["events"]
    if docs["contents"]:
        erased.document_contents = _count(
            await conn.execute(sql("person_erase_document_contents"), store_id, list(docs["contents"])))
    erased.names = _count(await conn.execute(sql("person_erase_names"), store_id, only_theirs))
    if identity.person_ids:
        erased.reference_events = await conn.fetchval(sql("person_erase_reference"), store_id, identity.person_ids)
    if identity.reset:
        # nobody's afterwards: not given back to whoever held it before the person
        erased.reference_events += await conn.fetchval(sql("person_erase_links_of"), store_id, identity.reset)


async def _erase_terms_elsewhere(conn: asyncpg.Connection, store_id: int, terms: list[str]) -> None:
    """Take the person's agent terms off every statement that stays: out of the runs, and out of
    the recorded terms. A statement whose terms were its body's own (NULL, migration 0044)
    records the rest of them, so they are no longer what its body gives."""
    own = [r["position"] for r in await conn.fetch(sql("person_erase_terms_elsewhere"), store_id, terms)]
    gone = set(terms)
    for start in range(0, len(own), PAGE):
        rows = await conn.fetch(sql("person_statement_terms_at"), store_id, own[start:start + PAGE])
        rest = [orjson.dumps({t: d for t, d in recorded_terms(r["terms"], r["payload"]).items() if t not in gone})
                .decode() for r in rows]
        await conn.execute(sql("person_record_terms"), store_id, [r["position"] for r in rows], rest)


async def _refresh_referrers(conn: asyncpg.Connection, store_id: int, erased_ids: list[str]) -> None:
    """The statements that stay and refer to an erased one (a StatementRef, a voiding), and those
    that refer to them in turn: their filter terms were their own and their target's, and the
    target is gone. Each gets its own terms and those of a target that stays, as the append
    gives them (lrs.ops.statements.inherit_target_terms), up to MAX_REF_DEPTH hops."""
    terms_of: dict[str, dict[str, bool]] = {sid: {} for sid in erased_ids}  # erased: nothing to inherit
    level = erased_ids
    for _ in range(MAX_REF_DEPTH):
        if not level:
            return
        rows = await conn.fetch(sql("person_referrers"), store_id, level)
        for r in rows:
            recorded = recorded_terms(r["terms"], r["payload"])
            own = statement_terms(orjson.loads(r["payload"]))
            terms = merge_terms(own, terms_of.get(str(r["refers_to"]), {}).items())
            # an agent term an earlier erasure took off stays off: the body still names that
            # person (a review: erasing a second person brought the first back)
            terms = {t: d for t, d in terms.items() if not t.startswith(AGENT) or t in recorded}
            terms_of[str(r["statement_id"])] = terms
            await conn.execute(sql("person_referrer_terms_gone"), store_id, r["position"], list(recorded))
            await conn.execute(sql("person_referrer_terms"), store_id, r["position"], orjson.dumps(terms).decode())
        level = [str(r["statement_id"]) for r in rows]


def _member_only(stmt: dict[str, Any], keys: set[str]) -> bool:
    """Whether the person is in the statement's actor or object only as a Group's member."""
    found = []
    for part in (stmt.get("actor"), stmt.get("object")):
        if isinstance(part, dict):
            found.append(agent_key(part) in keys)
    return not any(found)


def _count(status: str) -> int:
    """The row count of a command's status ("DELETE 3")."""
    return int(status.rsplit(" ", 1)[-1])
