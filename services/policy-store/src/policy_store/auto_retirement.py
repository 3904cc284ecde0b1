"""Retiring harmful policies without a reviewer, when ``AUTO_RETIRE_HARMFUL=true``.

Checked after each consumer batch, once its rows are committed, for the active policies whose attribution the
batch changed: a usage report or a feedback on an answer that has both. Those are the moments the figures of a
used policy move; checking them rather than every policy keeps the cost to the policies concerned.

A harmful policy is retired the way a reviewer would retire it, by a ``PolicyReviewed`` event on the reviews topic
(reviewer ``policy-store/effectiveness``, the figures in the reason), so a rebuild from the topics retires it again.
The event id is derived from the policy id: replicas or retried batches that decide the same retirement publish
the same event, and the store applies it once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from policy_store.effectiveness import policy_effectiveness
from policy_store.metrics import AUTO_RETIREMENTS
from policy_store.models import FeedbackRecord, PolicyRecord, PolicyUsage
from policy_store.publishing import ConsumerDecisions
from policyloop_common.cloudevents import IncomingEvent, encode
from policyloop_common.events import FeedbackSubmitted, PolicyReviewed, PolicyUsed, ReviewAction
from policyloop_common.policy import PolicyStatus

log = logging.getLogger(__name__)

AUTO_RETIRE_REVIEWER = "policy-store/effectiveness"
# Namespace of the retirement event ids: uuid5(namespace, policy_id) is the same in every replica.
AUTO_RETIRE_NAMESPACE = uuid.UUID("5b0d8f1e-4f3a-4c36-9f57-2d1f0f6f6a51")
MAX_REASON = 2000


def retirement_event_id(policy_id: str) -> str:
    """The one event id an automatic retirement of ``policy_id`` can have."""
    return str(uuid.uuid5(AUTO_RETIRE_NAMESPACE, policy_id))


def retirement_reason(report: dict) -> str:
    """The reason recorded in the policy's history: the figures that crossed the harmful rule."""
    return ("retired automatically (AUTO_RETIRE_HARMFUL): " + "; ".join(report["signals"]))[:MAX_REASON]


def answers_of(events: Sequence[IncomingEvent]) -> set[tuple[str, str]]:
    """The (conversation_id, message_id) of the answers whose feedback or usage the events carry."""
    return {(event.payload.conversation_id, event.payload.message_id) for event in events
            if isinstance(event.payload, FeedbackSubmitted | PolicyUsed)}


def active_policies_with_feedback(session: Session, answers: set[tuple[str, str]]) -> list[PolicyRecord]:
    """Active policies used for one of ``answers`` on which a rated feedback is stored."""
    return list(session.execute(
        select(PolicyRecord).distinct()
        .join(PolicyUsage, PolicyUsage.policy_id == PolicyRecord.policy_id)
        .join(FeedbackRecord, (FeedbackRecord.conversation_id == PolicyUsage.conversation_id)
              & (FeedbackRecord.message_id == PolicyUsage.message_id))
        .where(tuple_(PolicyUsage.conversation_id, PolicyUsage.message_id).in_(sorted(answers)),
               PolicyRecord.status == PolicyStatus.ACTIVE.value, FeedbackRecord.rating.is_not(None))
        .order_by(PolicyRecord.policy_id)).scalars())


class AutoRetirement(ConsumerDecisions):
    """Publishes (and applies) the retirement of active policies whose effectiveness marks them harmful."""

    def after_batch(self, events: Sequence[IncomingEvent]) -> list[str]:
        """Retire the harmful active policies the batch's feedback and usage concern; return their ids."""
        answers = answers_of(events)
        if not answers:
            return []
        with self._sessions() as session:
            harmful = []
            for record in active_policies_with_feedback(session, answers):
                report = policy_effectiveness(session, record, self._settings)
                if report["retirement_suggested"]:
                    harmful.append((record.policy_id, report))
        return [policy_id for policy_id, report in harmful if self._retire(policy_id, report)]

    def _retire(self, policy_id: str, report: dict) -> bool:
        event = PolicyReviewed(policy_id=policy_id, action=ReviewAction.RETIRE, reviewer=AUTO_RETIRE_REVIEWER,
                               reason=retirement_reason(report), reviewed_at=datetime.now(UTC))
        outgoing = encode(event, source="/policyloop/policy-store", topic=self._settings.reviews_topic,
                          event_id=retirement_event_id(policy_id), trace_id=uuid.uuid4().hex)
        # Unpublished, the policy stays active and harmful, so its next feedback or usage tries again.
        if not self._record(outgoing, "auto_retire"):
            return False
        AUTO_RETIREMENTS.inc()
        log.warning("harmful policy retired automatically",
                    extra={"policy_id": policy_id, "signals": report["signals"]})
        return True
