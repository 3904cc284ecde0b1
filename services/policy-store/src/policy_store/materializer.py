"""Applying events to the database: idempotent by event id, whatever the order in which topics deliver them."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from policy_store.models import FeedbackRecord, PolicyEvidence, PolicyHistory, PolicyRecord, ProcessedEvent
from policy_store.serialization import policy_document
from policyloop_common.cloudevents import IncomingEvent
from policyloop_common.events import (
    REVIEW_OUTCOME,
    FeedbackSubmitted,
    PolicyGenerated,
    PolicyGenerationFailed,
    PolicyReviewed,
    PolicySkipped,
    ReviewAction,
    SkipReason,
)
from policyloop_common.policy import Policy, PolicyStatus
from policyloop_common.text_matching import schema_objects

log = logging.getLogger(__name__)

GENERATOR_ACTOR = "policy-generator"


class Materializer:
    """Turns events into rows; ``auto_activate`` decides the status of new policies."""

    def __init__(self, *, auto_activate: bool = True) -> None:
        self.auto_activate = auto_activate

    def apply(self, session: Session, event: IncomingEvent) -> bool:
        """Apply ``event`` inside the caller's transaction; False when it was applied before."""
        claimed = session.execute(
            insert(ProcessedEvent)
            .values(event_id=event.event_id, event_type=event.event_type, topic=event.topic or "",
                    partition=event.partition, offset=event.offset)
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(ProcessedEvent.event_id)
        ).first()
        if claimed is None:
            return False
        payload = event.payload
        if isinstance(payload, FeedbackSubmitted):
            self._feedback_submitted(session, payload)
        elif isinstance(payload, PolicyReviewed):
            self._policy_reviewed(session, payload, event.event_id)
        elif isinstance(payload, PolicyGenerated | PolicySkipped | PolicyGenerationFailed):
            self._decision(session, payload, event)
        return True

    def _feedback_submitted(self, session: Session, event: FeedbackSubmitted) -> None:
        fields = dict(user_id=event.user_id, conversation_id=event.conversation_id, message_id=event.message_id,
                      rating=event.rating.value, comment=event.comment,
                      context=event.context.model_dump(mode="json"), submitted_at=event.submitted_at)
        # Only the submission's own fields: a decision that arrived first keeps its status.
        session.execute(insert(FeedbackRecord).values(feedback_id=event.feedback_id, status="pending", **fields)
                        .on_conflict_do_update(index_elements=["feedback_id"], set_=fields))

    def _feedback_row(self, session: Session, feedback_id: str) -> FeedbackRecord:
        session.execute(insert(FeedbackRecord).values(feedback_id=feedback_id, status="pending")
                        .on_conflict_do_nothing(index_elements=["feedback_id"]))
        return session.execute(select(FeedbackRecord).where(FeedbackRecord.feedback_id == feedback_id)
                               .with_for_update()).scalar_one()

    def _decision(self, session: Session, event: PolicyGenerated | PolicySkipped | PolicyGenerationFailed,
                  incoming: IncomingEvent) -> None:
        feedback = self._feedback_row(session, event.feedback_id)
        # "failed" is not final: a feedback replayed from the dead-letter topic gets its real decision later.
        if feedback.status not in ("pending", "failed"):
            log.warning("second decision for a decided feedback ignored",
                        extra={"feedback_id": event.feedback_id, "event_id": incoming.event_id})
            return
        feedback.decided_at, feedback.reason = incoming.time, None
        if isinstance(event, PolicyGenerated):
            feedback.status, feedback.policy_id = "generated", event.policy.policy_id
            feedback.decision = event.decision.model_dump(mode="json")
            self._policy_generated(session, event.policy, incoming,
                                   needs_review=bool(event.decision.review_reasons))
        elif isinstance(event, PolicySkipped):
            feedback.status, feedback.reason = "skipped", event.reason.value
            feedback.decision = {**event.decision.model_dump(mode="json"), "explanation": event.explanation}
            if event.reason is SkipReason.DUPLICATE_POLICY and event.duplicate_of:
                feedback.duplicate_of = feedback.policy_id = event.duplicate_of
                self._add_evidence(session, event.duplicate_of, event.feedback_id, incoming)
        else:
            feedback.status, feedback.reason = "failed", event.error_class
            feedback.decision = {"error_class": event.error_class, "error_message": event.error_message,
                                 "attempts": event.attempts}

    def _policy_generated(self, session: Session, policy: Policy, incoming: IncomingEvent,
                          needs_review: bool = False) -> None:
        record = session.get(PolicyRecord, policy.policy_id, with_for_update=True)
        if record is not None and record.version >= policy.version:
            return
        evidence = [row.feedback_id for row in session.execute(
            select(PolicyEvidence).where(PolicyEvidence.policy_id == policy.policy_id)
            .order_by(PolicyEvidence.added_at)).scalars()]
        sources = list(dict.fromkeys([*policy.source_feedback_ids, *evidence]))
        text = " ".join(filter(None, [policy.rule, policy.correct_mapping or ""]))
        content = dict(version=policy.version, category=policy.category.value, priority=policy.priority.value,
                       rule=policy.rule, correct_mapping=policy.correct_mapping,
                       missing_knowledge=policy.missing_knowledge, examples=list(policy.examples),
                       rationale=policy.rationale, source_feedback_ids=sources, support_count=len(sources),
                       schema_objects=sorted(schema_objects(text)), generator_provider=policy.generator.provider,
                       generator_model=policy.generator.model, updated_at=policy.updated_at)
        if record is None:
            # A policy written from suspicious feedback (screened by the generator) waits for a reviewer.
            active = self.auto_activate and not needs_review
            status = PolicyStatus.ACTIVE if active else PolicyStatus.PENDING_REVIEW
            record = PolicyRecord(policy_id=policy.policy_id, status=status.value, created_at=policy.created_at,
                                  valid_from=incoming.time if status is PolicyStatus.ACTIVE else None, **content)
            session.add(record)
            action = "created"
        else:
            for name, value in content.items():
                setattr(record, name, value)
            action = "updated"
        session.flush()
        self._history(session, record, action, GENERATOR_ACTOR, None, incoming.time, incoming.event_id)
        if action == "created":
            self._replay_early_reviews(session, record)

    def _replay_early_reviews(self, session: Session, record: PolicyRecord) -> None:
        """A review replayed before the policy it reviews (topics are read in parallel) takes effect now."""
        review = session.execute(
            select(PolicyHistory).where(PolicyHistory.policy_id == record.policy_id,
                                        PolicyHistory.action.in_([a.value for a in ReviewAction]),
                                        PolicyHistory.version.is_(None))
            .order_by(PolicyHistory.at.desc()).limit(1)).scalar_one_or_none()
        if review is not None:
            record.status = REVIEW_OUTCOME[ReviewAction(review.action)].value

    def _add_evidence(self, session: Session, policy_id: str, feedback_id: str, incoming: IncomingEvent) -> None:
        added = session.execute(insert(PolicyEvidence)
                                .values(policy_id=policy_id, feedback_id=feedback_id, added_at=incoming.time)
                                .on_conflict_do_nothing().returning(PolicyEvidence.feedback_id)).first()
        record = session.get(PolicyRecord, policy_id, with_for_update=True)
        if added is None or record is None or feedback_id in record.source_feedback_ids:
            return
        record.source_feedback_ids = [*record.source_feedback_ids, feedback_id]
        record.support_count = len(record.source_feedback_ids)
        session.flush()
        self._history(session, record, "evidence", GENERATOR_ACTOR, f"feedback {feedback_id} repeats this lesson",
                      incoming.time, incoming.event_id)

    def _policy_reviewed(self, session: Session, event: PolicyReviewed, event_id: str) -> None:
        record = session.get(PolicyRecord, event.policy_id, with_for_update=True)
        if record is None:
            # Kept without a version; applied when the policy itself is materialized.
            session.add(PolicyHistory(policy_id=event.policy_id, version=None, action=event.action.value,
                                      actor=event.reviewer, reason=event.reason, at=event.reviewed_at,
                                      event_id=event_id, snapshot=None))
            return
        status = REVIEW_OUTCOME[event.action]
        record.status = status.value
        record.updated_at = event.reviewed_at
        if status is PolicyStatus.ACTIVE and record.valid_from is None:
            record.valid_from = event.reviewed_at
        if status in (PolicyStatus.RETIRED, PolicyStatus.REJECTED):
            record.valid_to = event.reviewed_at
        session.flush()
        self._history(session, record, event.action.value, event.reviewer, event.reason, event.reviewed_at,
                      event_id)

    @staticmethod
    def _history(session: Session, record: PolicyRecord, action: str, actor: str, reason: str | None,
                 at: datetime | None, event_id: str) -> None:
        session.add(PolicyHistory(policy_id=record.policy_id, version=record.version, action=action, actor=actor,
                                  reason=reason, at=at or datetime.now(UTC), event_id=event_id,
                                  snapshot=policy_document(record)))
