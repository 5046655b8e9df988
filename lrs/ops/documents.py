"""The rules of the three Document Resources: State, Activity Profile and Agent Profile.

xAPI Communication 2.2 (documents, JSON merge), 2.3 (State), 2.6 (Agent Profile), 2.7 (Activity
Profile) and 3.1 (Concurrency). No HTTP types and no SQL here: the HTTP layer hands in parsed
keys, bytes and precondition headers; the repository runs :func:`decide_put` /
:class:`MergeDecision` / :func:`decide_delete` *inside* its locked write transaction, so the
precondition check and the write see the same current document (no lost updates).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

import orjson

import statements_schema
from lrs.errors import (
    BadRequest,
    Conflict,
    LRSError,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    PreconditionRequired,
)
from lrs.ops import json_members
from lrs.ops import terms as T
from lrs.ops.audit import AuditTrail, refusals_recorded
from lrs.ops.charset import as_utf8, charset_of
from lrs.ops.nul import nul_path
from lrs.ops.principal import Principal
from lrs.ops.timestamps import http_date, last_modified
from lrs.ops.uuids import canonical_uuid

Resource = Literal["state", "activity_profile", "agent_profile"]
RESOURCES: tuple[Resource, ...] = ("state", "activity_profile", "agent_profile")

# Event kinds in the log (lrs/store/sql/migrations/0002_documents.sql).
PUT: str = "document.put"
MERGE: str = "document.merge"
DELETE: str = "document.delete"

JSON_TYPE = "application/json"
DEFAULT_TYPE = "application/octet-stream"



@dataclass(frozen=True)
class DocKey:
    """Where one document lives. '' marks a part that is not in this resource's key."""

    resource: Resource
    activity_id: str
    agent_key: str
    registration: str
    doc_id: str


@dataclass(frozen=True)
class Scope:
    """A set of documents: the id list of GET without an id, and multiple-document DELETE.

    ``registration`` None means "any registration" (Communication 2.3.s5: without a
    registration, all State of the Activity and Agent).
    """

    resource: Resource
    activity_id: str
    agent_key: str
    registration: str | None


@dataclass(frozen=True)
class Document:
    """The current version of a document (``content`` may be None when not fetched)."""

    content_type: str
    etag: str
    updated: datetime
    content: bytes | None = None


@dataclass(frozen=True)
class Preconditions:
    """Parsed If-Match / If-None-Match: None when absent, else the listed tags or ['*']; and
    If-Unmodified-Since, None when absent or not an HTTP date (RFC 9110 13.1.4: ignored then)."""

    if_match: list[str] | None = None
    if_none_match: list[str] | None = None
    if_unmodified_since: datetime | None = None

    @property
    def absent(self) -> bool:
        """No precondition header at all."""
        return self.if_match is None and self.if_none_match is None


@dataclass(frozen=True)
class Write:
    """What a write decided to do: store ``content`` (put/merge) or delete (content None)."""

    kind: str
    content: bytes | None = None
    content_type: str = ""

    @property
    def sha256(self) -> bytes:
        """Content address of the bytes in ``document_contents``."""
        return hashlib.sha256(self.content or b"").digest()

    @property
    def etag(self) -> str:
        """Hex SHA-1 of the content (Communication 3.1.s4.b2, lowercase)."""
        return etag_of(self.content or b"")


# A decision on the current document, made under the store lock; one that has heavy work to do
# (a large merge) returns an awaitable the store awaits, so the work runs off the event loop.
Decide = Callable[[Document | None], Write | Awaitable[Write | None] | None]
# Room for so many bytes in the process's write buffer (lrs/http/admission.py), held for a block.
Hold = Callable[[int], contextlib.AbstractAsyncContextManager[None]]


class DocumentRepository(Protocol):
    """What the rules need from storage (implemented in lrs.store.documents)."""

    async def get(self, store_id: int, key: DocKey) -> Document | None: ...
    async def ids(self, store_id: int, scope: Scope, since: datetime | None) -> tuple[list[str], datetime | None]: ...
    async def change(self, store_id: int, key: DocKey, agent: dict[str, Any] | None, decide: Decide,
                     *, with_content: bool,
                     prepare: Callable[[Document | None], Awaitable[None]] | None = None,
                     hold: Hold | None = None) -> Write | None: ...
    async def delete_scope(self, store_id: int, scope: Scope,
                           decide: Callable[[list[str], datetime | None], None] | None = None) -> int: ...


# ---------------------------------------------------------------------------------------------
# Parameters


def etag_of(content: bytes) -> str:
    """The ETag value (without quotes) of document bytes."""
    return hashlib.sha1(content, usedforsecurity=False).hexdigest()


def parse_etags(raw: str | None, *, weak_matches: bool) -> list[str] | None:
    """An If-Match / If-None-Match header as a list of bare tags ('*' kept); None when absent.

    RFC 9110 13.1.1: a comma-separated list of entity tags, possibly weak (W/"..."); clients
    that send the bare hex without quotes are accepted too. Spor's ETags are strong. If-None-Match
    compares weakly, so W/"x" matches "x"; If-Match compares strongly (RFC 9110 13.1.1, the RFC 2616
    handling xAPI Communication 3.1 asks for), so a weak tag matches nothing: it is kept with its
    W/ prefix, which no ETag has (``weak_matches=False``). "" is an empty tag that matches no
    document. A quoted "*" is read as the wildcard, as it always was here: a client that quotes
    it means "any document" (If-None-Match: "*" to create only), and reading it as a tag would
    let its PUT overwrite. Spor's ETags are lower-case hex (Communication 3.1.s4.b2), so a tag is
    compared in lower case: the same digits in upper case name the same ETag.
    """
    if raw is None:
        return None
    tags = []
    for part in raw.split(","):
        tag = part.strip()
        weak = tag.startswith("W/")
        if weak:
            tag = tag[2:]
        quoted = len(tag) >= 2 and tag[0] == tag[-1] == '"'
        if quoted:
            tag = tag[1:-1]
        elif not tag:
            continue  # an empty list element ("a, , b")
        tag = tag.lower()
        if weak and not weak_matches:
            tag = "W/" + tag
        tags.append(tag)
    if not tags:
        raise BadRequest(f"precondition header {raw!r} holds no entity tag")
    return tags


def activity_id(raw: str | None, required: bool = True) -> str:
    """The activityId parameter: an absolute IRI."""
    if raw is None or raw == "":
        if required:
            raise BadRequest("activityId parameter is required")
        return ""
    # Communication 2.3.s3.table1.row1: activityId is an IRI (the statement schema's rule).
    if not statements_schema.is_iri(raw):
        raise BadRequest(f"activityId: not an IRI: {raw!r}")
    return raw


def agent_param(raw: str | None, version: str) -> tuple[str, dict[str, Any]]:
    """The agent parameter: (IFI key, the Agent object) or a 400.

    1.0.3: an Agent; 2.0.0: an Agent or identified Group (``statements_schema.validate_agent``).
    """
    if raw is None or raw == "":
        raise BadRequest("agent parameter is required")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"agent parameter is not valid JSON: {exc}") from None
    try:
        statements_schema.validate_agent(data, version)
    except statements_schema.ValidationFailure as exc:
        raise BadRequest(f"agent parameter: {exc}") from None
    key = T.agent_key(data)
    if key is None:
        raise BadRequest("agent parameter: must be an Agent or an identified Group")
    if nul_path(data) is not None:
        # the documents keep the whole Agent, and PostgreSQL's jsonb refuses the character
        raise BadRequest("agent parameter: contains a NUL character")
    return key, data


def registration_param(raw: str | None) -> str:
    """The registration parameter as a canonical lower-case UUID ('' when absent)."""
    if raw is None:
        return ""
    return canonical_uuid(raw, "registration")


def doc_id_param(raw: str | None, name: str) -> str:
    """stateId / profileId: any non-empty string."""
    if raw is None or raw == "":
        raise BadRequest(f"{name} parameter is required")
    return raw


def is_json_type(content_type: str) -> bool:
    """Whether a Content-Type is application/json (parameters such as charset ignored)."""
    return content_type.split(";")[0].strip().lower() == JSON_TYPE


# ---------------------------------------------------------------------------------------------
# The decisions taken inside the write transaction


def check_preconditions(current: Document | None, pre: Preconditions) -> None:
    """RFC 7232 If-Match / If-None-Match (and If-Unmodified-Since) against the current document
    (412 when they fail).

    xAPI Communication 3.1.s4.b5-b12: the LRS handles If-Match with an ETag and If-None-Match
    with "*" (and, as RFC 7232 says, with a list of tags) on PUT, POST and DELETE.
    """
    if current is None:
        check_current_preconditions(None, None, pre, "the document")
    else:
        check_current_preconditions(current.etag, current.updated, pre, "the document")


def check_current_preconditions(etag: str | None, updated: datetime | None, pre: Preconditions, what: str) -> None:
    """If-Match / If-None-Match against the current ETag of ``what`` (None: it does not exist),
    and, without If-Match, If-Unmodified-Since against when it was last updated (RFC 9110
    13.1.4: the write is refused when ``what`` changed after the date, as its Last-Modified says
    it, in whole seconds; what does not exist has no date)."""
    if pre.if_match is not None:
        if etag is None:
            raise PreconditionFailed(f"If-Match: {what} does not exist")
        if "*" not in pre.if_match and etag not in pre.if_match:
            raise PreconditionFailed(f"If-Match: the current ETag of {what} is \"{etag}\"")
    if pre.if_none_match is not None and etag is not None and (
            "*" in pre.if_none_match or etag in pre.if_none_match):
        raise PreconditionFailed(f"If-None-Match: {what} exists")
    if pre.if_match is None and pre.if_unmodified_since is not None and updated is not None:
        changed = last_modified(updated)
        if changed > pre.if_unmodified_since:
            raise PreconditionFailed(f"If-Unmodified-Since: {what} was last modified at {http_date(changed)}")


def id_list(ids: list[str]) -> tuple[bytes, str]:
    """A list of document ids as GET without an id answers it: the JSON body and its ETag."""
    body = orjson.dumps(ids)
    return body, etag_of(body)


def decide_delete_scope(pre: Preconditions) -> Callable[[list[str], datetime | None], None]:
    """Multiple-document DELETE: its If-Match / If-None-Match are about the documents as a whole,
    whose ETag is the one GET of their id list answers (``*``: any document there at all), and
    its If-Unmodified-Since about the newest of them (the list's Last-Modified)."""

    def decide(ids: list[str], newest: datetime | None) -> None:
        check_current_preconditions(id_list(ids)[1] if ids else None, newest, pre, "the document set (its id list)")

    return decide


def precondition_required(resource: Resource, version: str) -> bool:
    """Whether a PUT over an existing document must carry If-Match or If-None-Match.

    1.0.3 Communication 3.1.s3: the State Resource permits writes without concurrency headers,
    the profile resources do not. 2.0.0 (IEEE 9274.1.1 and the conformance suite's
    4.1.4-Concurrency.js) applies the rule to State as well.
    """
    return resource != "state" or version == "2.0.0"


def decide_put(pre: Preconditions, resource: Resource, version: str, content: bytes, content_type: str) -> Decide:
    """PUT: replace the document (Communication 2.3/2.6/2.7, 3.1.s4.b13: 409 without headers)."""

    def decide(current: Document | None) -> Write:
        check_preconditions(current, pre)
        if current is None and pre.absent and resource != "state":
            # 1.0.3 Communication 3.1.s3.b1: a PUT to a profile resource MUST carry If-Match or
            # If-None-Match. The 1.0.3 conformance suite (XAPI-00273, XAPI-00287) wants 400 for
            # a new document; for 2.0.0, which names no status, 428 (RFC 6585 3) says exactly
            # what is missing. State PUTs need no header (3.1.s3; the 2.0.0 suite PUTs new State
            # documents without one).
            message = ("a PUT to a profile resource must carry If-None-Match: * (to create) or If-Match "
                       "with the document's ETag (to replace)")
            if version == "2.0.0":
                raise PreconditionRequired(message)
            raise BadRequest(message)
        if current is not None and pre.absent and precondition_required(resource, version):
            raise Conflict(
                "the document already exists and the PUT carried neither If-Match nor If-None-Match: "
                "check the current state of the document (GET it) and send its ETag in If-Match "
                f"(the current ETag is \"{current.etag}\")"
            )
        return Write(PUT, content, content_type or DEFAULT_TYPE)

    return decide


def _json_object(content: bytes, what: str, content_type: str) -> dict[str, str]:
    """The document's top-level members, each value as its exact JSON text (lrs/ops/json_members.py),
    read in the charset its Content-Type names (Communication 2.2.s7: "de-serialize the Objects
    represented by each document"; a stored ISO-8859-1 document was read as UTF-8, and a merge
    wrote UTF-8 bytes under its ISO-8859-1 label; a documents audit). A document labelled with a
    single-byte charset whose bytes are valid UTF-8 is read as UTF-8: a PUT stores what it is
    sent under whatever label, and such a label set by mistake garbled every letter of it in
    the merge (a review)."""
    try:
        return json_members.members(as_utf8(content, content_type, what, utf8_first=True).decode())
    except UnicodeDecodeError:
        raise BadRequest(f"{what} is not valid JSON: not UTF-8") from None
    except json_members.NotAnObject as exc:
        raise BadRequest(f"{what} is not a JSON object ({exc}); only objects can be merged") from None


# Splitting a JSON object into its members costs about 5 µs a member in Python: a 16 MiB
# document of 1.4 million small members took 7 s. One larger than this is split in a worker
# thread (the event loop serves other requests meanwhile), and a stored one before the write
# takes the store lock (statements of the store are not held up behind it).
SPLIT_IN_THREAD_BYTES = 256 * 1024
# Their own threads, two: large splits wait for each other rather than take the default pool
# (name lookups of the database host use it) or more of the CPU than two cores' worth.
_SPLITTERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="spor-json-split")
# Merges made under the store lock have threads of their own: queued behind other requests'
# splits (of any store) they would hold the lock every write of the store waits for (a review).
_MERGERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="spor-json-merge")


async def _json_object_off_loop(content: bytes, what: str, content_type: str) -> dict[str, str]:
    if len(content) > SPLIT_IN_THREAD_BYTES:
        return await asyncio.get_running_loop().run_in_executor(_SPLITTERS, _json_object, content, what,
                                                                content_type)
    return _json_object(content, what, content_type)


def utf8_labelled(content_type: str) -> str:
    """The Content-Type of a merged document, which is UTF-8 whatever its parts were: the stored
    type when it names no charset or UTF-8, else application/json."""
    label = charset_of(content_type)
    return content_type if label is None or label.replace("_", "-") in ("utf-8", "utf8") else JSON_TYPE


class MergeDecision:
    """POST: create, or merge a JSON object into a JSON object (Communication 2.2.s7, 2.2.s8).

    Only top-level properties are merged; the posted value replaces the stored one whole.
    When either side is not application/json or not a JSON object: 400 and no change. A merge
    whose result is larger than ``max_bytes`` is 413 and no change: the limit is on documents,
    not only on request bodies, or merges would grow one past what a PUT could write back.

    Called with the current document under the store lock, after :meth:`prepare`: before the
    lock, that splits the posted document (a JSON one), and, given the stored document as read
    before the lock, splits it ahead (each in a thread when large); the call under the lock uses
    that split when the document is still the one with that ETag, and splits again when a write
    came in between.
    """

    def __init__(self, pre: Preconditions, content: bytes, content_type: str, max_bytes: int | None) -> None:
        self.pre, self.content, self.content_type, self.max_bytes = pre, content, content_type, max_bytes
        self.posted: dict[str, str] | None = None  # the posted document's members (prepare)
        self._split: tuple[str, dict[str, str]] | None = None  # (etag, members) of a stored document

    async def prepare(self, current: Document | None) -> None:
        if self.posted is None and is_json_type(self.content_type):
            # XAPI-00235: a JSON-typed POST must be a JSON object even when it creates the
            # document. Split here, inside the room the write holds in the write buffer: split
            # before it, a POST waiting for its turn held its document ~18 times over (an audit)
            self.posted = await _json_object_off_loop(self.content, "the posted document", self.content_type)
        if (current is None or current.content is None or self.posted is None
                or not is_json_type(current.content_type)):
            return
        try:
            # a POST its preconditions refuse as the document stands splits nothing (a review: a
            # stale If-Match split 16 MiB, holding the write buffer, to answer 412); the check
            # under the lock decides
            check_preconditions(current, self.pre)
            self._split = (current.etag, await _json_object_off_loop(current.content, "the stored document",
                                                                     current.content_type))
        except LRSError:
            return  # said under the lock, after the preconditions (a 412 comes before a 400)

    def __call__(self, current: Document | None) -> Write | Awaitable[Write]:
        check_preconditions(current, self.pre)
        if current is None:
            # 2.2.s7 / XAPI-00233: POST of a document not yet stored is treated as a PUT.
            return Write(PUT, self.content, self.content_type or DEFAULT_TYPE)
        if self.posted is None:
            raise BadRequest("POST onto an existing document needs Content-Type application/json "
                             "(to merge); use PUT to replace the document")
        if not is_json_type(current.content_type):
            raise BadRequest(f"the stored document has Content-Type {current.content_type!r}, not "
                             "application/json, so it cannot be merged; use PUT to replace it")
        split = self._split[1] if self._split is not None and self._split[0] == current.etag else None
        content = current.content or b""
        if len(content) + len(self.content) > SPLIT_IN_THREAD_BYTES:
            # a large merge is work of Python a member at a time (three merges of 7 MB into one
            # 7 MB document held the event loop 11.5 s: a memory audit): in a thread of its own,
            # with the store lock held as for any write
            return self._merge_off_loop(split, content, current.content_type)
        return Write(MERGE, self._merged(split, content, current.content_type), utf8_labelled(current.content_type))

    async def _merge_off_loop(self, split: dict[str, str] | None, content: bytes, content_type: str) -> Write:
        merged = await asyncio.get_running_loop().run_in_executor(_MERGERS, self._merged, split, content,
                                                                  content_type)
        return Write(MERGE, merged, utf8_labelled(content_type))

    def _merged(self, split: dict[str, str] | None, content: bytes, content_type: str) -> bytes:
        """The stored object (split ahead, or split now) with the posted members over it."""
        assert self.posted is not None
        stored = dict(split) if split is not None else _json_object(content, "the stored document", content_type)
        stored.update(self.posted)
        merged = json_members.serialise(stored)
        if self.max_bytes is not None and len(merged) > self.max_bytes:
            raise PayloadTooLarge(f"the merged document would be {len(merged)} bytes; the limit is "
                                  f"{self.max_bytes} bytes (nothing was changed)")
        return merged


def decide_delete(pre: Preconditions) -> Decide:
    """DELETE of one document; deleting a missing document is a no-op (204) unless If-Match."""

    def decide(current: Document | None) -> Write | None:
        check_preconditions(current, pre)
        if current is None:
            return None
        return Write(DELETE)

    return decide


# ---------------------------------------------------------------------------------------------
# Operations


def _require_write(principal: Principal, resource: Resource) -> None:
    # xAPI Communication 4.2 (OAuth scopes): "state" and "profile" cover read and write.
    principal.require("state" if resource == "state" else "profile")


def _require_read(principal: Principal, resource: Resource) -> None:
    principal.require("state" if resource == "state" else "profile", "all/read")


async def put_document(repo: DocumentRepository, principal: Principal, version: str, key: DocKey,
                       agent: dict[str, Any] | None, content: bytes, content_type: str, pre: Preconditions) -> None:
    """Store ``content`` as the document at ``key``, replacing any existing one."""
    _require_write(principal, key.resource)
    await repo.change(principal.store_id, key, agent, decide_put(pre, key.resource, version, content, content_type),
                      with_content=False)


async def post_document(repo: DocumentRepository, principal: Principal, key: DocKey, agent: dict[str, Any] | None,
                        content: bytes, content_type: str, pre: Preconditions, max_bytes: int | None = None,
                        hold: Hold | None = None) -> None:
    """Create the document, or merge a JSON object into the stored JSON object (at most
    ``max_bytes`` after the merge). ``hold``: room in the write buffer, taken for the posted
    document and the stored one it merges into together."""
    _require_write(principal, key.resource)
    decision = MergeDecision(pre, content, content_type, max_bytes)
    # (a POST that is not JSON merges nothing: nothing to split)
    room = None if hold is None else (lambda stored: hold(len(content) + stored))
    await repo.change(principal.store_id, key, agent, decision, with_content=True,
                      prepare=decision.prepare if is_json_type(content_type) else None, hold=room)


async def delete_document(repo: DocumentRepository, principal: Principal, key: DocKey, pre: Preconditions) -> None:
    """Delete one document (no-op when absent and no If-Match was given)."""
    _require_write(principal, key.resource)
    await repo.change(principal.store_id, key, None, decide_delete(pre), with_content=False)


async def delete_documents(repo: DocumentRepository, principal: Principal, scope: Scope,
                           pre: Preconditions | None = None) -> int:
    """Multiple-document DELETE (State only, Communication 2.3.s5); the number deleted. With
    preconditions (3.1.s4.b7), nothing is deleted unless they hold for the id list."""
    _require_write(principal, scope.resource)
    conditional = pre is not None and (not pre.absent or pre.if_unmodified_since is not None)
    decide = decide_delete_scope(pre) if pre is not None and conditional else None
    return await repo.delete_scope(principal.store_id, scope, decide)


def _asked(resource: Resource, activity_id: str, agent_key: str, registration: str | None,
           **more: Any) -> dict[str, Any] | None:
    """What an audit record of a document read holds; None for documents about no person
    (activity profiles): State and Agent Profile documents are kept per agent, so reading them
    is reading a person's records (a bookmark, a cmi5 session's progress, a profile)."""
    if not agent_key:
        return None
    return {"resource": resource, "agent": agent_key, "activityId": activity_id or None,
            "registration": registration or None, **more}


async def get_document(repo: DocumentRepository, principal: Principal, key: DocKey, *,
                       audit: AuditTrail | None = None) -> Document:
    """One document with its content (404 when absent); a read of an agent's document is
    audited (``<resource>.get``), as is a refused one."""
    asked = _asked(key.resource, key.activity_id, key.agent_key, key.registration, id=key.doc_id)
    action = f"{key.resource}.get"
    async with refusals_recorded(audit, principal, action, lambda: asked):
        _require_read(principal, key.resource)
    doc = await repo.get(principal.store_id, key)
    if doc is None:
        raise NotFound(f"no document with id {key.doc_id!r} here")
    if audit is not None and asked is not None:
        await audit.record(principal, action, asked, 1)
    return doc


async def list_ids(repo: DocumentRepository, principal: Principal, scope: Scope,
                   since: datetime | None, *, audit: AuditTrail | None = None) -> tuple[list[str], datetime | None]:
    """Ids of the documents in ``scope`` updated after ``since`` (exclusive), and the newest
    update; audited as ``<resource>.ids`` when the documents are an agent's."""
    asked = _asked(scope.resource, scope.activity_id, scope.agent_key, scope.registration,
                   since=since.isoformat() if since is not None else None)
    action = f"{scope.resource}.ids"
    async with refusals_recorded(audit, principal, action, lambda: asked):
        _require_read(principal, scope.resource)
    ids, newest = await repo.ids(principal.store_id, scope, since)
    if audit is not None and asked is not None:
        await audit.record(principal, action, asked, len(ids))
    return ids, newest
