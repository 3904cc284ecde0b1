"""How a policy does once the assistant uses it: feedback after use, similar questions before and after activation.

Two figures, two kinds of evidence (docs/effectiveness.md):

- **Feedback after use**: the feedback on the answers whose prompts carried the policy (``POST /v1/usage``),
  attributed by conversation and message. The join happens when the figures are read, so usage and feedback
  may be stored in either order.
- **Similar questions**: the negative rate of feedback whose question resembles the policy (its rule, mapping
  and examples, as relevance ranks them) before the policy became active and since. This needs no usage
  reports, and it shows whether the questions the policy is about went better or worse once it was served.

A policy is *harmful* when either figure crosses its threshold with enough feedback behind it; a harmful policy
that is still served (or waiting for review) is suggested for retirement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session

from policy_store.core.config import StoreSettings
from policy_store.models import FeedbackRecord, PolicyRecord, PolicyUsage
from policy_store.relevance import policy_search_text
from policyloop_common.events import Rating
from policyloop_common.policy import PolicyStatus
from policyloop_common.text_matching import Document, similarity_docs

# A harmful policy is worth retiring only while the assistant may still get it.
RETIRABLE_STATUSES = frozenset({PolicyStatus.ACTIVE.value, PolicyStatus.PENDING_REVIEW.value})

_QUESTION = FeedbackRecord.context["question"].astext
_ATTRIBUTED = and_(FeedbackRecord.conversation_id == PolicyUsage.conversation_id,
                   FeedbackRecord.message_id == PolicyUsage.message_id)


@dataclass(frozen=True)
class FeedbackTally:
    """How many rated feedbacks, and how many of them negative."""

    feedback: int = 0
    negative: int = 0

    @property
    def negative_rate(self) -> float | None:
        """Negative share in [0, 1]; None without feedback, where a rate would mean nothing."""
        return round(self.negative / self.feedback, 4) if self.feedback else None

    def as_dict(self) -> dict[str, Any]:
        """``{"feedback", "negative", "negative_rate"}``."""
        return {"feedback": self.feedback, "negative": self.negative, "negative_rate": self.negative_rate}


def usage_count(session: Session, policy_id: str) -> int:
    """How many answers carried the policy in their prompt."""
    return session.execute(select(func.count()).select_from(PolicyUsage)
                           .where(PolicyUsage.policy_id == policy_id)).scalar_one()


def attributed_feedback(session: Session, policy_id: str) -> FeedbackTally:
    """The rated feedback on answers that used the policy; a feedback counts once however often it matches."""
    rows = session.execute(
        select(FeedbackRecord.rating, func.count(func.distinct(FeedbackRecord.feedback_id)))
        .select_from(PolicyUsage).join(FeedbackRecord, _ATTRIBUTED)
        .where(PolicyUsage.policy_id == policy_id, FeedbackRecord.rating.is_not(None))
        .group_by(FeedbackRecord.rating)).all()
    by_rating = dict(rows)
    negative = by_rating.get(Rating.NEGATIVE.value, 0)
    return FeedbackTally(feedback=negative + by_rating.get(Rating.POSITIVE.value, 0), negative=negative)


def harmful_after_use_count(session: Session, settings: StoreSettings) -> int:
    """Retirable policies whose feedback after use crosses the harmful rule, in one aggregate query."""
    negative = func.count(func.distinct(FeedbackRecord.feedback_id)).filter(
        FeedbackRecord.rating == Rating.NEGATIVE.value)
    rated = func.count(func.distinct(FeedbackRecord.feedback_id))
    harmful = (
        select(PolicyUsage.policy_id)
        .join(FeedbackRecord, _ATTRIBUTED)
        .join(PolicyRecord, PolicyRecord.policy_id == PolicyUsage.policy_id)
        .where(FeedbackRecord.rating.is_not(None), PolicyRecord.status.in_(RETIRABLE_STATUSES))
        .group_by(PolicyUsage.policy_id)
        .having(rated >= settings.effectiveness_min_feedback,
                negative >= settings.effectiveness_harmful_negative_rate * rated)
    ).subquery()
    return session.execute(select(func.count()).select_from(harmful)).scalar_one()


def _recent_questions(query: Select, limit: int) -> Select:
    return (query.where(FeedbackRecord.rating.is_not(None), FeedbackRecord.submitted_at.is_not(None),
                        _QUESTION.is_not(None))
            .order_by(FeedbackRecord.submitted_at.desc()).limit(limit))


def similar_question_tallies(session: Session, record: PolicyRecord,
                             settings: StoreSettings) -> tuple[FeedbackTally, FeedbackTally]:
    """Feedback on questions similar to the policy, before its activation and while it has been active.

    The work is bounded in SQL: on each side only the ``EFFECTIVENESS_CANDIDATE_FEEDBACK`` most recent rated
    feedbacks with a question are read and scored (the ones just before activation, and the latest since), so
    the cost does not grow with the feedback table. "While active" ends when the policy was retired or
    rejected: feedback after that says nothing about it. A policy never activated has no "after".
    """
    limit = settings.effectiveness_candidate_feedback
    columns = select(_QUESTION, FeedbackRecord.rating)
    activated = record.valid_from
    # An active policy's window runs until now, whatever end an earlier status left behind.
    ended = record.valid_to if record.status != PolicyStatus.ACTIVE.value else None
    before_query = columns if activated is None else columns.where(FeedbackRecord.submitted_at < activated)
    before = _tally_similar(session, _recent_questions(before_query, limit), record, settings)
    if activated is None:
        return before, FeedbackTally()
    after_query = columns.where(FeedbackRecord.submitted_at >= activated)
    if ended is not None:
        after_query = after_query.where(FeedbackRecord.submitted_at < ended)
    return before, _tally_similar(session, _recent_questions(after_query, limit), record, settings)


def _tally_similar(session: Session, query: Select, record: PolicyRecord, settings: StoreSettings) -> FeedbackTally:
    policy = Document.of(policy_search_text(record))
    threshold = settings.effectiveness_similarity_threshold
    feedback = negative = 0
    for question, rating in session.execute(query):
        if similarity_docs(Document.of(question), policy) >= threshold:
            feedback += 1
            negative += rating == Rating.NEGATIVE.value
    return FeedbackTally(feedback=feedback, negative=negative)


def harmful_signals(after_use: FeedbackTally, before: FeedbackTally, after: FeedbackTally,
                    settings: StoreSettings) -> list[str]:
    """Why the figures mark a policy harmful, one sentence per signal; empty when they do not."""
    signals = []
    minimum = settings.effectiveness_min_feedback
    threshold = settings.effectiveness_harmful_negative_rate
    # Compared on the counts, as harmful_after_use_count compares them in SQL, not on the rounded rate.
    if after_use.feedback >= minimum and after_use.negative >= threshold * after_use.feedback:
        signals.append(f"{after_use.negative} of {after_use.feedback} feedbacks on answers that used the policy "
                       f"were negative ({after_use.negative_rate:.0%}, threshold {threshold:.0%})")
    margin = settings.effectiveness_similar_margin
    if (before.feedback >= minimum and after.feedback >= minimum
            and round(after.negative_rate - before.negative_rate, 4) >= margin):
        signals.append(f"similar questions were rated negative more often since the policy became active: "
                       f"{after.negative_rate:.0%} of {after.feedback} against {before.negative_rate:.0%} of "
                       f"{before.feedback} before (margin {margin:.0%})")
    return signals


def policy_effectiveness(session: Session, record: PolicyRecord, settings: StoreSettings) -> dict:
    """The effectiveness figures of one policy as JSON-ready data (``GET /v1/policies/{id}/effectiveness``).

    Reads the policy's usage count, the feedback attributed to its uses, and at most
    ``2 × EFFECTIVENESS_CANDIDATE_FEEDBACK`` recent feedback questions for the similar-question comparison.
    """
    after_use = attributed_feedback(session, record.policy_id)
    before, after = similar_question_tallies(session, record, settings)
    signals = harmful_signals(after_use, before, after, settings)
    return {
        "policy_id": record.policy_id,
        "status": record.status,
        "uses": usage_count(session, record.policy_id),
        "feedback_after_use": {"positive": after_use.feedback - after_use.negative, "negative": after_use.negative,
                               "negative_rate": after_use.negative_rate},
        "similar_questions": {"threshold": settings.effectiveness_similarity_threshold,
                              "before": before.as_dict(), "after": after.as_dict()},
        "activated_at": _iso(record.valid_from),
        "harmful": bool(signals),
        "retirement_suggested": bool(signals) and record.status in RETIRABLE_STATUSES,
        "signals": signals,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
