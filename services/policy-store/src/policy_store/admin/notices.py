"""One-shot notices shown after a redirect (Post/Redirect/Get): "approved", "Kafka is unavailable", ...

A notice travels in a short-lived cookie signed with the server key, so nothing but this service can put text on
the page, unlike a message in the URL that any link could carry.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Literal

from fastapi import Request
from fastapi.responses import Response

from policy_store.admin.session import COOKIE_PATH
from policy_store.admin.signing import sign, signature_matches, signing_key

NOTICE_COOKIE = "policyloop_admin_notice"
NOTICE_SECONDS = 120
MAX_NOTICE_LENGTH = 1000
_PURPOSE = "admin-notice"


@dataclass(frozen=True)
class Notice:
    """A message for the next page: ``ok`` for a done action, ``error`` for one that was refused or failed."""

    level: Literal["ok", "error"]
    text: str


def set_notice(response: Response, request: Request, notice: Notice) -> None:
    """Show ``notice`` on the next page this browser loads."""
    # Without padding: "=" would make the cookie value a quoted string.
    raw = json.dumps([notice.level, notice.text[:MAX_NOTICE_LENGTH]]).encode()
    payload = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    value = f"{payload}.{sign(signing_key(request.app), _PURPOSE, payload)}"
    response.set_cookie(NOTICE_COOKIE, value, max_age=NOTICE_SECONDS, path=COOKIE_PATH, httponly=True,
                        samesite="strict", secure=request.app.state.settings.admin_cookie_secure)


def pending_notice(request: Request) -> Notice | None:
    """The notice waiting for this page, if its cookie is present and signed by us."""
    payload, _, signature = request.cookies.get(NOTICE_COOKIE, "").partition(".")
    if not payload or not signature_matches(signing_key(request.app), _PURPOSE, payload, signature):
        return None
    try:
        level, text = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError, TypeError):
        return None
    return Notice(level="error" if level == "error" else "ok", text=str(text))


def clear_notice(response: Response, request: Request) -> None:
    """The notice has been shown: a reload must not show it again."""
    response.delete_cookie(NOTICE_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict",
                           secure=request.app.state.settings.admin_cookie_secure)
