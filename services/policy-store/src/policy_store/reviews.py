"""Review actions (approve, reject, retire): one path for the API and the review page.

A review is recorded in Kafka first (``PolicyReviewed``, so a replay of the topics rebuilds it) and then applied
here at once, so the answer already shows the new state; the consumer later sees the same event id and skips it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from sqlalchemy.orm import Session

from policy_store.identifiers import could_exist
from policy_store.metrics import REVIEWS
from policy_store.models import PolicyRecord
from policy_store.publishing import record_event
from policy_store.serialization import policy_document
from policyloop_common.cloudevents import encode
from policyloop_common.errors import ApiError
from policyloop_common.events import PolicyReviewed, ReviewAction
from policyloop_common.policy import PolicyStatus

# Which statuses each review action may start from.
ALLOWED_FROM = {
    ReviewAction.APPROVE: {PolicyStatus.PENDING_REVIEW.value},
    ReviewAction.REJECT: {PolicyStatus.PENDING_REVIEW.value, PolicyStatus.ACTIVE.value},
    ReviewAction.RETIRE: {PolicyStatus.ACTIVE.value, PolicyStatus.PENDING_REVIEW.value},
    ReviewAction.SUPERSEDE: {PolicyStatus.ACTIVE.value, PolicyStatus.PENDING_REVIEW.value},
}
# What a successor may be: a policy that is, or is about to be, served.
SUCCESSOR_STATUSES = {PolicyStatus.ACTIVE.value, PolicyStatus.PENDING_REVIEW.value}


def allowed_actions(status: str) -> list[ReviewAction]:
    """The one-click review actions a policy in ``status`` accepts, in the order a reviewer reads them
    (superseding needs a successor, so it is not one of them)."""
    return [action for action in ReviewAction
            if action is not ReviewAction.SUPERSEDE and status in ALLOWED_FROM[action]]


async def review_policy(app: FastAPI, action: ReviewAction, policy_id: str, reviewer: str,
                        reason: str | None, superseded_by: str | None = None) -> dict[str, Any]:
    """Publish the review to Kafka (the record), apply it, and return the updated policy document.

    Raises ApiError 404 for an unknown policy, 409 for a transition ``ALLOWED_FROM`` does not allow, and 503 when
    Kafka does not take the event in time (nothing changed then).
    """
    with app.state.session_factory() as session:
        record = policy_or_404(session, policy_id)
        if record.status not in ALLOWED_FROM[action]:
            raise ApiError(409, "invalid_transition",
                           f"cannot {action.value} a policy that is {record.status}",
                           {"status": record.status, "action": action.value})
        if action is ReviewAction.SUPERSEDE:
            _check_successor(session, policy_id, superseded_by)
    event = PolicyReviewed(policy_id=policy_id, action=action, reviewer=reviewer, reason=reason,
                           reviewed_at=datetime.now(UTC),
                           superseded_by=superseded_by if action is ReviewAction.SUPERSEDE else None)
    outgoing = encode(event, source="/policyloop/policy-store", topic=app.state.settings.reviews_topic,
                      trace_id=uuid.uuid4().hex)
    await record_event(app, outgoing, "review")
    REVIEWS.labels(action.value).inc()
    with app.state.session_factory() as session:
        return policy_document(policy_or_404(session, policy_id))


def _check_successor(session: Session, policy_id: str, successor_id: str | None) -> None:
    """A policy is superseded by another one that exists and is served (or about to be), never by itself."""
    if not successor_id or successor_id == policy_id:
        raise ApiError(422, "invalid_request", "superseded_by must name another policy",
                       {"superseded_by": successor_id})
    successor = session.get(PolicyRecord, successor_id) if could_exist(successor_id) else None
    if successor is None:
        raise ApiError(422, "invalid_request", "superseded_by names no policy of this store",
                       {"superseded_by": successor_id})
    if successor.status not in SUCCESSOR_STATUSES:
        raise ApiError(409, "invalid_transition", f"the successor is {successor.status}; it must be active or "
                       "pending_review", {"superseded_by": successor_id, "status": successor.status})


def policy_or_404(session: Session, policy_id: str) -> PolicyRecord:
    """The policy row, or ApiError 404; ids that cannot be ours are not even looked up."""
    record = session.get(PolicyRecord, policy_id) if could_exist(policy_id) else None
    if record is None:
        raise ApiError(404, "not_found", "no such policy")
    return record
