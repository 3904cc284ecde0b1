"""What the review pages show, read from the store's tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from policy_store.models import FeedbackRecord, PolicyHistory, PolicyRecord
from policy_store.pagination import decode_cursor, encode_cursor
from policy_store.reviews import allowed_actions
from policyloop_common.events import ReviewAction
from policyloop_common.policy import PolicyStatus


@dataclass(frozen=True)
class SourceFeedback:
    """A feedback a policy was written from or that repeated its lesson; ``stored`` is False until it arrives."""

    feedback_id: str
    stored: bool
    rating: str | None = None
    comment: str | None = None
    question: str | None = None
    user_id: str | None = None
    submitted_at: datetime | None = None


@dataclass(frozen=True)
class PolicyForReview:
    """A policy with what a reviewer needs beside it: its source feedback, why it was held, what may be done."""

    record: PolicyRecord
    feedback: list[SourceFeedback]
    review_reasons: list[str]
    actions: list[ReviewAction]


def status_counts(session: Session) -> dict[str, int]:
    """How many policies have each status, every status listed (zero included)."""
    counted = dict(session.execute(select(PolicyRecord.status, func.count()).group_by(PolicyRecord.status)).all())
    return {status.value: counted.get(status.value, 0) for status in PolicyStatus}


def policies_page(session: Session, status: str, cursor: str | None,
                  limit: int) -> tuple[list[PolicyRecord], str | None]:
    """Policies of ``status``, newest first, one page after ``cursor``, and the cursor of the next page if any.

    The same keyset order as ``GET /v1/policies``; a cursor that is not ours raises ApiError(422).
    """
    query = select(PolicyRecord).where(PolicyRecord.status == status)
    if cursor:
        created_at, policy_id = decode_cursor(cursor)
        query = query.where(or_(PolicyRecord.created_at < created_at,
                                and_(PolicyRecord.created_at == created_at, PolicyRecord.policy_id < policy_id)))
    rows = session.execute(query.order_by(PolicyRecord.created_at.desc(), PolicyRecord.policy_id.desc())
                           .limit(limit + 1)).scalars().all()
    page = list(rows[:limit])
    next_cursor = encode_cursor(page[-1].created_at, page[-1].policy_id) if len(rows) > limit else None
    return page, next_cursor


def for_review(session: Session, records: list[PolicyRecord]) -> list[PolicyForReview]:
    """Each policy with its source feedback and review reasons, the feedback of all of them read in one query."""
    wanted = {feedback_id for record in records for feedback_id in record.source_feedback_ids}
    rows = {row.feedback_id: row for row in session.execute(
        select(FeedbackRecord).where(FeedbackRecord.feedback_id.in_(wanted))).scalars()} if wanted else {}
    return [_for_review(record, rows) for record in records]


def policy_history(session: Session, policy_id: str) -> list[PolicyHistory]:
    """Every change of a policy, oldest first."""
    return list(session.execute(select(PolicyHistory).where(PolicyHistory.policy_id == policy_id)
                                .order_by(PolicyHistory.at, PolicyHistory.id)).scalars())


def _for_review(record: PolicyRecord, rows: dict[str, FeedbackRecord]) -> PolicyForReview:
    feedback, reasons = [], []
    for feedback_id in record.source_feedback_ids:
        row = rows.get(feedback_id)
        if row is None:
            feedback.append(SourceFeedback(feedback_id=feedback_id, stored=False))
            continue
        feedback.append(SourceFeedback(feedback_id=feedback_id, stored=True, rating=row.rating, comment=row.comment,
                                       question=(row.context or {}).get("question"), user_id=row.user_id,
                                       submitted_at=row.submitted_at))
        # The generator's screening findings travel with each decision (as GET /v1/feedback/{id} shows them).
        reasons += (row.decision or {}).get("review_reasons") or []
    return PolicyForReview(record=record, feedback=feedback, review_reasons=list(dict.fromkeys(reasons)),
                           actions=allowed_actions(record.status))
