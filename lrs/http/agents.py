"""The Agents Resource over HTTP (xAPI Communication 2.4): GET /agents?agent= (Person object)."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from lrs.http.common import only_params, principal, xapi_version
from lrs.ops import agents as ops
from lrs.ops.documents import etag_of
from lrs.store.activities import agent_names

PATH = "/xapi/agents"


async def get_person(request: Request) -> Response:
    """GET/HEAD: the Person object for the agent parameter (200)."""
    version = xapi_version(request)
    who = await principal(request)
    only_params(request, {"agent"}, "GET agents")
    pool = request.app.state.pool

    async def names(store_id: int, key: str) -> list[str]:
        return await agent_names(pool, store_id, key)

    person = await ops.get_person(names, who, version, request.query_params.get("agent"),
                                  audit=request.app.state.audit)
    body = orjson.dumps(person)
    return Response(body, media_type="application/json", headers={"ETag": f'"{etag_of(body)}"'})
