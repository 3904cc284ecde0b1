"""``GET /v1/feedback/{feedback_id}``: what became of a feedback, for its owner or an admin."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from policy_store.core.db import SessionDep
from policy_store.identifiers import could_exist
from policy_store.models import FeedbackRecord
from policy_store.schemas import ERROR_RESPONSES, FeedbackStatus
from policy_store.serialization import feedback_status
from policyloop_common.auth import Principal, Role, require_roles
from policyloop_common.errors import ApiError

router = APIRouter(prefix="/v1/feedback", tags=["feedback"])
ReaderDep = Annotated[Principal, Depends(require_roles(Role.USER, Role.ADMIN))]


@router.get("/{feedback_id}", response_model=FeedbackStatus, response_model_exclude_none=True,
            responses=ERROR_RESPONSES)
async def get_feedback(feedback_id: str, request: Request, session: SessionDep, principal: ReaderDep) -> dict:
    """The status of one feedback; another user's feedback is reported as not found."""
    # A client that asks right after its 202 may be a moment ahead of the consumer: give the event a short
    # grace to arrive. Unknown ids and other users' ids both wait it out, so their answers cannot be told apart.
    if not could_exist(feedback_id):
        raise ApiError(404, "not_found", "no such feedback")
    deadline = time.monotonic() + request.app.state.settings.unknown_feedback_grace_seconds
    while True:
        record = await run_in_threadpool(session.get, FeedbackRecord, feedback_id)
        if record is not None and (principal.is_admin or record.user_id == principal.user_id):
            return feedback_status(record)
        if time.monotonic() >= deadline:
            raise ApiError(404, "not_found", "no such feedback")
        await asyncio.sleep(0.1)
