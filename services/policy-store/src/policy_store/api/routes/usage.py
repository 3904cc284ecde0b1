"""``POST /v1/usage``: which policies the assistant put into the prompt of an answer, recorded as ``PolicyUsed``."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select

from policy_store.models import PolicyRecord
from policy_store.publishing import record_event
from policy_store.schemas import ERROR_RESPONSES, UsageAccepted, UsageRequest
from policyloop_common.auth import Principal, Role, require_roles
from policyloop_common.cloudevents import encode
from policyloop_common.events import PolicyUsed

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/usage", tags=["usage"])
ReporterDep = Annotated[Principal, Depends(require_roles(Role.ASSISTANT, Role.ADMIN))]


@router.post("", status_code=202, response_model=UsageAccepted, responses=ERROR_RESPONSES)
async def report_usage(usage: UsageRequest, request: Request, principal: ReporterDep) -> dict:
    """Record the use in Kafka, then here; feedback on that answer, earlier or later, is attributed to the policies."""
    app = request.app
    with app.state.session_factory() as session:
        known = set(session.execute(select(PolicyRecord.policy_id)
                                    .where(PolicyRecord.policy_id.in_(usage.policy_ids))).scalars())
    # Recorded all the same: the report is a fact about an answer, and the assistant may hold ids from another
    # store of the same topics (a rebuild in progress). The answer names them so a caller's mistake shows.
    unknown = [policy_id for policy_id in usage.policy_ids if policy_id not in known]
    if unknown:
        log.warning("usage names policies this store does not have", extra={"policy_ids": unknown[:10]})
    event = PolicyUsed(conversation_id=usage.conversation_id, message_id=usage.message_id,
                       policy_ids=usage.policy_ids, question=usage.question, used_by=principal.user_id,
                       used_at=datetime.now(UTC))
    outgoing = encode(event, source="/policyloop/policy-store", topic=app.state.settings.usage_topic,
                      trace_id=uuid.uuid4().hex)
    await record_event(app, outgoing, "usage")
    return {"usage_id": outgoing.event_id, "policy_ids": event.policy_ids, "unknown_policy_ids": unknown}
