"""``GET /v1/feedback/{feedback_id}``: what became of a feedback, for its owner or an admin."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from policy_store.core.db import SessionDep
from policy_store.models import FeedbackRecord
from policy_store.schemas import ERROR_RESPONSES, FeedbackStatus
from policy_store.serialization import feedback_status
from policyloop_common.auth import Principal, Role, require_roles
from policyloop_common.errors import ApiError

router = APIRouter(prefix="/v1/feedback", tags=["feedback"])
ReaderDep = Annotated[Principal, Depends(require_roles(Role.USER, Role.ADMIN))]


@router.get("/{feedback_id}", response_model=FeedbackStatus, response_model_exclude_none=True,
            responses=ERROR_RESPONSES)
def get_feedback(feedback_id: str, session: SessionDep, principal: ReaderDep) -> dict:
    """The status of one feedback; another user's feedback is reported as not found."""
    record = session.get(FeedbackRecord, feedback_id)
    # An unknown id and someone else's id answer alike, so ids cannot be probed.
    if record is None or (not principal.is_admin and record.user_id != principal.user_id):
        raise ApiError(404, "not_found", f"no feedback {feedback_id}")
    return feedback_status(record)
