"""Re-analysis runs, for admins: request one page of a selection (``POST``), follow a run (``GET``)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from policy_store.core.db import SessionDep
from policy_store.models import FeedbackRecord, PolicyHistory, ReanalysisRequest
from policy_store.reanalysis import (
    RUN_ID,
    Selection,
    count_selected,
    decode_cursor,
    encode_cursor,
    new_run_id,
    not_reanalysable,
    request_reanalysis,
    selected_page,
)
from policy_store.schemas import ERROR_RESPONSES, ReanalysisAccepted, ReanalysisRunRequest, ReanalysisRunStatus
from policyloop_common.auth import Principal, Role, require_roles
from policyloop_common.errors import ApiError

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/reanalysis", tags=["reanalysis"])
AdminDep = Annotated[Principal, Depends(require_roles(Role.ADMIN))]
MAX_POLICIES_LISTED = 1000


@router.post("", status_code=202, response_model=ReanalysisAccepted, responses=ERROR_RESPONSES)
async def request_page(body: ReanalysisRunRequest, request: Request, principal: AdminDep) -> dict:
    """Request re-analysis of one page of the selection; call again with ``next_cursor`` (and the same run id and
    filters) until it is null. Asking again within a run changes nothing: the requests keep their event ids."""
    app = request.app
    run_id = body.run_id or new_run_id()
    selection = Selection(feedback_ids=tuple(body.feedback_ids or ()), statuses=tuple(body.statuses or ()),
                          reasons=tuple(body.reasons or ()), submitted_after=body.submitted_after,
                          submitted_before=body.submitted_before)
    after = decode_cursor(body.cursor) if body.cursor else None
    rows, selected, skipped = await run_in_threadpool(_read_page, app.state.session_factory, selection, after,
                                                      body.limit, first_page=after is None)
    page = rows[:body.limit]
    try:
        requested = await request_reanalysis(app, page, run_id=run_id, requested_by=principal.user_id,
                                             reason=body.reason)
    except ApiError as error:
        # Retrying this page in this run publishes the same events: say which, a new run would decide them again.
        error.details = {"run_id": run_id, "cursor": body.cursor}
        raise
    log.info("re-analysis requested", extra={"run_id": run_id, "requested": len(requested.feedback_ids),
                                             "selected": selected, "requested_by": principal.user_id})
    return {"run_id": run_id, "requested": len(requested.feedback_ids), "selected": selected,
            "next_cursor": encode_cursor(page[-1].feedback_id) if len(rows) > body.limit else None,
            "status_url": f"/v1/reanalysis/{run_id}", "skipped_ids": skipped + requested.unreadable_ids}


def _read_page(sessions: sessionmaker[Session], selection: Selection, after: str | None, limit: int, *,
               first_page: bool) -> tuple[list[FeedbackRecord], int, list[str]]:
    """One more row than the page, to know whether another follows; the count; the ids asked for in vain."""
    with sessions() as session:
        rows = selected_page(session, selection, after=after, limit=limit + 1)
        skipped = not_reanalysable(session, selection.feedback_ids) if first_page else []
        return rows, count_selected(session, selection), skipped


@router.get("/{run_id}", response_model=ReanalysisRunStatus, responses=ERROR_RESPONSES)
def run_status(run_id: str, session: SessionDep, _: AdminDep) -> dict:
    """How many feedbacks the run requested, how many are decided and how, and the policies it created."""
    if not RUN_ID.fullmatch(run_id):
        raise ApiError(404, "not_found", "no such re-analysis run")
    outcome = ReanalysisRequest.outcome
    requested, decided, generated, skipped, failed = session.execute(
        select(func.count(), func.count(ReanalysisRequest.decided_at),
               func.count().filter(outcome == "generated"), func.count().filter(outcome == "skipped"),
               func.count().filter(outcome == "failed"))
        .where(ReanalysisRequest.run_id == run_id)).one()
    if requested == 0:
        raise ApiError(404, "not_found", "no such re-analysis run")
    # Created by this run: the policy's "created" history row is the run's decision event itself.
    created = session.execute(
        select(ReanalysisRequest.policy_id).distinct()
        .join(PolicyHistory, and_(PolicyHistory.policy_id == ReanalysisRequest.policy_id,
                                  PolicyHistory.event_id == ReanalysisRequest.decision_event_id,
                                  PolicyHistory.action == "created"))
        .where(ReanalysisRequest.run_id == run_id, outcome == "generated")
        .order_by(ReanalysisRequest.policy_id).limit(MAX_POLICIES_LISTED)).scalars().all()
    return {"run_id": run_id, "requested": requested, "decided": decided,
            "outcomes": {"generated": generated, "skipped": skipped, "failed": failed},
            "policies_created": list(created), "done": requested > 0 and decided >= requested}
