"""The Statements resource (xAPI Communication 2.1): parsing requests and shaping responses."""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

import statements_schema
from lrs.errors import BadRequest, LRSError, PayloadTooLarge
from lrs.http.common import (
    NO_STORE_THROUGH,
    accept_languages,
    ascii_number,
    media_type,
    only_params,
    parse_bool,
    parse_json,
    principal,
    read_body,
    xapi_version,
)
from lrs.http.errors import internal_error
from lrs.http.multipart import (
    build_multipart_mixed,
    check_attachments,
    declared_content_types,
    declared_hashes,
    parse_statement_multipart,
    parts_allowed,
)
from lrs.ops import statements as ops
from lrs.ops import terms as T
from lrs.ops.charset import as_utf8
from lrs.ops.statements import Attachment, Query, StatementRepository, StatementRow
from lrs.ops.timestamps import format_timestamp, http_date, parse_bound
from lrs.ops.uuids import canonical_uuid

PATH = "/xapi/statements"
QUERY_PARAMS = frozenset({
    "agent", "verb", "activity", "registration", "related_activities", "related_agents",
    "since", "until", "limit", "format", "attachments", "ascending",
})
SINGLE_PARAMS = frozenset({"statementId", "voidedStatementId", "format", "attachments"})
FORMATS = ("exact", "ids", "canonical")
Handler = Callable[[Request], Awaitable[Response]]


# How old the Consistent-Through of an error response may be (seconds): a flood of refused
# requests (429) must not cost a query each.
ERROR_THROUGH_MAX_AGE = 1.0


async def _consistency_headers(request: Request, store_id: int, max_age: float = 0.0) -> dict[str, str]:
    through = await request.app.state.statements.consistent_through(store_id, max_age)
    return {"X-Experience-API-Consistent-Through": format_timestamp(through)}


async def _write_consistency(request: Request, store_id: int, written: ops.StoredIds) -> dict[str, str]:
    """After an append, everything stored up to its stored time is visible: appends of a store
    commit in stored-time order, so no earlier one can still be in flight."""
    if written.stored is None:
        return await _consistency_headers(request, store_id)
    return {"X-Experience-API-Consistent-Through": format_timestamp(written.stored)}


async def _error_consistency(request: Request) -> dict[str, str]:
    """Consistent-Through for an error response: the store's when the request authenticated (it
    may have failed before authenticating, e.g. on its version header), else NO_STORE_THROUGH.
    Credentials already refused are not checked again (a wrong secret costs a scrypt check)."""
    who = getattr(request.state, "principal", None)
    # A header must not turn the error being answered into another one: any failure here gives
    # NO_STORE_THROUGH.
    if who is None and not getattr(request.state, "authentication_tried", False):
        with contextlib.suppress(Exception):
            who = await principal(request)
    if who is not None:
        with contextlib.suppress(Exception):
            return await _consistency_headers(request, who.store_id, ERROR_THROUGH_MAX_AGE)
    return {"X-Experience-API-Consistent-Through": NO_STORE_THROUGH}


def consistent(handler: Handler) -> Handler:
    """Put X-Experience-API-Consistent-Through on every response of the Statements resource,
    errors included (Communication 2.1.3.s2.b5: "on all responses to Statements Resource
    requests"); clients poll it to know when a stored statement can be read."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except LRSError as exc:
            exc.headers.update(await _error_consistency(request))
            raise
        except Exception as exc:
            return internal_error(exc, await _error_consistency(request))

    wrapped.__doc__ = handler.__doc__
    return wrapped


def _statements_from_body(request: Request, body: bytes, *,
                          single: bool = False) -> tuple[list[Any], list[Attachment]]:
    """The JSON statement(s) and attachment parts of a PUT/POST body."""
    settings = request.app.state.settings
    kind = media_type(request)
    if kind == "multipart/mixed":
        json_bytes, parts = parse_statement_multipart(
            body, request.headers.get("content-type", ""), max_part_bytes=settings.max_attachment_bytes,
            max_parts=parts_allowed(settings.max_batch_statements),
        )
        data = parse_json(json_bytes, "the statement part")
    elif kind in ("application/json", ""):
        data = parse_json(as_utf8(body, request.headers.get("content-type", ""), "request body"))
        parts = []
    else:
        raise BadRequest(f"Content-Type {kind!r} is not accepted here; send application/json or multipart/mixed")
    if single and not isinstance(data, dict):
        raise BadRequest("PUT statements takes exactly one statement object")
    statements = data if isinstance(data, list) else [data]
    if not all(isinstance(s, dict) for s in statements):
        raise BadRequest("expected a statement object or an array of statement objects")
    matched = check_attachments(statements, parts)
    # (signatures are verified by ops.store_statements, after each statement is validated)
    attachments = [Attachment(p.sha2, p.content_type, p.content) for p in matched.values()]
    return statements, attachments


@contextlib.asynccontextmanager
async def _admitted(request: Request, *,
                    single: bool = False) -> AsyncIterator[tuple[list[Any], list[Attachment]]]:
    """Read a PUT/POST body, wait for room in the process's write buffer (parsed and turned into
    rows, a body takes many times its size: lrs/http/admission.py), and hold it while the
    caller parses and stores the statements."""
    body = await read_body(request, request.app.state.settings.max_body_bytes)
    async with request.app.state.write_budget.hold(len(body)):
        yield _statements_from_body(request, body, single=single)


@consistent
async def put_statement(request: Request) -> Response:
    """PUT /statements?statementId=...: store one statement under the given id (204)."""
    version = xapi_version(request)
    who = await principal(request)
    only_params(request, {"statementId"}, "PUT statements")
    sid = request.query_params.get("statementId")
    if not sid:
        raise BadRequest("statementId parameter is required for PUT")
    async with _admitted(request, single=True) as (statements, attachments):
        stored = await ops.store_statements(request.app.state.statements, who, version, statements, attachments,
                                            put_id=sid)
    request.app.state.metrics.inc("spor_statements_received_total", len(stored))
    return Response(status_code=204, headers=await _write_consistency(request, who.store_id, stored))


@consistent
async def post_statements(request: Request) -> Response:
    """POST /statements: store one statement or a batch; 200 with the ids in order."""
    version = xapi_version(request)
    who = await principal(request)
    only_params(request, (), "POST statements")
    async with _admitted(request) as (statements, attachments):
        max_batch = request.app.state.settings.max_batch_statements
        if len(statements) > max_batch:
            raise PayloadTooLarge(f"the batch has {len(statements)} statements; the limit is {max_batch}")
        ids = await ops.store_statements(request.app.state.statements, who, version, statements, attachments)
    request.app.state.metrics.inc("spor_statements_received_total", len(ids))
    return Response(orjson.dumps(list(ids)), media_type="application/json",
                    headers=await _write_consistency(request, who.store_id, ids))


def _agent_param(raw: str, version: str) -> str:
    """The key of the ``agent`` query parameter: an Agent or an identified Group in both
    versions (Communication 2.1.3, GET Statements parameter table)."""
    data = parse_json(raw.encode(), "agent parameter")
    try:
        if isinstance(data, dict) and data.get("objectType") == "Group":
            statements_schema.validate_group(data, version)
        else:
            statements_schema.validate_agent(data, version)
    except statements_schema.ValidationFailure as exc:
        raise BadRequest(f"agent parameter: {exc}") from None
    key = T.agent_key(data) if isinstance(data, dict) else None
    if key is None:
        raise BadRequest("agent parameter: must be an Agent or an identified Group (with an identifier)")
    if "\x00" in key:
        raise BadRequest("agent parameter: an identifier contains a NUL character")
    return key


def _iri_param(params: Any, name: str) -> str | None:
    """A verb/activity parameter: an absolute IRI (Communication 2.1.3), else 400."""
    value = params.get(name)
    if value is None:
        return None
    if not statements_schema.is_iri(value):
        raise BadRequest(f"{name}: must be an absolute IRI, got {value!r}")
    return str(value)


def _parse_query(request: Request, version: str) -> tuple[Query, str, bool]:
    params = request.query_params
    only_params(request, QUERY_PARAMS, "GET statements")
    settings = request.app.state.settings
    fmt = params.get("format", "exact")
    if fmt not in FORMATS:
        raise BadRequest(f"format: must be one of {', '.join(FORMATS)}, got {fmt!r}")
    limit_raw = params.get("limit", "0")
    limit = ascii_number(limit_raw)
    if limit is None:
        raise BadRequest(f"limit: must be a non-negative integer, got {limit_raw!r}")
    limit = settings.query_limit_max if limit == 0 else min(limit, settings.query_limit_max)
    registration = params.get("registration")
    if registration is not None:
        registration = canonical_uuid(registration, "registration")
    q = Query(
        agent=_agent_param(params["agent"], version) if "agent" in params else None,
        verb=_iri_param(params, "verb"),
        activity=_iri_param(params, "activity"),
        registration=registration,
        related_activities=parse_bool(params, "related_activities"),
        related_agents=parse_bool(params, "related_agents"),
        since=parse_bound(params["since"], "since", version) if "since" in params else None,
        until=parse_bound(params["until"], "until", version) if "until" in params else None,
        limit=limit,
        ascending=parse_bool(params, "ascending"),
    )
    return q, fmt, parse_bool(params, "attachments")


def _encode_more(q: Query, fmt: str, attachments: bool, after: int, horizon: int, through: datetime) -> str:
    # through: the first page's Consistent-Through, which every page of the query reports. The
    # pages read up to the first page's horizon, so a later Consistent-Through would claim
    # statements stored since then that no page holds (a client reading incrementally since the
    # last page's value would never see them).
    state = {
        "agent": q.agent, "verb": q.verb, "activity": q.activity, "registration": q.registration,
        "ra": q.related_activities, "rg": q.related_agents,
        "since": q.since.isoformat() if q.since else None, "until": q.until.isoformat() if q.until else None,
        "limit": q.limit, "asc": q.ascending, "after": after, "horizon": horizon, "fmt": fmt, "att": attachments,
        "ct": through.isoformat(),
    }
    token = base64.urlsafe_b64encode(orjson.dumps(state)).decode().rstrip("=")
    return f"{PATH}?more={token}"


def _position(value: Any) -> int:
    if type(value) is not int or not 0 <= value < 2**63:
        raise ValueError("not a position")
    return value


def _through(value: Any) -> datetime | None:
    """The Consistent-Through a more token carries (None in tokens made before it did)."""
    if value is None:
        return None
    if not isinstance(value, str) or (through := datetime.fromisoformat(value)).tzinfo is None:
        raise ValueError("not a Consistent-Through")
    return through.astimezone(UTC)  # OverflowError outside the years 1 to 9999 in UTC


def _decode_more(token: str, max_limit: int) -> tuple[Query, str, bool, datetime | None]:
    # The token is the client's to send back, and so to forge: it may ask no more than a query
    # could (every member checked as the query's parameters are; the limit cut to the maximum).
    try:
        s = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        terms = (s["agent"], s["verb"], s["activity"], s["registration"])
        if not all(t is None or (isinstance(t, str) and "\x00" not in t) for t in terms):
            raise ValueError("a filter term is not text")
        if s["fmt"] not in FORMATS or type(s["limit"]) is not int or s["limit"] < 0:
            raise ValueError("format or limit")
        q = Query(
            agent=s["agent"], verb=s["verb"], activity=s["activity"], registration=s["registration"],
            related_activities=bool(s["ra"]), related_agents=bool(s["rg"]),
            since=parse_bound(s["since"], "since", None) if s["since"] else None,
            until=parse_bound(s["until"], "until", None) if s["until"] else None,
            limit=s["limit"], ascending=bool(s["asc"]), after=_position(s["after"]),
            horizon=_position(s["horizon"]),
        )
        through = _through(s.get("ct"))
    except (ValueError, KeyError, TypeError, OverflowError, binascii.Error, orjson.JSONDecodeError, BadRequest):
        raise BadRequest("more: not a valid continuation token") from None
    limit = max_limit if q.limit == 0 else min(q.limit, max_limit)
    return replace(q, limit=limit), str(s["fmt"]), bool(s["att"]), through


async def _within_attachment_budget(repo: StatementRepository, store_id: int, rows: list[StatementRow],
                                    budget: int) -> list[StatementRow]:
    """The first rows of a page whose attachment data (each file once) is at most ``budget``
    bytes, and always the first row. Communication 2.1.3 lets a page hold fewer statements than
    ``limit``; its ``more`` goes on from the last one kept."""
    sizes = await repo.attachment_sizes(store_id, sorted({s.lower() for r in rows for s in r.attachment_sha2s}))
    seen: set[str] = set()
    total = 0
    for i, row in enumerate(rows):
        new = {s.lower() for s in row.attachment_sha2s} - seen
        total += sum(sizes.get(s, 0) for s in new)
        if total > budget and i > 0:
            return rows[:i]
        seen |= new
    return rows


async def _respond(request: Request, json_body: bytes, sha2s: list[str], attachments: bool,
                   store_id: int, headers: dict[str, str]) -> Response:
    if attachments:
        repo = request.app.state.statements
        head = request.method == "HEAD"
        if head:
            # HEAD sends no body: the data is not read, its size (from the values' headers) makes
            # up the Content-Length a GET would send (the parts' headers do not depend on it)
            described = await repo.attachments_described(store_id, sorted(set(sha2s)))
            contents, data_bytes = [a for a, _ in described], sum(size for _, size in described)
        else:
            contents, data_bytes = await repo.attachment_contents(store_id, sorted(set(sha2s))), 0
        shown = orjson.loads(json_body)
        statements = shown.get("statements", [shown])
        declared, spelled = declared_content_types(statements), declared_hashes(statements)
        contents = [replace(c, sha2=spelled.get(c.sha2.lower(), c.sha2),
                            content_type=declared.get(c.sha2.lower(), c.content_type)) for c in contents]
        body, content_type = build_multipart_mixed(json_body, contents)
        if head:
            headers["Content-Length"] = str(len(body) + data_bytes)
            return Response(b"", headers=headers, media_type=content_type)
        return Response(body, headers=headers, media_type=content_type)
    return Response(json_body, headers=headers, media_type="application/json")


@consistent
async def get_statements(request: Request) -> Response:
    """GET/HEAD /statements: one statement by id, or a page of a query."""
    version = xapi_version(request)
    who = await principal(request)
    repo = request.app.state.statements
    params = request.query_params
    langs = accept_languages(request)

    if "statementId" in params or "voidedStatementId" in params:
        if "statementId" in params and "voidedStatementId" in params:
            raise BadRequest("statementId and voidedStatementId cannot be used together")
        only_params(request, SINGLE_PARAMS, "GET statements with statementId/voidedStatementId")
        fmt = params.get("format", "exact")
        if fmt not in FORMATS:
            raise BadRequest(f"format: must be one of {', '.join(FORMATS)}, got {fmt!r}")
        headers = await _consistency_headers(request, who.store_id)
        voided = "voidedStatementId" in params
        row = await ops.get_statement(repo, who, params["voidedStatementId" if voided else "statementId"],
                                      voided=voided, audit=request.app.state.audit)
        headers["Last-Modified"] = http_date(row.stored)
        if fmt == "canonical":
            headers["Vary"] = "Accept-Language"  # (RFC 9110 12.5.5: the body depends on it)
        [shaped] = await ops.shape(repo, who.store_id, [row.payload], fmt, langs,
                                   request.app.state.settings.query_statement_bytes_max)
        return await _respond(request, shaped, row.attachment_sha2s,
                              parse_bool(params, "attachments"), who.store_id, headers)

    if "more" in params:
        only_params(request, ("more",), "a more URL (it takes no other parameters)")
        q, fmt, attachments, first_through = _decode_more(params["more"], request.app.state.settings.query_limit_max)
    else:
        q, fmt, attachments = _parse_query(request, version)
        first_through = None
    asked = {k: v for k, v in params.items() if k != "more"} | {"agent": q.agent, "more": "more" in params}
    q = replace(q, attachments=attachments, page_bytes=request.app.state.settings.query_statement_bytes_max)
    page = await ops.query_statements(repo, who, q, audit=request.app.state.audit, asked=asked)
    rows, horizon = page.rows, page.horizon
    if first_through is not None:
        through = first_through
    elif "more" in params:
        # a token an earlier Spor made carries no first Consistent-Through (during an upgrade):
        # the store's now would claim statements stored after the horizon, which no page holds
        through = await repo.through_at(who.store_id, horizon)
    else:
        through = page.consistent_through
    headers = {"X-Experience-API-Consistent-Through": format_timestamp(through)}
    if fmt == "canonical":
        headers["Vary"] = "Accept-Language"
    # the page ends before the rows read: at the limit (a row past it was read to know), at the
    # statements' byte budget, at the attachment data's, or at the budget as sent (canonical)
    ends_early = len(rows) > q.limit or page.ends_early
    rows = rows[: q.limit]
    if attachments and len(rows) > 1:
        budget = request.app.state.settings.query_attachment_bytes_max
        kept = await _within_attachment_budget(repo, who.store_id, rows, budget)
        ends_early, rows = ends_early or len(kept) < len(rows), kept
    parts = await ops.shape(repo, who.store_id, [r.payload for r in rows], fmt, langs, q.page_bytes)
    ends_early, rows = ends_early or len(parts) < len(rows), rows[: len(parts)]
    await ops.record_query(repo, request.app.state.audit, who, asked, rows)
    more = _encode_more(q, fmt, attachments, rows[-1].position, horizon, through) if ends_early else ""
    json_body = b'{"statements":[' + b",".join(parts) + b'],"more":' + orjson.dumps(more) + b"}"
    if rows and version == "2.0.0":
        headers["Last-Modified"] = http_date(max(r.stored for r in rows))
    sha2s = [s for r in rows for s in r.attachment_sha2s]
    return await _respond(request, json_body, sha2s, attachments, who.store_id, headers)
