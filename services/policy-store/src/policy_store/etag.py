"""Entity tags for list answers: a client that has the current list gets 304 instead of the list again."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse


def json_with_etag(request: Request, content: Any) -> Response:
    """The JSON answer with a strong ETag, or 304 when If-None-Match already names it."""
    body = json.dumps(content, ensure_ascii=False, separators=(",", ":"), default=str).encode()
    tag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    candidates = {value.strip() for value in request.headers.get("if-none-match", "").split(",")}
    if tag in candidates or "*" in candidates:
        return Response(status_code=304, headers={"ETag": tag})
    return JSONResponse(content=content, headers={"ETag": tag, "Cache-Control": "private, no-cache"})
