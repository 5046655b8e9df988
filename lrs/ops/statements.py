"""The rules of the Statements resource: what the LRS sets, what it refuses, what a query means.

No HTTP types and no SQL here: the HTTP layer hands in parsed values and a repository, and gets
plain values or ``lrs.errors`` exceptions back.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

import orjson

import statements_schema
from lrs.errors import BadRequest, Forbidden, NotFound
from lrs.ops import languages
from lrs.ops import terms as T
from lrs.ops.audit import AuditTrail, record_refusal, refusals_recorded
from lrs.ops.comparison import comparison_form, first_difference
from lrs.ops.nul import nul_path
from lrs.ops.principal import Principal
from lrs.ops.signature import verify_signed_statement
from lrs.ops.timestamps import utc_timestamp
from lrs.ops.uuids import canonical_uuid

_AGENT_KEYS = frozenset({"actor", "instructor", "team", "authority", "agent", "group", "member"})
_ACTIVITY_KEYS = frozenset({"object", "parent", "grouping", "category", "other"})


@dataclass
class Prepared:
    """A statement ready to append: the LRS-set properties filled in except ``stored``."""

    id: str
    body: dict[str, Any]
    voids: str | None
    refers_to: str | None
    terms: dict[str, bool]
    attachment_sha2s: list[str]
    # the xAPI version of the request (1.0.3 or 2.0.0): its comparison rules decide whether a
    # re-sent id matches (Data 2.3.1)
    request_version: str
    # ``body`` as UTF-8 JSON, written once by ``check_storable``: the one-call append sends it
    text: bytes


@dataclass
class Attachment:
    """Raw attachment content to store, addressed by its SHA-2."""

    sha2: str
    content_type: str
    content: bytes


@dataclass
class StatementRow:
    """One stored statement as the repository returns it."""

    id: str
    payload: bytes  # the stored statement as JSON text
    stored: datetime
    voided: bool
    attachment_sha2s: list[str] = field(default_factory=list)
    position: int = 0
    authority_key: str = ""
    # the statement's actor as JSON, when the repository read it apart (a single statement), and
    # then its object when that is an Agent or a Group
    actor: bytes | None = None
    agent_object: bytes | None = None


@dataclass
class Page:
    """A query page as read: rows (limit + 1), the paging horizon, and Consistent-Through."""

    rows: list[StatementRow]
    horizon: int
    consistent_through: datetime
    # the rows end before the limit because the next statement's body would pass the query's
    # byte budget (Query.page_bytes): more statements may follow
    ends_early: bool = False


@dataclass(frozen=True)
class Query:
    """A parsed GET /statements query (filters + paging)."""

    agent: str | None = None
    verb: str | None = None
    activity: str | None = None
    registration: str | None = None
    related_activities: bool = False
    related_agents: bool = False
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 0
    ascending: bool = False
    # Only statements with this authority (statements/read/mine for a credential).
    authority: str | None = None
    # Only statements this person is the actor or object of by their own terms, not by those of
    # another's statement they refer to (statements/read/mine for a person signed in).
    person: str | None = None
    # Paging cursor: position strictly after (ascending) / before (descending) this one, and
    # the newest position the first page could see, so later arrivals never shift pages.
    after: int | None = None
    horizon: int | None = None
    # Whether the rows must carry their attachment hashes (attachments=true); a page by filter
    # term is read from the event log alone without them (migration 0025).
    attachments: bool = False
    # The page ends before a statement whose body, with the bodies before it, would pass this
    # many bytes (the first statement always comes); None: no budget. Communication 2.1.3 lets
    # a page hold fewer statements than the limit.
    page_bytes: int | None = None

    def driving_term(self) -> tuple[str, bool] | None:
        """The most selective term to drive the index scan: (term, related)."""
        if self.agent:
            return T.AGENT + self.agent, self.related_agents
        if self.registration:
            return T.REGISTRATION + self.registration, True
        if self.activity:
            return T.ACTIVITY + self.activity, self.related_activities
        if self.verb:
            return T.VERB + self.verb, True
        return None


class StatementRepository(Protocol):
    """What the rules need from storage (implemented in lrs.store.statements)."""

    async def append(
        self, store_id: int, items: list[Prepared], attachments: list[Attachment], *, define: bool = True,
        void_any: bool = True,
    ) -> datetime | None: ...
    async def get(self, store_id: int, statement_id: str) -> StatementRow | None: ...
    async def query(self, store_id: int, q: Query) -> Page: ...
    async def agents_at(self, store_id: int, positions: list[int]) -> dict[int, tuple[bytes | None, bytes | None]]: ...
    async def consistent_through(self, store_id: int, max_age: float = 0.0) -> datetime: ...
    async def through_at(self, store_id: int, position: int) -> datetime: ...
    async def attachment_contents(self, store_id: int, sha2s: list[str]) -> list[Attachment]: ...
    async def attachment_sizes(self, store_id: int, sha2s: list[str]) -> dict[str, int]: ...
    async def attachments_described(self, store_id: int, sha2s: list[str]) -> list[tuple[Attachment, int]]: ...
    async def canonical_definitions(self, store_id: int, ids: list[str]) -> dict[str, dict[str, Any]]: ...


# ---------------------------------------------------------------------------------------------
# Writing


def same_statement(new: dict[str, Any], stored: dict[str, Any], version: str) -> bool:
    """Whether a re-sent statement equals the stored one (Data 2.3.1, comparison requirements)
    under the rules of the request's xAPI ``version``.

    Compared only when an id comes again, so the hot path pays nothing for it. The properties
    the LRS assigns are ignored; a timestamp the LRS filled in (the sender sent none) too.
    """
    if "timestamp" not in new:
        stored = {k: v for k, v in stored.items() if k != "timestamp"}
    # with their types, as a signed statement's payload is compared: by ==, true was 1 and 1.0
    # (an extension's true re-sent as 1 was "the same", and the 1 not stored; a fuzzing audit)
    return first_difference(comparison_form(new, version), comparison_form(stored, version), "") is None


class StoredIds(list[str]):
    """The ids of a write, in request order, and the stored time of what it appended (None
    when every statement was already stored)."""

    stored: datetime | None = None


# The deepest nesting of objects and arrays, the statement itself included, that orjson writes.
MAX_STORED_NESTING = 254


_Names = tuple[str, "_Names"] | None  # a path as (last name, the path before it), root None


def deepest_path(value: Any) -> str:
    """The JSON path to where ``value`` is nested deepest: its names, then ``[…]`` for what lies
    below the last of them (a path hundreds of array indexes long names nothing)."""
    # Each entry links to its parent's names as (name, parent) pairs, so a wide object costs
    # one small tuple a member, not a copy of the path (a path list per member of an object
    # 253 levels down was width times depth: gigabytes for a few MB of body).
    best: tuple[int, _Names] = (0, None)
    stack: list[tuple[Any, int, _Names]] = [(value, 0, None)]
    while stack:
        node, depth, link = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        depth += 1
        if depth > best[0]:
            best = (depth, link)
        if isinstance(node, dict):
            stack += [(v, depth, (k, link)) for k, v in node.items() if isinstance(v, (dict, list))]
        else:
            stack += [(v, depth, link) for v in node if isinstance(v, (dict, list))]
    names: list[str] = []
    link = best[1]
    while link is not None:
        names.append(link[0])
        link = link[1]
    names.reverse()
    shown = ".".join(n if n.isidentifier() else f"[{orjson.dumps(n).decode()}]" for n in names).replace(".[", "[")
    return f"{shown}[…]" if shown else "[…]"


def validate(stmt: Any, version: str, where: str) -> None:
    """Schema and data-model rules; a 400 naming the JSON path (prefixed by ``where``). What
    only the written JSON shows (nesting, U+0000) ``prepare`` checks as it writes it."""
    try:
        statements_schema.validate_statement(stmt, version)
    except statements_schema.ValidationFailure as exc:
        path = f"{where}.{exc.path}" if where and exc.path else (where or exc.path)
        raise BadRequest(f"{path}: {exc.message}" if path else exc.message) from exc


def check_storable(body: dict[str, Any], where: str) -> bytes:
    """``body`` as UTF-8 JSON, or a 400 naming the JSON path (prefixed by ``where``) when it
    cannot be stored.

    The text is kept for the one-call append (``Prepared.text``), which once wrote it again
    (~4 us a statement, ~5% of a server process's CPU under batches of 100). Kept, it raised
    bench/ingest (e) by ~15-25 MB while the query store loads in batches of 1,000, when (e) was
    ~275 MB. Since the libraries used later are imported later (lrs/memory.py has the 4 MiB
    mmap threshold beside it) full runs with it kept gave (e) 258 and 270 MB (target 300)."""
    try:
        # Extension values are any JSON, and the parser takes deeper nesting than the writer
        # (orjson writes at most 254 levels): refused here, not a failed append (a 500).
        text = orjson.dumps(body)
    except TypeError:
        path = ".".join(p for p in (where, deepest_path(body)) if p) or "statement"
        limit = MAX_STORED_NESTING
        raise BadRequest(f"{path}: nested more than {limit} levels deep (objects and arrays within the "
                         f"statement); Spor stores JSON nested at most {limit} levels") from None
    # PostgreSQL's text and jsonb cannot hold U+0000: in a string the statement index or the
    # agent names keep as text it could not be stored. The body is json, which can; so can an
    # extension's value, which only the body holds (Data 4.1: an LRS "MUST NOT reject a
    # Statement based on the values of the extensions map"): a canonical Activity definition
    # (jsonb) holds U+FFFD for it, and the projections read bodies through
    # projections.jsonb_of (migration 0026). The escape is in the text only if some string
    # has one (or a backslash before "u0000").
    if b"\\u0000" in text and (found := nul_path(body, extension_values=False)) is not None:
        path = ".".join(p for p in (where, found) if p)
        raise BadRequest(f"{path or 'statement'}: contains the character U+0000 (NUL), which Spor cannot store")
    return text


def _context_activities_as_lists(stmt: dict[str, Any]) -> None:
    """xAPI Data 2.4.6.2: the LRS returns every contextActivities value as an array, even when
    a single Activity object was sent. Normalised before hashing, so both forms compare equal."""
    contexts = [stmt.get("context")]
    obj = stmt.get("object")
    if isinstance(obj, dict) and obj.get("objectType") == "SubStatement":
        contexts.append(obj.get("context"))
    for ctx in contexts:
        activities = ctx.get("contextActivities") if isinstance(ctx, dict) else None
        if isinstance(activities, dict):
            for key, value in activities.items():
                if isinstance(value, dict):
                    activities[key] = [value]


def statement_attachments(statements: Iterable[object]) -> Iterable[dict[str, object]]:
    """Every Attachment Object of the statements, including those of SubStatements.

    A SubStatement is validated as a Statement (Data 2.4.4.3.s8.b2) and may carry attachments
    of its own (Data 2.4.11 recommends also listing them on the outer statement); their data is
    subject to the same fileUrl-or-part rule.
    """
    for statement in statements:
        if not isinstance(statement, dict):
            continue
        holders: list[object] = [statement]
        obj = statement.get("object")
        if isinstance(obj, dict) and obj.get("objectType") == "SubStatement":
            holders.append(obj)
        for holder in holders:
            assert isinstance(holder, dict)
            attachments = holder.get("attachments")
            if isinstance(attachments, list):
                for attachment in attachments:
                    if isinstance(attachment, dict):
                        yield attachment


def prepare(stmt: dict[str, Any], principal: Principal, version: str, where: str = "") -> Prepared:
    """Fill in id, authority, version (and UTC timestamps for 2.0.0); compute the filter terms;
    a 400 naming the path (prefixed by ``where``) when the body cannot be stored
    (``check_storable``). ``stored`` is the append's to set: a sent one is left out here."""
    _context_activities_as_lists(stmt)
    body = dict(stmt)
    body.pop("stored", None)
    sid = canonical_uuid(body["id"], "id") if "id" in body else str(uuid.uuid4())
    body["id"] = sid
    # xAPI Data 2.4.9: the LRS sets authority from the credential, overriding what was sent.
    body["authority"] = principal.authority
    if "version" not in body:
        # xAPI Data 2.4.10 (1.0.3): a statement without version is stored as 1.0.0.
        body["version"] = "2.0.0" if version == "2.0.0" else "1.0.0"
    obj = body.get("object") or {}
    if version == "2.0.0":
        # IEEE 9274.1.1: timestamps are returned in UTC (the statement's and a SubStatement's).
        if "timestamp" in body:
            body["timestamp"] = utc_timestamp(body["timestamp"])
        if obj.get("objectType") == "SubStatement" and "timestamp" in obj:
            obj = body["object"] = {**obj, "timestamp": utc_timestamp(obj["timestamp"], "object.timestamp")}
    refers_to = None
    voids = None
    if obj.get("objectType") == "StatementRef":
        refers_to = canonical_uuid(str(obj.get("id")), "object.id")
        if (body.get("verb") or {}).get("id") == T.VOIDED_VERB:
            voids = refers_to
    elif (body.get("verb") or {}).get("id") == T.VOIDED_VERB:
        raise BadRequest("object.objectType: a voiding statement's object must be a StatementRef")
    # the attachments of a SubStatement too, by the lower-cased hash their data is stored under
    sha2s = list(dict.fromkeys(sha2.lower() for a in statement_attachments([body])
                               if isinstance(sha2 := a.get("sha2"), str)))
    text = check_storable(body, where)
    return Prepared(
        id=sid,
        body=body,
        voids=voids,
        refers_to=refers_to,
        terms=T.statement_terms(body),
        attachment_sha2s=sha2s,
        request_version=version,
        text=text,
    )


async def store_statements(
    repo: StatementRepository,
    principal: Principal,
    version: str,
    statements: list[Any],
    attachments: list[Attachment] | None = None,
    *,
    put_id: str | None = None,
) -> StoredIds:
    """Validate and append a batch all-or-nothing; return the ids in request order.

    A statement whose id is already stored with the same content is acknowledged without a
    second copy; the same id with different content is a 409 and nothing of the batch is kept.
    """
    principal.require("statements/write")
    if not statements:
        raise BadRequest("the request contains no statements")
    prepared: list[Prepared] = []
    by_sha2 = {a.sha2: a for a in attachments or ()}
    if put_id is not None:
        put_id = canonical_uuid(put_id, "statementId")
    for i, stmt in enumerate(statements):
        where = "" if put_id is not None or len(statements) == 1 else f"[{i}]"
        validate(stmt, version, where)
        # a PUT's statement has the id its statementId parameter gives it
        sent = stmt if put_id is None or "id" in stmt else {**stmt, "id": put_id}
        p = prepare(sent, principal, version, where)
        # after validation and prepare's check of its nesting (the comparison reads its
        # timestamps and walks its nesting): the signature is over the statement as sent (Data
        # 2.6); prepare changed only single contextActivities into lists (in place), which the
        # comparison does as well, and wrote the rest into its own copy
        try:
            verify_signed_statement(sent, by_sha2, version)
        except BadRequest as exc:
            if not where:
                raise
            raise BadRequest(f"{where} {exc.message}") from None
        # the data attachments=true returns with it: what this request sent. Not a stored part
        # of the same hash that another statement sent (a fileUrl-only attachment naming a
        # known hash would otherwise fetch another authority's file).
        p.attachment_sha2s = [h for h in p.attachment_sha2s if h in by_sha2]
        prepared.append(p)
    if put_id is not None and prepared[0].id != put_id:
        raise BadRequest("id: does not match the statementId parameter")
    ids = [p.id for p in prepared]
    seen: set[str] = set()
    for sid in ids:
        if sid in seen:
            raise BadRequest(f"the batch contains statement id {sid} more than once")
        seen.add(sid)

    # The repository checks which ids exist under the store's append lock (so concurrent
    # writers of one id cannot both insert it), acknowledges re-sent identical statements,
    # and refuses the whole request with 409 if one differs (Communication 2.1.2.s2.b4/b5).
    # Communication 4.2, scope "define": without it canonical definitions are not updated.
    # Data 2.3.2.s2.b4: only a source authorized to void may; here a credential voids its own
    # statements, and only one with scope "all" those of others (or one not stored yet, whose
    # authority cannot be known): a course package's key cannot erase other systems' records.
    stored = await repo.append(principal.store_id, prepared, attachments or [],
                               define=bool(principal.scopes & {"all", "define"}),
                               void_any="all" in principal.scopes)
    result = StoredIds(ids)
    result.stored = stored
    return result


StoredTarget = tuple[list[tuple[str, bool]], str | None]

# How many StatementRef hops one append walks to find a statement's inherited filter terms (the
# SQL in lrs/store/sql/statements.sql says 32 too; a test holds them equal). The spec's rule is
# recursive; each hop copies the target's terms into the referrer, and an unbounded walk over a
# long chain sent in one request cost O(L^2) work and rows under the store's append lock. This
# bounds the walk, not the terms: a stored statement's terms already hold its own chain's, so
# a chain built up request by request carries all its links' terms, as the rule asks.
MAX_REF_DEPTH = 32


def inherit_target_terms(batch: list[Prepared], stored: dict[str, StoredTarget]) -> None:
    """Give statements that target another by StatementRef the target's filter terms.

    xAPI Communication 2.1.3 "Filter Conditions for StatementRefs", applied recursively up to
    MAX_REF_DEPTH hops. ``stored`` holds the stored statements along the targets' chains: id ->
    (its recorded terms, the id it targets). A stored statement's recorded terms hold those of
    the stored statements it reaches, but not of one arriving now: so the walk goes on past
    stored statements, through this batch too, to the end of the chain (or a cycle).
    """
    by_id = {p.id: p for p in batch}
    own = {p.id: p.terms for p in batch}

    def chain_terms(p: Prepared) -> dict[str, bool]:
        terms = own[p.id]
        seen = {p.id}
        sid = p.refers_to
        for _ in range(MAX_REF_DEPTH):
            if sid is None or sid in seen:
                break
            seen.add(sid)
            if sid in by_id:
                terms = T.merge_terms(terms, own[sid].items())
                sid = by_id[sid].refers_to
            elif sid in stored:
                recorded, sid_next = stored[sid]
                terms = T.merge_terms(terms, recorded)
                sid = sid_next
            else:
                break
        return terms

    resolved = {p.id: chain_terms(p) for p in batch if p.refers_to is not None}
    for p in batch:
        if p.id in resolved:
            p.terms = resolved[p.id]


# ---------------------------------------------------------------------------------------------
# Reading


def _about(row: StatementRow) -> tuple[str | None, list[str]]:
    """Whom a stored statement is about: its actor's agent key (None for an anonymous Group), and
    the keys of every agent the agent filter finds it by without related_agents (the actor, an
    Agent or Group object, and their members). From the actor and the object alone when the
    repository read them apart: parsing a 20 MB statement for them took 1.4 s of the event loop
    and 600 MB (a memory audit)."""
    if row.actor is not None:
        actor = orjson.loads(row.actor)
        obj = orjson.loads(row.agent_object) if row.agent_object is not None else None
    else:
        whole = orjson.loads(row.payload)
        actor, obj = whole.get("actor"), whole.get("object")
        if not (isinstance(obj, dict) and obj.get("objectType") in ("Agent", "Group")):
            obj = None  # (an object without objectType is an Activity)
    actor_key = T.agent_key(actor) if isinstance(actor, dict) else None
    return actor_key, T.direct_agent_keys(actor, obj)


def _own(principal: Principal, row: StatementRow, about: list[str]) -> bool:
    """Whether a caller limited to its own statements may see this one: a person's are those the
    agent filter finds by them without related agents (whom ``about`` names), as their query
    gets; a credential's, those it is the authority of. (A person got 404 by id for a statement
    whose object they were, which their query returned: a security audit.)"""
    if principal.person_key is not None:
        return principal.person_key in about
    return row.authority_key == principal.authority_key


async def get_statement(
    repo: StatementRepository, principal: Principal, statement_id: str, *, voided: bool,
    audit: AuditTrail | None = None,
) -> StatementRow:
    """GET with statementId (voided=False) or voidedStatementId (voided=True).

    xAPI Communication 2.1.3 / Data 2.3.2: a voided statement is only returned through
    voidedStatementId, and voidedStatementId only returns voided statements. A caller limited to
    its own statements gets 404 for others' (not 403: existence is not revealed).
    """
    asked: dict[str, Any] = {"statementId": statement_id, "voided": voided}
    async with refusals_recorded(audit, principal, "statements.get", lambda: asked):
        principal.require("statements/read", "statements/read/mine", "all/read")
    sid = canonical_uuid(statement_id, "voidedStatementId" if voided else "statementId")
    asked["statementId"] = sid
    row = await repo.get(principal.store_id, sid)
    missing = NotFound(f"no {'voided ' if voided else ''}statement with id {sid}")
    about: list[str] = []
    if row is not None:
        # whom the statement is about, so that the trail's search by person finds this read:
        # its actor, and every agent it is about (group members and an agent object too; a
        # security audit: the members of a group actor were not found)
        asked["agent"], about = _about(row)
        if about:
            asked["persons"] = about
    if principal.reads_only_own:
        # Every 404 of a caller limited to its own statements is recorded, so that a statement
        # that exists but is not the caller's costs the same as one that does not (the client
        # is told neither); the trail says which.
        someone_elses = row is not None and not _own(principal, row, about)
        if row is None or row.voided != voided or someone_elses:
            why = ("the statement exists but is not the caller's own" if someone_elses
                   else "no such statement" if row is None
                   else f"the caller's own statement, {'not ' if voided else ''}voided")
            await record_refusal(audit, principal, "statements.get", asked, missing, why)
            raise missing
    elif row is None or row.voided != voided:
        raise missing
    if audit is not None:
        await audit.record(principal, "statements.get", asked, 1)
    return row


async def query_statements(
    repo: StatementRepository, principal: Principal, q: Query, *,
    audit: AuditTrail | None = None, asked: dict[str, Any] | None = None,
) -> Page:
    """Rows of a query page (limit + 1), the horizon position the paging cursor keeps, and the
    Consistent-Through time read with them. A refusal is recorded in ``audit`` here; a read, by
    ``record_query`` once the response's statements are known.

    statements/read/mine (Communication 4.2): a credential sees the statements it is the
    authority of; a person signed in with OpenID Connect sees the statements about them.
    """
    async with refusals_recorded(audit, principal, "statements.query", lambda: asked or {}):
        principal.require("statements/read", "statements/read/mine", "all/read")
        someone_else = q.agent is not None and q.agent != principal.person_key
        if principal.reads_only_own and principal.person_key is not None and someone_else:
            raise Forbidden("this sign-in may read only the person's own statements")
    if principal.reads_only_own:
        if principal.person_key is not None:
            q = replace(q, agent=principal.person_key, related_agents=False, person=principal.person_key)
            if asked is not None:
                asked["agent"] = principal.person_key  # (the trail's search by person finds it)
        else:
            q = replace(q, authority=principal.authority_key)
    return await repo.query(principal.store_id, q)


async def record_query(repo: StatementRepository, audit: AuditTrail | None, principal: Principal,
                       asked: dict[str, Any], returned: list[StatementRow]) -> None:
    """Record a query in the audit trail with the statements its response holds (after every
    budget cut the page: not the look-ahead row, not those a budget left for the next page) and,
    in ``persons``, whom they are about, as for a statement read by id: so a query by verb or
    activity that returned a person's statements is among the reads about them."""
    if audit is None:
        return
    recorded = dict(asked)
    persons = await _persons(repo, principal.store_id, returned)
    if persons:
        recorded["persons"] = persons
    await audit.record(principal, "statements.query", recorded, len(returned))


# A returned statement up to this size is parsed for whom it is about (~3 us for a typical one);
# a larger one's actor and object are read apart in the database (a memory audit: parsing a
# 20 MB statement took 1.4 s of the event loop and 600 MB).
PARSED_FOR_PERSONS_MAX = 64 * 1024


async def _persons(repo: StatementRepository, store_id: int, rows: list[StatementRow]) -> list[str]:
    """The agent keys of everyone some statements are about (``_about``), in the order found."""
    large = [r.position for r in rows if r.actor is None and len(r.payload) > PARSED_FOR_PERSONS_MAX]
    agents = await repo.agents_at(store_id, large) if large else {}
    found: dict[str, None] = {}
    for row in rows:
        if row.position in agents:
            row = replace(row, actor=agents[row.position][0], agent_object=agents[row.position][1])
        for key in _about(row)[1]:
            found[key] = None
    return list(found)


# ---------------------------------------------------------------------------------------------
# Shaping results


class _CanonicalTooLarge(Exception):
    """The canonical definitions put into one statement would pass its room."""


def _canonical(node: Any, accept: languages.Ranges, definitions: dict[str, dict[str, Any]],
               key: str | None = None, room: list[int] | None = None,
               sizes: dict[str, int] | None = None) -> Any:
    """format=canonical: Activities carry the LRS's canonical definition, and every language map
    (definitions, verb display) is cut to the one best language (Communication 2.1.3).

    ``room``: how many bytes of definitions (by ``sizes``, their JSON length) may still be put
    in; past it, _CanonicalTooLarge. One activity named a thousand times in a statement took its
    canonical definition a thousand times (a memory audit: 20 KB of statements, a 600 MB page)."""
    if isinstance(node, list):
        return [_canonical(v, accept, definitions, key, room, sizes) for v in node]
    if not isinstance(node, dict):
        return node
    if key in _ACTIVITY_KEYS and node.get("objectType", "Activity") == "Activity" and node.get("id") in definitions:
        if room is not None and sizes is not None:
            room[0] -= sizes[node["id"]]
            if room[0] < 0:
                raise _CanonicalTooLarge
        node = {**node, "definition": definitions[node["id"]]}
    out = {}
    for k, v in node.items():
        if k in ("display", "name", "description") and isinstance(v, dict):
            out[k] = languages.pick(v, accept)
        elif k == "extensions":
            out[k] = v
        else:
            out[k] = _canonical(v, accept, definitions, k, room, sizes)
    return out


def activity_ids(stmt: dict[str, Any]) -> set[str]:
    """Ids of the Activities in a statement (object, context activities, SubStatement)."""
    found: set[str] = set()

    def walk(node: Any, key: str | None) -> None:
        if isinstance(node, list):
            for v in node:
                walk(v, key)
        elif isinstance(node, dict):
            if key in _ACTIVITY_KEYS and node.get("objectType", "Activity") == "Activity" and "id" in node:
                found.add(str(node["id"]))
            for k, v in node.items():
                if k in ("object", "context", "contextActivities") or k in _ACTIVITY_KEYS:
                    walk(v, k)

    walk(stmt, None)
    return found




def _ids(node: Any, key: str | None = None) -> Any:
    """format=ids (Communication 2.1.3): Agents and Groups reduced to their IFI (anonymous
    Groups to their members' IFIs), Activities to their id, Verbs to their id."""
    if isinstance(node, list):
        return [_ids(v, key) for v in node]
    if not isinstance(node, dict):
        return node
    kind = node.get("objectType")
    if key in _AGENT_KEYS or kind in ("Agent", "Group"):
        return T.ifi_only(node)
    if key == "verb":
        return {"id": node.get("id")}
    if key in _ACTIVITY_KEYS and kind in (None, "Activity") and "id" in node:
        return {"id": node["id"]}
    # Extension values are any JSON, not Agents or Activities, whatever their keys say: as sent.
    return {k: v if k == "extensions" else _ids(v, k) for k, v in node.items()}


async def shape(
    repo: StatementRepository, store_id: int, payloads: list[bytes], fmt: str, accept_languages: languages.Ranges,
    budget: int | None = None,
) -> list[bytes]:
    """Stored statements' JSON in the requested format (exact returns the stored text as is).

    With ``budget``, the first of them whose shaped JSON is within that many bytes together (the
    first always): format=canonical can make a statement far larger than it is stored, and a
    statement whose canonical definitions alone would pass the budget keeps the definitions it
    carries (languages still cut)."""
    if fmt == "exact":
        return payloads
    statements = [orjson.loads(p) for p in payloads]
    if fmt == "ids":
        return [orjson.dumps(_ids(s)) for s in statements]
    ids = sorted(set().union(*(activity_ids(s) for s in statements))) if statements else []
    definitions = await repo.canonical_definitions(store_id, ids)
    sizes = {i: len(orjson.dumps(d)) for i, d in definitions.items()} if budget is not None else None
    shaped: list[bytes] = []
    total = 0
    for s in statements:
        try:
            part = orjson.dumps(_canonical(s, accept_languages, definitions,
                                           room=None if budget is None else [budget], sizes=sizes))
        except (TypeError, _CanonicalTooLarge):
            # A canonical definition nested so deep (its extensions) that, put in place deeper in
            # this statement, the whole is deeper than JSON is written (254 levels), or named so
            # often that the definitions alone would pass the budget: this statement keeps the
            # definitions it carries (languages still cut). One statement's definition must not
            # make every statement naming that activity unreadable.
            part = orjson.dumps(_canonical(s, accept_languages, {}))
        total += len(part)
        if budget is not None and shaped and total > budget:
            break
        shaped.append(part)
    return shaped
