"""Fields of the review page's HTML forms (``application/x-www-form-urlencoded``) and where they may lead."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from fastapi import Request

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
# The page's forms have at most four fields; more is not one of them.
MAX_FIELDS = 10


async def form_fields(request: Request) -> dict[str, str]:
    """The posted fields, first value of each; empty for a body that is not one of our forms.

    Parsed here rather than through a multipart library: the forms are small URL-encoded ones, and the body size
    is already capped by the service's body limit.
    """
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type != FORM_CONTENT_TYPE:
        return {}
    body = await request.body()
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        return {}
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields


def local_admin_path(candidate: str | None, default: str) -> str:
    """``candidate`` if it is a path of the review page on this host, else ``default``: no open redirect."""
    if not candidate or not candidate.isprintable() or "\\" in candidate:
        return default
    parts = urlsplit(candidate)
    if parts.scheme or parts.netloc or not parts.path.startswith("/admin/") or candidate.startswith("//"):
        return default
    return candidate
