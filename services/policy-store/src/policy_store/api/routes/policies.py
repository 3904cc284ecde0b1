"""Policies: list, relevant to a question, one by id, review actions and history."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy import and_, or_, select

from policy_store.core.db import SessionDep
from policy_store.etag import json_with_etag
from policy_store.identifiers import could_exist
from policy_store.metrics import REVIEWS
from policy_store.models import PolicyHistory, PolicyRecord
from policy_store.pagination import decode_cursor, encode_cursor
from policy_store.relevance import relevance
from policy_store.schemas import (
    ERROR_RESPONSES,
    PolicyHistoryPage,
    PolicyPage,
    RelevantPolicies,
    ReviewRequest,
)
from policy_store.serialization import history_entry, policy_document
from policyloop_common.auth import Principal, Role, require_roles
from policyloop_common.cloudevents import decode, encode
from policyloop_common.errors import ApiError
from policyloop_common.events import PolicyReviewed, ReviewAction
from policyloop_common.kafka.producer import PublishFailed
from policyloop_common.policy import PolicyCategory, PolicyPriority, PolicyStatus
from policyloop_common.text_matching import Document

router = APIRouter(prefix="/v1/policies", tags=["policies"])
LIST_RESPONSES = {**ERROR_RESPONSES, 304: {"description": "not modified: the If-None-Match tag is current"}}
ReaderDep = Annotated[Principal, Depends(require_roles(Role.ASSISTANT, Role.ADMIN))]
AdminDep = Annotated[Principal, Depends(require_roles(Role.ADMIN))]

# Which statuses each review action may start from.
ALLOWED_FROM = {
    ReviewAction.APPROVE: {PolicyStatus.PENDING_REVIEW.value},
    ReviewAction.REJECT: {PolicyStatus.PENDING_REVIEW.value, PolicyStatus.ACTIVE.value},
    ReviewAction.RETIRE: {PolicyStatus.ACTIVE.value, PolicyStatus.PENDING_REVIEW.value},
}


@router.get("", response_model=PolicyPage, responses=LIST_RESPONSES)
def list_policies(
    request: Request, session: SessionDep, _: ReaderDep,
    status: PolicyStatus = PolicyStatus.ACTIVE,
    category: PolicyCategory | None = None,
    priority: PolicyPriority | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    """Policies newest first, filtered, one page at a time; ETag / If-None-Match supported."""
    query = select(PolicyRecord).where(PolicyRecord.status == status.value)
    if category is not None:
        query = query.where(PolicyRecord.category == category.value)
    if priority is not None:
        query = query.where(PolicyRecord.priority == priority.value)
    if cursor:
        created_at, policy_id = decode_cursor(cursor)
        query = query.where(or_(PolicyRecord.created_at < created_at,
                                and_(PolicyRecord.created_at == created_at, PolicyRecord.policy_id < policy_id)))
    rows = session.execute(query.order_by(PolicyRecord.created_at.desc(), PolicyRecord.policy_id.desc())
                           .limit(limit + 1)).scalars().all()
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].created_at, page[-1].policy_id) if len(rows) > limit else None
    return json_with_etag(request, {"items": [policy_document(row) for row in page], "next_cursor": next_cursor})


@router.get("/relevant", response_model=RelevantPolicies, responses=LIST_RESPONSES)
def relevant_policies(
    request: Request, session: SessionDep, _: ReaderDep,
    question: Annotated[str, Query(min_length=1, max_length=4000)],
    limit: Annotated[int, Query(ge=1, le=50)] = 5,
) -> Response:
    """The active policies most relevant to ``question``, best first, with their scores."""
    probe = Document.of(question)
    floor = request.app.state.settings.relevance_floor
    scored = [(relevance(probe, row), row) for row in session.execute(
        select(PolicyRecord).where(PolicyRecord.status == PolicyStatus.ACTIVE.value)).scalars()]
    ranked = sorted((pair for pair in scored if pair[0] >= floor), key=lambda pair: (-pair[0], pair[1].policy_id))
    return json_with_etag(request, {"items": [{"policy": policy_document(row), "score": score}
                                              for score, row in ranked[:limit]]})


@router.get("/{policy_id}", responses=ERROR_RESPONSES)
def get_policy(policy_id: str, session: SessionDep, _: ReaderDep) -> dict:
    """One policy by id."""
    return policy_document(_policy_or_404(session, policy_id))


@router.get("/{policy_id}/history", response_model=PolicyHistoryPage,
            responses=LIST_RESPONSES)
def policy_history(policy_id: str, request: Request, session: SessionDep, _: AdminDep) -> Response:
    """Every change of a policy, oldest first: version, action, who, when, why."""
    _policy_or_404(session, policy_id)
    rows = session.execute(select(PolicyHistory).where(PolicyHistory.policy_id == policy_id)
                           .order_by(PolicyHistory.at, PolicyHistory.id)).scalars()
    return json_with_etag(request, {"policy_id": policy_id, "items": [history_entry(row) for row in rows]})


async def _review(action: ReviewAction, policy_id: str, request: Request, principal: Principal,
                  review: ReviewRequest | None) -> dict:
    """Publish the review to Kafka (the record), then apply it here so the answer shows the new state."""
    app = request.app
    with app.state.session_factory() as session:
        record = _policy_or_404(session, policy_id)
        if record.status not in ALLOWED_FROM[action]:
            raise ApiError(409, "invalid_transition",
                           f"cannot {action.value} a policy that is {record.status}",
                           {"status": record.status, "action": action.value})
    event = PolicyReviewed(policy_id=policy_id, action=action, reviewer=principal.user_id,
                           reason=review.reason if review else None, reviewed_at=datetime.now(UTC))
    outgoing = encode(event, source="/policyloop/policy-store", topic=app.state.settings.reviews_topic,
                      trace_id=uuid.uuid4().hex)
    try:
        await asyncio.wait_for(app.state.publisher.publish(outgoing),
                               timeout=app.state.settings.publish_timeout_seconds + 2)
    except (PublishFailed, TimeoutError) as error:
        raise ApiError(503, "kafka_unavailable", "the review could not be recorded right now; retry later",
                       headers={"Retry-After": str(app.state.settings.retry_after_seconds)}) from error
    incoming = decode(value=outgoing.value, key=outgoing.key, headers=outgoing.headers, topic=outgoing.topic)
    with app.state.session_factory() as session, session.begin():
        app.state.materializer.apply(session, incoming)
    REVIEWS.labels(action.value).inc()
    with app.state.session_factory() as session:
        return policy_document(_policy_or_404(session, policy_id))


ReviewBody = Annotated[ReviewRequest | None, Body()]


@router.post("/{policy_id}/approve", responses=ERROR_RESPONSES)
async def approve(policy_id: str, request: Request, principal: AdminDep, review: ReviewBody = None) -> dict:
    """pending_review → active."""
    return await _review(ReviewAction.APPROVE, policy_id, request, principal, review)


@router.post("/{policy_id}/reject", responses=ERROR_RESPONSES)
async def reject(policy_id: str, request: Request, principal: AdminDep, review: ReviewBody = None) -> dict:
    """pending_review or active → rejected."""
    return await _review(ReviewAction.REJECT, policy_id, request, principal, review)


@router.post("/{policy_id}/retire", responses=ERROR_RESPONSES)
async def retire(policy_id: str, request: Request, principal: AdminDep, review: ReviewBody = None) -> dict:
    """active or pending_review → retired."""
    return await _review(ReviewAction.RETIRE, policy_id, request, principal, review)


def _policy_or_404(session, policy_id: str) -> PolicyRecord:
    record = session.get(PolicyRecord, policy_id) if could_exist(policy_id) else None
    if record is None:
        raise ApiError(404, "not_found", "no such policy")
    return record
