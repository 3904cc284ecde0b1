"""Entity tags for lists and prompt blocks: a client that has the current answer gets 304 instead of it again."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse


def json_with_etag(request: Request, content: Any) -> Response:
    """The JSON answer with a strong ETag, or 304 when If-None-Match already names it."""
    body = json.dumps(content, ensure_ascii=False, separators=(",", ":"), default=str).encode()
    tag = _entity_tag(body)
    if _matches(request, tag):
        return Response(status_code=304, headers={"ETag": tag})
    return JSONResponse(content=content, headers={"ETag": tag, "Cache-Control": "private, no-cache"})


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
