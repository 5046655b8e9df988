"""The About Resource (xAPI Communication 2.8): public, no version header needed."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from lrs.http.common import only_params
from lrs.http.versions import SUPPORTED

PATH = "/xapi/about"

_BODY = orjson.dumps({"version": list(SUPPORTED), "extensions": {}})


async def get_about(request: Request) -> Response:
    """GET/HEAD /about: the supported versions (Communication 2.8.s2; no auth, Versioning 3.3).
    It takes no parameters, so any is refused (Communication 3.2)."""
    only_params(request, (), "GET about")
    return Response(_BODY, media_type="application/json")
