"""The three Document Resources over HTTP (xAPI Communication 2.2, 2.3, 2.6, 2.7, 3.1).

One :class:`DocumentResource` per resource describes its key parameters; the handlers parse
the request into ``lrs.ops.documents`` values and shape responses (ETag, Last-Modified,
Content-Type as stored).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from lrs.errors import BadRequest, PreconditionFailed
from lrs.http.common import list_header, only_params, principal, read_body, single_header, xapi_version
from lrs.ops import documents as ops
from lrs.ops.documents import DocKey, Preconditions, Resource, Scope
from lrs.ops.timestamps import http_date, last_modified, parse_bound, parse_http_date

STATE_PATH = "/xapi/activities/state"
ACTIVITY_PROFILE_PATH = "/xapi/activities/profile"
AGENT_PROFILE_PATH = "/xapi/agents/profile"


@dataclass(frozen=True)
class DocumentResource:
    """The parameters of one Document Resource."""

    resource: Resource
    id_param: str  # stateId | profileId
    activity: bool  # keyed by activityId
    agent: bool  # keyed by agent
    registration: bool  # accepts registration

    def key_params(self) -> set[str]:
        """Parameters that select the context (not the document id)."""
        out = set()
        if self.activity:
            out.add("activityId")
        if self.agent:
            out.add("agent")
        if self.registration:
            out.add("registration")
        return out


STATE = DocumentResource("state", "stateId", activity=True, agent=True, registration=True)
ACTIVITY_PROFILE = DocumentResource("activity_profile", "profileId", activity=True, agent=False, registration=False)
AGENT_PROFILE = DocumentResource("agent_profile", "profileId", activity=False, agent=True, registration=False)


def _check_params(request: Request, allowed: set[str]) -> None:
    # xAPI Communication 3.2 (XAPI-00324/00325): unknown parameters, and known ones with the
    # wrong case, are refused with 400.
    only_params(request, allowed)


def _context(res: DocumentResource, request: Request,
             version: str) -> tuple[str, str, dict[str, Any] | None, str | None]:
    """(activity_id, agent_key, agent object, registration or None) from the query."""
    params = request.query_params
    activity = ops.activity_id(params.get("activityId")) if res.activity else ""
    agent_key, agent = ops.agent_param(params.get("agent"), version) if res.agent else ("", None)
    registration = ops.registration_param(params["registration"]) if "registration" in params else None
    return activity, agent_key, agent, registration


def _key(res: DocumentResource, request: Request, version: str) -> tuple[DocKey, dict[str, Any] | None]:
    activity, agent_key, agent, registration = _context(res, request, version)
    doc_id = ops.doc_id_param(request.query_params.get(res.id_param), res.id_param)
    return DocKey(res.resource, activity, agent_key, registration or "", doc_id), agent


def _preconditions(request: Request) -> Preconditions:
    return Preconditions(ops.parse_etags(list_header(request, "if-match"), weak_matches=False),
                         ops.parse_etags(list_header(request, "if-none-match"), weak_matches=True),
                         parse_http_date(request.headers.get("if-unmodified-since")))


async def _body(request: Request) -> tuple[bytes, str]:
    settings = request.app.state.settings
    # The document size limit (settings.max_document_bytes) answers 413 (Communication 3.2).
    content = await read_body(request, settings.max_document_bytes)
    content_type = single_header(request, "Content-Type") or ""
    # stored and sent back as a header: without the whitespace around it (RFC 9110 5.5)
    return content, content_type.strip(" \t")


def _not_modified(request: Request, doc: ops.Document) -> bool:
    """A conditional GET of a document (RFC 9110 13.2.2): 412 when If-Match names another ETag;
    True (answer 304) when If-None-Match names its ETag or ``*``, or, without If-None-Match, when
    it has not changed since If-Modified-Since (its Last-Modified is in whole seconds)."""
    try:
        pre = _preconditions(request)
    except BadRequest:
        return False  # (a GET never read them: one it cannot read is as good as none)
    if pre.if_match is not None and "*" not in pre.if_match and doc.etag not in pre.if_match:
        raise PreconditionFailed(f'If-Match: the current ETag of the document is "{doc.etag}"')
    if pre.if_none_match is not None:
        return "*" in pre.if_none_match or doc.etag in pre.if_none_match
    since = parse_http_date(request.headers.get("if-modified-since"))
    return since is not None and last_modified(doc.updated) <= since


def _since(request: Request, version: str) -> datetime | None:
    raw = request.query_params.get("since")
    return parse_bound(raw, "since", version) if raw is not None else None


def handlers(res: DocumentResource) -> dict[str, Any]:
    """The Starlette endpoints of one resource: {'get', 'put', 'post', 'delete'}."""
    all_single = res.key_params() | {res.id_param}

    async def get(request: Request) -> Response:
        """GET/HEAD: one document (with id) or the id list (without, optional ``since``)."""
        version = xapi_version(request)
        who = await principal(request)
        repo = request.app.state.documents
        if res.id_param in request.query_params:
            _check_params(request, all_single)
            key, _ = _key(res, request, version)
            doc = await ops.get_document(repo, who, key, audit=request.app.state.audit)
            if _not_modified(request, doc):
                return Response(status_code=304, headers={"ETag": f'"{doc.etag}"',
                                                          "Last-Modified": http_date(doc.updated)})
            content = doc.content or b""
            return Response(content, media_type=None, headers={
                "Content-Type": doc.content_type,
                # Communication 3.1.s4.b1/b4: an ETag on every GET, enclosed in quotes.
                "ETag": f'"{doc.etag}"',
                # Communication 2.2.s6.b1: when the document was last modified.
                "Last-Modified": http_date(doc.updated),
                # a document is whatever a client stored (text/html with a script, say): a browser
                # opening it must neither guess another type nor run it as the LRS's own page
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "sandbox",
            })
        _check_params(request, res.key_params() | {"since"})
        activity, agent_key, _, registration = _context(res, request, version)
        ids, newest = await ops.list_ids(repo, who, Scope(res.resource, activity, agent_key, registration),
                                         _since(request, version), audit=request.app.state.audit)
        body, etag = ops.id_list(ids)
        headers = {"ETag": f'"{etag}"'}
        if newest is not None:
            # Communication 2.2.s6.b2: the most recently modified document of the list.
            headers["Last-Modified"] = http_date(newest)
        return Response(body, media_type="application/json", headers=headers)

    async def put(request: Request) -> Response:
        """PUT: store the document, replacing any existing one (204)."""
        version = xapi_version(request)
        who = await principal(request)
        _check_params(request, all_single)
        key, agent = _key(res, request, version)
        content, content_type = await _body(request)
        async with request.app.state.write_budget.hold(len(content)):
            await ops.put_document(request.app.state.documents, who, version, key, agent, content, content_type,
                                   _preconditions(request))
        return Response(status_code=204)

    async def post(request: Request) -> Response:
        """POST: create the document or merge JSON objects one level deep (204)."""
        version = xapi_version(request)
        who = await principal(request)
        _check_params(request, all_single)
        key, agent = _key(res, request, version)
        content, content_type = await _body(request)
        # a JSON merge holds the documents split into members, many times their size (15 MB of
        # small members: +266 MB, four at once +560 MB: a memory audit): writes of documents
        # share the process's write buffer with statements (lrs/http/admission.py), a merge for
        # the posted and the stored document together
        await ops.post_document(request.app.state.documents, who, key, agent, content, content_type,
                                _preconditions(request), request.app.state.settings.max_document_bytes,
                                hold=request.app.state.write_budget.hold)
        return Response(status_code=204)

    async def delete(request: Request) -> Response:
        """DELETE one document; for State without stateId, every State of the context (204)."""
        version = xapi_version(request)
        who = await principal(request)
        repo = request.app.state.documents
        if res.resource == "state" and res.id_param not in request.query_params:
            # Communication 2.3.s5: multiple-document DELETE.
            _check_params(request, res.key_params())
            activity, agent_key, _, registration = _context(res, request, version)
            await ops.delete_documents(repo, who, Scope(res.resource, activity, agent_key, registration),
                                       _preconditions(request))
            return Response(status_code=204)
        _check_params(request, all_single)
        key, _ = _key(res, request, version)
        await ops.delete_document(repo, who, key, _preconditions(request))
        return Response(status_code=204)

    return {"get": get, "put": put, "post": post, "delete": delete}
