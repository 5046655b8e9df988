"""Everything Spor holds about one person, in one JSON file: the answer to an access request
(GDPR article 15; DOMAIN.md, Privacy). ``spor person export`` writes it (``lrs/admin.py``).

Who the person is (``identify``, which the erasure uses too): the person ids and identifiers
asked for, every identifier linked to those people now (the newest link or unlink in the log
decides), and each e-mail address's mbox_sha1sum forms. Statements are found by the statement
index, as the ``related_agents`` filter finds them (actor, object, authority, context agents,
Group members, and statements that refer to theirs), voided ones included, each with how it is
about the person. The file then holds the attachments of their own statements, the State and
Agent Profile documents kept for them with each document's history and earlier versions, the
names statements gave them, the reference data about them, their read-model rows, and who read
their records in this store (the audit trail). The export reads one snapshot, and is itself
recorded in the audit trail.

The file is written as it is read, a page of statements at a time, so a person with a long
history does not need the whole of it in memory.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import IO, Any

import asyncpg
import orjson

from lrs.ops.audit import recordable
from lrs.ops.terms import AGENT, mbox_sha1_keys, statement_terms
from lrs.store.audit import PgAuditRepository
from lrs.store.queries import sql
from projections.facts import PERSON_LINKED

PAGE = 500
# The audit rows kept per identifier (newest first); more than any person has in practice.
READS_MAX = 1_000_000
TEXT_TYPES = ("text/", "application/json", "application/xml", "application/ld+json")

# How a statement is about the person
ACTOR_OR_OBJECT = "actor or object"
RELATED = "context, authority or inside a SubStatement"
REFERS = "refers to a statement about the person"


@dataclass
class Identity:
    """Whom an export is about: agent keys and person ids (reference data), and the identifiers
    once linked to those people and linked no more (not searched: one may be someone else's
    now, an address given to a new employee)."""

    keys: list[str]
    person_ids: list[str]
    former: list[str] = field(default_factory=list)
    # of ``keys``, those whose links have named someone else too (with their mbox_sha1sum
    # forms): whose each statement under one is, Spor cannot tell
    shared: list[str] = field(default_factory=list)
    # identifiers whose newest link or unlink names the person and whose older ones name someone
    # else: taking the person's away would make an older holder's the newest (an erasure takes
    # all of such an identifier's, so it is nobody's afterwards)
    reset: list[str] = field(default_factory=list)


@dataclass
class Counts:
    statements: int = 0
    voided: int = 0
    attachments: int = 0
    documents: int = 0
    document_events: int = 0
    document_versions: int = 0
    reference_events: int = 0
    names: int = 0
    transcript: int = 0
    course_facts: int = 0
    compliance: int = 0
    reads: int = 0
    relations: dict[str, int] = field(default_factory=dict)

    def totals(self) -> dict[str, int]:
        """How many of each, without the break-down by relation."""
        return {k: v for k, v in vars(self).items() if k != "relations"}


class UnknownPerson(LookupError):
    """A person id the store's reference data does not name."""


async def identify(conn: asyncpg.Connection, store_id: int, keys: list[str], person_ids: list[str], *,
                   widen_from_keys: bool = True) -> Identity:
    """The identifiers and person ids of the person asked about: those given, the person each
    given identifier is linked to now, and every identifier linked now to those people; the
    newest link or unlink of an identifier in the log says whose it is now. Identifiers linked
    to them once and not now are listed apart (``former``), unsearched: such an identifier may
    be someone else's now. Each address also by its mbox_sha1sum forms; an mbox_sha1sum given
    alone is found through the read models' links, which hold those forms (migration 0036).
    UnknownPerson for a person id the reference data has never named. A given identifier
    stands for itself, not for the person it is linked to, when a person id is given too or
    ``widen_from_keys`` is false (an erasure names its people by person id): a former identifier
    named beside the person would otherwise bring in whoever holds it now (a review)."""
    given_keys = list(dict.fromkeys(keys))
    ids = list(dict.fromkeys(person_ids))
    widen_from_keys = widen_from_keys and not person_ids
    if widen_from_keys:
        given = await _link_history(conn, store_id, given_keys)
        ids += [p for p in dict.fromkeys(given.now.get(k) for k in given_keys) if p is not None and p not in ids]
        for key in given_keys:
            if key.startswith("sha1:") and key not in given.now:
                person = await conn.fetchval(sql("person_linked_in_read_models"), store_id, key)
                if person is not None and person not in ids:
                    ids.append(person)
    known = {r["person_id"] for r in await conn.fetch(sql("person_known"), store_id, person_ids)}
    for person in person_ids:
        if person not in known:
            raise UnknownPerson(f"no person {person!r} in this store's reference data (never imported, a typo, "
                                "or erased)")
    named = await conn.fetch(sql("person_identity_events"), store_id, ids, [])
    candidates = list(dict.fromkeys(r["ifi"] for r in named))
    every = list(dict.fromkeys(candidates + given_keys))
    links = await _link_history(conn, store_id, every)
    found = list(dict.fromkeys([*given_keys, *(k for k in candidates if links.now.get(k) in ids)]))

    def someone_else(key: str) -> bool:
        named = links.holders.get(key, set())
        return bool(named - set(ids)) if ids else len(named) > 1

    shared = [k for k in found if someone_else(k)]
    reset = [k for k in every if links.newest.get(k) in ids and someone_else(k)]
    for key in list(found):
        extra = [x for x in mbox_sha1_keys(key) if x not in found]
        found += extra
        if key in shared:
            shared += extra
    former = [k for k in candidates if k not in found]
    return Identity(found, ids, former, shared, reset)


@dataclass
class _Links:
    """What the links and unlinks of some identifiers say, oldest to newest."""

    now: dict[str, str | None] = field(default_factory=dict)  # the person linked now (None: unlinked)
    holders: dict[str, set[str]] = field(default_factory=dict)  # everyone they named
    newest: dict[str, str] = field(default_factory=dict)  # whom the newest named


async def _link_history(conn: asyncpg.Connection, store_id: int, keys: list[str]) -> _Links:
    links = _Links()
    if not keys:
        return links
    for r in await conn.fetch(sql("person_identity_events"), store_id, [], keys):
        links.now[r["ifi"]] = r["person_id"] if r["kind"] == PERSON_LINKED else None
        links.holders.setdefault(r["ifi"], set()).add(r["person_id"])
        links.newest[r["ifi"]] = r["person_id"]
    return links


def relation(stmt: dict[str, Any], keys: set[str]) -> str:
    """How a statement is about the person: by its own actor or object, by another place in its
    own content, or only by the statement it refers to (whose filter terms it carries)."""
    own = statement_terms(stmt)
    mine = [own[AGENT + k] for k in keys if AGENT + k in own]
    if any(mine):
        return ACTOR_OR_OBJECT
    return RELATED if mine else REFERS


def content_member(content_type: str, content: bytes | None) -> dict[str, Any]:
    """A document's or attachment's bytes in the file: as text when it is text (JSON included)
    in UTF-8, otherwise base64."""
    if content is None:
        return {"content": None}
    kind = content_type.split(";")[0].strip().lower()
    if kind.startswith(TEXT_TYPES) or kind.endswith("+json"):
        try:
            # JSON too as the text stored: parsed and written again, a repeated member or a number
            # beyond a double would not be what Spor holds
            return {"contentText": content.decode("utf-8")}
        except UnicodeDecodeError:
            pass
    return {"contentBase64": base64.b64encode(content).decode("ascii")}


class _JsonWriter:
    """Writes one JSON object member by member, arrays element by element."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.members = 0
        self.items = 0
        out.write(b"{")

    def _key(self, name: str) -> None:
        self.out.write((b",\n" if self.members else b"\n") + orjson.dumps(name) + b": ")
        self.members += 1

    def member(self, name: str, value: Any) -> None:
        self._key(name)
        self.out.write(orjson.dumps(value, default=_default))

    def open_array(self, name: str) -> None:
        self._key(name)
        self.out.write(b"[")
        self.items = 0

    def item(self, value: Any) -> None:
        self.out.write((b",\n  " if self.items else b"\n  ") + orjson.dumps(value, default=_default))
        self.items += 1

    def item_raw(self, prefix: bytes, raw: str, suffix: bytes) -> None:
        """An element holding a JSON text as stored (a statement), not parsed and re-written."""
        self.out.write((b",\n  " if self.items else b"\n  ") + prefix + raw.encode() + suffix)
        self.items += 1

    def close_array(self) -> None:
        self.out.write(b"\n]" if self.items else b"]")

    def close(self) -> None:
        self.out.write(b"\n}\n")


def _default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


async def export_person(conn: asyncpg.Connection, store_id: int, store_name: str, identity: Identity,
                        out: IO[bytes]) -> Counts:
    """Write the export of ``identity`` in store ``store_id`` to ``out``; how much it holds. The
    caller records it in the audit trail (``record_export``) once the file is complete."""
    counts = Counts()
    keys = set(identity.keys)
    w = _JsonWriter(out)
    w.member("export", {"of": "everything Spor holds about a person in one store (an access request)",
                        "store": store_name, "made": datetime.now(UTC).isoformat(timespec="seconds"),
                        "identifiers": identity.keys, "personIds": identity.person_ids,
                        "formerIdentifiers": {
                            "identifiers": identity.former,
                            "note": "linked to the person once and not now: their statements are not in this file, "
                                    "since an identifier may be someone else's now; export one with --agent beside "
                                    "--person-id to include it (it then stands for itself: all its statements)"}})
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        sha2s, own = await _statements(conn, store_id, identity.keys, keys, w, counts)
        await _attachments(conn, store_id, sha2s, w, counts)
        await _documents(conn, store_id, identity.keys, w, counts)
        await _reference(conn, store_id, identity, w, counts)
        await _read_models(conn, store_id, identity, own, w, counts)
        await _reads(conn, store_id, identity, w, counts)
    w.member("counts", vars(counts))
    w.close()
    return counts


async def statements_naming(conn: asyncpg.Connection, store_id: int, keys: list[str]
                            ) -> AsyncIterator[asyncpg.Record]:
    """The statements the filter terms find for the agent keys, oldest first, a page at a time
    (position, statement_id, payload, voided, attachment_sha2s)."""
    terms = [AGENT + k for k in keys]
    every = [r["position"] for r in await conn.fetch(sql("person_statement_positions"), store_id, terms)]
    for start in range(0, len(every), PAGE):
        for r in await conn.fetch(sql("person_statements_at"), store_id, every[start:start + PAGE]):
            yield r


async def _statements(conn: asyncpg.Connection, store_id: int, key_list: list[str], keys: set[str],
                      w: _JsonWriter, counts: Counts) -> tuple[list[str], list[str]]:
    """The statements; the attachments' hashes and the ids of the person's own (their actor or
    object): another's statement that names them holds the other's attachments, not theirs."""
    sha2s: dict[str, None] = {}
    own: list[str] = []
    w.open_array("statements")
    async for r in statements_naming(conn, store_id, key_list):
        how = relation(orjson.loads(r["payload"]), keys)
        counts.relations[how] = counts.relations.get(how, 0) + 1
        counts.statements += 1
        counts.voided += bool(r["voided"])
        if how == ACTOR_OR_OBJECT:
            own.append(str(r["statement_id"]))
            for sha2 in r["attachment_sha2s"]:
                sha2s[sha2] = None
        head = orjson.dumps({"about": how, "voided": r["voided"]})[:-1] + b', "statement": '
        w.item_raw(head, r["payload"], b"}")
    w.close_array()
    return list(sha2s), own


async def _attachments(conn: asyncpg.Connection, store_id: int, sha2s: list[str], w: _JsonWriter,
                       counts: Counts) -> None:
    w.open_array("attachments")
    for sha2 in sha2s:  # one at a time: an attachment may be large
        r = await conn.fetchrow(sql("person_attachment"), store_id, sha2)
        if r is None:  # a fileUrl attachment: the statement names it, Spor holds no bytes
            continue
        content = bytes(r["content"])
        w.item({"sha2": sha2, "contentType": r["content_type"], "length": len(content),
                **content_member(r["content_type"], content)})
        counts.attachments += 1
    w.close_array()


async def _documents(conn: asyncpg.Connection, store_id: int, keys: list[str], w: _JsonWriter,
                     counts: Counts) -> None:
    w.open_array("documents")
    current: set[str] = set()
    for r in await conn.fetch(sql("person_documents"), store_id, keys):
        content = bytes(r["content"]) if r["content"] is not None else None
        current.add(bytes(r["sha256"]).hex())
        w.item({"resource": r["resource"], "activityId": r["activity_id"] or None, "agentKey": r["agent_key"],
                "registration": r["registration"] or None, "id": r["doc_id"], "contentType": r["content_type"],
                "etag": r["etag"], "updated": r["updated"].isoformat(), **content_member(r["content_type"], content)})
        counts.documents += 1
    w.close_array()
    w.open_array("documentHistory")
    earlier: dict[str, str] = {}  # sha256 -> content type, of versions no longer current
    for r in await conn.fetch(sql("person_document_events"), store_id, keys):
        event = orjson.loads(r["payload"])
        w.item({"position": r["position"], "kind": r["kind"], "recorded": r["recorded_at"].isoformat(),
                "event": event})
        counts.document_events += 1
        if event.get("sha256") and event["sha256"] not in current:
            earlier[event["sha256"]] = str(event.get("contentType") or "application/octet-stream")
    w.close_array()
    # the bytes of every earlier version Spor still holds (each by its hash, as the events name it)
    w.open_array("documentVersions")
    for sha256, content_type in earlier.items():
        content = await conn.fetchval(sql("person_document_content"), store_id, bytes.fromhex(sha256))
        if content is not None:
            w.item({"sha256": sha256, "contentType": content_type, **content_member(content_type, bytes(content))})
            counts.document_versions += 1
    w.close_array()
    names = await conn.fetch(sql("person_names"), store_id, keys)
    w.member("names", [{"agentKey": r["agent_key"], "name": r["name"]} for r in names])
    counts.names = len(names)


async def _reference(conn: asyncpg.Connection, store_id: int, identity: Identity, w: _JsonWriter,
                     counts: Counts) -> None:
    w.open_array("referenceData")
    for r in await conn.fetch(sql("person_reference_events"), store_id, identity.person_ids):
        w.item({"position": r["position"], "kind": r["kind"], "recorded": r["recorded_at"].isoformat(),
                "event": orjson.loads(r["payload"])})
        counts.reference_events += 1
    w.close_array()


async def _read_models(conn: asyncpg.Connection, store_id: int, identity: Identity, own: list[str],
                       w: _JsonWriter, counts: Counts) -> None:
    from projections import queries  # the read models' queries (the analyst API's)

    transcript: dict[tuple[Any, ...], dict[str, Any]] = {}
    # by person id (all its linked identifiers), and by each identifier linked to no one
    for who in [*identity.person_ids, *identity.keys]:
        for row in await queries.transcript(conn, [store_id], who, limit=None):
            transcript[(row["store_id"], row["statement_id"], row["activity_id"])] = row
    compliance: list[dict[str, Any]] = []
    for person_id in identity.person_ids:
        after = None
        while page := await queries.compliance(conn, [store_id], person=person_id, limit=PAGE, after=after):
            compliance += page
            after = queries.row_key(page[-1])
    # course status keeps a row per statement and course of the person's own statements
    course: list[dict[str, Any]] = []
    for start in range(0, len(own), PAGE):
        course += [dict(r) for r in await conn.fetch(sql("person_course_facts"), store_id, own[start:start + PAGE])]
    w.member("readModels", {"transcript": list(transcript.values()), "compliance": compliance,
                            "courseStatusFacts": course})
    counts.transcript, counts.compliance, counts.course_facts = len(transcript), len(compliance), len(course)


async def _reads(conn: asyncpg.Connection, store_id: int, identity: Identity, w: _JsonWriter,
                 counts: Counts) -> None:
    """Who read the person's records: this store's audit-trail rows (each organisation answers
    for its own) by or about each identifier and person id (the recipients of their data,
    article 15(1)(c)), chosen in the database: other stores' reads do not count to the limit."""
    audit = PgAuditRepository(conn)
    found: dict[int, dict[str, Any]] = {}
    for who in [*identity.keys, *identity.person_ids]:
        for row in await audit.by_person(who, READS_MAX, store_id):
            found[row["id"]] = row
    w.open_array("reads")
    for row in sorted(found.values(), key=lambda r: r["id"]):
        w.item({**row, "at": row["at"].isoformat()})
    w.close_array()
    counts.reads = len(found)


def audit_request(identity: Identity, by: str, counts: dict[str, Any]) -> str:
    """An export's or an erasure's audit record (JSON): ``persons`` names every identifier and
    person id it covered, so ``spor audit --person`` finds it."""
    return orjson.dumps(recordable({"persons": [*identity.keys, *identity.person_ids], "by": by,
                                    "counts": counts})).decode()


async def record_export(conn: asyncpg.Connection, store_id: int, identity: Identity, counts: Counts,
                        by: str) -> None:
    """The export in the audit trail."""
    await conn.execute(sql("person_record_export"), store_id, audit_request(identity, by, counts.totals()),
                       counts.statements)
