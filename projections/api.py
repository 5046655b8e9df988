"""The analyst API under ``/api``: the read models as JSON (filtering, paging) and CSV, and an
OpenAPI description at ``/api/openapi.json``.

Mounted by ``lrs/app.py`` as ``projections.api.mount()``. A request
authenticates like an xAPI request; it reads the stores its credential may read (its own store,
or every store of its region for a regional credential) on a connection scoped to them, so
row-level security enforces the boundary too; it needs a read scope, and every read is written
to the audit trail (action ``analyst.<view>``, with the filters and the number of rows), as is a
request refused for want of a scope (lrs/ops/audit.py). Aggregated views
hide counts of groups smaller than the suppression threshold (default 5).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import csv
import functools
import io
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar
from urllib.parse import quote

import asyncpg
import orjson
import structlog
from starlette.datastructures import URL
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import Message, Receive, Scope, Send

from lrs.errors import BadRequest, Conflict, ServiceUnavailable
from lrs.http.common import ascii_number, principal, refuse_nul
from lrs.ops.audit import record_refusal, refusals_recorded
from lrs.ops.principal import Principal
from lrs.ops.qualities import weighted
from lrs.store.db import scoped, translated
from lrs.store.queries import sql
from projections import queries, runner
from projections.models import ALL

log = structlog.get_logger("spor.analyst")
MAX_LIMIT = 10_000
EXPORT_BATCH = 2000  # rows per chunk of a streamed CSV export


def _options(request: Request) -> queries.Options:
    s = request.app.state.settings
    # dates are days in Europe/Oslo, the zone the workers compute the status rows for
    return queries.Options(suppression_threshold=s.suppression_threshold,
                           expiring_window_days=s.expiring_window_days)


def _int(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    v = ascii_number(raw)  # (int() also takes "1_0", " 5" and other scripts' digits)
    if v is None:
        raise BadRequest(f"{name} must be a whole number (digits 0-9)")
    if not lo <= v <= hi:
        raise BadRequest(f"{name} must be between {lo} and {hi}")
    return v


def _date(request: Request, name: str) -> date | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    # YYYY-MM-DD only (fromisoformat also takes 20250101 and 2025-W01-1); not the first or
    # last day a date holds, which PostgreSQL's driver sends as -infinity and infinity (a
    # privacy audit: as_of=9999-12-31 showed a requirement that never expires as expired)
    try:
        if not _ISO_DAY.fullmatch(raw):
            raise ValueError
        day = date.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a date (YYYY-MM-DD)") from None
    if day in (date.min, date.max):
        raise BadRequest(f"{name} must be a date after 0001-01-01 and before 9999-12-31")
    return day


_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _choice(request: Request, name: str, allowed: tuple[str, ...], default: str | None = None) -> str | None:
    raw = request.query_params.get(name, default)
    if raw is not None and raw not in allowed:
        raise BadRequest(f"{name} must be one of {', '.join(allowed)}")
    return raw


# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection): person
# and requirement ids come from HR and requirement files, not from Spor.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# Where a spreadsheet reading the file with another separator begins a cell: Norwegian Excel
# splits a .csv at ';' (an analyst API audit: an activity id "https://c.example.org/x;=1+5;" gave
# a cell =1+5). A formula start after one of these is marked as the first character is.
_SEPARATORS = frozenset(";,\t")
_FORMULA_AFTER_SEPARATOR = re.compile(r"(?<=[;,\t])(?=[=+\-@])")


def _cell(v: Any) -> Any:
    if type(v) is str and not v.startswith(_FORMULA_START) and _SEPARATORS.isdisjoint(v):
        return v  # the most common cell, first
    if type(v) is str and not _SEPARATORS.isdisjoint(v):
        v = _FORMULA_AFTER_SEPARATOR.sub("'", v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, dict | list):
        return orjson.dumps(v).decode()
    if isinstance(v, str) and v.startswith(_FORMULA_START):
        return "'" + v  # shown as text; the quote marks the cell as changed
    return "" if v is None else v


def _wants_csv(request: Request) -> bool:
    """format=csv or format=json decides; without it, an Accept that rates text/csv above 0 and
    above JSON asks for CSV (RFC 9110 12.5.1: q=0 is "not acceptable"; the q-values were not
    read, so "text/csv;q=0" got CSV; an analyst API audit)."""
    fmt = _choice(request, "format", ("json", "csv"))
    if fmt is not None:
        return fmt == "csv"
    rated: dict[str, float] = {}
    for media, q in weighted(", ".join(request.headers.getlist("accept"))):
        rated.setdefault(media, q)
    csv_q = rated.get("text/csv", 0.0)
    return csv_q > 0 and csv_q > rated.get("application/json", -1.0)


CSV = "text/csv; charset=utf-8"


def _csv_headers(name: str) -> dict[str, str]:
    """Content-Disposition for ``name``.csv: an ASCII fallback and the name itself (RFC 6266)."""
    plain = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in name)
    utf8 = quote(name + ".csv", safe="")
    return {"Content-Disposition": f"attachment; filename=\"{plain}.csv\"; filename*=UTF-8''{utf8}"}


def _respond(request: Request, name: str, rows: list[dict[str, Any]], limit: int | None = None,
             offset: int = 0, columns: list[str] | None = None,
             cursor: Callable[[dict[str, Any]], str] | None = None) -> Response:
    """A page of ``rows`` (one more than ``limit`` when more follow) as JSON or CSV. The next
    page's link: after the last row's ``cursor`` when the view has one, else the next offset."""
    more = limit is not None and len(rows) > limit
    if more:
        rows = rows[:limit]
    nxt = None
    if more and cursor is not None:
        nxt = str(_as_sent(request).remove_query_params("offset").include_query_params(after=cursor(rows[-1]),
                                                                                       limit=limit))
    elif more:
        nxt = str(_as_sent(request).include_query_params(offset=offset + (limit or 0), limit=limit))
    if _wants_csv(request):
        headers = _csv_headers(name)
        if nxt:
            headers["Link"] = f'<{nxt}>; rel="next"'  # a page of an export, not all of it
        return Response(_csv_lines(rows, columns or [], True), media_type=CSV, headers=headers)
    body: dict[str, Any] = {"items": rows}
    if limit is not None:
        body.update(limit=limit, offset=offset, next=nxt)
    return Response(orjson.dumps(body, default=str), media_type="application/json")


def _as_sent(request: Request) -> URL:
    """The request's URL with its path as the client sent it, percent-escapes kept (and any byte a
    URI may not hold escaped): built from the decoded path, the next page of person "P%41" was
    person "PA"'s, of "P%2F..%2Fx" person "x"'s, and a non-Latin-1 id in a CSV page's Link header
    was a 500 (an analyst API audit)."""
    raw = request.scope.get("raw_path")
    if not raw:
        return request.url
    return request.url.replace(path=quote(raw.decode("latin-1"), safe="/%:@!$&'()*+,;=-._~", encoding="latin-1"))


def _csv_lines(rows: Sequence[Mapping[str, Any]], columns: list[str], header: bool) -> bytes:
    """CSV lines (CRLF) of ``rows``; with ``header``, first a byte order mark (so spreadsheets
    read the UTF-8 of æ, ø, å as UTF-8) and the column names: the rows' own, or ``columns``
    when there are none."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    if header:
        buf.write("\ufeff")
        w.writerow(list(rows[0].keys()) if rows else columns)
    w.writerows([_cell(v) for v in r.values()] for r in rows)
    return buf.getvalue().encode()


def _whole_export(request: Request) -> bool:
    """A CSV export without limit, offset or after is the whole view (a spreadsheet follows no
    Link). A HEAD of one gets the export's headers and reads no row (``_export_head``)."""
    return request.method in ("GET", "HEAD") and _wants_csv(request) and not {"limit", "offset", "after"} & set(
        request.query_params)


def _export_head(plan: ExportPlan) -> StreamingResponse:
    """The headers a GET of the export would get (streamed: no Content-Length), without reading
    a row or recording a read (HEAD had the first page's headers, Content-Length and Link)."""
    async def nothing() -> AsyncGenerator[bytes, None]:
        return
        yield b""  # (an async generator that yields nothing)

    return StreamingResponse(nothing(), media_type=CSV, headers=_csv_headers(plan.name))


@dataclass
class ExportPlan:
    """What a handler gives back for a whole CSV export (``_whole_export``): the endpoint audits
    the request, then reads ``rows`` on a connection of its own (``_export``)."""

    name: str
    columns: list[str]
    rows: Callable[[asyncpg.Connection], AsyncIterator[asyncpg.Record]]
    person_column: str | None


class ExportGate:
    """At most ``limit`` exports at once in a process: each holds a pooled connection for as long
    as its client reads, and xAPI requests need the rest of the pool. ``idle`` is set while
    none runs (shutdown waits for it: an export's end record needs the pool)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def enter(self) -> None:
        if self.running >= self.limit:
            raise ServiceUnavailable(f"{self.limit} exports are running in this process; try again shortly",
                                     headers={"Retry-After": "10"})
        self.running += 1
        self.idle.clear()

    def leave(self) -> None:
        self.running -= 1
        if self.running == 0:
            self.idle.set()


class ReadGate:
    """At most ``limit`` analyst reads at once in a process, each holding a pooled connection
    while it computes (a past date's compliance for a region takes seconds): with exports limited
    to a quarter of the pool (``ExportGate``) and these to another, dashboards opened by every
    manager at once cannot take the connections statement writes need. A read waits up to
    ``wait_seconds`` for its turn, then gets 503 with Retry-After."""

    def __init__(self, limit: int, wait_seconds: float = 10.0) -> None:
        self.limit = limit
        self.wait_seconds = wait_seconds
        self._slots = asyncio.Semaphore(limit)

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self.wait_seconds):
                await self._slots.acquire()
        except TimeoutError:
            raise ServiceUnavailable(f"{self.limit} analyst reads are running in this process; try again shortly",
                                     headers={"Retry-After": "5"}) from None
        try:
            yield
        finally:
            self._slots.release()


# A stalled reader may hold an export's connection and snapshot no longer than this per chunk,
# and no export runs longer than EXPORT_MAX_SECONDS (a region is ~10 s to a reader that keeps up).
EXPORT_SEND_TIMEOUT = 60.0
EXPORT_MAX_SECONDS = 3600.0


class Export(StreamingResponse):
    """A whole view as CSV, streamed from a cursor as it is read, in one snapshot. When the
    stream ends (every row sent, the client gone, a send stalled past EXPORT_SEND_TIMEOUT, or
    the read failed), ``finish`` gets why, after the connection is back in the pool."""

    def __init__(self, name: str, body: _Prefetched, sent: dict[str, Any],
                 finish: Callable[[str], Awaitable[None]]) -> None:
        super().__init__(body, media_type=CSV, headers=_csv_headers(name))
        self.chunks = body
        self.sent = sent  # rows, persons (a set), finished: kept current by the stream
        self.finish = finish

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        deadline = asyncio.get_running_loop().time() + EXPORT_MAX_SECONDS

        async def send_in_time(message: Message) -> None:
            left = deadline - asyncio.get_running_loop().time()
            async with asyncio.timeout(max(0.0, min(EXPORT_SEND_TIMEOUT, left))):
                await send(message)

        why = "interrupted"
        try:
            await super().__call__(scope, receive, send_in_time)
            if self.sent["finished"]:
                why = "finished"
        except (TimeoutError, ClientDisconnect):
            pass  # a client that stalled or hung up: interrupted, not an application error
        except Exception:
            why = "failed"
            raise
        finally:
            # one task, made before anything here awaits, that closes the read (the connection
            # goes back) and then records the end: a cancelled request does not cancel it, and
            # a shutdown waits for it (``drain``)
            await asyncio.shield(_keep(asyncio.ensure_future(self._close_and_finish(why))))

    async def _close_and_finish(self, why: str) -> None:
        try:
            await self.chunks.aclose()  # (a finished stream has nothing left to close)
        except Exception:
            log.exception("analyst_export_close_failed")
        finally:
            await self.finish(why)


async def _export(request: Request, who: Principal, name: str, stores: list[int], asked: dict[str, Any],
                  plan: ExportPlan) -> Export:
    """Audit the export (before any row is read), then start reading it; 503 when this process
    runs as many exports as it allows."""
    gate: ExportGate = request.app.state.exports
    gate.enter()
    audit = getattr(request.app.state, "audit", None)
    action = f"analyst.{name}"
    sent: dict[str, Any] = {"rows": 0, "persons": set(), "finished": False}

    async def finish(why: str) -> None:
        log.info("analyst_export", view=name, credential=who.credential_id, stores=stores, records=sent["rows"],
                 ended=why)
        ended = {**asked, "export": why}
        if sent["persons"]:
            ended["persons"] = sorted(sent["persons"])
        try:
            if audit is not None:
                await audit.record(who, action, ended, sent["rows"])
        except Exception:
            log.exception("audit_record_lost", view=name, credential=who.credential_id, ended=why,
                          records=sent["rows"])
        finally:
            gate.leave()

    try:
        if audit is not None:
            await audit.record(who, action, {**asked, "export": "started"}, 0)
    except BaseException:
        gate.leave()
        raise
    try:
        body = await _read_export(request.app.state.pool, stores, plan, sent)
    except BaseException:
        await asyncio.shield(_keep(asyncio.ensure_future(finish("failed"))))
        raise
    log.info("analyst_read", view=name, credential=who.credential_id, stores=stores, records=0)
    return Export(plan.name, body, sent, finish)


async def _read_export(pool: asyncpg.Pool, stores: list[int], plan: ExportPlan, sent: dict[str, Any]) -> _Prefetched:
    """The CSV of every row of ``plan``, read in one read-only repeatable-read transaction on a
    connection scoped to ``stores``, EXPORT_BATCH rows a chunk; ``sent`` counts the rows and
    people of every chunk handed on (the client may have got fewer, never more). The header and first chunk
    are read before this returns, so a failing query is an error response, not a cut-off file."""
    async def stream() -> AsyncGenerator[bytes, None]:
        async with scoped(pool, stores) as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            # a stalled export must not hold its snapshot (and vacuum) for ever
            await conn.execute("SET LOCAL idle_in_transaction_session_timeout = '10min'")
            async with contextlib.aclosing(csv_chunks(plan.rows(conn), plan.columns, sent,
                                                      plan.person_column)) as chunks:
                async for chunk in chunks:
                    yield chunk
        sent["finished"] = True

    body = stream()
    try:
        async with translated():  # a database that cannot serve before the first row: 503
            first = await body.__anext__()
    except BaseException:
        await body.aclose()
        raise
    return _Prefetched(first, body)


async def csv_chunks(rows: AsyncIterator[asyncpg.Record], columns: list[str], sent: dict[str, Any],
                     person_column: str | None) -> AsyncGenerator[bytes, None]:
    """The CSV of ``rows`` (byte order mark and header first), EXPORT_BATCH rows a chunk; each
    chunk's rows (and the ``person_column`` of each) are added to ``sent`` as it is handed on."""
    page: list[asyncpg.Record] = []
    header = True
    async for r in rows:
        page.append(r)
        if len(page) == EXPORT_BATCH:
            yield _chunk(page, columns, header, sent, person_column)
            header, page = False, []
    yield _chunk(page, columns, header, sent, person_column)


def _chunk(page: list[asyncpg.Record], columns: list[str], header: bool, sent: dict[str, Any],
           person_column: str | None) -> bytes:
    sent["rows"] += len(page)
    if person_column is not None:
        sent["persons"].update(r[person_column] for r in page)
    return _csv_lines(page, columns, header)


class _Prefetched:
    """An async generator whose first item was read already: that item, then the rest.
    ``aclose`` closes the generator (its connection goes back to the pool) even when the
    response never started to send.

    Each later item is read in a task of its own. A client that hangs up cancels the response
    while it waits for a read, and that cancellation (anyio's, repeated at every await in its
    scope) also cut short the rollback on the generator's way out: asyncpg then reset the
    connection, and logged "Resetting connection with an active transaction" as an error. Now
    the read under way finishes, and ``aclose`` (run outside the response, ``Export``) waits for
    it before it closes the generator."""

    def __init__(self, first: bytes, rest: AsyncGenerator[bytes, None]) -> None:
        self._first: bytes | None = first
        self._rest = rest
        self._reading: asyncio.Future[bytes] | None = None

    def __aiter__(self) -> _Prefetched:
        return self

    async def __anext__(self) -> bytes:
        if self._first is not None:
            item, self._first = self._first, None
            return item
        self._reading = asyncio.ensure_future(self._rest.__anext__())
        return await asyncio.shield(self._reading)

    async def aclose(self) -> None:
        reading = self._reading
        if reading is not None and not reading.done():
            with contextlib.suppress(Exception):  # (its error, if any, was the response's)
                await reading
        await self._rest.aclose()


_pending: set[asyncio.Future[Any]] = set()


def _keep(task: asyncio.Future[Any]) -> asyncio.Future[Any]:
    """Hold a task until it ends (the event loop keeps only weak references)."""
    _pending.add(task)
    task.add_done_callback(_pending.discard)
    return task


async def drain(gate: ExportGate) -> None:
    """Wait (up to 10 s) for the exports still ending and their audit records, before the pool
    closes."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(10.0):
            await gate.idle.wait()
            if _pending:
                await asyncio.wait(list(_pending))


# A view's handler: its response, the number of rows in it, and the people those rows are
# about (the audit trail's answer to "who read my records"; none for aggregated views).
Handler = Callable[[Request, list[int]], Awaitable[tuple[Response | ExportPlan, int, list[str]]]]


# Who may read a view: per-person views need a read scope; aggregated ones (small groups
# suppressed) may also be read with analytics/aggregates, the scope for dashboards.
PERSONAL = ("all/read", "statements/read")
AGGREGATED = (*PERSONAL, "analytics/aggregates")


# Members of an analyst audit record that the server sets: a query parameter of the same name is
# recorded as "param.<name>", so a client cannot write the path, the people a read was about or
# an agent into the trail (``spor audit --person`` searches persons and agent).
_SERVER_MEMBERS = frozenset({"path", "stores", "persons", "agent", "refused", "export"})


# An audit record always keeps the query parameters the views read (VIEW_PARAMS, from the OpenAPI
# description below). Of any others (the API ignores them) it keeps the first _RECORDED_OTHERS
# and counts the rest, so a request can neither write a record of any size into the trail nor
# push its real filters out of the record.
_RECORDED_OTHERS = 20


def _asked(request: Request, stores: list[int]) -> dict[str, Any]:
    """What an analyst request asked, as its audit record keeps it."""
    items = list(request.query_params.items())
    params: dict[str, Any] = {k: v for k, v in items if k in VIEW_PARAMS}
    others = [(k, v) for k, v in items if k not in VIEW_PARAMS]
    for k, v in others[:_RECORDED_OTHERS]:
        # a name the server uses for a member of its own (or its escape) is kept apart
        params[f"param.{k}" if k in _SERVER_MEMBERS or k.startswith("param.") else k] = v
    if len(others) > _RECORDED_OTHERS:
        params["param.more"] = len(others) - _RECORDED_OTHERS
    return {**params, "path": request.url.path, "stores": stores}


class RefusedAfterReading(BadRequest):
    """A request refused for what the records say (a person known in several stores), which
    tells the caller something of them: audited as an attempt, as a refused scope is (a privacy
    audit: the 400 naming the stores that know a person left no trace)."""


def _tried(request: Request, stores: list[int]) -> dict[str, Any]:
    """What a refused analyst request asked, with the people it named."""
    tried = _asked(request, stores)
    named = [p for p in (request.path_params.get("person"), request.query_params.get("person")) if p]
    if named:
        tried["persons"] = named
    return tried


# The OpenAPI path of each endpoint, whose declared query parameters are the ones it takes.
_PATHS = {"transcript": "/v1/transcripts/{person}", "course-status": "/v1/course-status",
          "compliance": "/v1/compliance", "compliance-rollup": "/v1/compliance/rollup",
          "projections": "/v1/projections"}


@functools.cache
def _declared(name: str) -> frozenset[str]:
    """The query parameters the OpenAPI description declares for an endpoint (read once)."""
    return frozenset(p["name"] for p in OPENAPI["paths"][_PATHS[name]]["get"].get("parameters", [])
                     if p["in"] == "query")


def _only_declared(request: Request, name: str) -> None:
    """400 naming query parameters the endpoint does not take, or takes once but got again. Left
    unread, a misspelt filter (persn=, Person=) answered with the whole store's rows."""
    declared = _declared(name)
    unknown = sorted(set(request.query_params) - declared)
    if unknown:
        raise BadRequest(f"unknown parameter(s) for /api{_PATHS[name]}: {', '.join(unknown)} "
                         f"(it takes {', '.join(sorted(declared))})")
    repeated = sorted({k for k in request.query_params if len(request.query_params.getlist(k)) > 1})
    if repeated:
        raise BadRequest(f"parameter(s) given more than once: {', '.join(repeated)}")


def _endpoint(name: str, handler: Handler,
              scopes: tuple[str, ...] = PERSONAL) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        who = await principal(request)
        # an attempt on records the caller may not read is audited like a read, with the people
        # it named (a transcript's person, a person filter)
        async with refusals_recorded(getattr(request.app.state, "audit", None), who, f"analyst.{name}",
                                     lambda: _tried(request, list(who.readable_stores))):
            who.require(*scopes)
        refuse_nul([*request.query_params.multi_items(), *request.path_params.items()])
        _only_declared(request, name)
        # its own store, or every store of its region for a regional credential
        stores = list(who.readable_stores)
        gate: ReadGate | None = getattr(request.app.state, "analyst_reads", None)
        async with gate.held() if gate is not None else contextlib.nullcontext():
            async with translated():  # a database that cannot serve: 503, as for the xAPI
                try:
                    response, records, persons = await handler(request, stores)
                except RefusedAfterReading as exc:
                    await record_refusal(getattr(request.app.state, "audit", None), who, f"analyst.{name}",
                                         _tried(request, stores), exc)
                    raise
            asked = _asked(request, stores)
            if not isinstance(response, ExportPlan):  # its audit record in its turn, too
                if persons:
                    asked["persons"] = persons
                audit = getattr(request.app.state, "audit", None)
                if audit is not None:
                    await audit.record(who, f"analyst.{name}", asked, records)
                log.info("analyst_read", view=name, credential=who.credential_id, stores=stores, records=records)
                return response
        # a whole export: read and recorded under the ExportGate
        if request.method == "HEAD":
            return _export_head(response)
        return await _export(request, who, name, stores, asked, response)

    return endpoint


def _page(request: Request) -> tuple[int | None, int]:
    """limit and offset; no limit for a whole CSV export (``_whole_export``)."""
    if _whole_export(request):
        return None, 0
    return _int(request, "limit", 1000, 1, MAX_LIMIT), _int(request, "offset", 0, 0, 10**9)


async def _transcript(request: Request, stores: list[int]) -> tuple[Response, int, list[str]]:
    limit, offset = _page(request)
    person = request.path_params["person"]
    store = request.query_params.get("store")
    async with scoped(request.app.state.pool, stores) as conn:
        found = await conn.fetch(sql("api_person_stores"), stores, person)
        if store is not None:
            # a regional credential names the store whose person it means
            # by name, else by id; never both (a store named "2" and the store of id 2 each had
            # their own P-1, and store=2 gave the two people as one transcript; an audit)
            stores = ([r["id"] for r in found if r["name"] == store]
                      or [r["id"] for r in found if str(r["id"]) == store])
        elif len(found) > 1:
            # person ids belong to a store (its HR import): the same id in two is two people,
            # whose records must not be shown as one transcript
            raise RefusedAfterReading(f"person {person!r} is known in several stores ("
                                      f"{', '.join(r['name'] for r in found)}); name one with store=")
        rows = await queries.transcript(conn, stores, person, activity=request.query_params.get("activity"),
                                        limit=_one_more(limit), offset=offset,
                                        timezone=_options(request).timezone) if stores else []
    return (_respond(request, f"transcript-{person}", rows, limit, offset, columns("/v1/transcripts/{person}")),
            _count(rows, limit), [person])


def _one_more(limit: int | None) -> int | None:
    """What to fetch for a page: one row more, to know whether a next page exists."""
    return None if limit is None else limit + 1


def _count(rows: list[dict[str, Any]], limit: int | None) -> int:
    return len(rows) if limit is None else min(len(rows), limit)


async def _course_status(request: Request, stores: list[int]) -> tuple[Response, int, list[str]]:
    limit, offset = _page(request)
    async with scoped(request.app.state.pool, stores) as conn:
        rows = await queries.course_status(
            conn, stores, course=request.query_params.get("course"),
            group_by=_choice(request, "group_by", ("unit", "trust")), as_of=_date(request, "as_of"),
            limit=_one_more(limit), offset=offset, options=_options(request))
    return (_respond(request, "course-status", rows, limit, offset, columns("/v1/course-status")),
            _count(rows, limit), [])


def _compliance_cursor(row: dict[str, Any]) -> str:
    """The opaque ``after`` of the page after ``row``."""
    return base64.urlsafe_b64encode(orjson.dumps(queries.row_key(row))).decode().rstrip("=")


def _after(request: Request) -> queries.RowKey | None:
    raw = request.query_params.get("after")
    if raw is None:
        return None
    if "offset" in request.query_params:
        raise BadRequest("after and offset: give one of them")
    try:
        key = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, binascii.Error):
        key = None
    if not (isinstance(key, list) and len(key) == 4 and type(key[0]) is int and -2**63 <= key[0] < 2**63
            and all(isinstance(k, str) and "\x00" not in k for k in key[1:])):
        raise BadRequest("after: not a cursor of this view (use the next link of a page)")
    return key[0], key[1], key[2], key[3]


async def _compliance(request: Request, stores: list[int]) -> tuple[Response | ExportPlan, int, list[str]]:
    limit, offset = _page(request)
    after = _after(request)
    o = _options(request)
    window = _int(request, "window_days", o.expiring_window_days, 0, 3650)
    q = request.query_params
    filters: dict[str, Any] = {
        "as_of": _date(request, "as_of"), "requirement": q.get("requirement"), "unit": q.get("unit"),
        "person": q.get("person"), "status": _choice(request, "status", queries.STATUSES),
        "options": queries.Options(o.suppression_threshold, window, o.timezone)}
    if limit is None:
        return ExportPlan("compliance", columns("/v1/compliance"), lambda conn: queries.compliance_all(
            conn, stores, prefetch=EXPORT_BATCH, **filters), "person_id"), 0, []
    async with scoped(request.app.state.pool, stores) as conn:
        rows = await queries.compliance(conn, stores, limit=limit + 1, offset=offset, after=after, **filters)
    return (_respond(request, "compliance", rows, limit, offset, columns("/v1/compliance"), _compliance_cursor),
            _count(rows, limit), sorted({r["person_id"] for r in rows[:limit]}))


async def _rollup(request: Request, stores: list[int]) -> tuple[Response, int, list[str]]:
    o = _options(request)
    window = _int(request, "window_days", o.expiring_window_days, 0, 3650)
    level = _choice(request, "level", ("unit", "trust", "region"), "unit") or "unit"
    as_of, requirement = _date(request, "as_of"), request.query_params.get("requirement")
    options = queries.Options(o.suppression_threshold, window, o.timezone)
    day, pool = as_of or queries.today(options), request.app.state.pool
    async with scoped(pool, stores) as conn:
        region = sorted(await conn.fetchval(sql("api_region_stores"), stores) or stores)
        alone = region == sorted(stores)  # a regional credential's, or a store in no region
        if alone:
            await _units_are_one_store_s(conn, region, day)
        rows = await queries.compliance_rollup(conn, stores, level=level, as_of=day, requirement=requirement,
                                               options=options, suppress=alone)
    if not alone:
        # some stores of a region: suppression is decided over all of it, as for a regional
        # credential, whose figures these are not shown (only which of these stores' rows it shows)
        async with scoped(pool, region) as conn:
            await _units_are_one_store_s(conn, region, day)
            rows = queries.as_the_region_decides(rows, await queries.compliance_rollup(
                conn, region, level=level, as_of=day, requirement=requirement, options=options))
    return _respond(request, "compliance-rollup", rows, columns=columns("/v1/compliance/rollup")), len(rows), []


async def _units_are_one_store_s(conn: asyncpg.Connection, stores: list[int], day: date) -> None:
    """409 when two of the stores (a region's) use one unit id, other than a region they share,
    in their trees or their employments: a roll-up groups by the id, so it took them as one unit,
    under one of their trusts, and small-group suppression reckoned with sums that were not (a
    privacy audit: a trust's own view then showed a unit of two by subtraction). Unit ids (RESH)
    are unique; regions are shared. ``conn`` is scoped to the stores; one store cannot clash."""
    if len(stores) < 2:
        return
    clashes = await conn.fetch(sql("api_units_in_several_stores"), stores, day)
    if clashes:
        said = "; ".join(f"{r['unit_id']} (stores {', '.join(map(str, r['stores']))})" for r in clashes)
        raise Conflict(f"the organisation trees of stores of this region give one unit id to different units: "
                       f"{said}. A roll-up cannot tell them apart, nor keep small groups hidden; give each "
                       "unit its own id (as RESH ids are) and import the trees again")


# What a caller without a read scope sees of a failed projection's error: the text may quote
# the event it could not apply (a database error's DETAIL names the row's values).
ERROR_REDACTED = "(the error text needs a read scope; spor projections status shows it)"


async def _projections(request: Request, stores: list[int]) -> tuple[Response, int, list[str]]:
    reads_rows = request.state.principal.holds(*PERSONAL)
    async with scoped(request.app.state.pool, stores) as conn:
        rows = [s.as_dict() for s in await runner.status(conn, list(ALL.values())) if s.store_id in stores]
    for r in rows:
        if r["error"] is not None and not reads_rows:
            r["error"] = ERROR_REDACTED
    return _respond(request, "projections", rows, columns=columns("/v1/projections")), len(rows), []


async def openapi(request: Request) -> Response:
    """The OpenAPI 3.1 description of the analyst API."""
    return Response(orjson.dumps(OPENAPI), media_type="application/json")


RouteOrMount = TypeVar("RouteOrMount", Route, Mount)


def _across_line_breaks(route: RouteOrMount) -> RouteOrMount:
    """``route`` with its path parameters matching line breaks too. Starlette's ``path``
    convertor (``.*``) stopped at one, so an identifier holding a line break had no transcript
    (404), and its ``$`` matched before a final one, so ``P-0001%0A`` was read as ``P-0001``."""
    route.path_regex = re.compile(route.path_regex.pattern, re.DOTALL)
    return route


def mount(prefix: str = "/api") -> Mount:
    """The analyst API mounted at ``prefix`` (lrs/app.py)."""
    return _across_line_breaks(Mount(prefix, app=Router(routes(), redirect_slashes=False)))


def routes() -> list[BaseRoute]:
    """The routes to mount at ``/api``."""
    return [
        Route("/openapi.json", openapi, methods=["GET"]),
        _across_line_breaks(Route("/v1/transcripts/{person:path}", _endpoint("transcript", _transcript),
                                  methods=["GET"])),
        Route("/v1/course-status", _endpoint("course-status", _course_status, AGGREGATED), methods=["GET"]),
        Route("/v1/compliance", _endpoint("compliance", _compliance), methods=["GET"]),
        Route("/v1/compliance/rollup", _endpoint("compliance-rollup", _rollup, AGGREGATED), methods=["GET"]),
        Route("/v1/projections", _endpoint("projections", _projections, AGGREGATED), methods=["GET"]),
    ]


def columns(path: str) -> list[str]:
    """A view's columns, as its OpenAPI description lists them (the header of an empty CSV)."""
    ok = OPENAPI["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    return list(ok["properties"]["items"]["items"]["properties"])


def _param(name: str, desc: str, schema: dict[str, Any] | None = None, where: str = "query",
           required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "description": desc,
            "schema": schema or {"type": "string"}}


_PAGING = [_param("limit", "page size (1-10000, default 1000); a CSV export with neither limit nor offset "
                           "is the whole view (compliance rows: streamed)", {"type": "integer"}),
           _param("offset", "rows to skip", {"type": "integer"}),
           _param("format", "json or csv (without it, an Accept naming text/csv asks for CSV)",
                  {"enum": ["json", "csv"]})]
_FORMAT = [_PAGING[2]]


def _get(summary: str, params: list[dict[str, Any]], item: dict[str, Any], *, paged: bool = True) -> dict[str, Any]:
    page: dict[str, Any] = {"items": {"type": "array", "items": item}}
    if paged:
        page |= {"limit": {"type": "integer"}, "offset": {"type": "integer"}, "next": {"type": ["string", "null"]}}
    return {"get": {"summary": summary, "parameters": params, "security": [{"basic": []}], "responses": {
        "200": {"description": ("rows (JSON: items, limit, offset, next), or CSV (UTF-8 with a byte order mark; "
                                "a Link header with rel=next when more rows follow; "
                                "without limit and offset, every row)") if paged else
                "rows (JSON: items), or CSV (UTF-8 with a byte order mark)", "content": {
            "application/json": {"schema": {"type": "object", "properties": page}},
            "text/csv": {"schema": {"type": "string"}}}},
        "400": {"description": "a bad parameter"}, "401": {"description": "no or bad credentials"},
        "403": {"description": "the credential lacks a read scope"}}}}


def _obj(**props: str) -> dict[str, Any]:
    return {"type": "object", "properties": {k: {"type": v} for k, v in props.items()}}


_STATUS_COUNTS = {"valid": "integer", "expiring": "integer", "expired": "integer", "missing": "integer"}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Spor analyst API", "version": "1",
             "description": "Read models built from the learning record log: transcripts, course status and "
                            "mandatory-training compliance. Aggregated views suppress groups smaller than the "
                            "configured threshold (default 5): in the compliance roll-up their counts are null "
                            "and suppressed is true; course status leaves them out, and shows an average only "
                            "over at least that many learners. So that a total minus the groups shown never "
                            "gives a small group, some larger groups are suppressed with them (complementary "
                            "suppression, decided over all levels of a view at once, and for a credential that "
                            "reads some stores of a region, over the whole region)."},
    "servers": [{"url": "/api"}],
    "components": {"securitySchemes": {"basic": {"type": "http", "scheme": "basic"}}},
    "paths": {
        "/v1/transcripts/{person}": _get(
            "Every completion and pass (and cmi5 satisfied or waived) of a person (all linked identifiers), "
            "with validity",
            [_param("person", "person id, or an identifier key for an unlinked identifier", where="path",
                    required=True), _param("activity", "only this activity id"),
             _param("store", "the store (name or id) whose person this is; needed when the id is known in "
                             "several of the stores the credential reads (400 otherwise)"), *_PAGING],
            _obj(store_id="integer", store="string", statement_id="string", activity_id="string", verb="string",
                 success="boolean", score="number", duration_s="number", completed_at="string",
                 expires_on="string")),
        "/v1/course-status": _get(
            "Per course: learners registered, started, completed, passed, failed; averages; where they stop",
            [_param("course", "only this course activity id"),
             _param("group_by", "also per unit or trust", {"enum": ["unit", "trust"]}),
             _param("as_of", "date for employments and the org tree (default today in Europe/Oslo)",
                    {"format": "date"}),
             *_PAGING],
            _obj(store_id="integer", course_id="string", group_id="string", learners="integer",
                 registered="integer", started="integer", completed="integer", passed="integer", failed="integer",
                 avg_score="number", avg_duration_s="number", stopped_at="object", suppressed="boolean")),
        "/v1/compliance": _get(
            "Per person, unit and requirement: valid, expiring, expired or missing as of a date",
            [_param("as_of", "the date (default today in Europe/Oslo)", {"format": "date"}),
             _param("window_days", "expiring within this many days (default from settings, 30)",
                    {"type": "integer"}),
             _param("requirement", "only this requirement id"), _param("unit", "this unit and the units below"),
             _param("person", "only this person"),
             _param("status", "only this status", {"enum": list(queries.STATUSES)}),
             _param("after", "the rows after this cursor (from a page's next link; rows that change before "
                             "it do not shift the pages after it, as with offset)"), *_PAGING],
            _obj(store_id="integer", person_id="string", unit_id="string", requirement_id="string",
                 last_completed="string", expires_on="string", status="string")),
        "/v1/compliance/rollup": _get(
            "Compliance counts and percentage per requirement and unit, trust or region",
            [_param("level", "unit (default), trust or region", {"enum": ["unit", "trust", "region"]}),
             _param("as_of", "the date (default today in Europe/Oslo)", {"format": "date"}),
             _param("window_days", "expiring window in days", {"type": "integer"}),
             _param("requirement", "only this requirement id"), *_FORMAT],
            _obj(group_id="string", requirement_id="string", total="integer", **_STATUS_COUNTS,
                 percent_compliant="number", suppressed="boolean"), paged=False),
        "/v1/projections": _get(
            "Each projection's position, lag in events and seconds, and state, per store", _FORMAT,
            _obj(projection="string", store_id="integer", store="string", position="integer", head="integer",
                 lag_events="integer", lag_seconds="number", state="string", failed_position="integer",
                 error="string", lease_owner="string"), paged=False),
    },
}

# The query parameters the views read, as the description lists them.
VIEW_PARAMS = frozenset(p["name"] for path in OPENAPI["paths"].values() for p in path["get"]["parameters"]
                        if p["in"] == "query")
