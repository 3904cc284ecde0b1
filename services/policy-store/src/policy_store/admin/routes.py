"""Routes of the review page: sign in and out, the review queue, one policy, and the review actions."""

from __future__ import annotations

import logging
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool

from policy_store.admin.forms import form_fields, local_admin_path
from policy_store.admin.notices import Notice, clear_notice, pending_notice, set_notice
from policy_store.admin.queries import for_review, policies_page, policy_history, status_counts
from policy_store.admin.rendering import page, redirect
from policy_store.admin.session import (
    MAX_TOKEN_LENGTH,
    SESSION_COOKIE,
    AdminSession,
    NoSession,
    SessionProblem,
    clear_login_cookie,
    clear_session_cookie,
    csrf_token,
    csrf_valid,
    login_csrf_token,
    login_csrf_valid,
    login_nonce,
    pasted_token,
    read_session,
    set_login_cookie,
    set_session_cookie,
)
from policy_store.effectiveness import policy_effectiveness
from policy_store.reviews import policy_or_404, review_policy
from policyloop_common.errors import ApiError
from policyloop_common.events import ReviewAction
from policyloop_common.policy import PolicyStatus

log = logging.getLogger(__name__)

# Server-rendered pages, not part of the JSON API's OpenAPI document.
router = APIRouter(prefix="/admin", include_in_schema=False)

HOME = "/admin/"
LOGIN = "/admin/login"
STATUSES = [status.value for status in PolicyStatus]
# As much as the API's ReviewRequest and the PolicyReviewed event take.
MAX_REASON_LENGTH = 2000
_DONE = {ReviewAction.APPROVE: "approved", ReviewAction.REJECT: "rejected", ReviewAction.RETIRE: "retired"}


@router.get("")
def admin_root() -> Response:
    """``/admin`` is ``/admin/``."""
    return redirect(HOME)


@router.get("/login")
def login_form(request: Request) -> Response:
    """The form to paste an admin token into; a signed-in admin goes straight to the queue."""
    if isinstance(read_session(request), AdminSession):
        return redirect(HOME)
    return _login_page(request)


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the pasted token (valid, admin role) and start the session with it."""
    fields = await form_fields(request)
    if not login_csrf_valid(request, fields.get("csrf")):
        return _login_page(request, 403, "This form expired or did not come from this page; paste the token again.")
    token = pasted_token(fields.get("token", ""))
    if not token:
        return _login_page(request, 400, "Paste a bearer token.")
    if len(token) > MAX_TOKEN_LENGTH:
        return _login_page(request, 400, f"This token is longer than {MAX_TOKEN_LENGTH} characters.")
    try:
        principal = await run_in_threadpool(request.app.state.token_verifier.verify, token)
    except ApiError as error:
        return _login_page(request, 401, f"This token was not accepted: {error.message}.")
    if not principal.is_admin:
        return _login_page(request, 403, f"The token of {principal.user_id} does not carry the admin role; "
                                         "the review page is for admins only.")
    response = redirect(HOME)
    set_session_cookie(response, request, token)
    clear_login_cookie(response, request)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session; the form must carry the session's CSRF token, so no other site can sign anyone out."""
    fields = await form_fields(request)
    token = request.cookies.get(SESSION_COOKIE)
    if token and not csrf_valid(request.app, token, fields.get("csrf")):
        return _refused_form()
    response = redirect(LOGIN)
    clear_session_cookie(response, request)
    set_notice(response, request, Notice("ok", "You are signed out."))
    return response


@router.get("/")
def review_queue(request: Request, status: str = PolicyStatus.PENDING_REVIEW.value,
                 cursor: str | None = None) -> Response:
    """Counts per status and the policies of one status (pending review by default), newest first, paginated."""
    # Parameters are checked here rather than by FastAPI, whose refusals are JSON, not a page.
    signed_in = _signed_in(request)
    if not isinstance(signed_in, AdminSession):
        return signed_in
    if status not in STATUSES:
        return _error_page(400, "No such status", f"Choose one of: {', '.join(STATUSES)}.")
    settings = request.app.state.settings
    try:
        with request.app.state.session_factory() as session:
            counts = status_counts(session)
            records, next_cursor = policies_page(session, status, cursor, settings.admin_page_size)
            policies = for_review(session, records)
    except ApiError:
        return _error_page(400, "Not a page of this list", "That page link is not valid; start from the first page.")
    except OperationalError as error:
        return _database_unavailable(request, error)
    # After an action the reviewer comes back to this very page of the list.
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return _signed_in_page(request, signed_in, "queue.html", counts=counts, status=status, policies=policies,
                           next_cursor=next_cursor, first_page=cursor is None, return_to=here)


@router.get("/policies/{policy_id}")
def policy_detail(request: Request, policy_id: str) -> Response:
    """One policy: its content, source feedback, history and effectiveness, and the review actions it accepts."""
    signed_in = _signed_in(request)
    if not isinstance(signed_in, AdminSession):
        return signed_in
    try:
        with request.app.state.session_factory() as session:
            record = policy_or_404(session, policy_id)
            [policy] = for_review(session, [record])
            history = policy_history(session, policy_id)
            effectiveness = policy_effectiveness(session, record, request.app.state.settings)
    except ApiError:
        return _error_page(404, "No such policy", f"There is no policy {policy_id}.")
    except OperationalError as error:
        return _database_unavailable(request, error)
    return _signed_in_page(request, signed_in, "policy.html", policy=policy, history=history,
                           effectiveness=effectiveness, return_to=f"{HOME}policies/{quote(policy_id, safe='')}")


@router.post("/policies/{policy_id}/review")
async def review(request: Request, policy_id: str) -> Response:
    """Approve, reject or retire through the same path as the API, then back to the page with the outcome."""
    fields = await form_fields(request)
    signed_in = await run_in_threadpool(_signed_in, request)
    if not isinstance(signed_in, AdminSession):
        return signed_in
    if not csrf_valid(request.app, signed_in.token, fields.get("csrf")):
        return _refused_form()
    back = local_admin_path(fields.get("return_to"), f"{HOME}policies/{quote(policy_id, safe='')}")
    try:
        action = ReviewAction(fields.get("action", ""))
    except ValueError:
        action = None
    if action not in _DONE:
        # Superseding names a successor: the API (POST /v1/policies/{id}/supersede) or the CLI does it.
        return _error_page(400, "No such action", "Use the approve, reject or retire button of the page.")
    reason = fields.get("reason", "").strip() or None
    if reason is not None and len(reason) > MAX_REASON_LENGTH:
        notice = Notice("error", f"The reason is longer than {MAX_REASON_LENGTH} characters; nothing was changed.")
    else:
        notice = await _apply(request, action, policy_id, signed_in, reason)
    response = redirect(back)
    set_notice(response, request, notice)
    return response


async def _apply(request: Request, action: ReviewAction, policy_id: str, signed_in: AdminSession,
                 reason: str | None) -> Notice:
    try:
        document = await review_policy(request.app, action, policy_id, signed_in.principal.user_id, reason)
    except ApiError as error:
        # 409 (not a transition this status allows), 404, 503 (Kafka did not take the event): nothing changed.
        return Notice("error", f"Policy {policy_id} was not {_DONE[action]}: {error.message}.")
    except OperationalError as error:
        log.warning("database unavailable", extra={"path": request.url.path, "error": str(error.orig)[:300]})
        return Notice("error", f"Policy {policy_id} was not {_DONE[action]}: the database is unavailable; "
                               "retry later.")
    return Notice("ok", f"Policy {policy_id} {_DONE[action]}: it is now {document['status']}.")


def _signed_in(request: Request) -> AdminSession | Response:
    """The admin session, or the answer for a request without one: the login page, or 403 for a non-admin."""
    state = read_session(request)
    if isinstance(state, AdminSession):
        return state
    if state.problem is SessionProblem.NOT_ADMIN:
        return _not_admin_page(request, state)
    response = redirect(LOGIN)
    if state.problem is SessionProblem.INVALID:
        clear_session_cookie(response, request)
        set_notice(response, request, Notice("error", f"Your session ended ({state.message}); paste a new token."))
    return response


def _signed_in_page(request: Request, signed_in: AdminSession, template: str, **context) -> Response:
    notice = pending_notice(request)
    response = page(template, user_id=signed_in.principal.user_id, csrf=csrf_token(request.app, signed_in.token),
                    notice=notice, statuses=STATUSES, max_reason=MAX_REASON_LENGTH, **context)
    if notice is not None:
        clear_notice(response, request)
    return response


def _login_page(request: Request, status_code: int = 200, error: str | None = None) -> Response:
    nonce = login_nonce(request)
    notice = pending_notice(request)
    response = page("login.html", status_code, csrf=login_csrf_token(request.app, nonce), error=error, notice=notice)
    set_login_cookie(response, request, nonce)
    if notice is not None:
        clear_notice(response, request)
    return response


def _not_admin_page(request: Request, state: NoSession) -> Response:
    user = state.principal.user_id if state.principal else "this token"
    return page("error.html", 403, title="Admins only",
                message=f"You are signed in as {user}, whose token does not carry the admin role.",
                csrf=csrf_token(request.app, state.token) if state.token else None)


def _error_page(status_code: int, title: str, message: str) -> Response:
    return page("error.html", status_code, title=title, message=message, csrf=None)


def _refused_form() -> Response:
    return _error_page(403, "Form refused", "The form did not carry this session's CSRF token, so nothing was "
                                            "changed. Reload the page and try again.")


def _database_unavailable(request: Request, error: OperationalError) -> Response:
    log.warning("database unavailable", extra={"path": request.url.path, "error": str(error.orig)[:300]})
    response = _error_page(503, "Database unavailable", "The policy store's database is unavailable; retry later.")
    response.headers["Retry-After"] = str(request.app.state.settings.retry_after_seconds)
    return response
