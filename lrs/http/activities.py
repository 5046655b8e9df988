"""The Activities Resource over HTTP (xAPI Communication 2.5): GET /activities?activityId=."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from lrs.http.common import only_params, principal, xapi_version
from lrs.ops import activities as ops
from lrs.ops.documents import etag_of
from lrs.store.activities import canonical_definitions

PATH = "/xapi/activities"


async def get_activity(request: Request) -> Response:
    """GET/HEAD: the canonical Activity object (200), with an ETag of its JSON."""
    xapi_version(request)
    who = await principal(request)
    only_params(request, {"activityId"}, "GET activities")
    pool = request.app.state.pool

    async def definitions(store_id: int, ids: list[str]) -> dict[str, dict[str, Any]]:
        return await canonical_definitions(pool, store_id, ids)

    activity = await ops.get_activity(definitions, who, request.query_params.get("activityId"))
    body = orjson.dumps(activity)
    return Response(body, media_type="application/json", headers={"ETag": f'"{etag_of(body)}"'})
