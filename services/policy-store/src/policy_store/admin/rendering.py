"""HTML answers of the review page: Jinja2 templates (autoescaped) and the headers every such answer carries."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, StrictUndefined

_TEMPLATES = Environment(loader=PackageLoader("policy_store.admin", "templates"), autoescape=True,
                         undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _when(moment: datetime | str | None) -> str:
    if moment is None:
        return "—"
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


_TEMPLATES.filters.update(when=_when, rate=_rate, segment=lambda text: quote(str(text), safe=""))


def page_headers(nonce: str | None = None) -> dict[str, str]:
    """No script at all, styles only from the page's own nonced block, forms only to this origin, never framed."""
    style = f"'nonce-{nonce}'" if nonce else "'none'"
    return {
        "Content-Security-Policy": (f"default-src 'none'; style-src {style}; form-action 'self'; "
                                    "frame-ancestors 'none'; base-uri 'none'"),
        "X-Frame-Options": "DENY",
        # Pages show feedback and who reviewed what: never kept by a browser or a proxy.
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
    }


def page(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """``template`` rendered with ``context`` and a fresh style nonce."""
    nonce = secrets.token_urlsafe(16)
    html = _TEMPLATES.get_template(template).render(nonce=nonce, **context)
    return HTMLResponse(html, status_code=status_code, headers=page_headers(nonce))


def redirect(url: str) -> RedirectResponse:
    """303 See Other: after a form, the browser loads ``url`` with GET (Post/Redirect/Get)."""
    return RedirectResponse(url, status_code=303, headers=page_headers())
