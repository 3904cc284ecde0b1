"""From a FeedbackSubmitted to exactly one decision event, through the index, the fast path and providers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from policy_generator.decision import DecisionMaker, policy_id_for
from policy_generator.policy_index import PolicyIndex
from policy_generator.providers.base import DecisionRequest, ProviderError
from policy_generator.providers.offline import OfflineProvider
from policyloop_common.events import (
    FeedbackContext,
    FeedbackSubmitted,
    PolicyGenerated,
    PolicyGenerationFailed,
    PolicySkipped,
)


def feedback(comment: str, rating: str = "negative") -> FeedbackSubmitted:
    return FeedbackSubmitted(feedback_id=str(uuid.uuid4()), user_id="u", conversation_id="c", message_id="m",
                             rating=rating, comment=comment,
                             context=FeedbackContext(question="How many systems have more than 500 users?",
                                                     sql_queries=["SELECT count(*) FROM systems WHERE users > 500"]),
                             submitted_at=datetime.now(UTC))


class FailingProvider:
    """A provider whose model is down."""

    name, model = "failing", "none"

    def decide(self, request: DecisionRequest):
        raise ProviderError("InternalServerError after 3 attempts", retriable=True, attempts=3)


def test_new_policy_then_a_near_verbatim_repeat_takes_the_fast_path() -> None:
    index = PolicyIndex()
    maker = DecisionMaker(index=index, provider=FailingProvider(), fast_path_threshold=0.75)
    offline = DecisionMaker(index=index, provider=OfflineProvider())
    first = offline.decide(feedback("The column is total_users, there is no users column."))
    assert isinstance(first, PolicyGenerated)
    assert first.policy.policy_id == policy_id_for(first.feedback_id)
    assert first.policy.status.value == "pending_review"
    index.apply(first)
    # The failing provider is never reached: the repeat is decided without any model call.
    repeat = maker.decide(feedback("The column is total_users, there is no users column."))
    assert isinstance(repeat, PolicySkipped) and repeat.duplicate_of == first.policy.policy_id
    assert repeat.decision.llm_calls == 0


def test_positive_feedback_is_skipped_without_a_provider() -> None:
    decision = DecisionMaker(index=PolicyIndex(), provider=FailingProvider()).decide(feedback("", "positive"))
    assert isinstance(decision, PolicySkipped) and decision.reason.value == "positive_feedback"


def test_provider_failure_becomes_generation_failed() -> None:
    decision = DecisionMaker(index=PolicyIndex(), provider=FailingProvider()).decide(
        feedback("Use agencies.province for the location"))
    assert isinstance(decision, PolicyGenerationFailed)
    assert decision.attempts == 3 and decision.error_class == "ProviderError"


def test_index_counts_evidence_once_and_forgets_aborted_decisions() -> None:
    index = PolicyIndex()
    first = DecisionMaker(index=index, provider=OfflineProvider()).decide(feedback("total_users, not users"))
    index.apply(first)
    twin = PolicySkipped(feedback_id="f-2", reason="duplicate_policy", duplicate_of=first.policy.policy_id,
                         decision=first.decision)
    index.apply(twin)
    index.apply(twin)
    assert index.get(first.policy.policy_id).support_count == 2
    index.stage(PolicySkipped(feedback_id="f-3", reason="not_actionable", decision=first.decision))
    assert index.is_decided("f-3")
    index.discard_staged()
    assert not index.is_decided("f-3")
