"""Policies: list, relevant to a question, as a prompt block, one by id, review actions and history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import and_, or_, select

from policy_store.active_policies import active_policies_of
from policy_store.core.db import SessionDep
from policy_store.etag import json_with_etag, text_with_etag
from policy_store.identifiers import could_exist
from policy_store.models import PolicyHistory, PolicyRecord
from policy_store.pagination import decode_cursor, encode_cursor
from policy_store.prompt_block import prompt_block
from policy_store.reviews import review_policy
from policy_store.schemas import (
    ERROR_RESPONSES,
    PolicyHistoryPage,
    PolicyPage,
    RelevantPolicies,
    ReviewRequest,
    SupersedeRequest,
)
from policy_store.serialization import history_entry, policy_document
from policyloop_common.auth import Principal, Role, require_roles
from policyloop_common.errors import ApiError
from policyloop_common.events import ReviewAction
from policyloop_common.policy import PolicyCategory, PolicyPriority, PolicyStatus

router = APIRouter(prefix="/v1/policies", tags=["policies"])
LIST_RESPONSES = {**ERROR_RESPONSES, 304: {"description": "not modified: the If-None-Match tag is current"}}
ReaderDep = Annotated[Principal, Depends(require_roles(Role.ASSISTANT, Role.ADMIN))]
AdminDep = Annotated[Principal, Depends(require_roles(Role.ADMIN))]


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
    """The active policies most relevant to ``question``, best first, with their scores and the parts of them."""
    ranked = active_policies_of(request.app).rank(session, question, limit=limit,
                                                  floor=request.app.state.settings.relevance_floor)
    return json_with_etag(request, {"items": [
        {"policy": policy_document(item.record), "score": item.parts.score, "scores": item.parts.as_dict()}
        for item in ranked]})


PROMPT_RESPONSES = {**LIST_RESPONSES, 200: {"content": {"text/plain": {}}, "description": (
    "the block, ready for the assistant's prompt; empty when no active policy is relevant")}}


@router.get("/prompt", response_class=PlainTextResponse, responses=PROMPT_RESPONSES)
def policy_prompt(
    request: Request, session: SessionDep, _: ReaderDep,
    question: Annotated[str, Query(min_length=1, max_length=4000)],
    max_chars: Annotated[int, Query(ge=200, le=20_000)] = 2000,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> Response:
    """The relevant active policies as text for the assistant's prompt: most valuable first, whole policies
    only, at most ``max_chars`` characters, labelled in the question's language; empty when none is relevant."""
    ranked = active_policies_of(request.app).rank(session, question, limit=limit,
                                                  floor=request.app.state.settings.relevance_floor)
    block = prompt_block(question, [policy_document(item.record) for item in ranked], max_chars)
    return text_with_etag(request, block)


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
    """The shared review path (policy_store.reviews), as the review page uses it too."""
    return await review_policy(request.app, action, policy_id, principal.user_id, review.reason if review else None)


ReviewBody = Annotated[ReviewRequest | None, Body()]


@router.post("/{policy_id}/approve", responses=ERROR_RESPONSES)
async def approve(policy_id: str, request: Request, principal: AdminDep, review: ReviewBody = None) -> dict:
    """pending_review → active."""
    return await _review(ReviewAction.APPROVE, policy_id, request, principal, review)


@router.post("/{policy_id}/reject", responses=ERROR_RESPONSES)
async def reject(policy_id: str, request: Request, principal: AdminDep, review: ReviewBody = None) -> dict:
    """pending_review or active → rejected."""
    return await _review(ReviewAction.REJECT, policy_id, request, principal, review)


@router.post("/{policy_id}/supersede", responses=ERROR_RESPONSES)
async def supersede(policy_id: str, request: Request, principal: AdminDep, body: SupersedeRequest) -> dict:
    """active or pending_review → superseded by ``superseded_by`` (an active or pending policy); both link."""
    return await review_policy(request.app, ReviewAction.SUPERSEDE, policy_id, principal.user_id, body.reason,
                               superseded_by=body.superseded_by)


@router.post("/{policy_id}/retire", responses=ERROR_RESPONSES)
async def retire(policy_id: str, request: Request, principal: AdminDep, review: ReviewBody = None) -> dict:
    """active or pending_review → retired."""
    return await _review(ReviewAction.RETIRE, policy_id, request, principal, review)


def _policy_or_404(session, policy_id: str) -> PolicyRecord:
    record = session.get(PolicyRecord, policy_id) if could_exist(policy_id) else None
    if record is None:
        raise ApiError(404, "not_found", "no such policy")
    return record
