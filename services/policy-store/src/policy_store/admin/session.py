"""Who is signed in to the review page, and the CSRF tokens bound to that session.

The session cookie holds the admin's bearer token itself rather than a session of our own. The token is verified
again on every request with the same TokenVerifier as the API, so its expiry, a key rotation or a revoked signing
key end the session at once, and there is no server-side session store to keep, replicate or expire. The cookie
is HttpOnly (page scripts cannot read the token), SameSite=Strict (other sites cannot make the browser send it),
scoped to /admin, and Secure when ADMIN_COOKIE_SECURE is set.

CSRF: every form of a signed-in page carries HMAC(server key, session token). A forged form cannot know it (the
token is in an HttpOnly cookie), and it changes with the session. The login form, before any session exists, is
bound the same way to a random nonce in a short-lived cookie of its own.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

from fastapi import FastAPI, Request
from fastapi.responses import Response

from policy_store.admin.signing import sign, signature_matches, signing_key
from policyloop_common.auth import Principal, TokenVerifier
from policyloop_common.errors import ApiError

SESSION_COOKIE = "policyloop_admin_session"
LOGIN_COOKIE = "policyloop_admin_login"
COOKIE_PATH = "/admin"
# Browsers keep about 4 KB per cookie; a larger token could not be stored, so it is refused at the form.
MAX_TOKEN_LENGTH = 3800
LOGIN_NONCE_SECONDS = 3600
_NONCE = re.compile(r"[A-Za-z0-9_-]{32,64}")
_CSRF_PURPOSE = "admin-csrf"
_LOGIN_PURPOSE = "admin-login"


class SessionProblem(StrEnum):
    """Why a request has no usable admin session."""

    MISSING = "missing"
    INVALID = "invalid"
    NOT_ADMIN = "not_admin"


@dataclass(frozen=True)
class AdminSession:
    """A verified admin: the principal and the token its session cookie holds."""

    principal: Principal
    token: str


@dataclass(frozen=True)
class NoSession:
    """A request without a usable admin session, and why; ``principal`` is set for a valid non-admin token."""

    problem: SessionProblem
    message: str = ""
    principal: Principal | None = None
    token: str | None = None


def read_session(request: Request) -> AdminSession | NoSession:
    """The admin session of the request's cookie, verified now."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return NoSession(SessionProblem.MISSING)
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        principal = verifier.verify(token)
    except ApiError as error:
        return NoSession(SessionProblem.INVALID, error.message)
    if not principal.is_admin:
        return NoSession(SessionProblem.NOT_ADMIN, principal=principal, token=token)
    return AdminSession(principal=principal, token=token)


def pasted_token(text: str) -> str:
    """The token of what was pasted, with surrounding space and an optional ``Bearer`` prefix removed."""
    token = text.strip()
    scheme, _, rest = token.partition(" ")
    return rest.strip() if scheme.lower() == "bearer" and rest.strip() else token


def csrf_token(app: FastAPI, session_token: str) -> str:
    """The CSRF token of every form posted within the session of ``session_token``."""
    return sign(signing_key(app), _CSRF_PURPOSE, session_token)


def csrf_valid(app: FastAPI, session_token: str, submitted: str | None) -> bool:
    """True when a posted form carries the CSRF token of this session."""
    return signature_matches(signing_key(app), _CSRF_PURPOSE, session_token, submitted)


def login_nonce(request: Request) -> str:
    """The login form's nonce: the one of the request's cookie if well-formed, else a new one."""
    current = request.cookies.get(LOGIN_COOKIE, "")
    return current if _NONCE.fullmatch(current) else secrets.token_urlsafe(32)


def login_csrf_token(app: FastAPI, nonce: str) -> str:
    """The CSRF token of the login form, bound to its nonce cookie."""
    return sign(signing_key(app), _LOGIN_PURPOSE, nonce)


def login_csrf_valid(request: Request, submitted: str | None) -> bool:
    """True when the posted login form carries the token of the nonce in the request's cookie."""
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    return bool(_NONCE.fullmatch(nonce)) and signature_matches(signing_key(request.app), _LOGIN_PURPOSE, nonce,
                                                                 submitted)


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    """Start the session: a browser-session cookie; the token's own expiry ends it earlier."""
    response.set_cookie(SESSION_COOKIE, token, path=COOKIE_PATH, httponly=True, samesite="strict",
                        secure=_secure(request))


def clear_session_cookie(response: Response, request: Request) -> None:
    """End the session."""
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict",
                           secure=_secure(request))


def set_login_cookie(response: Response, request: Request, nonce: str) -> None:
    """Keep the login form's nonce for as long as the form may reasonably stay open."""
    response.set_cookie(LOGIN_COOKIE, nonce, max_age=LOGIN_NONCE_SECONDS, path=COOKIE_PATH, httponly=True,
                        samesite="strict", secure=_secure(request))


def clear_login_cookie(response: Response, request: Request) -> None:
    """Forget the login nonce once it has served."""
    response.delete_cookie(LOGIN_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict",
                           secure=_secure(request))


def _secure(request: Request) -> bool:
    return request.app.state.settings.admin_cookie_secure
