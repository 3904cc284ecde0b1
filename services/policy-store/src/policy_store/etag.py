"""Entity tags for lists and prompt blocks: a client that has the current answer gets 304 instead of it again."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi import Request, Response
from fastapi.responses import PlainTextResponse


def json_with_etag(request: Request, content: Any) -> Response:
    """The JSON answer with a strong ETag, or 304 when If-None-Match already names it."""
    # What a JSONResponse would send, byte for byte (a NaN or an object JSON cannot hold is still an error).
    body = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    tag = _entity_tag(body)
    if _matches(request, tag):
        return Response(status_code=304, headers={"ETag": tag})
    # The body the tag was taken from is the one sent: encoded once, not a second time by a JSONResponse.
    return Response(content=body, media_type="application/json",
                    headers={"ETag": tag, "Cache-Control": "private, no-cache"})


def text_with_etag(request: Request, text: str) -> Response:
    """A ``text/plain; charset=utf-8`` answer with a strong ETag, or 304 when If-None-Match already names it."""
    body = text.encode()
    tag = _entity_tag(body)
    if _matches(request, tag):
        return Response(status_code=304, headers={"ETag": tag})
    return PlainTextResponse(content=body, headers={"ETag": tag, "Cache-Control": "private, no-cache"})


def _entity_tag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _matches(request: Request, tag: str) -> bool:
    candidates = {value.strip() for value in request.headers.get("if-none-match", "").split(",")}
    return tag in candidates or "*" in candidates
