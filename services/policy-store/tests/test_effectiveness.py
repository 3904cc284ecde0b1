"""Usage materialized idempotently, feedback attributed in either arrival order, and the effectiveness figures."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from policy_store.core.config import StoreSettings
from policy_store.effectiveness import attributed_feedback, harmful_after_use_count, policy_effectiveness
from policy_store.materializer import Materializer
from policy_store.models import PolicyRecord, PolicyUsage
from policy_store.state_metrics import StoreStateCollector
from policyloop_common.cloudevents import IncomingEvent, decode, encode
from policyloop_common.events import (
    DecisionDetails,
    DecisionKind,
    FeedbackContext,
    FeedbackSubmitted,
    PolicyGenerated,
    PolicyReviewed,
    PolicyUsed,
    Rating,
    ReviewAction,
)
from policyloop_common.policy import GeneratorInfo, Policy

pytestmark = pytest.mark.integration

ACTIVATED = datetime(2026, 11, 1, tzinfo=UTC)
SETTINGS = StoreSettings(effectiveness_min_feedback=5, effectiveness_harmful_negative_rate=0.6,
                         effectiveness_similar_margin=0.2, effectiveness_similarity_threshold=0.3)
RULE = "Use the column total_users for the number of users of a system; there is no column users."
SIMILAR = ["How many systems have more than 500 users?", "Which systems have over 1000 users?",
           "Count systems with more than 300 users", "How many users does the tax system have?",
           "Bao nhiêu hệ thống có hơn 500 người dùng?"]
UNRELATED = "What is the total budget of agencies in Hanoi?"


def as_incoming(payload, time: datetime | None = None) -> IncomingEvent:
    out = encode(payload, source="/test", time=time)
    return decode(value=out.value, key=out.key, headers=out.headers, topic=out.topic, partition=0, offset=1)


def apply(sessions: sessionmaker[Session], *events: IncomingEvent) -> list[bool]:
    materializer = Materializer(auto_activate=True)
    with sessions() as session, session.begin():
        return [materializer.apply(session, event) for event in events]


def policy_created(policy_id: str, at: datetime = ACTIVATED) -> IncomingEvent:
    """A new policy, active from ``at`` (the decision event's time)."""
    policy = Policy(policy_id=policy_id, version=1, status="pending_review", category="schema_mapping",
                    priority="high", rule=RULE, correct_mapping="users -> systems.total_users",
                    missing_knowledge="", examples=["How many systems have more than 500 users?"], rationale="",
                    source_feedback_ids=["source"], support_count=1, created_at=at, updated_at=at,
                    generator=GeneratorInfo(provider="offline", model="offline-rules-v1"))
    decision = DecisionDetails(kind=DecisionKind.NEW, provider="offline", model="offline-rules-v1")
    return as_incoming(PolicyGenerated(feedback_id=f"source-{policy_id}", policy=policy, decision=decision), time=at)


def feedback(message: str, rating: Rating, question: str = SIMILAR[0], at: datetime | None = None,
             conversation: str = "c1") -> IncomingEvent:
    return as_incoming(FeedbackSubmitted(
        feedback_id=str(uuid.uuid4()), user_id="u1", conversation_id=conversation, message_id=message,
        rating=rating, comment="wrong column" if rating is Rating.NEGATIVE else None,
        context=FeedbackContext(question=question), submitted_at=at or ACTIVATED + timedelta(days=1)))


def used(message: str, *policy_ids: str, conversation: str = "c1") -> IncomingEvent:
    return as_incoming(PolicyUsed(conversation_id=conversation, message_id=message, policy_ids=list(policy_ids),
                                  question=SIMILAR[0], used_by="assistant-1",
                                  used_at=ACTIVATED + timedelta(days=1)))


def report(sessions: sessionmaker[Session], policy_id: str, settings: StoreSettings = SETTINGS) -> dict:
    with sessions() as session:
        return policy_effectiveness(session, session.get(PolicyRecord, policy_id), settings)


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_usage_applied_twice_or_reported_twice_is_stored_once(sessions) -> None:
    apply(sessions, policy_created("p1"), policy_created("p2"))
    event = used("m1", "p1", "p2", "p1")
    uses_before = counter("policyloop_policy_uses_total")
    assert apply(sessions, event) == [True]
    assert apply(sessions, event) == [False]
    assert apply(sessions, used("m1", "p2")) == [True]  # the same use reported again under a new event id
    with sessions() as session:
        rows = session.execute(select(PolicyUsage.policy_id, PolicyUsage.event_id)
                               .order_by(PolicyUsage.policy_id)).all()
    assert [row.policy_id for row in rows] == ["p1", "p2"]
    assert {row.event_id for row in rows} == {event.event_id}
    assert counter("policyloop_policy_uses_total") - uses_before == 2
    assert report(sessions, "p1")["uses"] == 1


@pytest.mark.parametrize("usage_first", [True, False], ids=["usage-then-feedback", "feedback-then-usage"])
def test_feedback_is_attributed_whatever_arrives_first(sessions, usage_first: bool) -> None:
    apply(sessions, policy_created("p1"), policy_created("p-other"))
    usage, negative = used("m1", "p1"), feedback("m1", Rating.NEGATIVE)
    elsewhere = feedback("m2", Rating.NEGATIVE)  # another answer of the conversation: not attributed
    other_conversation = feedback("m1", Rating.POSITIVE, conversation="c2")
    attributed_before = counter("policyloop_policy_feedback_attributed_total", rating="negative")
    for event in ([usage, negative] if usage_first else [negative, usage]):
        apply(sessions, event)
    apply(sessions, elsewhere, other_conversation)
    with sessions() as session:
        tally = attributed_feedback(session, "p1")
        assert (tally.feedback, tally.negative) == (1, 1)
        assert attributed_feedback(session, "p-other").feedback == 0
    assert counter("policyloop_policy_feedback_attributed_total", rating="negative") - attributed_before == 1
    figures = report(sessions, "p1")
    assert figures["uses"] == 1
    assert figures["feedback_after_use"] == {"positive": 0, "negative": 1, "negative_rate": 1.0}


def test_usage_in_a_rolled_back_transaction_is_not_counted(sessions) -> None:
    apply(sessions, policy_created("p1"))
    uses_before = counter("policyloop_policy_uses_total")
    with sessions() as session:
        session.begin()
        Materializer().apply(session, used("m1", "p1"))
        session.rollback()
    assert counter("policyloop_policy_uses_total") == uses_before
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(PolicyUsage)) == 0


def test_similar_questions_are_split_at_activation_and_unrelated_ones_left_out(sessions) -> None:
    apply(sessions, policy_created("p1"))
    before = [feedback(f"b{i}", Rating.NEGATIVE if i < 3 else Rating.POSITIVE, question=SIMILAR[i],
                       at=ACTIVATED - timedelta(days=i + 1)) for i in range(5)]
    after = [feedback(f"a{i}", Rating.NEGATIVE if i < 1 else Rating.POSITIVE, question=SIMILAR[i],
                      at=ACTIVATED + timedelta(hours=i + 1)) for i in range(4)]
    unrelated = [feedback(f"u{i}", Rating.NEGATIVE, question=UNRELATED, at=ACTIVATED + timedelta(hours=i + 1))
                 for i in range(3)]
    apply(sessions, *before, *after, *unrelated)
    figures = report(sessions, "p1")
    assert figures["similar_questions"] == {
        "threshold": 0.3,
        "before": {"feedback": 5, "negative": 3, "negative_rate": 0.6},
        "after": {"feedback": 4, "negative": 1, "negative_rate": 0.25},
    }
    assert figures["activated_at"] == ACTIVATED.isoformat()
    assert figures["uses"] == 0 and figures["feedback_after_use"]["negative_rate"] is None
    assert (figures["harmful"], figures["retirement_suggested"], figures["signals"]) == (False, False, [])


def test_candidate_feedback_is_bounded_to_the_most_recent(sessions) -> None:
    apply(sessions, policy_created("p1"))
    apply(sessions, *[feedback(f"a{i}", Rating.NEGATIVE, question=SIMILAR[i % 5],
                               at=ACTIVATED + timedelta(hours=i + 1)) for i in range(6)])
    bounded = StoreSettings(effectiveness_candidate_feedback=4)
    assert report(sessions, "p1", bounded)["similar_questions"]["after"]["feedback"] == 4
    assert report(sessions, "p1")["similar_questions"]["after"]["feedback"] == 6


def test_mostly_negative_feedback_after_use_marks_the_policy_harmful(sessions) -> None:
    apply(sessions, policy_created("p1"))
    ratings = [Rating.NEGATIVE] * 3 + [Rating.POSITIVE] * 2
    for i, rating in enumerate(ratings):
        apply(sessions, used(f"m{i}", "p1"), feedback(f"m{i}", rating, question=UNRELATED))
    figures = report(sessions, "p1")
    assert figures["feedback_after_use"] == {"positive": 2, "negative": 3, "negative_rate": 0.6}
    assert figures["harmful"] is True and figures["retirement_suggested"] is True
    assert len(figures["signals"]) == 1 and "3 of 5 feedbacks" in figures["signals"][0]
    with sessions() as session:
        assert harmful_after_use_count(session, SETTINGS) == 1
        assert harmful_after_use_count(session, StoreSettings(effectiveness_harmful_negative_rate=0.61)) == 0
    gauges = {family.name: family for family in StoreStateCollector(sessions, SETTINGS).collect()}
    assert gauges["policyloop_store_policies_retirement_suggested"].samples[0].value == 1


def test_too_little_feedback_is_no_signal(sessions) -> None:
    apply(sessions, policy_created("p1"))
    for i in range(4):
        apply(sessions, used(f"m{i}", "p1"), feedback(f"m{i}", Rating.NEGATIVE, question=UNRELATED))
    figures = report(sessions, "p1")
    assert figures["feedback_after_use"]["negative_rate"] == 1.0
    assert figures["harmful"] is False
    with sessions() as session:
        assert harmful_after_use_count(session, SETTINGS) == 0


def test_similar_questions_going_worse_after_activation_mark_the_policy_harmful(sessions) -> None:
    apply(sessions, policy_created("p1"))
    before = [feedback(f"b{i}", Rating.NEGATIVE if i < 1 else Rating.POSITIVE, question=SIMILAR[i],
                       at=ACTIVATED - timedelta(days=i + 1)) for i in range(5)]
    after = [feedback(f"a{i}", Rating.NEGATIVE if i < 1 else Rating.POSITIVE, question=SIMILAR[i],
                      at=ACTIVATED + timedelta(hours=i + 1)) for i in range(5)]
    apply(sessions, *before, *after)
    assert report(sessions, "p1")["harmful"] is False  # 20% before and after
    apply(sessions, *[feedback(f"a{i}", Rating.NEGATIVE, question=SIMILAR[i - 5],
                               at=ACTIVATED + timedelta(hours=i + 1)) for i in (5, 6)])
    figures = report(sessions, "p1")
    assert figures["similar_questions"]["after"] == {"feedback": 7, "negative": 3, "negative_rate": 0.4286}
    assert figures["harmful"] is True and figures["retirement_suggested"] is True
    assert figures["feedback_after_use"]["negative_rate"] is None  # the similar-question signal alone
    assert "43% of 7 against 20% of 5" in figures["signals"][0]


def test_a_retired_policy_is_harmful_but_not_suggested_for_retirement(sessions) -> None:
    apply(sessions, policy_created("p1"))
    for i in range(5):
        apply(sessions, used(f"m{i}", "p1"), feedback(f"m{i}", Rating.NEGATIVE, question=UNRELATED))
    retire = PolicyReviewed(policy_id="p1", action=ReviewAction.RETIRE, reviewer="admin-1", reason="bad",
                            reviewed_at=ACTIVATED + timedelta(days=2))
    apply(sessions, as_incoming(retire))
    figures = report(sessions, "p1")
    assert (figures["status"], figures["harmful"], figures["retirement_suggested"]) == ("retired", True, False)
    with sessions() as session:
        assert harmful_after_use_count(session, SETTINGS) == 0


def test_a_policy_never_activated_has_no_after(sessions) -> None:
    materializer = Materializer(auto_activate=False)
    with sessions() as session, session.begin():
        materializer.apply(session, policy_created("p1"))
    apply(sessions, feedback("a1", Rating.NEGATIVE, at=ACTIVATED + timedelta(days=3)))
    figures = report(sessions, "p1")
    assert figures["activated_at"] is None
    assert figures["similar_questions"]["before"]["feedback"] == 1
    assert figures["similar_questions"]["after"] == {"feedback": 0, "negative": 0, "negative_rate": None}
